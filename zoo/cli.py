"""The ``zoo`` command.

``zoo fit --config recipes/<recipe>.yaml [--key value ...]`` is Lightning's CLI over the
agents (recipes are LightningCLI YAML with OmegaConf ``${...}`` interpolation); ``--config <name>`` names a
shipped recipe from any folder (:func:`_shipped_recipes_by_name`), and a composed recipe stands for its parts
(:mod:`zoo.composition`). The zoo adds its own
subcommands (``zoo evaluate`` …). User errors print one line naming the bad value and exit 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from zoo.errors import ZooError
from zoo.hub.cards import MODEL_KINDS
from zoo.ray_runtime import ADDRESS_HELP
from zoo.tracking import configure_mlflow

configure_mlflow()

LIGHTNING_COMMANDS = ("fit",)
# Lightning's `validate` runs a validation dataloader; an agent has none, since its held-out check is
# episodes on unseen seeds (`zoo evaluate`), and reward-model recipes already validate every epoch of fit.
REPLACED_COMMANDS = {"validate": "a checkpoint's held-out evaluation is `zoo evaluate --ckpt <checkpoint>` "
                                 "(reward-model recipes validate every epoch of `zoo fit`)"}


#: a ``--config`` value that can only mean a shipped recipe: a bare file name, or ``recipes/<name>`` as the recipes'
#: own comments write it (anything else that names no shipped recipe, a path elsewhere or inline YAML, is left to
#: LightningCLI)
_RECIPE_NAME = re.compile(r"(?:recipes/)?[\w.-]+")


def _shipped_recipes_by_name(argv: list[str]) -> list[str]:
    """``argv`` with each ``--config NAME`` that is no file in the working folder replaced by the shipped recipe
    ``NAME`` (``quickstart``, ``quickstart.yaml``, ``recipes/quickstart.yaml``, or a base recipe or reward fragment
    such as ``base/sac`` and ``recipes/rewards/vlm-rl.yaml``), so an installed zoo runs ``zoo fit --config quickstart``
    from any folder. A bare name that is neither raises a :class:`ZooError` naming the shipped recipes."""
    import difflib

    from zoo.shipped import recipe_names, shipped_recipe

    out = list(argv)
    for i, arg in enumerate(out):
        if arg in ("-c", "--config") and i + 1 < len(out):
            at, value, prefix = i + 1, out[i + 1], ""
        elif arg.startswith("--config="):
            at, value, prefix = i, arg.partition("=")[2], "--config="
        else:
            continue
        if Path(value).is_file():
            continue
        name = value.removeprefix("recipes/")
        found = shipped_recipe(name)
        if found is None and not _RECIPE_NAME.fullmatch(value):  # a path elsewhere or inline YAML
            continue
        if found is None:
            close = difflib.get_close_matches(name.removesuffix(".yaml"), recipe_names(), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ZooError(f"no recipe file {value!r} in the working folder ({Path.cwd()}) and no shipped recipe of "
                           f"that name{hint}; the shipped recipes: {', '.join(recipe_names())}")
        out[at] = prefix + str(found)
    return out


def _lightning_cli(argv: list[str] | None):
    """Run Lightning's CLI over the zoo's modules (``fit``); return it (its ``trainer``, ``model``)."""
    from lightning.pytorch import LightningModule
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.cli import LightningCLI

    from zoo.callbacks import EnvStepProgressBar, MLflowRecipeCallback, TrainingCheckpoint

    class ZooCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            parser.add_argument("--torch_threads", type=int | None, default=None,
                                help="torch intra-op threads (1 suits small policy networks stepping beside "
                                     "the simulator on few cores; default: torch's choice)")
            parser.add_argument("--checkpoint_every_n_steps", type=int | None, default=None,
                                help="write last.ckpt every N optimizer steps and at the end of training "
                                     "(zoo.callbacks.TrainingCheckpoint), to resume with --ckpt_path last; "
                                     "default: Lightning's, at the end of each epoch")

        def before_instantiate_classes(self) -> None:
            config = self.config[self.config.subcommand]
            threads = config.get("torch_threads")
            if threads:
                import torch

                torch.set_num_threads(threads)
            if config.trainer.get("enable_progress_bar") is False:  # the default bar would contradict it
                self.trainer_defaults["callbacks"] = [c for c in self.trainer_defaults["callbacks"]
                                                      if not isinstance(c, EnvStepProgressBar)]
            every = config.get("checkpoint_every_n_steps")
            if _recipe_has_model_checkpoint(config.trainer.get("callbacks")):  # the recipe's replaces the default
                if every is not None:
                    raise ZooError("checkpoint_every_n_steps sets the default checkpoint callback, but the recipe "
                                   "lists its own ModelCheckpoint: set its every_n_train_steps instead")
                self.trainer_defaults["callbacks"] = [c for c in self.trainer_defaults["callbacks"]
                                                      if not isinstance(c, ModelCheckpoint)]
            elif every is not None:
                self.trainer_defaults["callbacks"] = [TrainingCheckpoint(every) if isinstance(c, ModelCheckpoint)
                                                      else c for c in self.trainer_defaults["callbacks"]]

        def _parse_ckpt_path(self) -> None:
            # Lightning rebuilds the model from the checkpoint's hyper-parameters, silently replacing the
            # recipe's; refuse instead when they describe another agent.
            config = self.config[self.config.subcommand]
            if config.get("ckpt_path") == "last":
                _resolve_last_checkpoint(config)
            ckpt_path = config.get("ckpt_path")
            asked = None
            if ckpt_path and Path(ckpt_path).is_file():
                _check_checkpoint_matches_recipe(ckpt_path, config.model)
                asked = _explicit_init_args(config.model)
            super()._parse_ckpt_path()
            if asked:  # what the recipe and command line set wins over the checkpoint's values
                _override_checkpoint_values(self.config[self.config.subcommand].model, asked)

        def _run_folder(self) -> Path | None:
            """``<default_root_dir>/<experiment>/<run id>``: the run's checkpoints and outage journal."""
            logger = self.trainer.logger
            if logger is None:
                return None
            experiment = getattr(logger, "_experiment_name", logger.name)
            return Path(self.trainer.default_root_dir) / experiment / str(logger.version)

        def _run_subcommand(self, subcommand: str) -> None:
            from lightning.pytorch.utilities import rank_zero_only

            from zoo.agents.checkpoint_io import run_lock

            folder = self._run_folder() if subcommand == "fit" and rank_zero_only.rank == 0 else None
            if folder is None:  # other ranks of a data-parallel fit share the folder of rank 0
                super()._run_subcommand(subcommand)
                return
            with run_lock(folder):  # one writer per run: a second resume of it is refused
                super()._run_subcommand(subcommand)

        def before_fit(self) -> None:
            # Checkpoints beside the run: runs/<experiment>/<run id>/checkpoints.
            logger, ckpt = self.trainer.logger, self.trainer.checkpoint_callback
            if ckpt is not None and ckpt.dirpath is None and logger is not None:
                ckpt.dirpath = str(self._run_folder() / "checkpoints")
            if getattr(logger, "pending_root", False) is None:  # the outage journal beside the checkpoints
                logger.pending_root = self.trainer.default_root_dir

        def after_fit(self) -> None:
            _print_where_fit_wrote(self.trainer)

    return ZooCLI(
        LightningModule,  # agents (zoo.agents) and reward-model training (zoo.train)
        subclass_mode_model=True,
        auto_configure_optimizers=False,
        save_config_callback=MLflowRecipeCallback,
        save_config_kwargs={"save_to_log_dir": False},
        parser_kwargs={"parser_mode": "omegaconf", "default_env": False, "exit_on_error": False},
        trainer_defaults={
            "max_epochs": 1,
            "default_root_dir": "runs",
            "logger": {"class_path": "zoo.tracking.ZooMLFlowLogger"},
            "callbacks": [EnvStepProgressBar(), ModelCheckpoint(save_last=True)],
            "plugins": [{"class_path": "zoo.agents.checkpoint_io.AtomicCheckpointIO"}],
            "log_every_n_steps": 10,
        },
        args=argv,
    )


def _print_where_fit_wrote(trainer) -> None:
    """The last checkpoint and the MLflow run, the two things a user looks for after training."""
    if not trainer.is_global_zero:
        return
    ckpt, run_id = trainer.checkpoint_callback, getattr(trainer.logger, "run_id", None)
    if ckpt is not None and ckpt.dirpath and ckpt.save_last:
        print(f"last checkpoint: {Path(ckpt.dirpath) / 'last.ckpt'}")
    if run_id is not None:
        from zoo.tracking import tracking_uri

        print(f"MLflow run: {run_id} ({tracking_uri()})")


def _named_class(entry) -> type | None:
    """The class of a recipe entry (an instance, or ``class_path``/``init_args``); ``None`` if it names none
    that imports (jsonargparse reports a bad class path itself when it builds the component)."""
    import importlib

    if not hasattr(entry, "get"):
        return type(entry) if entry is not None and not isinstance(entry, (bool, str, list)) else None
    module, _, name = str(entry.get("class_path") or "").rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name, None) if module else None
    except ImportError:
        return None
    return cls if isinstance(cls, type) else None


def _recipe_has_model_checkpoint(callbacks) -> bool:
    """Whether the recipe configures its own ``ModelCheckpoint`` (then it replaces the CLI's default one)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    entries = callbacks if isinstance(callbacks, list) else [callbacks] if callbacks else []
    return any(issubclass(cls, ModelCheckpoint) for cls in map(_named_class, entries) if cls is not None)


def _resolve_last_checkpoint(config) -> None:
    """``--ckpt_path last``: the newest ``last.ckpt`` of the recipe's experiment, continued in the same MLflow run.

    Lightning's own ``"last"`` looks in the new run's checkpoint folder, which is empty: the zoo keeps
    checkpoints per MLflow run (``<default_root_dir>/<experiment>/<run id>/checkpoints``). Here the run is
    found, its checkpoint becomes ``ckpt_path`` and the logger resumes that run (same run id: metrics go on
    at the steps they had reached, checkpoints land in the same folder). With no checkpoint yet the fit
    starts from scratch, as Lightning does, and says so.
    """
    from zoo.agents.checkpoint_io import find_last_checkpoint

    logger = config.trainer.get("logger")
    init_args = logger.get("init_args") if hasattr(logger, "get") else None
    experiment = (init_args.get("experiment_name") if init_args is not None else None) or "zoo"
    root = config.trainer.get("default_root_dir") or "runs"
    found = find_last_checkpoint(root, experiment)
    if found is None:
        Console(stderr=True).print(f"--ckpt_path last: no {root}/{experiment}/*/checkpoints/last.ckpt yet; "
                                   "starting from scratch", highlight=False)
        config.ckpt_path = None
        return
    config.ckpt_path = str(found)
    from lightning.pytorch.loggers import MLFlowLogger

    logger_class = _named_class(logger)
    if init_args is not None and logger_class is not None and issubclass(logger_class, MLFlowLogger):
        init_args.run_id = found.parents[1].name
    Console(stderr=True).print(f"resuming from {found}", highlight=False)


#: recipe entries that decide the networks' shapes: a checkpoint must agree on them
_STRUCTURAL = ("env", "network", "hidden_sizes")


def _check_checkpoint_matches_recipe(ckpt_path: str, model_config) -> None:
    """Refuse a checkpoint whose hyper-parameters are not plain data naming zoo components (Lightning hands them
    to the config parser next), or that describe another agent than the recipe."""
    from zoo.agents.checkpoint import read_checkpoint
    from zoo.agents.hparams import check_hyperparameters

    hparams = check_hyperparameters(read_checkpoint(ckpt_path).get("hyper_parameters", {}), f"checkpoint {ckpt_path}")
    recipe_class = model_config.get("class_path") if hasattr(model_config, "get") else None
    ckpt_class = hparams.get("_class_path")
    if recipe_class and ckpt_class and recipe_class.rsplit(".", 1)[-1] != ckpt_class.rsplit(".", 1)[-1]:
        raise ZooError(f"checkpoint {ckpt_path} holds a {ckpt_class} agent but the recipe asks for {recipe_class}")
    init_args = model_config.get("init_args") or {}
    for key in _STRUCTURAL:
        ours, theirs = _structural(key, init_args.get(key)), _structural(key, hparams.get(key))
        if ours is not None and theirs is not None and ours != theirs:
            raise ZooError(f"checkpoint {ckpt_path} does not match the recipe: {key} is {theirs!r} in the checkpoint "
                           f"but {ours!r} in the recipe")


def _explicit_init_args(model_config) -> dict:
    """The model arguments the recipe and command line set to something other than the agent's default, minus
    the structural ones (checked equal to the checkpoint's by :func:`_check_checkpoint_matches_recipe`) and the
    reward (rebuilt from the checkpoint)."""
    from zoo.agents.checkpoint import agent_classes

    cls = agent_classes().get(model_config.get("class_path") if hasattr(model_config, "get") else None)
    init_args = _plain(model_config.get("init_args") or {}) if cls is not None else {}
    defaults = _signature_defaults(cls) if cls is not None else {}
    return {key: value for key, value in init_args.items()
            if key not in (*_STRUCTURAL, "reward") and key in defaults and value != _plain(defaults[key])}


def _signature_defaults(cls: type) -> dict:
    """Default of every keyword argument of ``cls`` and the base classes its ``**kwargs`` reach."""
    import inspect

    defaults: dict = {}
    for base in cls.__mro__:
        for name, parameter in inspect.signature(base.__init__).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                defaults.setdefault(name, parameter.default)
    return defaults


def _override_checkpoint_values(model_config, asked: dict) -> None:
    """Put the values the user asked for back over the checkpoint's, saying which ones changed."""
    init_args = model_config.init_args
    for key, value in asked.items():
        stored = _plain(init_args.get(key))
        if stored != value:
            Console(stderr=True).print(f"resume: {key} = {value!r} (the checkpoint's run had {stored!r})",
                                       highlight=False, markup=False)
            init_args[key] = value


def _structural(key: str, value):
    """A structural recipe entry for comparison; an ``env`` written before a field existed gets its default."""
    value = _plain(value)
    if key == "env" and isinstance(value, dict):
        from dataclasses import asdict

        from zoo.envs.config import EnvConfig

        value = {**_plain(asdict(EnvConfig())), **value}
    return value


def _plain(value):
    """Namespaces and dataclasses as dicts, tuples as lists, for comparing recipe entries."""
    from dataclasses import asdict, is_dataclass

    if hasattr(value, "as_dict"):
        value = value.as_dict()
    elif is_dataclass(value):
        value = asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


ALLOW_PICKLE_HELP = ("also read a checkpoint that holds pickled objects (runs code from the file: only for a "
                     "source you trust; default: weights_only loading)")


def _evaluate(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="zoo evaluate",
        description="Evaluate a trained policy (--ckpt) or a reference policy (--policy) on held-out seeds: driving "
                    "metrics (docs/method.md#metrics) as a table, JSON and CSV, logged to MLflow.")
    parser.add_argument("--ckpt", default=None, help="Lightning checkpoint (.ckpt) or MLflow run (runs:/<id>)")
    parser.add_argument("--policy", default=None,
                        help="reference policy instead of a checkpoint: constant:<LANE_LEFT|IDLE|LANE_RIGHT|FASTER|"
                             "SLOWER>, random or idm (highway-env's IDM + MOBIL driver)")
    parser.add_argument("--scenario", default=None,
                        help="scenario (default: the one trained on; highway-fast for --policy)")
    parser.add_argument("--condition", default="default",
                        help="traffic: default (as trained on) or unseen (the scenario's held-out traffic)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (held-out range)")
    parser.add_argument("--video", default=None, help="save the first episode as GIF/MP4 at this path")
    parser.add_argument("--out", default=None, help="folder for metrics.json and episodes.csv (default: "
                                                    "evaluation/ beside the checkpoint, or ./evaluation/<run id "
                                                    "or policy>)")
    parser.add_argument("--allow-pickle", action="store_true", help=ALLOW_PICKLE_HELP)
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    if (args.ckpt is None) == (args.policy is None):
        raise ZooError("zoo evaluate needs exactly one of --ckpt (a trained policy) and --policy (a reference "
                       f"policy), got {'both' if args.ckpt else 'neither'}")

    from zoo.envs.presets import CONDITIONS, SCENARIOS
    from zoo.registry import check_choice
    from zoo.tracking.settings import check_tracking_uri, tracking_uri

    if args.scenario is not None:
        SCENARIOS.get(args.scenario)
    check_choice("condition", args.condition, CONDITIONS)
    if args.policy is not None:
        from zoo.evaluation.reference import reference_policy

        reference_policy(args.policy)  # refuse a bad name before anything else
    check_tracking_uri(tracking_uri())  # the results go there: know it works before evaluating
    result, source, out = (_evaluate_reference(args) if args.policy is not None else _evaluate_checkpoint(args))
    _report_evaluation(args, result, source, out)


def _evaluate_checkpoint(args: argparse.Namespace):
    """The held-out evaluation of ``--ckpt``, its name for MLflow and its default output folder."""
    from zoo.agents.checkpoint import load_agent
    from zoo.evaluation import evaluate
    from zoo.tracking.settings import resolve_checkpoint

    ckpt = resolve_checkpoint(args.ckpt)
    agent = load_agent(ckpt, allow_pickle=args.allow_pickle)
    result = evaluate(agent, scenario=args.scenario, episodes=args.episodes, seed=args.seed, video=args.video,
                      condition=args.condition)
    if Path(args.ckpt).is_file():  # a local checkpoint: beside its run folder
        out = ckpt.parent.parent / "evaluation"
    else:  # an MLflow run: the checkpoint was downloaded to a temporary folder
        out = Path("evaluation") / Path(str(args.ckpt)).name
    return result, {"checkpoint": args.ckpt}, out


def _evaluate_reference(args: argparse.Namespace):
    """The held-out evaluation of the reference policy ``--policy``, its name for MLflow and its output folder."""
    from zoo.evaluation.reference import evaluate_reference

    scenario = args.scenario or "highway-fast"
    result = evaluate_reference(args.policy, scenario, episodes=args.episodes, seed=args.seed,
                                condition=args.condition, video=args.video, progress=True)
    out = Path("evaluation") / f"{args.policy.replace(':', '-')}-{scenario}-{args.condition}"
    return result, {"policy": args.policy}, out


def _report_evaluation(args: argparse.Namespace, result, source: dict[str, str], default_out: Path) -> None:
    """Print the table, write metrics.json and episodes.csv, log them to an MLflow run of experiment 'evaluation'."""
    import mlflow
    from mlflow.entities import Param

    from zoo.evaluation.report import log_to_mlflow, print_table, write_result
    from zoo.tracking import ui_command
    from zoo.tracking.settings import tracking_uri

    print_table(result, title=f"held-out evaluation: {result.scenario} ({args.condition}), {args.episodes} "
                              f"episodes, seed {args.seed}")
    files = write_result(result, Path(args.out) if args.out else default_out)
    client = mlflow.MlflowClient(tracking_uri())
    experiment = client.get_experiment_by_name("evaluation") or client.get_experiment(
        client.create_experiment("evaluation"))
    run = client.create_run(experiment.experiment_id, tags={**source, "scenario": result.scenario,
                                                            "condition": args.condition})
    client.log_batch(run.info.run_id, params=[
        Param(k, str(v)) for k, v in {**source, "scenario": result.scenario, "condition": args.condition,
                                      "episodes": args.episodes, "seed": args.seed}.items()])
    written = files + ([Path(args.video)] if args.video else [])
    log_to_mlflow(result, client, run.info.run_id, written)
    client.set_terminated(run.info.run_id)
    Console().print(f"wrote {', '.join(str(f) for f in written)}; MLflow run {run.info.run_id} "
                    f"(experiment 'evaluation'); UI: {ui_command()}")


def _reward(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="zoo reward", description="Reward-model tools.")
    sub = parser.add_subparsers(dest="action", required=True)
    cal = sub.add_parser("calibrate", help="measure the normalisation windows and VLM-SR's threshold of a backbone",
                         description="Record BEV frames of a scenario (random actions: collisions are common), "
                                     "score them with each head's raw reward and measure its normalisation window "
                                     "(percentiles) and, for vlm-sr, the threshold that best separates safe frames "
                                     "from frames before a collision; --write-card stores them in the model's card.")
    cal.add_argument("--model", required=True, help="dual encoder: zoo name, hub id, folder, or random:<family>-<size>")
    cal.add_argument("--head", nargs="+", default=["clg"],
                     help="reward heads, or 'all' (default clg; dual-pathway: CLG + the gated dynamic pathway with "
                          "the shipped detector and describer)")
    cal.add_argument("--quantization-bits", type=int, choices=(4, 8), default=None)
    cal.add_argument("--adapter", default=None, help="folder of LoRA adapters")
    cal.add_argument("--crop", default="none", help="none or right_half")
    cal.add_argument("--scenario", default="highway-fast")
    cal.add_argument("--frames", type=int, default=500)
    cal.add_argument("--seed", type=int, default=0)
    cal.add_argument("--percentiles", type=float, nargs=2, default=(5.0, 95.0), metavar=("LOW", "HIGH"))
    cal.add_argument("--bev-size", type=int, default=96)
    cal.add_argument("--out", default=None, help="write the result as JSON here")
    cal.add_argument("--trust-remote-code", action="store_true",
                     help="run the model folder's own Python code (config.json auto_map); only for a source you "
                          "trust (a card can never switch this on)")
    cal.add_argument("--write-card", action="store_true",
                     help="store each head's entry under 'calibration' in the model's card (zoo.json)")
    _add_reward_evaluate(sub)
    args = parser.parse_args(argv)
    if args.action == "evaluate":
        _reward_evaluate(args, argv)
        return

    import json

    from zoo.envs.presets import SCENARIOS
    from zoo.hub.resolve import resolve_model
    from zoo.registry import check_choice
    from zoo.rewards.calibrate import calibrate_heads, check_percentiles, command_line, write_card_calibration
    from zoo.rewards.factory import HEADS, create_reward_model

    SCENARIOS.get(args.scenario)
    heads = HEADS.names() if args.head == ["all"] else [check_choice("reward head", h, HEADS.names()) for h in args.head]
    if args.frames < 2:
        parser.error(f"--frames must be >= 2, got {args.frames}")
    check_percentiles(tuple(args.percentiles))
    card_folder = resolve_model(args.model).card_folder if args.write_card else None
    if args.write_card and card_folder is None:
        raise ZooError(f"--write-card needs a zoo model with a card (zoo.json); {args.model!r} has none")
    quantization = {"bits": args.quantization_bits} if args.quantization_bits else None
    rewards = {head: create_reward_model(args.model, head=head, quantization=quantization, adapter=args.adapter,
                                         crop=args.crop,
                                         trust_remote_code=args.trust_remote_code) for head in heads}
    entries = calibrate_heads(rewards, args.scenario, args.frames, args.seed, tuple(args.percentiles), args.bev_size)
    result = {"model": args.model, "quantization": quantization, "adapter": args.adapter, "heads": entries}
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    console = Console(stderr=True)
    for head, entry in entries.items():
        measured = [f"window [{entry['window'][0]:.4f}, {entry['window'][1]:.4f}]" if "window" in entry else "",
                    f"threshold {entry['threshold']:.4f}" if "threshold" in entry else ""]
        console.print(f"{head}: {', '.join(m for m in measured if m)} ({entry['frames']} frames of {args.scenario})")
    if card_folder is not None:
        console.print(f"wrote the calibration of {', '.join(entries)} to {write_card_calibration(card_folder, entries, command_line(argv))}")


#: ``zoo reward evaluate --quick``: the same code path on tiny sizes (a test runs it)
REWARD_EVALUATE_QUICK = {"scenarios": ["merge", "roundabout"], "frames": 20, "replicates": 50,
                         "data": "data/reward-evaluation-quick"}


def _add_reward_evaluate(sub: Any) -> None:
    from zoo.evaluation.reward_evaluation import DEFAULT_SCENARIOS

    ev = sub.add_parser(
        "evaluate", help="does the dual pathway see danger better than the static one, on held-out windows",
        description="Record held-out BEV frames and windows (reset seeds from 1 000 000; once, kept under --data), "
                    "score them with the static pathway (CLG), the dual pathway with the shipped gate and describer, "
                    "and the dual pathway with the oracle gate and ground-truth descriptions, and report per scenario "
                    "the AUROC of the reward for a collision within 1 s (low reward = danger) and its Spearman "
                    "correlation with the true time to collision, with episode-bootstrap confidence intervals and "
                    "the paired differences to the static pathway (docs/rewards.md).")
    ev.add_argument("--model", default="drive-clip-bev-tiny", help="the dual encoder of every variant")
    ev.add_argument("--detector", default="bev-detector-tiny", help="the shipped gate's detector")
    ev.add_argument("--describer", default="risk-describer-tiny", help="the shipped risk describer")
    ev.add_argument("--scenarios", nargs="+", default=list(DEFAULT_SCENARIOS),
                    help="held-out scenarios (include one the model never trained on)")
    ev.add_argument("--frames", type=int, default=1500, help="frames recorded per scenario (whole episodes)")
    ev.add_argument("--frame-rate", type=float, default=5.0, help="recorded frames per simulated second")
    ev.add_argument("--window", type=int, default=4, help="frames per describer window, one policy decision apart")
    ev.add_argument("--seed", type=int, default=1_000_000, help="first reset seed of each recording (>= 1 000 000)")
    ev.add_argument("--data", default="data/reward-evaluation", help="folder of the recordings (reused when present)")
    ev.add_argument("--replicates", type=int, default=2000, help="bootstrap resamples of episodes")
    ev.add_argument("--confidence", type=float, default=0.95)
    ev.add_argument("--bootstrap-seed", type=int, default=0)
    ev.add_argument("--out", default=None, help="write the result as JSON here")
    ev.add_argument("--write-card", action="store_true",
                    help="store the result under metrics.reward_evaluation in the model's card (zoo.json)")
    sizes = " ".join(f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                     for k, v in REWARD_EVALUATE_QUICK.items())
    ev.add_argument("--quick", action="store_true", help=f"tiny sizes, the same code path (a test runs it): {sizes}")


def _reward_evaluate(args: argparse.Namespace, argv: list[str]) -> None:
    """``zoo reward evaluate``: the table on stdout, the JSON to --out, the card's metrics with --write-card."""
    import json

    from zoo.envs.presets import SCENARIOS
    from zoo.evaluation.reward_evaluation import card_entry, evaluate_rewards, markdown_table
    from zoo.hub.cards import edit_card
    from zoo.hub.resolve import resolve_model
    from zoo.rewards.calibrate import command_line

    if args.quick:
        for key, value in REWARD_EVALUATE_QUICK.items():
            setattr(args, key, value)
    for scenario in args.scenarios:
        SCENARIOS.get(scenario)
    card_folder = resolve_model(args.model).card_folder if args.write_card else None
    if args.write_card and card_folder is None:
        raise ZooError(f"--write-card needs a zoo model with a card (zoo.json); {args.model!r} has none")
    result = evaluate_rewards(args.model, args.detector, args.describer, args.scenarios, frames=args.frames,
                              data=args.data, seed=args.seed, frame_rate_hz=args.frame_rate, window=args.window,
                              replicates=args.replicates, confidence=args.confidence,
                              bootstrap_seed=args.bootstrap_seed)
    command = command_line(argv)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({**result, "command": command}, indent=2, allow_nan=False) + "\n")
    print(markdown_table(result))
    console = Console(stderr=True)
    seconds = ", ".join(f"{k} {v:.0f} s" for k, v in result["seconds"].items() if k != "cpu")
    seconds += f" (wall); {result['seconds']['cpu']:.0f} s of CPU"
    console.print(f"{seconds}{f'; wrote {args.out}' if args.out else ''}")
    if card_folder is not None:
        path = edit_card(card_folder, lambda card: card.setdefault("metrics", {}).update(
            reward_evaluation=card_entry(result, command)))
        console.print(f"wrote the evaluation to {path}")


def _data(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="zoo data", description="Datasets made from the simulator.")
    sub = parser.add_subparsers(dest="kind", required=True)
    cap = sub.add_parser("bev-captions", help="BEV frames and windows with ground truth and captions",
                         description="Drive scenarios with a mix of policies (collisions are common) and save a "
                                     "Hugging Face dataset of BEV frames, frame windows, simulator ground truth "
                                     "and templated captions, split train/validation by episode seed.")
    cap.add_argument("--scenarios", nargs="+", default=["highway-fast"])
    cap.add_argument("--frames", type=int, required=True, help="rows to record (whole episodes)")
    cap.add_argument("--out", required=True, help="folder for the dataset (datasets.load_from_disk)")
    cap.add_argument("--seed", type=int, default=0, help="first episode seed")
    cap.add_argument("--window", type=int, default=4, help="frames per window")
    cap.add_argument("--horizon", type=float, default=1.0, help="seconds ahead for collision_within_horizon")
    cap.add_argument("--bev-size", type=int, default=96)
    cap.add_argument("--frame-rate", type=float, default=None,
                     help="frames per simulated second (default: one per policy decision, 1 Hz on highway-fast "
                          "and merge); the policies still decide at that rate and hold IDLE in between")
    cap.add_argument("--decision-windows", action="store_true",
                     help="space a window's frames one policy decision apart (the rate the env renders windows at "
                          "in training) rather than one recorded frame apart")
    cap.add_argument("--objects", action="store_true",
                     help="add the simulator's boxes of the other road users (column objects: the oracle gate's input)")
    cap.add_argument("--validation-every", type=int, default=5,
                     help="episodes whose seed is a multiple of this go to validation")
    cap.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    args = parser.parse_args(argv)

    from zoo.data.bev_captions import make_bev_captions

    dataset = make_bev_captions(args.scenarios, args.frames, args.out, seed=args.seed, window=args.window,
                                horizon_s=args.horizon, bev_size=args.bev_size, frame_rate_hz=args.frame_rate,
                                decision_windows=args.decision_windows, objects=args.objects,
                                validation_every=args.validation_every, overwrite=args.overwrite)
    sizes = ", ".join(f"{name} {len(split)}" for name, split in dataset.items())
    Console(stderr=True).print(f"wrote {args.out}: {sizes} rows")


def _models(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="zoo models", description="The zoo's models: shipped, buildable, registered.")
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="a table of the zoo's models")
    listing.add_argument("--kind", default=None, help=f"one of {', '.join(MODEL_KINDS)}")
    listing.add_argument("--pretrained", action="store_true", help="only models with trained weights")
    info = sub.add_parser("info", help="a model's card")
    info.add_argument("name", help="zoo name (family.tag), folder or models:/ URI")
    save = sub.add_parser("save-policy", help="write a trained policy as a zoo model folder with its card",
                          description="Write a trained agent (Lightning checkpoint or runs:/<id>) as a policy folder "
                                      "(safetensors weights, agent.yaml, zoo.json card, README.md) that "
                                      "zoo.load_policy(name) loads once it sits under checkpoints/. The card gets "
                                      "the training command and reward, and the held-out metrics of an MLflow run.")
    save.add_argument("source", help="a .ckpt file or runs:/<run id>")
    save.add_argument("--name", required=True, help="card name, family.tag (e.g. sac-merge.benchmark)")
    save.add_argument("--summary", required=True, help="one line for the card")
    save.add_argument("--out", required=True, help="folder to write (e.g. checkpoints/<name>)")
    save.add_argument("--run", default=None, help="MLflow run id whose eval/* metrics and benchmark tags go on the "
                                                   "card (default: the run of a runs:/ source)")
    save.add_argument("--command", default=None, help="the command that trained it, for the card")
    args = parser.parse_args(argv)

    if args.action == "save-policy":
        _save_policy(args)
        return

    from rich.markdown import Markdown
    from rich.table import Table

    from zoo.api import model_parameters
    from zoo.hub.cards import read_card
    from zoo.hub.resolve import ARCHITECTURES, list_models, resolve_model, shipped_models, shipped_name

    console = Console()
    if args.action == "list":
        shipped = shipped_models()
        # 80 columns: the summary goes under the name (wrapped) instead of in a column of its own
        table = Table(title="zoo models", show_lines=True)
        table.add_column("name and summary", ratio=1, overflow="fold")
        table.add_column("kind", no_wrap=True)
        table.add_column("params", justify="right", no_wrap=True)
        table.add_column("source", no_wrap=True)
        for name in list_models(args.kind, pretrained=args.pretrained):
            if name in shipped:
                card = read_card(shipped[name])
                adapter = f" (adapter on {card['adapter_of']})" if "adapter_of" in card else ""
                table.add_row(f"[bold]{escape(name)}[/bold]\n{escape(card['summary'])}{escape(adapter)}",
                              card["kind"], f"{model_parameters(shipped[name]) / 1e6:.2f} M",
                              f"{shipped[name].parent.name}/")
            else:
                table.add_row(f"[bold]{escape(name)}[/bold]\n{escape(ARCHITECTURES.get(name).summary)}", "reward",
                              "", "untrained")
        console.print(table)
        return
    resolved = resolve_model(args.name)
    if resolved.card is None:
        console.print(f"{args.name}: a plain Hugging Face model at {resolved.path} (no zoo card)")
        return
    shipped = shipped_models()
    folder = shipped.get(shipped_name(args.name, shipped))
    readme = (folder or resolved.path) / "README.md"
    console.print(Markdown(readme.read_text()) if readme.is_file() else resolved.card)
    console.print(f"folder: {resolved.path}")


def _register(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="zoo register",
        description="Register a zoo model in the MLflow model registry (MLFLOW_TRACKING_URI, else the local "
                    "store ./mlflow.db) as a pyfunc model whose artifacts are the model folder's files.")
    parser.add_argument("source", help="zoo model folder (with zoo.json), agent checkpoint (.ckpt), training run "
                                       "(runs:/<run_id>), models:/ URI or zoo model name")
    parser.add_argument("--as", dest="name", required=True, metavar="NAME", help="registered model name")
    parser.add_argument("--alias", default=None, help="alias to point at the new version (e.g. champion)")
    parser.add_argument("--summary", default=None, help="card summary of a policy exported from a checkpoint")
    parser.add_argument("--allow-pickle", action="store_true", help=ALLOW_PICKLE_HELP)
    args = parser.parse_args(argv)

    import tempfile

    from zoo.hub.mlflow_registry import register_model
    from zoo.tracking import tracking_uri, ui_command

    with tempfile.TemporaryDirectory(prefix="zoo-register-") as tmp:
        folder = _model_folder(args.source, Path(tmp), args.summary, args.allow_pickle)
        version = register_model(folder, args.name, alias=args.alias)
    ref = f"models:/{version.name}@{args.alias}" if args.alias else f"models:/{version.name}/{version.version}"
    alias = f" (alias @{args.alias})" if args.alias else ""
    print(f"registered {version.name} version {version.version}{alias}\n"
          f"load it: zoo.create_reward_model(\"{ref}\") / zoo.load_policy(\"{ref}\"), or without the zoo's "
          f"registry: mlflow.pyfunc.load_model(\"{ref}\")")
    Console(stderr=True).print(f"store: {tracking_uri()}; UI: {ui_command()}", highlight=False)


def _model_folder(source: str, tmp: Path, summary: str | None, allow_pickle: bool = False) -> Path:
    """A zoo model folder for ``zoo register``'s source (checkpoints are exported as policy folders)."""
    from zoo.tracking.settings import _RUN_ID

    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "zoo.json").is_file():
            raise ZooError(f"{source} is not a zoo model folder (no zoo.json)")
        return path
    if (path.is_file() and path.suffix == ".ckpt") or _RUN_ID.match(source):
        from zoo.agents.checkpoint import load_agent
        from zoo.hub.policies import save_policy_folder

        agent = load_agent(source, allow_pickle=allow_pickle)
        run = _RUN_ID.match(source)
        tag = run.group(2)[:8] if run else path.stem.replace(".", "-")
        algorithm, scenario = type(agent).__name__, agent.env_config.scenario
        return save_policy_folder(agent, tmp / "policy", f"{algorithm.lower()}-{scenario}.{tag}",
                                  summary or f"{algorithm} policy on {scenario}, from {source}")
    if source.startswith(("models:/", "runs:/")):
        from zoo.hub.mlflow_registry import download_model

        return download_model(source)
    from zoo.hub.cards import read_card
    from zoo.hub.resolve import shipped_models, shipped_name

    shipped = shipped_models()
    name = shipped_name(source, shipped)  # a name as `zoo models list` shows it, or its family
    if name is not None:  # register the shipped folder itself, not its completed cache copy
        return shipped[name]
    if path.is_dir():
        read_card(path)
        return path
    raise ZooError(f"cannot register {source!r}: give a zoo model folder (with zoo.json), a shipped model name "
                   f"({', '.join(shipped) or 'none shipped'}), a .ckpt checkpoint, runs:/<run_id> of a "
                   "training run, or a models:/ URI")


def _save_policy(args: argparse.Namespace) -> None:
    from zoo.agents.checkpoint import load_agent
    from zoo.evaluation import EVAL_SEED_OFFSET
    from zoo.hub.policies import save_policy_folder

    agent = load_agent(args.source)
    hparams = agent.hparams
    reward = hparams.get("reward")
    training = {"command": args.command, "algorithm": type(agent).__name__, "scenario": agent.env_config.scenario,
                "action": agent.env_config.action, "env_steps": hparams.get("total_frames"),
                "reward": reward.get("class_path") if isinstance(reward, dict)
                else f"{type(reward).__module__}.{type(reward).__name__}" if reward is not None
                else "zoo.rewards.EngineeredReward (default)"}
    metrics = None
    run_id = args.run or (args.source.removeprefix("runs:/").split("/")[0] if args.source.startswith("runs:/")
                          else None)
    if run_id:
        import mlflow

        from zoo.tracking import tracking_uri

        run = mlflow.MlflowClient(tracking_uri()).get_run(run_id)
        tags = run.data.tags
        training.update({k: tags[f"zoo.benchmark.{k}"] for k in ("method", "seed", "machine")
                         if f"zoo.benchmark.{k}" in tags}, run=run_id)
        metrics = {k.removeprefix("eval/"): v for k, v in sorted(run.data.metrics.items())
                   if k.startswith("eval/") and not k.endswith("_std")}
        if not metrics:
            raise ZooError(f"run {run_id} has no eval/* metrics (train with zoo.callbacks.EvaluateAfterFit)")
        metrics["episodes"] = tags.get("zoo.benchmark.eval_episodes", "see the run")
        metrics["seeds"] = f"held out: {EVAL_SEED_OFFSET} + i"
    folder = save_policy_folder(agent, args.out, args.name, args.summary,
                                training={k: v for k, v in training.items() if v is not None}, metrics=metrics)
    print(f"wrote {folder} ({sum(f.stat().st_size for f in folder.iterdir()) / 1e6:.1f} MB)")


def _tracking(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="zoo tracking", description="MLflow tracking tools.")
    sub = parser.add_subparsers(dest="action", required=True)
    sync = sub.add_parser("sync", help="send what a run journaled while the tracking server was unreachable",
                          description="Send the logging calls that runs kept in <run folder>/mlflow-pending "
                                      "while their MLflow server was unreachable, in order; sent calls leave "
                                      "the journal.")
    sync.add_argument("journals", nargs="*", help="journal folders (default: every one under --root)")
    sync.add_argument("--root", default="runs", help="runs folder searched when no journal is given")
    sync.add_argument("--tracking-uri", default=None,
                      help="the store to send to (default: MLFLOW_TRACKING_URI, else ./mlflow.db); a journal "
                           "written for another store is refused unless this names where to send it")
    copy = sub.add_parser("import", help="copy the ended runs of an experiment from another tracking store",
                          description="Copy the ended runs of an experiment (names, tags, params, full metric "
                                      "histories, artifacts, times) from another MLflow store into this one, "
                                      "e.g. a benchmark grid's cells run on another machine; runs imported "
                                      "before are skipped.")
    copy.add_argument("source", help="tracking URI to copy from, e.g. sqlite:////path/to/mlflow.db")
    copy.add_argument("--experiment", required=True, help="experiment name, e.g. benchmark-paper")
    copy.add_argument("--tracking-uri", default=None, help="store to copy into (default: this folder's)")
    args = parser.parse_args(argv)

    if args.action == "import":
        from zoo.tracking.transfer import import_runs

        copied = import_runs(args.source, args.experiment, args.tracking_uri, progress=print)
        print(f"imported {len(copied)} runs into {args.experiment!r}")
        return

    from zoo.tracking.pending import destination, find_journals, read_journal, sync

    journals = [Path(j) for j in args.journals] or find_journals(args.root)
    if not journals:
        print(f"nothing to sync: no mlflow-pending journal under {args.root}")
    calls = {journal: read_journal(journal) for journal in journals}  # every journal checked before any is sent
    for journal in journals:
        destination(journal, calls[journal], args.tracking_uri)
    for journal in journals:
        sync(journal, args.tracking_uri)
        print(f"sent {len(calls[journal])} logging calls from {journal}")


def _benchmark(argv: list[str]) -> None:
    from zoo.benchmark.conditions import CONDITIONS, DEFAULT
    from zoo.benchmark.grid import SUITES
    from zoo.benchmark.methods import BASE_RECIPES, DEFAULT_ALGORITHM, DEFAULT_BACKBONE
    from zoo.benchmark.references import REFERENCES

    parser = argparse.ArgumentParser(
        prog="zoo benchmark",
        description="Run a benchmark grid (method x scenario x seed, one learner on the same budget), one MLflow run "
                    "per cell; finished cells are skipped, so the grid resumes where it stopped. Then evaluate the "
                    "reference policies, write the grid's results file (per-run, per-episode data) and the results "
                    "page built from it (tables with interquartile means and 95 % bootstrap intervals, claims, "
                    "plots). Nothing published is overwritten unless --out and --results name it.")
    parser.add_argument("--suite", default="paper", choices=sorted(SUITES))
    parser.add_argument("--scenarios", nargs="+", default=["highway-fast"])
    parser.add_argument("--seeds", type=int, default=5, help="number of training seeds (0 .. N-1; default 5, "
                                                             "the fewest a bootstrap interval over runs means much)")
    parser.add_argument("--steps", type=int, default=None, help="training env steps per run (required, except "
                                                                "with --report-only on an existing --results file)")
    parser.add_argument("--methods", nargs="+", default=None, help="a subset of the suite's methods (default all): "
                        + ", ".join(SUITES["paper"]))
    parser.add_argument("--action", default="continuous", choices=("continuous", "discrete"),
                        help="the action mode: continuous (steer, throttle; the papers') or discrete meta-actions "
                             "(learnt within a few thousand steps)")
    parser.add_argument("--algorithm", default=DEFAULT_ALGORITHM, choices=sorted(BASE_RECIPES),
                        help="the learner every method trains, with the hyper-parameters of its recipe ("
                             + ", ".join(f"{a}: recipes/{r}" for a, r in BASE_RECIPES.items())
                             + "); sac is the papers', dqn needs --action discrete and learns meta-actions within "
                               "a few thousand steps")
    parser.add_argument("--conditions", nargs="+", default=[DEFAULT], choices=CONDITIONS,
                        help="evaluation conditions; default is always evaluated, unseen (denser or faster traffic, "
                             "other lanes) is reported beside it")
    parser.add_argument("--references", nargs="+", default=list(REFERENCES), metavar="POLICY",
                        help="reference policies evaluated beside the methods on the same held-out episodes "
                             f"(default all: {', '.join(REFERENCES)}); none for no reference rows")
    parser.add_argument("--device", default="cpu", help="Lightning accelerator: cpu, gpu, auto")
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE, help="VLM of every VLM reward")
    parser.add_argument("--eval-episodes", type=int, default=50, help="held-out episodes of each final evaluation "
                                                                      "(and of each reference policy)")
    parser.add_argument("--curve-every", type=int, default=None, help="env steps between learning-curve "
                                                                      "evaluations (default steps/5)")
    parser.add_argument("--curve-episodes", type=int, default=5, help="held-out episodes per curve point")
    parser.add_argument("--results", default=None,
                        help="the grid's results file, JSON lines, gzip when it ends in .gz (default "
                             "runs/benchmark-<suite>/results.jsonl.gz); commit it under benchmarks/results/")
    parser.add_argument("--out", default=None, help="results page, plots in <out stem>/ (default "
                                                    "runs/benchmark-<suite>/report/results.md; docs/results.md "
                                                    "to publish)")
    parser.add_argument("--note", default=None, help="a line under the page's title (e.g. 'small budget')")
    parser.add_argument("--report-only", action="store_true",
                        help="train and evaluate nothing: rebuild the page from --results if that file exists "
                             "(no MLflow), else from the grid's finished MLflow runs (writing --results first)")
    parser.add_argument("--workers", type=int, default=1,
                        help="cells trained at once, each a `zoo fit` subprocess with one thread, its output in "
                             "runs/benchmark-<suite>/logs/ (default 1: one after another in this process)")
    parser.add_argument("--backend", default="local", choices=("local", "ray"),
                        help="local: this machine (--workers); ray: every cell a Ray task on a Ray cluster "
                             "(pip install drive-zoo[ray]; docs/scaling.md)")
    parser.add_argument("--address", default=None, help=f"with --backend ray: the cluster, {ADDRESS_HELP}")
    parser.add_argument("--cell-gpus", type=float, default=0.0,
                        help="with --backend ray: GPUs each cell declares (0.25: four cells share a GPU; default 0)")
    args = parser.parse_args(argv)
    for name in ("seeds", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.backend != "ray" and (args.address is not None or args.cell_gpus):
        parser.error(f"--address and --cell-gpus need --backend ray, got --backend {args.backend}")
    if args.backend == "ray" and args.workers > 1:
        parser.error(f"--workers {args.workers} is the local backend's: with --backend ray the cluster's free CPUs "
                     "decide how many cells run at once")
    if args.cell_gpus < 0:
        parser.error(f"--cell-gpus must be >= 0, got {args.cell_gpus:g}")
    if args.backend == "ray" and args.device != "cpu" and not args.cell_gpus:
        parser.error(f"--device {args.device} with --backend ray needs --cell-gpus > 0 (Ray hides the GPUs from "
                     "a task that declares none)")

    from zoo.benchmark.conditions import check_conditions
    from zoo.benchmark.references import check_references
    from zoo.benchmark.report import write_report
    from zoo.benchmark.results_file import check_same_grid, read_results, recorded_cells, save_results

    run_folder = Path("runs") / f"benchmark-{args.suite}"
    results_path = Path(args.results) if args.results else run_folder / "results.jsonl.gz"
    page = Path(args.out) if args.out else run_folder / "report" / "results.md"
    console = Console(stderr=True)
    if args.report_only and results_path.is_file():  # the committed data alone: MLflow is never opened
        write_report(read_results(results_path), page, results_path, note=args.note)
        console.print(f"wrote {page} from {results_path}")
        return
    if args.steps is None:
        parser.error("--steps is required, except with --report-only on an existing --results file")
    conditions = [DEFAULT, *(c for c in dict.fromkeys(args.conditions) if c != DEFAULT)]
    references = [] if args.report_only else check_references(args.references)
    if not args.report_only:  # refused now, not after the training
        check_conditions(conditions)
        if args.backend == "ray":
            from zoo.extras import require

            require("ray", "zoo benchmark --backend ray")

    import datetime as dt
    import shlex

    import mlflow

    from zoo.benchmark.grid import Budget, grid_results, run_grid
    from zoo.benchmark.ray_cells import RayCluster
    from zoo.tracking import tracking_uri

    budget = Budget(steps=args.steps, eval_episodes=args.eval_episodes,
                    curve_every=args.curve_every or max(1, args.steps // 5), curve_episodes=args.curve_episodes,
                    backbone=args.backbone, device=args.device, action=args.action, algorithm=args.algorithm)
    methods = args.methods or list(SUITES[args.suite])
    # read before the training: a file that cannot be read stops the grid now, not after it
    previous = read_results(results_path).records if results_path.is_file() else []
    # the grid's command: the same with --report-only rewrites the page from the same runs
    grid = {"kind": "grid", "suite": args.suite, "scenarios": args.scenarios, "methods": methods,
            "steps": args.steps, "action": args.action, "algorithm": args.algorithm, "backbone": args.backbone,
            "conditions": conditions,
            "references": references, "eval_episodes": args.eval_episodes,
            "command": "zoo benchmark " + shlex.join(a for a in argv if a != "--report-only"),
            "note": args.note or "", "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    check_same_grid(previous, grid, results_path)
    if not args.report_only:
        cluster = RayCluster(args.address, args.cell_gpus) if args.backend == "ray" else None
        outcome = run_grid(args.suite, args.scenarios, range(args.seeds), budget, methods, console,
                           workers=args.workers, conditions=conditions, recorded=recorded_cells(previous, grid),
                           cluster=cluster)
        console.print(f"ran {len(outcome['ran'])}, skipped {len(outcome['skipped'])} finished, "
                      f"failed {len(outcome['failed'])}" + "".join(f"\n  {f}" for f in outcome["failed"]))
    results = grid_results(mlflow.MlflowClient(tracking_uri()), grid, previous, console)
    save_results(results_path, results)
    write_report(results, page, results_path)
    console.print(f"wrote {results_path} ({results_path.stat().st_size / 1e3:.0f} kB) and {page}")


def _export(argv: list[str]) -> None:
    from zoo.export import FORMATS

    parser = argparse.ArgumentParser(
        prog="zoo export",
        description="Write a trained policy as a policy-only deployment artifact (no reward model, no VLM): "
                    "the deterministic policy network, input = the observation it reads, output = the action. "
                    "Load it with zoo.export.load_exported(PATH), torch.jit.load (torchscript) or onnxruntime.")
    parser.add_argument("--policy", required=True, help="zoo name, policy folder, .ckpt, runs:/<id> or models:/ URI")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", required=True, help="file to write (e.g. policy.pt or policy.onnx)")
    args = parser.parse_args(argv)

    from zoo.export import export_policy, load_exported

    path = export_policy(args.policy, args.format, args.out)
    spec = load_exported(path).spec
    Console(stderr=True, soft_wrap=True).print(
        f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB, {args.format}): input {spec['obs_key']} "
        f"{spec['obs_dtype']} [batch, {', '.join(map(str, spec['obs_shape']))}] -> action "
        f"[batch, {', '.join(map(str, spec['action_shape']))}]", highlight=False, markup=False)


ZOO_COMMANDS: dict[str, Callable[[list[str]], None]] = {"evaluate": _evaluate, "reward": _reward, "data": _data,
                                                        "models": _models, "register": _register,
                                                        "tracking": _tracking, "benchmark": _benchmark, "export": _export}

USAGE = """usage: zoo <command> [options]

commands:
  fit        train a policy:      zoo fit --config quickstart [--trainer.max_steps N ...]  (a shipped recipe
                                  by name, or a recipe file: --config recipes/quickstart.yaml)
  evaluate   held-out metrics:    zoo evaluate --ckpt <checkpoint or runs:/id> --episodes 20 [--video out.gif]
                                  zoo evaluate --policy constant:SLOWER|random|idm --scenario merge [--condition unseen]
  reward     reward-model tools:  zoo reward calibrate --model <hub id|folder> --scenario highway-fast
                                  zoo reward evaluate [--scenarios highway-fast merge roundabout] [--out FILE]
  data       simulator datasets:  zoo data bev-captions --scenarios highway-fast merge --frames 2000 --out DIR
  models     the zoo's models:    zoo models list [--kind reward] [--pretrained] | zoo models info NAME
  register   MLflow registry:     zoo register <folder|.ckpt|runs:/id|name> --as NAME [--alias champion]
  tracking   MLflow tools:        zoo tracking sync [runs/<experiment>/<run id>/mlflow-pending ...]
                                  zoo tracking import sqlite:////other/mlflow.db --experiment NAME
  benchmark  the paper's grid:    zoo benchmark --suite paper --scenarios highway-fast --seeds 3 --steps 30000
  export     deployable policy:   zoo export --policy NAME --format torchscript|onnx --out PATH

Run `zoo <command> --help` for its options."""


def _user_error(err: BaseException) -> ZooError | None:
    """The :class:`ZooError` behind ``err`` (jsonargparse wraps errors raised while building components)."""
    from argparse import ArgumentError

    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, ZooError):
            return err
        if isinstance(err, ArgumentError) or type(err).__name__ == "ArgumentError":
            return ZooError(_summarize_argument_error(str(err)))
        if type(err).__module__.startswith("omegaconf."):  # a recipe's ${...} that loops or points nowhere
            key = getattr(err, "full_key", None)
            message = (getattr(err, "msg", None) or str(err)).strip().splitlines()[0]
            return ZooError(f"bad interpolation in the recipe{f' at {key}' if key else ''}: {message}")
        if isinstance(err, RuntimeError) and "Error(s) in loading state_dict" in str(err):
            detail = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
            return ZooError(f"the checkpoint does not match the agent the recipe describes ({detail[:300]})")
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _summarize_argument_error(message: str) -> str:
    """jsonargparse's errors for a recipe key list every alternative it tried; keep the informative lines."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    noise = ("Expected a <class 'NoneType'>", "Given value type", "Given value:", "Subtypes:", "Errors:",
             "Does not validate against any of the Union subtypes")
    useful = [line.lstrip("- ") for line in lines if not line.lstrip("- ").startswith(noise)]
    text = "; ".join(dict.fromkeys(useful)).replace(":; ", ": ")
    for package, names in (("zoo.agents", _agent_names), ("zoo.rewards", _reward_names)):
        if f"module '{package}' has no attribute" in text:
            text += f". Valid: {', '.join(f'{package}.{n}' for n in names())}"
    return text + "  (see `zoo fit --help`)"


def _agent_names() -> list[str]:
    from zoo.agents import AGENTS

    return AGENTS.names()


def _reward_names() -> list[str]:
    import zoo.rewards

    return sorted(n for n in zoo.rewards.__all__ if n.endswith("Reward") and n != "VLMReward")


def main(argv: list[str] | None = None) -> int:
    from_sys = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    console = Console(stderr=True)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command = argv[0]
    try:
        if command in ZOO_COMMANDS:
            ZOO_COMMANDS[command](argv[1:])
        elif command in LIGHTNING_COMMANDS:
            from zoo.composition import expand_composed

            argv = expand_composed(_shipped_recipes_by_name(argv))
            if from_sys:  # LightningCLI reads sys.argv itself (and warns when given both it and args)
                sys.argv[1:] = argv
            _lightning_cli(None if from_sys else argv)
        elif command in REPLACED_COMMANDS:
            raise ZooError(f"there is no `zoo {command}`: {REPLACED_COMMANDS[command]}")
        else:
            from zoo.registry import unknown_choice

            raise ZooError(unknown_choice("command", command, [*LIGHTNING_COMMANDS, *ZOO_COMMANDS]))
    except Exception as err:
        user_error = _user_error(err)
        if user_error is None:
            raise
        # one line whatever the terminal's width; the message is text, never markup (it may quote a file's content)
        console.print(f"[bold red]error:[/bold red] {escape(str(user_error))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
