"""BEV frames with the simulator's boxes of the other road users, for training and scoring detectors.

Episodes are driven as for the captioned frames (:func:`zoo.data.bev_captions.recorded_episodes`: a mix of
random, reckless and cautious policies, split train/validation by episode seed). Each row is one step:

* ``image``: the BEV frame;
* ``objects``: float32 ``[MAX_OBJECTS, 6]``, the rows :meth:`zoo.envs.driving.DrivingEnv.objects` writes
  (x1, y1, x2, y2 in pixels, class index into ``OBJECT_CLASSES``, valid);
* ``episode_seed``, ``step``, ``scenario``, ``policy``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from zoo.data.bev_captions import check_output_folder, encode_frames, recorded_episodes
from zoo.data.datamodule import CaptionDataset, RecordedData, frames_tensor
from zoo.errors import ZooError


def make_bev_boxes(scenarios: list[str], frames: int, out: str | Path, *, seed: int = 0, bev_size: int = 96,
                   frame_rate_hz: float | None = None, crash_probability: float = 0.0, validation_every: int = 5,
                   overwrite: bool = False, progress: bool = True):
    """Record about ``frames`` BEV frames with their ground-truth boxes and save a ``datasets.DatasetDict``.

    Args:
        scenarios: scenario names (discrete meta-actions drive them).
        frames: total number of rows to record (whole episodes, so slightly more).
        out: folder to save to (``datasets.load_from_disk`` reads it back).
        seed: first episode seed; episode ``i`` uses ``seed + i``.
        bev_size: frame side in pixels.
        frame_rate_hz: frames per simulated second (``None``: one per policy decision, the scenario's own rate).
        crash_probability: the fraction of episodes in which the vehicle nearest ahead crashes (stops where it is,
            drawn red) at a decision drawn from 2..10 (column ``crash_ahead``;
            :func:`zoo.data.bev_captions.crash_vehicle_ahead`): the ``crashed_car`` boxes a detector needs.
        validation_every: episodes whose seed is a multiple of this go to ``validation``.
        overwrite: replace an existing non-empty ``out``.
        progress: show a progress bar.

    Returns:
        The ``DatasetDict`` with ``train`` and ``validation`` splits (those that got episodes).

    Example:
        >>> make_bev_boxes(["highway-fast"], 200, "data/boxes", progress=False)  # doctest: +SKIP
    """
    import datasets  # lazy: datasets is slow to import

    from zoo.envs.driving import MAX_OBJECTS, OBJECT_FIELDS  # lazy: would load highway_env, gymnasium, pandas

    if not 0.0 <= crash_probability <= 1.0:
        raise ZooError(f"crash_probability must be within [0, 1], got {crash_probability}")
    out = Path(out)
    check_output_folder(out, overwrite)
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "validation": []}
    for split, rows in recorded_episodes(scenarios, frames, random.Random(seed), seed=seed,
                                         validation_every=validation_every, progress=progress, window=1,
                                         bev_size=bev_size, frame_rate_hz=frame_rate_hz, objects=True,
                                         crash_probability=crash_probability):
        rows = [{"image": r["image"], "objects": r["objects"], "step": r["step"], "scenario": r["scenario"],
                 "policy": r["policy"], "episode_seed": r["episode_seed"], "crash_ahead": r["crash_ahead"]}
                for r in rows]
        encode_frames(rows)
        splits[split].extend(rows)
    features = datasets.Features({
        "image": datasets.Image(), "objects": datasets.Array2D((MAX_OBJECTS, len(OBJECT_FIELDS)), "float32"),
        "step": datasets.Value("int32"), "scenario": datasets.Value("string"), "policy": datasets.Value("string"),
        "episode_seed": datasets.Value("int64"), "crash_ahead": datasets.Value("bool"),
    })
    dataset = datasets.DatasetDict({  # a split no episode went to is left out (a short held-out recording)
        name: datasets.Dataset.from_list(rows, features=features) for name, rows in splits.items() if rows})
    dataset.save_to_disk(str(out))
    return dataset


@dataclass
class BoxDataset(CaptionDataset):
    """Where a BEV boxes dataset lives, and how to record it when it is not there yet.

    Attributes:
        path: dataset folder (``datasets.load_from_disk``).
        scenarios: scenarios to record.
        frames: frames to record.
        seed: first episode seed.
        frame_rate_hz: frames per simulated second (``None``: one per policy decision, the scenario's own rate).
        crash_probability: fraction of episodes in which the vehicle ahead crashes (see :func:`make_bev_boxes`).
    """

    crash_probability: float = 0.0
    columns: ClassVar[tuple[str, ...]] = ("image", "objects")
    made_by: ClassVar[str] = "zoo.data.bev_boxes.make_bev_boxes"

    def record(self) -> None:
        make_bev_boxes(self.scenarios, self.frames, self.path, seed=self.seed, frame_rate_hz=self.frame_rate_hz,
                       crash_probability=self.crash_probability)


def objects_tensor(split) -> torch.Tensor:
    """Ground-truth boxes ``[N, MAX_OBJECTS, 6]`` float32 of a dataset split."""
    objects = split.with_format("numpy", columns=["objects"])["objects"]
    return torch.from_numpy(np.ascontiguousarray(np.stack(list(objects)), dtype=np.float32))


class BEVBoxesData(RecordedData):
    """BEV frames and their ground-truth boxes for detector training.

    Batches are ``(frames uint8 [B, 3, H, W], objects float32 [B, MAX_OBJECTS, 6])``. :meth:`setup` reads every
    split into memory once: training, model selection and the card's scores all see that one snapshot, even
    if the dataset folder is recorded again (``overwrite=True``) while the fit runs.

    Args:
        train: training dataset (its ``validation`` split selects the model).
        test: held-out dataset (episode seeds from ``1_000_000``) for the card's numbers.
        batch_size: frames per batch.

    Example:
        >>> data = BEVBoxesData(BoxDataset("data/boxes", ["highway-fast"], frames=500))  # doctest: +SKIP
    """

    def __init__(self, train: BoxDataset, test: BoxDataset | None = None, batch_size: int = 64) -> None:
        super().__init__(train, test)
        if batch_size < 1:
            raise ZooError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.splits: dict[str, Any] = {}
        self._tensors: dict[str, TensorDataset] = {}
        self._scenarios: dict[str, list[str]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.splits = {**self.train_splits(), **self.test_splits()}
        for name, rows in self.splits.items():  # the snapshot (the Arrow files are memory-mapped, not copied)
            self._tensors[name] = TensorDataset(frames_tensor(rows), objects_tensor(rows))
            self._scenarios[name] = list(rows["scenario"])

    def tensors(self, split: str, scenario: str | None = None) -> TensorDataset:
        """Frames and boxes of ``split`` as read by :meth:`setup` (only ``scenario``'s rows when given)."""
        data = self._tensors[split]
        if scenario is None:
            return data
        rows = torch.tensor([s == scenario for s in self._scenarios[split]])
        return TensorDataset(*(t[rows] for t in data.tensors))

    def scenarios(self, split: str) -> list[str]:
        """The scenarios of ``split``'s rows, sorted."""
        return sorted(set(self._scenarios[split]))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.tensors("train"), batch_size=self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.tensors("validation"), batch_size=self.batch_size * 2)
