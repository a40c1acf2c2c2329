"""The LightningCLI of ``zoo fit``, which a benchmark grid's in-process cells build too.

It builds any ``LightningModule`` a recipe names (the agents of :mod:`zoo.agents`, the reward-model training of
:mod:`zoo.train`), with the zoo's defaults: an MLflow logger, checkpoints beside the run
(``<default_root_dir>/<experiment>/<run id>/checkpoints``) written atomically, one writer per run, the resolved recipe
logged, ``--ckpt_path`` checked against the recipe (:mod:`zoo.fit.resume`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from jsonargparse import set_parsing_settings
from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities import rank_zero_only

from zoo.callbacks import EnvStepProgressBar, MLflowRecipeCallback, TrainingCheckpoint
from zoo.errors import ZooError
from zoo.fit.entries import named_class
from zoo.fit.errors import recipe_error
from zoo.fit.resume import (
    check_checkpoint_matches_recipe,
    explicit_init_args,
    override_checkpoint_values,
    resolve_last_checkpoint,
)
from zoo.tracking import tracking_uri

# jsonargparse 5's behaviour now: a recipe's class_path under a denied import path (os, subprocess, builtins, ...) is
# refused before anything is imported (jsonargparse 4 imports it and only warns)
set_parsing_settings(import_path_denylist=[])


def lightning_cli(argv: list[str] | None) -> LightningCLI:
    """Run Lightning's CLI over the zoo's modules on ``argv`` (``["fit", ...]``; ``None``: ``sys.argv``); return it
    (its ``trainer``, ``model``). A recipe key or value, interpolation or checkpoint the libraries refuse raises a
    :class:`ZooError` naming it (:func:`zoo.fit.errors.recipe_error`)."""
    try:
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
    except Exception as err:
        explained = recipe_error(err)
        if explained is None:
            raise
        raise explained from err


class ZooCLI(LightningCLI):
    """LightningCLI with the zoo's options (``--torch_threads``, ``--checkpoint_every_n_steps``), run folders and
    resume checks."""

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
            resolve_last_checkpoint(config)
        ckpt_path = config.get("ckpt_path")
        asked = None
        if ckpt_path and Path(ckpt_path).is_file():
            check_checkpoint_matches_recipe(ckpt_path, config.model)
            asked = explicit_init_args(config.model)
        super()._parse_ckpt_path()
        if asked:  # what the recipe and command line set wins over the checkpoint's values
            override_checkpoint_values(self.config[self.config.subcommand].model, asked)

    def _run_folder(self) -> Path | None:
        """``<default_root_dir>/<experiment>/<run id>``: the run's checkpoints and outage journal."""
        logger = self.trainer.logger
        if logger is None:
            return None
        experiment = getattr(logger, "_experiment_name", logger.name)
        return Path(self.trainer.default_root_dir) / experiment / str(logger.version)

    def _run_subcommand(self, subcommand: str) -> None:
        from zoo.agents.checkpoint_io import run_lock  # lazy: would load torchrl, tensordict, highway_env

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


def _print_where_fit_wrote(trainer) -> None:
    """The last checkpoint and the MLflow run, the two things a user looks for after training."""
    if not trainer.is_global_zero:
        return
    ckpt, run_id = trainer.checkpoint_callback, getattr(trainer.logger, "run_id", None)
    if ckpt is not None and ckpt.dirpath and ckpt.save_last:
        print(f"last checkpoint: {Path(ckpt.dirpath) / 'last.ckpt'}")
    if run_id is not None:
        print(f"MLflow run: {run_id} ({tracking_uri()})")


def _recipe_has_model_checkpoint(callbacks) -> bool:
    """Whether the recipe configures its own ``ModelCheckpoint`` (then it replaces the CLI's default one)."""
    entries = callbacks if isinstance(callbacks, list) else [callbacks] if callbacks else []
    return any(issubclass(cls, ModelCheckpoint) for cls in map(named_class, entries) if cls is not None)
