"""``BEVCenterNet``: a tiny CenterNet-style detector for BEV frames (objects as points, "Objects as Points", 2019).

A small convolutional backbone (strides 2, 4, 8; the frames are small, so it starts at stride 2) with a top-down neck predicts, on a grid of stride 2, a
heatmap per class whose peaks are object centres, the box size in pixels and the centre's sub-cell offset.
Decoding keeps the local maxima of the heatmap (a 3 x 3 max-pool instead of box NMS). About 0.1 M
parameters.

Saved as a folder: ``config.json`` (:class:`CenterNetConfig`) and ``model.safetensors``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tensordict import TensorDictBase
from torch import nn

from zoo import keys
from zoo.envs.driving import OBJECT_CLASSES
from zoo.errors import ZooError
from zoo.perception.detector import Detections, Detector

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class CenterNetConfig:
    """The architecture of a :class:`BEVCenterNet`.

    Attributes:
        classes: class names, one heatmap each.
        widths: channels of the stem (stride 2) and of the stages at strides 2, 4 and 8.
        neck: channels of the top-down neck and the heads.
        stride: output stride of the heatmap (2: one cell per 2 x 2 pixels).
        min_score: detections below this score are dropped when decoding.
        max_detections: at most this many detections per frame.
    """

    classes: tuple[str, ...] = OBJECT_CLASSES
    widths: tuple[int, int, int, int] = (16, 24, 48, 64)
    neck: int = 24
    stride: int = 2
    min_score: float = 0.05
    max_detections: int = 16

    def __post_init__(self) -> None:
        self.classes, self.widths = tuple(self.classes), tuple(self.widths)
        if len(self.widths) != 4 or self.stride not in (2, 4) or not self.classes:
            raise ZooError(f"CenterNetConfig needs 4 widths, stride 2 or 4 and at least one class; got widths "
                           f"{self.widths}, stride {self.stride}, classes {self.classes}")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BEVCenterNet(Detector):
    """A learned detector of road users in BEV frames (reads ``keys.PIXELS``).

    Args:
        config: the architecture (default: the shipped ``bev-detector-tiny`` one).

    Example:
        >>> detector = BEVCenterNet()
        >>> out = detector(torch.zeros(1, 3, 96, 96, dtype=torch.uint8))
        >>> out["heatmap"].shape
        torch.Size([1, 2, 48, 48])
    """

    in_key = keys.PIXELS

    def __init__(self, config: CenterNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or CenterNetConfig()
        self.classes = config.classes
        w0, w1, w2, w3 = config.widths
        self.stem = _conv(3, w0, 2)
        self.stage1 = _conv(w0, w1)
        self.stage2 = nn.Sequential(_conv(w1, w2, 2), _conv(w2, w2))
        self.stage3 = nn.Sequential(_conv(w2, w3, 2), _conv(w3, w3))
        self.lateral = nn.ModuleList(nn.Conv2d(w, config.neck, 1) for w in (w1, w2, w3))
        self.smooth = _conv(config.neck, config.neck)
        self.heatmap = nn.Conv2d(config.neck, len(config.classes), 1)
        self.size = nn.Conv2d(config.neck, 2, 1)
        self.offset = nn.Conv2d(config.neck, 2, 1)
        # CenterNet's prior: every cell starts at a score of 0.1, so the focal loss is not swamped at first
        nn.init.constant_(self.heatmap.bias, -2.19)

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw outputs of uint8 frames ``[B, 3, H, W]``: ``heatmap`` logits ``[B, C, H/s, W/s]``, ``size`` and
        ``offset`` ``[B, 2, H/s, W/s]`` (box width, height in pixels; centre offset within the cell)."""
        x = self.stem(frames.float() / 255.0)
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        c3 = self.stage3(c2)
        p = self.lateral[2](c3)
        p = self.lateral[1](c2) + F.interpolate(p, size=c2.shape[-2:], mode="nearest")
        p = self.lateral[0](c1) + F.interpolate(p, size=c1.shape[-2:], mode="nearest")
        if self.config.stride == 4:
            p = F.avg_pool2d(p, 2)
        p = self.smooth(p)
        return {"heatmap": self.heatmap(p), "size": self.size(p), "offset": self.offset(p)}

    # -- inference ------------------------------------------------------------------------------------
    @torch.no_grad()
    def detect(self, next_state: TensorDictBase) -> list[Detections]:
        frames = self._read(next_state, event_dims=3)
        return self.detect_frames(frames)

    @torch.no_grad()
    def detect_frames(self, frames: torch.Tensor, chunk: int = 256) -> list[Detections]:
        """Detections of uint8 frames ``[N, 3, H, W]`` (in eval mode, ``chunk`` frames at a time)."""
        was_training = self.training
        self.eval()
        out = [d for part in frames.split(chunk) for d in self.decode(self(part), tuple(frames.shape[-2:]))]
        self.train(was_training)
        return out

    def decode(self, outputs: dict[str, torch.Tensor], image_size: tuple[int, int]) -> list[Detections]:
        """Detections from raw outputs: heatmap peaks (3 x 3 local maxima) with their size and offset."""
        heat = outputs["heatmap"].sigmoid()
        heat = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
        batch, _, height, width = heat.shape
        scores, index = heat.flatten(1).topk(min(self.config.max_detections, heat[0].numel()))
        label, cell = index // (height * width), index % (height * width)
        cy, cx = (cell // width).float(), (cell % width).float()
        size = outputs["size"].flatten(2).gather(2, cell[:, None].expand(-1, 2, -1))
        offset = outputs["offset"].flatten(2).gather(2, cell[:, None].expand(-1, 2, -1))
        centre_x = (cx + offset[:, 0]) * self.config.stride
        centre_y = (cy + offset[:, 1]) * self.config.stride
        w, h = size[:, 0].clamp(min=0), size[:, 1].clamp(min=0)
        boxes = torch.stack([centre_x - w / 2, centre_y - h / 2, centre_x + w / 2, centre_y + h / 2], dim=-1)
        limit = torch.tensor([image_size[1], image_size[0]] * 2, dtype=boxes.dtype, device=boxes.device)
        boxes = torch.minimum(boxes.clamp(min=0), limit)
        out = []
        for b in range(batch):
            keep = scores[b] >= self.config.min_score
            out.append(Detections(boxes[b][keep].float().cpu(), [self.classes[int(i)] for i in label[b][keep]],
                                  scores[b][keep].float().cpu(), image_size))
        return out

    # -- training -------------------------------------------------------------------------------------
    def targets(self, objects: torch.Tensor, image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """Training targets of ground-truth rows ``[B, MAX_OBJECTS, 6]`` (``keys.OBJECTS`` layout).

        ``heatmap``: a Gaussian per box around its centre cell (spread by the box size), 1 at the centre;
        ``size``, ``offset`` and ``mask`` (``[B, 1, h, w]``, 1 at the centre cells) for the regression heads.
        """
        stride = self.config.stride
        batch, device = objects.shape[0], objects.device
        height, width = image_size[0] // stride, image_size[1] // stride
        heatmap = torch.zeros(batch, len(self.classes), height, width, device=device)
        size = torch.zeros(batch, 2, height, width, device=device)
        offset = torch.zeros(batch, 2, height, width, device=device)
        mask = torch.zeros(batch, 1, height, width, device=device)
        ys = torch.arange(height, device=device, dtype=torch.float32)[:, None]
        xs = torch.arange(width, device=device, dtype=torch.float32)[None, :]
        rows = [(frame, int(row[4]), row[:4].tolist())
                for frame in range(batch) for row in objects[frame] if row[5] > 0.5]
        for b, label_index, (x1, y1, x2, y2) in rows:
            cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
            ix, iy = min(int(cx), width - 1), min(int(cy), height - 1)
            sigma_x, sigma_y = max(0.5, (x2 - x1) / stride / 6), max(0.5, (y2 - y1) / stride / 6)
            blob = torch.exp(-((xs - ix) ** 2 / (2 * sigma_x ** 2) + (ys - iy) ** 2 / (2 * sigma_y ** 2)))
            heatmap[b, label_index] = torch.maximum(heatmap[b, label_index], blob)
            size[b, :, iy, ix] = torch.tensor([x2 - x1, y2 - y1], device=device)
            offset[b, :, iy, ix] = torch.tensor([cx - ix, cy - iy], device=device)
            mask[b, 0, iy, ix] = 1.0
        return {"heatmap": heatmap, "size": size, "offset": offset, "mask": mask}

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """CenterNet's losses: focal loss on the heatmap, L1 on size (weight 0.1) and offset at the centres."""
        pred = outputs["heatmap"].sigmoid().clamp(1e-4, 1 - 1e-4)
        gt = targets["heatmap"]
        positive = gt.eq(1).float()
        positives = positive.sum().clamp(min=1)
        focal = -(positive * (1 - pred) ** 2 * pred.log()
                  + (1 - positive) * (1 - gt) ** 4 * pred ** 2 * (1 - pred).log()).sum() / positives
        mask = targets["mask"]
        size = (F.l1_loss(outputs["size"], targets["size"], reduction="none") * mask).sum() / positives
        offset = (F.l1_loss(outputs["offset"], targets["offset"], reduction="none") * mask).sum() / positives
        return {"loss": focal + 0.1 * size + offset, "heatmap": focal, "size": size, "offset": offset}

    # -- files ----------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``folder`` (created)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps({"architecture": "bev-centernet", **asdict(self.config)},
                                                     indent=2) + "\n")
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / WEIGHTS_FILE),
                  metadata={"format": "pt"})
        return folder

    @classmethod
    def from_folder(cls, folder: str | Path) -> BEVCenterNet:
        """Load a detector written by :meth:`save` (weights from safetensors only).

        Raises:
            ZooError: a missing or unreadable config or weights file, or weights that do not fit the config.
        """
        folder = Path(folder)
        try:
            config = json.loads((folder / CONFIG_FILE).read_text())
            config.pop("architecture", None)
            detector = cls(CenterNetConfig(**config))
            detector.load_state_dict(load_file(folder / WEIGHTS_FILE))
        except Exception as err:  # noqa: BLE001 (json, safetensors and torch raise several types for a bad folder)
            raise ZooError(f"cannot load a BEV detector from {folder}: {str(err).splitlines()[0][:300]}") from None
        return detector.eval()

