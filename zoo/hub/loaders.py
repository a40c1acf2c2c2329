"""A zoo model folder rebuilt as the object it describes (a reward module or a policy agent), and the batch
predictions the registered pyfunc model serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo import keys
from zoo.errors import ZooError
from zoo.hub.cards import read_card


def build_from_folder(folder: str | Path) -> Any:
    """Rebuild the zoo model a folder describes: a reward module or a policy agent.

    * ``kind: reward``: ``zoo.create_reward_model(folder)`` with the card's defaults; an adapter folder
      (``adapter_of``) loads its base (resolved by name, folder or URI), quantized as ``quantization`` says,
      with the folder's LoRA adapters on top.
    * ``kind: policy``: :func:`zoo.hub.policies.load_policy_folder`.

    Example:
        >>> reward = build_from_folder(zoo.hub.download_model("models:/clip-bev@champion"))  # doctest: +SKIP
    """
    folder = Path(folder)
    if read_card(folder)["kind"] == "policy":
        from zoo.hub.policies import load_policy_folder  # lazy: would load lightning, torchrl, tensordict

        return load_policy_folder(folder)
    from zoo.rewards.factory import create_reward_model  # lazy: would load torchrl, tensordict, torch

    return create_reward_model(str(folder))  # the card's defaults; an adapter loads its base first


def predict_rewards(reward: Any, images: Any) -> Any:
    """Rewards ``[N]`` (float32 numpy) of uint8 images ``[N, H, W, 3]`` or ``[N, 3, H, W]``.

    The head's reward on the image embeddings alone: a synthesis wrapper's vehicle-state terms are left out.
    """
    import numpy as np  # lazy: numpy is slow to import
    import torch  # lazy: torch is slow to import

    frames = np.asarray(images)
    if frames.dtype != np.uint8:
        raise ZooError(f"images must be uint8 (0-255), got {frames.dtype}")
    if frames.ndim != 4 or 3 not in (frames.shape[1], frames.shape[-1]):
        raise ZooError(f"images must have shape [N, H, W, 3] or [N, 3, H, W], got {frames.shape}")
    if frames.shape[1] != 3:  # channels last
        frames = frames.transpose(0, 3, 1, 2)
    head = getattr(reward, "semantic", reward)  # HierarchicalReward wraps the VLM head
    with torch.no_grad():
        embeddings = head.image_embeddings(torch.from_numpy(np.ascontiguousarray(frames)))
        return head.score(embeddings)["reward"].float().cpu().numpy()


def predict_actions(agent: Any, observations: Any) -> Any:
    """Deterministic actions (numpy, batch first) of a policy agent for a batch of observations."""
    import numpy as np  # lazy: numpy is slow to import
    import torch  # lazy: torch is slow to import
    from tensordict import TensorDict  # lazy: tensordict is slow to import

    obs = torch.as_tensor(np.asarray(observations))
    if tuple(obs.shape[1:]) != tuple(agent.obs_shape):
        raise ZooError(f"observations must have shape [N, {', '.join(map(str, agent.obs_shape))}] "
                       f"({agent.obs_key}), got {tuple(obs.shape)}")
    if agent.obs_key != keys.PIXELS:
        obs = obs.float()
        if not torch.isfinite(obs).all():
            raise ZooError(f"observations hold {int((~torch.isfinite(obs)).sum())} NaN or infinite values")
    batch = TensorDict({agent.obs_key: obs.to(agent.device)}, batch_size=[obs.shape[0]])
    return agent.act(batch)[keys.ACTION].cpu().numpy()
