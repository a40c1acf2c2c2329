"""Detectors: a frame (or the simulator's object list) in, boxes with class names and scores out.

Every detector is a ``torch.nn.Module`` that declares the TensorDict key it reads (TorchRL style) and
returns one :class:`Detections` per frame of a next state, the batch flattened. Two kinds:

* :class:`OracleDetector` reads ``keys.OBJECTS``, the simulator's own boxes (score 1), for ablations and
  as the ground truth the learned detectors are measured against;
* learned detectors read ``keys.PIXELS`` (the zoo ships :class:`zoo.perception.centernet.BEVCenterNet`).

:func:`load_detector` resolves a name: ``"oracle"`` or any model source of
:func:`zoo.hub.resolve.resolve_model` whose card has ``kind: detector`` (e.g. ``bev-detector-tiny.sim``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tensordict import TensorDictBase

from zoo import keys
from zoo.envs.driving import OBJECT_CLASSES
from zoo.errors import ZooError
from zoo.hub.resolve import list_models, resolve_model
from zoo.registry import Registry


@dataclass
class Detections:
    """The objects found in one frame.

    Attributes:
        boxes: ``[M, 4]`` float32, x1, y1, x2, y2 in pixels of the BEV frame (x right, y down).
        labels: class names, ``len(labels) == M``.
        scores: ``[M]`` float32 in [0, 1].
        image_size: ``(height, width)`` of the frame in pixels, so that a region of interest given in
            fractions of the frame can be placed.
    """

    boxes: torch.Tensor
    labels: list[str]
    scores: torch.Tensor
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.labels)


class Detector(torch.nn.Module, ABC):
    """A detector of road users in BEV frames.

    Attributes:
        in_key: the TensorDict key it reads (``keys.PIXELS`` or ``keys.OBJECTS``).
        classes: the class names its labels come from.
    """

    in_key: str | tuple[str, ...]
    classes: tuple[str, ...]

    @abstractmethod
    def detect(self, next_state: TensorDictBase) -> list[Detections]:
        """One :class:`Detections` per frame of ``next_state`` (its batch dimensions flattened, row-major)."""

    def _read(self, next_state: TensorDictBase, event_dims: int) -> torch.Tensor:
        """``next_state[in_key]`` with its batch dimensions flattened into one."""
        if self.in_key not in next_state.keys(include_nested=True):
            raise ZooError(f"{type(self).__name__} reads {self.in_key!r}, which the next state lacks "
                           f"(keys: {sorted(map(str, next_state.keys(include_nested=True)))})"
                           + (": make the env with objects=True" if self.in_key == keys.OBJECTS else ""))
        value = next_state[self.in_key]
        return value.reshape(-1, *value.shape[value.dim() - event_dims:])


class OracleDetector(Detector):
    """The simulator's boxes of the other road users (``keys.OBJECTS``, see ``EnvConfig(objects=True)``), score 1.

    Args:
        bev_size: side of the BEV frame in pixels, used when the next state has no ``keys.PIXELS`` to read it from.

    Example:
        >>> env = zoo.make_env("highway-fast", obs="bev", objects=True)  # doctest: +SKIP
        >>> OracleDetector().detect(env.reset())[0].labels  # doctest: +SKIP
        ['car', 'car']
    """

    in_key = keys.OBJECTS
    classes = OBJECT_CLASSES

    def __init__(self, bev_size: int = 96) -> None:
        super().__init__()
        self.bev_size = bev_size

    def detect(self, next_state: TensorDictBase) -> list[Detections]:
        objects = self._read(next_state, event_dims=2)
        pixels = next_state.get(keys.PIXELS, None)
        size = tuple(pixels.shape[-2:]) if pixels is not None else (self.bev_size, self.bev_size)
        out = []
        for rows in objects.float():
            rows = rows[rows[:, 5] > 0.5]
            out.append(Detections(rows[:, :4].clone(), [self.classes[int(i)] for i in rows[:, 4]],
                                  torch.ones(len(rows)), size))
        return out


#: detectors built by name rather than loaded from a model folder
BUILT_IN: Registry[Callable[[], Detector]] = Registry("built-in detector")
BUILT_IN.register("oracle", OracleDetector)


def load_detector(source: str | Detector) -> Detector:
    """A detector by name: ``"oracle"``, or a detector model source (zoo name, folder, ``models:/`` URI).

    Raises:
        ZooError: an unknown name (the message lists the shipped detectors), or a model that is not a detector.

    Example:
        >>> load_detector("bev-detector-tiny.sim").classes  # doctest: +SKIP
        ('car', 'crashed_car')
    """
    if isinstance(source, Detector):
        return source
    if source in BUILT_IN:
        return BUILT_IN.get(source)()
    # lazy: import cycle (zoo.perception.centernet imports this module)
    from zoo.perception.centernet import BEVCenterNet

    try:
        resolved = resolve_model(source)
    except ZooError as err:
        if Path(str(source)).exists():  # a folder that is there but unreadable: say that, not "unknown"
            raise
        choices = [*BUILT_IN.names(), *list_models("detector", pretrained=True)]
        raise ZooError(f"unknown detector {source!r} (valid: {', '.join(choices)}); {err}") from None
    kind = (resolved.card or {}).get("kind")
    if kind != "detector":
        raise ZooError(f"{source!r} is a {kind or 'plain Hugging Face'} model, not a detector; detectors: "
                       f"{', '.join([*BUILT_IN.names(), *list_models('detector', pretrained=True)])}")
    return BEVCenterNet.from_folder(resolved.path)
