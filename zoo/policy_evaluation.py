"""``zoo evaluate``: the held-out evaluation of a trained policy or a reference policy, reported as a table, files
and an MLflow run (:func:`zoo.evaluation.report.report_evaluation`)."""

from __future__ import annotations

from pathlib import Path

from zoo.errors import UsageError, ZooError
from zoo.registry import check_choice
from zoo.tracking.settings import check_tracking_uri, resolve_checkpoint, tracking_uri


def evaluate_policy(*, ckpt: str | None = None, policy: str | None = None, scenario: str | None = None,
                    condition: str = "default", episodes: int = 20, seed: int = 0, video: str | None = None,
                    out: str | None = None, allow_pickle: bool = False) -> None:
    """Evaluate a trained policy (--ckpt) or a reference policy (--policy) on held-out seeds.

    Driving metrics (docs/method.md#metrics) as a table, JSON and CSV, logged to MLflow.

    Args:
        ckpt: Lightning checkpoint (.ckpt) or MLflow run (runs:/<id>)
        policy: reference policy instead of a checkpoint: constant:<LANE_LEFT|IDLE|LANE_RIGHT|FASTER|SLOWER>,
            random or idm (highway-env's IDM + MOBIL driver)
        scenario: scenario (default: the one trained on; highway-fast for --policy)
        condition: traffic: default (as trained on) or unseen (the scenario's held-out traffic)
        episodes: held-out episodes
        seed: evaluation seed (held-out range)
        video: save the first episode as GIF/MP4 at this path
        out: folder for metrics.json and episodes.csv (default: evaluation/ beside the checkpoint, or
            ./evaluation/<run id or policy>)
        allow_pickle: also read a checkpoint that holds pickled objects (runs code from the file: only for a
            source you trust; default: weights_only loading)
    """
    from zoo.envs.presets import CONDITIONS, SCENARIOS  # lazy: would load gymnasium, numpy
    from zoo.evaluation.report import report_evaluation  # lazy: would load torchrl, tensordict, torch

    if episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {episodes}")
    if (ckpt is None) == (policy is None):
        raise ZooError("zoo evaluate needs exactly one of --ckpt (a trained policy) and --policy (a reference "
                       f"policy), got {'both' if ckpt else 'neither'}")
    if scenario is not None:
        SCENARIOS.get(scenario)
    check_choice("condition", condition, CONDITIONS)
    if policy is not None:
        from zoo.evaluation.reference import reference_policy  # lazy: would load torchrl, tensordict, torch

        reference_policy(policy)  # refuse a bad name before anything else
    check_tracking_uri(tracking_uri())  # the results go there: know it works before evaluating
    if policy is not None:
        from zoo.evaluation.reference import evaluate_reference  # lazy: would load torchrl, tensordict, torch

        scenario = scenario or "highway-fast"
        result = evaluate_reference(policy, scenario, episodes=episodes, seed=seed, condition=condition, video=video,
                                    progress=True)
        source = {"policy": policy}
        default_out = Path("evaluation") / f"{policy.replace(':', '-')}-{scenario}-{condition}"
    else:
        result, default_out = _evaluate_checkpoint(ckpt, scenario, condition, episodes, seed, video, allow_pickle)
        source = {"checkpoint": ckpt}
    report_evaluation(result, source, Path(out) if out else default_out, condition=condition, episodes=episodes,
                      seed=seed, video=video)


def _evaluate_checkpoint(ckpt: str, scenario: str | None, condition: str, episodes: int, seed: int,
                         video: str | None, allow_pickle: bool):
    """The held-out evaluation of a checkpoint file or MLflow run, and its default output folder."""
    from zoo.agents.checkpoint import load_agent  # lazy: would load lightning, torchrl, tensordict
    from zoo.evaluation import evaluate  # lazy: would load torchrl, tensordict, torch

    path = resolve_checkpoint(ckpt)
    agent = load_agent(path, allow_pickle=allow_pickle)
    result = evaluate(agent, scenario=scenario, episodes=episodes, seed=seed, video=video, condition=condition)
    if Path(ckpt).is_file():  # a local checkpoint: beside its run folder
        return result, path.parent.parent / "evaluation"
    return result, Path("evaluation") / Path(ckpt).name  # an MLflow run: downloaded to a temporary folder
