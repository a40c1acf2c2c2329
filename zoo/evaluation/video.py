"""The evaluation video: frames scaled up to a watchable size, with speed and reward written on them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

#: shortest side of a written frame; highway-env renders small frames (96 px) that are hard to watch
MIN_SIDE_PX = 384
CAPTION_PX = 18


def caption(step: int, speed_m_s: float, reward: float | None) -> str:
    """The line written on a frame (no reward on the first frame: nothing has been done yet)."""
    reward_text = "-" if reward is None else f"{reward:+.2f}"
    return f"step {step}  speed {speed_m_s * 3.6:.0f} km/h  reward {reward_text}"


def annotate(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` (H×W×3 uint8) scaled up by an integer factor (nearest neighbour keeps the pixels sharp)
    to at least :data:`MIN_SIDE_PX`, with ``text`` on a black band above it."""
    scale = max(1, math.ceil(MIN_SIDE_PX / min(frame.shape[:2])))
    image = Image.fromarray(np.ascontiguousarray(frame[..., :3]))
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    canvas = Image.new("RGB", (image.width, image.height + CAPTION_PX), "black")
    canvas.paste(image, (0, CAPTION_PX))
    ImageDraw.Draw(canvas).text((4, 3), text, fill="white")
    return np.asarray(canvas)


def write_video(frames: list[np.ndarray], captions: list[str], path: Path, fps: int = 5) -> None:
    """Write the annotated frames as a GIF (by suffix) or another format imageio knows (MP4 …)."""
    import imageio.v2 as imageio  # lazy: imageio is slow to import

    annotated = [annotate(frame, text) for frame, text in zip(frames, captions, strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        imageio.mimsave(path, annotated, duration=1000 / fps, loop=0)
    else:
        imageio.mimsave(path, annotated, fps=fps)
