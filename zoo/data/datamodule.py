"""``BEVCaptionsData``: the captioned BEV frames as a LightningDataModule, made on first use.

``train`` and ``validation`` come from one dataset (split by episode seed, ``zoo data bev-captions``);
``test`` from another one recorded on seeds from ``1_000_000`` on, which no training or model-selection
episode uses: the numbers a model card reports come from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from zoo.data.bev_captions import SEVERITY, make_bev_captions
from zoo.errors import ZooError
from zoo.registry import unknown_choice

#: columns a captioned BEV dataset must have
COLUMNS = ("image", "caption", "risk", "collision_within_horizon", "crashed", "time_to_collision")
TEST_SEED = 1_000_000


@dataclass
class CaptionDataset:
    """Where a captioned BEV dataset lives, and how to record it when it is not there yet.

    Attributes:
        path: dataset folder (``datasets.load_from_disk``).
        scenarios: scenarios to record.
        frames: frames to record.
        seed: first episode seed.
        frame_rate_hz: frames per simulated second (``None``: one per policy decision, the scenario's own rate).
        stall_probability: fraction of episodes in which a vehicle ahead brakes to a standstill (stopped
            obstacles; :func:`zoo.data.bev_captions.make_bev_captions`).
    """

    path: str
    scenarios: list[str] = field(default_factory=lambda: ["highway-fast"])
    frames: int = 2000
    seed: int = 0
    frame_rate_hz: float | None = None
    stall_probability: float = 0.0

    #: columns the dataset must have, and what makes such a dataset (for the error messages)
    columns: ClassVar[tuple[str, ...]] = COLUMNS
    made_by: ClassVar[str] = "zoo data bev-captions"

    def record(self) -> None:
        """Record the dataset into :attr:`path`."""
        make_bev_captions(self.scenarios, self.frames, self.path, seed=self.seed, frame_rate_hz=self.frame_rate_hz,
                          stall_probability=self.stall_probability)

    def load(self):
        """Record the dataset if its folder is missing, then load it (checked for the expected columns)."""
        import datasets  # lazy: datasets is slow to import

        if not Path(self.path).exists():
            self.record()
        try:
            data = datasets.load_from_disk(self.path)
        except (FileNotFoundError, ValueError) as err:
            raise ZooError(f"{self.path} is not a saved dataset ({err}); make one with `{self.made_by}`") from None
        splits = data if isinstance(data, datasets.DatasetDict) else {"train": data}
        for name, split in splits.items():
            missing = [c for c in self.columns if c not in split.column_names]
            if missing:
                raise ZooError(f"dataset {self.path} split {name!r} lacks column(s) {', '.join(missing)}: "
                               f"not a `{self.made_by}` dataset (columns: {', '.join(split.column_names)})")
        return data


def frames_tensor(split) -> torch.Tensor:
    """uint8 frames ``[N, 3, H, W]`` of a dataset split."""
    images = split.with_format("numpy", columns=["image"])["image"]
    return torch.from_numpy(np.ascontiguousarray(np.stack(list(images)))).permute(0, 3, 1, 2).contiguous()


def windows_tensor(split) -> torch.Tensor:
    """uint8 frame windows ``[N, K+1, 3, H, W]`` (oldest first) of a dataset split."""
    windows = split.with_format("numpy", columns=["window"])["window"]
    stacked = np.stack([np.stack(list(w)) for w in windows])
    return torch.from_numpy(np.ascontiguousarray(stacked)).permute(0, 1, 4, 2, 3).contiguous()


def labels(split) -> dict[str, np.ndarray]:
    """The ground-truth columns a reward-quality measure needs, as arrays."""
    return {c: np.asarray(split[c]) for c in ("collision_within_horizon", "crashed", "time_to_collision", "risk")}


class RecordedData(LightningDataModule):
    """Base of the data modules over datasets the zoo records: a training dataset whose ``validation`` split selects
    the model, and an optional held-out test dataset (each recorded on first use, in :meth:`prepare_data`)."""

    def __init__(self, train: CaptionDataset, test: CaptionDataset | None) -> None:
        super().__init__()
        self.train_spec, self.test_spec = train, test

    def prepare_data(self) -> None:
        self.train_spec.load()
        if self.test_spec is not None:
            self.test_spec.load()

    def train_splits(self) -> dict[str, Any]:
        """The training dataset's ``train`` and ``validation`` splits."""
        data = self.train_spec.load()
        if "validation" not in data or "train" not in data:
            raise ZooError(f"dataset {self.train_spec.path} needs train and validation splits, has "
                           f"{', '.join(data) or 'none'}: record more frames (episodes whose seed is a multiple of "
                           "5 go to validation, the others to train)")
        return {"train": data["train"], "validation": data["validation"]}

    def test_splits(self) -> dict[str, Any]:
        """``{"test": every split of the test dataset}``, or nothing without one."""
        return {} if self.test_spec is None else {"test": concat_splits(self.test_spec.load())}


class BEVCaptionsData(RecordedData):
    """Captioned BEV frames for contrastive reward-model training.

    Batches are ``(frames uint8 [B, 3, H, W], caption index [B], the caption's risk category [B], dangerous
    bool [B])``; the captions themselves are in :attr:`captions`. ``dangerous`` is the CLG goal of the frame
    (:func:`dangerous`), whichever captions are read.

    Args:
        train: training dataset (its ``validation`` split selects the model).
        test: held-out dataset for the card's numbers (default: none).
        batch_size: frames per batch.
        balance: sample rare risk categories more often (collisions are rare among driving frames).
        balance_power: a row is drawn with weight ``count(its category) ** -balance_power``: 1 draws every
            category equally often, 0.5 (the default) halfway, in log scale.
        captions: which captions the batches carry: ``"static"`` (``caption`` / ``risk``: clear road, imminent
            collision, collision, off-road) or ``"dynamic"`` (``dynamic_caption`` / ``dynamic_risk``: the risk
            describer's types and templates, the dual pathway's dynamic goals).

    Example:
        >>> data = BEVCaptionsData(CaptionDataset("data/bev", ["highway-fast"], frames=500))  # doctest: +SKIP
    """

    #: the column of the frames
    frame_column = "image"
    #: per kind of captions: the columns of the caption and of its risk category
    CAPTION_COLUMNS: ClassVar[dict[str, tuple[str, str]]] = {"static": ("caption", "risk"),
                                                             "dynamic": ("dynamic_caption", "dynamic_risk")}

    def __init__(self, train: CaptionDataset, test: CaptionDataset | None = None, batch_size: int = 128,
                 balance: bool = True, balance_power: float = 0.5, captions: str = "static") -> None:
        super().__init__(train, test)
        if batch_size < 2:
            raise ZooError(f"batch_size must be >= 2 for a contrastive loss, got {batch_size}")
        if captions not in self.CAPTION_COLUMNS:
            raise ZooError(unknown_choice("captions", captions, list(self.CAPTION_COLUMNS)))
        self.batch_size = batch_size
        self.balance = balance
        self.balance_power = balance_power
        self.caption_column, self.risk_column = self.CAPTION_COLUMNS[captions]
        self.captions: list[str] = []
        self.caption_risk: list[int] = []
        self.risk_names: list[str] = []
        self.splits: dict[str, Any] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        splits = self.train_splits()
        needed = (self.frame_column, self.caption_column, self.risk_column, "risk")
        missing = [c for c in needed if c not in splits["train"].column_names]
        if missing:
            raise ZooError(f"dataset {self.train_spec.path} lacks column(s) {', '.join(missing)}: record it again "
                           "with this version of `zoo data bev-captions`")
        self.splits = {**splits, **self.test_splits()}
        risk_of = dict(zip(splits["train"][self.caption_column], splits["train"][self.risk_column]))
        self.captions = sorted(risk_of)
        self.caption_risk = [risk_of[c] for c in self.captions]
        self.risk_names = splits["train"].features[self.risk_column].names

    def tensors(self, split: str) -> TensorDataset:
        rows = self.splits[split]
        index = {c: i for i, c in enumerate(self.captions)}
        captions = torch.tensor([index.get(c, -1) for c in rows[self.caption_column]])
        frames = frames_tensor(rows) if self.frame_column == "image" else windows_tensor(rows)
        return TensorDataset(frames, captions, torch.tensor(rows[self.risk_column]), dangerous(rows))

    def train_dataloader(self) -> DataLoader:
        dataset = self.tensors("train")
        sampler = None
        if self.balance:
            risk = dataset.tensors[2]
            counts = torch.bincount(risk, minlength=len(self.risk_names)).float()
            # 1/sqrt(count) by default: rare categories (collisions) come up far more often, without repeating
            # a few frames so often that the model memorises them.
            weights = counts[risk].pow(-self.balance_power).double()
            sampler = WeightedRandomSampler(weights, num_samples=len(risk))
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, shuffle=sampler is None,
                          drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.tensors("validation"), batch_size=self.batch_size * 2)


def dangerous(rows) -> torch.Tensor:
    """Per row of a captioned split, bool: the CLG goal is the negative one, i.e. its (static) risk category is of
    severity 2 or more (imminent collision, collision, off-road; :data:`zoo.data.bev_captions.SEVERITY`)."""
    names = rows.features["risk"].names
    severe = torch.tensor([SEVERITY[name] >= 2 for name in names])
    return severe[torch.tensor(rows["risk"], dtype=torch.long)]


def concat_splits(data):
    """All splits of a held-out dataset as one (every one of its episodes is unseen)."""
    import datasets  # lazy: datasets is slow to import

    return datasets.concatenate_datasets(list(data.values())) if isinstance(data, datasets.DatasetDict) else data


class WindowCaptionsData(BEVCaptionsData):
    """Frame windows with the description of their dynamic risk, for training a risk describer.

    Batches are ``(windows uint8 [B, K+1, 3, H, W], caption index [B], dynamic risk type [B], dangerous [B])``,
    read from the ``window``, ``dynamic_caption``, ``dynamic_risk`` (and ``risk``) columns of
    ``zoo data bev-captions``.

    Example:
        >>> data = WindowCaptionsData(CaptionDataset("data/risk", ["highway-fast"], frames=500))  # doctest: +SKIP
    """

    frame_column = "window"

    def __init__(self, train: CaptionDataset, test: CaptionDataset | None = None, batch_size: int = 128,
                 balance: bool = True, balance_power: float = 0.5, captions: str = "dynamic") -> None:
        super().__init__(train, test, batch_size, balance, balance_power, captions)
