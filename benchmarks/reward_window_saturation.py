"""Share of frames at a bound of R_norm: VLM-RL's ViT-bigG window [-0.03, 0] vs the window in the model's card.

    python benchmarks/reward_window_saturation.py      # about 5 minutes on 2 busy cores

Records 500 random-action highway-fast frames (seed 1) for CLG, then 500 more with 4-frame windows for the dual
pathway, and prints per head and window: the share of frames at a bound, at 1, and of frames within 1 s of a
collision at 1 (a window that pays full speed before a crash). Numbers quoted in docs/rewards.md.
"""

import torch

import zoo
from zoo.rewards.calibrate import record

WINDOWS = (("vit-bigg [-0.03, 0]", {"theta_min": -0.03, "theta_max": 0.0}), ("card", True))


def saturation(head: str, frame_window: int) -> None:
    states, imminent = record("highway-fast", 500, seed=1, frame_window=frame_window, progress=False)
    for label, synthesis in WINDOWS:
        reward = zoo.create_reward_model("drive-clip-bev-tiny", head=head, synthesis=synthesis, device="cpu")
        r_norm = reward.compute(states.clone())["semantic_norm"].reshape(-1)
        at_bound = (r_norm <= 0) | (r_norm >= 1)
        print(head, label, [reward.theta_min, reward.theta_max], f"at a bound {at_bound.float().mean():.3f}",
              f"at 1 {(r_norm >= 1).float().mean():.3f}",
              f"imminent frames at 1 {(r_norm[imminent] >= 1).float().mean():.3f}",
              f"frames {len(r_norm)} imminent {int(imminent.sum())}")


if __name__ == "__main__":
    torch.manual_seed(1)
    saturation("clg", frame_window=1)
    saturation("dual-pathway", frame_window=4)
