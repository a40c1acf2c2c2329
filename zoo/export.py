"""Deployment: a trained policy as a policy-only TorchScript or ONNX file (``zoo export``).

The artifact holds the deterministic policy network and nothing else: the reward (and any VLM behind
it) is not part of an agent's module tree (``zoo.agents.base.Agent`` keeps it out), and the graph is
traced from the policy alone (:func:`torch.export.export`), so only the actor's parameters are in it.

Its one input is the observation the policy reads (``observation``: float32 ``[batch, *obs_shape]`` for
the MLP policies, ``pixels``: uint8 ``[batch, C, H, W]`` for the CNN ones); its one output is the action
batch. The input contract is checked in two places:

* :class:`ExportedPolicy` (``zoo.export.load_exported``) raises a :class:`~zoo.errors.ZooError` naming
  the problem (dtype, shape, NaN/inf) before the graph runs, for both formats;
* a TorchScript artifact checks the same inside the file (``torch.jit.Error``, a ``RuntimeError`` in C++,
  whose message starts ``zoo policy:``), so
  a consumer without the zoo (C++ ``torch::jit::load``) gets the same message. An ONNX artifact declares
  its input's dtype and shape; onnxruntime rejects a wrong dtype or rank itself, but it cannot check
  for NaN: wrap it in :class:`ExportedPolicy` or check before calling.

The spec (observation key, dtype, shape, action shape, source) travels inside the file: TorchScript
extra file ``zoo.json``, ONNX ``metadata_props`` key ``zoo``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from rich.console import Console
from torch import nn

from zoo import keys
from zoo.api import load_policy
from zoo.errors import ZooError
from zoo.extras import require
from zoo.registry import check_choice

#: the artifact formats (``zoo export --format``)
Format = Literal["torchscript", "onnx"]
FORMATS = get_args(Format)
SPEC_KEY = "zoo"


class DeterministicPolicy(nn.Module):
    """An agent's policy as a plain tensor function ``observation -> action`` (deterministic mode).

    Args:
        agent: a trained :class:`zoo.agents.Agent`; its policy is copied, the agent is not changed.
    """

    def __init__(self, agent: Any) -> None:
        super().__init__()
        self.policy = copy.deepcopy(agent.policy).select_out_keys(keys.ACTION)
        self.obs_key = agent.obs_key

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        from torchrl.envs import ExplorationType, set_exploration_type  # lazy: torchrl is slow to import

        with set_exploration_type(ExplorationType.DETERMINISTIC):
            return self.policy(**{self.obs_key: observation})


def policy_spec(agent: Any, source: str) -> dict[str, Any]:
    """The artifact's input/output contract, as stored inside it."""
    action = agent.action_spec
    return {"obs_key": agent.obs_key, "obs_dtype": "uint8" if agent.obs_key == keys.PIXELS else "float32",
            "obs_shape": list(agent.obs_shape), "action_shape": list(action.shape),
            "action_dtype": str(action.dtype).removeprefix("torch."), "algorithm": type(agent).__name__,
            "scenario": agent.env_config.scenario, "source": str(source)}


class _CheckedPolicy(nn.Module):
    """TorchScript wrapper: checks the observation's dtype, trailing shape and finiteness, then runs the policy."""

    def __init__(self, core: torch.jit.ScriptModule, obs_shape: list[int], dtype: torch.dtype, obs_key: str) -> None:
        super().__init__()
        self.core = core
        self.obs_shape = obs_shape
        self.dtype = dtype
        self.dtype_name = str(dtype).removeprefix("torch.")  # TorchScript prints a dtype as its enum number
        self.obs_key = obs_key

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        if observation.dtype != self.dtype:
            raise RuntimeError(f"zoo policy: {self.obs_key} must be {self.dtype_name}")
        n = len(self.obs_shape)
        if observation.dim() != n + 1 or observation.shape[1:] != self.obs_shape:
            raise RuntimeError(f"zoo policy: {self.obs_key} must have shape [batch, {self.obs_shape}], "
                               f"got {observation.shape}")
        if observation.is_floating_point() and not bool(torch.isfinite(observation).all()):
            raise RuntimeError(f"zoo policy: {self.obs_key} contains NaN or inf")
        return self.core(observation)


def _traceable(graph_module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """The exported graph with batch-size reads as Tensor methods, so that ``torch.jit.trace`` keeps them symbolic.

    ``torch.jit.trace`` records a size read through ``aten.sym_size`` (and passed to ``aten.reshape``) as a
    constant, which would fix the batch size of a CNN policy to the example's; ``x.size(d)`` and
    ``x.reshape(...)`` are traced as operations on the input.
    """
    methods = {torch.ops.aten.sym_size.int: "size", torch.ops.aten.reshape.default: "reshape",
               torch.ops.aten.view.default: "reshape"}
    for node in graph_module.graph.nodes:
        if node.op == "call_function" and node.target in methods:
            node.op, node.target = "call_method", methods[node.target]
    graph_module.recompile()
    return graph_module


def export_policy(source: str, fmt: str, out: str | Path) -> Path:
    """Write the deterministic policy of ``source`` as a policy-only artifact.

    Args:
        source: anything :func:`zoo.load_policy` takes (zoo name, policy folder, ``.ckpt``, ``runs:/``,
            ``models:/``).
        fmt: ``torchscript`` or ``onnx``.
        out: the file to write (parent folders are created).

    Returns:
        The path written.

    Example:
        >>> export_policy("runs/sac/checkpoints/last.ckpt", "onnx", "sac.onnx")  # doctest: +SKIP
        >>> policy = load_exported("sac.onnx")  # doctest: +SKIP
        >>> policy(observation_batch)  # doctest: +SKIP
    """
    check_choice("format", fmt, FORMATS)
    if fmt == "onnx":  # before the policy loads: torch's dynamo exporter needs onnx and onnxscript
        onnx = require("onnx", "ONNX export")
        require("onnxscript", "ONNX export")
    agent = load_policy(source)
    spec = policy_spec(agent, source)
    example = torch.zeros(2, *agent.obs_shape, dtype=getattr(torch, spec["obs_dtype"]))
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(DeterministicPolicy(agent).eval(), (example,), strict=False,
                                  dynamic_shapes=({0: batch},))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        core = torch.jit.trace(_traceable(program.module()), (example,), check_trace=False)
        scripted = torch.jit.script(_CheckedPolicy(core, spec["obs_shape"], example.dtype, spec["obs_key"]))
        torch.jit.save(scripted, str(out), _extra_files={f"{SPEC_KEY}.json": json.dumps(spec)})
    else:
        torch.onnx.export(program, (example,), str(out), input_names=[spec["obs_key"]],
                          output_names=[keys.ACTION], dynamo=True, external_data=False, verbose=False)
        model = onnx.load(str(out))
        entry = model.metadata_props.add()
        entry.key, entry.value = SPEC_KEY, json.dumps(spec)
        onnx.save(model, str(out))
    return out


class ExportedPolicy:
    """A policy artifact loaded for inference, with the input checked before the graph runs.

    Call it with an observation batch (tensor or NumPy array); it returns the action batch as a tensor.

    Attributes:
        spec: the contract stored in the artifact (see :func:`policy_spec`).
        fmt: ``torchscript`` or ``onnx``.
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise ZooError(f"no exported policy at {path}")
        if path.suffix == ".onnx":
            onnx = require("onnx", "loading an ONNX policy")
            onnxruntime = require("onnxruntime", "running an ONNX policy")
            meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
            self.fmt, self.spec = "onnx", json.loads(meta.get(SPEC_KEY, "null") or "null")
            self._session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        else:
            extra = {f"{SPEC_KEY}.json": ""}
            try:
                self._module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
            except RuntimeError as err:
                raise ZooError(f"{path} is not a TorchScript or ONNX policy ({str(err).splitlines()[0]})") from None
            self.fmt, self.spec = "torchscript", json.loads(extra[f"{SPEC_KEY}.json"] or "null")
        if not self.spec:
            raise ZooError(f"{path} carries no zoo policy spec: was it written by `zoo export`?")

    def check(self, observation: torch.Tensor) -> None:
        """Raise a :class:`ZooError` unless ``observation`` fits the spec (dtype, ``[batch, *obs_shape]``, finite)."""
        key, shape, dtype = self.spec["obs_key"], self.spec["obs_shape"], self.spec["obs_dtype"]
        if observation.dtype != getattr(torch, dtype):
            raise ZooError(f"{key} must be {dtype}, got {str(observation.dtype).removeprefix('torch.')}")
        if observation.dim() != len(shape) + 1 or list(observation.shape[1:]) != shape:
            raise ZooError(f"{key} must have shape [batch, {', '.join(map(str, shape))}], "
                           f"got {list(observation.shape)}")
        if observation.is_floating_point() and not torch.isfinite(observation).all():
            raise ZooError(f"{key} contains NaN or inf")

    def __call__(self, observation: Any) -> torch.Tensor:
        observation = torch.as_tensor(observation)
        self.check(observation)
        if self.fmt == "onnx":
            return torch.from_numpy(self._session.run(None, {self.spec["obs_key"]: observation.numpy()})[0])
        with torch.no_grad():
            return self._module(observation)


def load_exported(path: str | Path) -> ExportedPolicy:
    """Load a ``zoo export`` artifact (``.onnx``: onnxruntime; else TorchScript) for checked inference.

    Example:
        >>> policy = load_exported("sac.pt")  # doctest: +SKIP
        >>> action = policy(torch.zeros(1, 25))  # doctest: +SKIP
    """
    return ExportedPolicy(path)


def export(*, policy: str, format_: Format, out: str) -> None:
    """Write a trained policy as a policy-only deployment artifact (no reward model, no VLM).

    The deterministic policy network: input = the observation it reads, output = the action. Load it with
    zoo.export.load_exported(PATH), torch.jit.load (torchscript) or onnxruntime.

    Args:
        policy: zoo name, policy folder, .ckpt, runs:/<id> or models:/ URI
        format_: the artifact's format
        out: file to write (e.g. policy.pt or policy.onnx)
    """
    path = export_policy(policy, format_, out)
    spec = load_exported(path).spec
    Console(stderr=True, soft_wrap=True).print(
        f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB, {format_}): input {spec['obs_key']} "
        f"{spec['obs_dtype']} [batch, {', '.join(map(str, spec['obs_shape']))}] -> action "
        f"[batch, {', '.join(map(str, spec['action_shape']))}]", highlight=False, markup=False)
