"""Share of frames at a bound of R_norm: VLM-RL's ViT-bigG window [-0.03, 0] vs the window in the model's card.

    python benchmarks/reward_window_saturation.py      # about 5 minutes on 2 busy cores
    python benchmarks/reward_window_saturation.py --quick --out /tmp/rws.json   # 16 frames (a test runs it)

Records ``--frames`` (500) random-action highway-fast frames (seed 1) for CLG, then as many with 4-frame windows for
the dual pathway, and prints per head and window: the share of frames at a bound, at 1, and of frames within 1 s of
a collision at 1 (a window that pays full speed before a crash; ``null`` when no recorded frame is). Numbers quoted
in docs/rewards.md; the rows go to ``--out`` (default ``benchmarks/results/reward_window_saturation.json``).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BenchmarkParser, git_state, write_json

WINDOWS = (("vit-bigg [-0.03, 0]", {"theta_min": -0.03, "theta_max": 0.0}), ("card", True))


def saturation(head: str, frame_window: int, frames: int) -> list[dict[str, Any]]:
    """One row per window: shares of the ``frames`` recorded frames' ``R_norm`` at a bound of ``head``'s window."""
    import zoo
    from zoo.envs import EnvConfig
    from zoo.rewards.calibrate import record

    env = EnvConfig("highway-fast", action="discrete", obs="bev", frame_window=frame_window)
    states, imminent = record(env, frames, seed=1, progress=False)
    rows = []
    for label, synthesis in WINDOWS:
        reward = zoo.create_reward_model("drive-clip-bev-tiny", head=head, synthesis=synthesis, device="cpu")
        r_norm = reward.compute(states.clone())["semantic_norm"].reshape(-1)
        at_bound = (r_norm <= 0) | (r_norm >= 1)
        row = {"head": head, "window": label, "theta": [reward.theta_min, reward.theta_max],
               "at_a_bound": float(at_bound.float().mean()), "at_1": float((r_norm >= 1).float().mean()),
               "imminent_at_1": float((r_norm[imminent] >= 1).float().mean()) if imminent.any() else None,
               "frames": len(r_norm), "imminent_frames": int(imminent.sum())}
        print(row, flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = BenchmarkParser("reward_window_saturation", __doc__, quick={"frames": 16})
    parser.add_argument("--frames", type=int, default=500, help="frames recorded per head")
    args = parser.parse_args()
    torch.manual_seed(1)
    rows = saturation("clg", 1, args.frames) + saturation("dual-pathway", 4, args.frames)
    command = "python benchmarks/reward_window_saturation.py" + (" --quick" if args.quick else "")
    date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    write_json(args.out, {"benchmark": "reward_window_saturation", "command": command, "date": date,
                          "git": git_state(), "args": vars(args), "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
