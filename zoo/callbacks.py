"""Lightning callbacks of the zoo: env-step progress bar, recipe logging, periodic training checkpoints,
evaluation after fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import MLFlowLogger
from rich.console import Console

from zoo.errors import ZooError
from zoo.tracking import ui_command


class EnvStepProgressBar(RichProgressBar):
    """Rich progress bar counting environment steps (not gradient updates) toward ``total_frames``;
    env steps, episodes, recent return and collisions are shown beside it. Modules that do not collect
    (reward-model training) get Lightning's usual batch bar."""

    def _collects(self) -> bool:
        return hasattr(self.trainer.lightning_module, "tracker")

    @property
    def total_train_batches(self) -> int | float:
        if not self._collects():
            return super().total_train_batches
        return self.trainer.lightning_module.total_frames

    def _get_train_description(self, current_epoch: int) -> str:
        return "env steps" if self._collects() else super()._get_train_description(current_epoch)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self._collects():
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if not self.is_disabled and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()
        self._update(self.train_progress_bar_id, pl_module.tracker.frames)
        self._update_metrics(trainer, pl_module)
        self.refresh()


class MLflowRecipeCallback(SaveConfigCallback):
    """Logs the resolved recipe (``recipe.yaml``) and flat hyper-parameters to the MLflow run, and says
    where the run is and how to open the UI."""

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = trainer.logger
        if not isinstance(logger, MLFlowLogger):
            return
        recipe = self.parser.dump(self.config, skip_none=False)
        logger.experiment.log_text(logger.run_id, recipe, "recipe.yaml")

        Console(stderr=True).print(
            f"[bold]MLflow[/bold] run [cyan]{logger.run_id}[/cyan] in experiment "
            f"[cyan]{logger._experiment_name}[/cyan] at {logger._tracking_uri}\n"
            f"  open the UI with: [green]{ui_command(logger._tracking_uri)}[/green]"
        )


class TrainingCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every_n_train_steps`` optimizer steps and when training ends, for resuming a run
    (``zoo fit … --ckpt_path last``); no other checkpoint files, since each one holds the replay buffer.

    Lightning's ``ModelCheckpoint`` with ``every_n_train_steps`` skips the end of training, needs the step
    count to hit an exact multiple (SAC and TD3 take several optimizer steps per update) and, under manual
    optimization, warns that it saves the state after the update: for a resumable RL run that state, with the
    buffer and counters that produced it, is the one wanted. At most ``every_n_train_steps`` optimizer steps
    (and the env steps collected for them) are lost to a crash.

    Args:
        every_n_train_steps: optimizer steps between checkpoints (Lightning's ``global_step``: SAC counts
            three per update: critic, actor and temperature).
        **kwargs: passed to :class:`~lightning.pytorch.callbacks.ModelCheckpoint` (``dirpath`` …).

    Example:
        >>> trainer = L.Trainer(callbacks=[TrainingCheckpoint(every_n_train_steps=3000)])  # doctest: +SKIP
    """

    def __init__(self, every_n_train_steps: int = 1000, **kwargs: Any) -> None:
        if every_n_train_steps < 1:
            raise ZooError(f"every_n_train_steps must be >= 1, got {every_n_train_steps}")
        super().__init__(save_last=True, save_top_k=0, every_n_train_steps=every_n_train_steps, **kwargs)
        self._saved_at_step = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._saved_at_step = trainer.global_step  # a resumed run counts from its checkpoint

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step - self._saved_at_step >= self._every_n_train_steps:
            self._save_last(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Nothing: the end of training is saved in :meth:`on_train_end`."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step != self._saved_at_step:
            self._save_last(trainer)

    def _save_last(self, trainer: L.Trainer) -> None:
        if not trainer.sanity_checking and not trainer.fast_dev_run:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            self._saved_at_step = trainer.global_step


class EvaluateAfterFit(Callback):
    """Evaluate the trained policy on held-out seeds when fit ends; print, save and log the table.

    Args:
        episodes: evaluation episodes.
        seed: evaluation seed (offset into the held-out range).
        video: also save a GIF of the first episode.
        before: also evaluate the untrained policy when fit starts, on the same seeds, and show
            both side by side (so the table shows what training changed); skipped when the fit resumes
            from a checkpoint (the policy is no longer untrained).
    """

    def __init__(self, episodes: int = 20, seed: int = 0, video: bool = False, before: bool = True) -> None:
        self.episodes = episodes
        self.seed = seed
        self.video = video
        self.before = before
        self.initial = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.before and trainer.is_global_zero and trainer.ckpt_path is None:
            from zoo.evaluation import evaluate  # lazy: would load torchrl, tensordict, highway_env

            self.initial = evaluate(pl_module, episodes=self.episodes, seed=self.seed)
            pl_module.train()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.interrupted or not trainer.is_global_zero:
            return
        from zoo.evaluation import evaluate  # lazy: would load torchrl, tensordict, highway_env
        from zoo.evaluation.report import (  # lazy: would load torchrl, tensordict, highway_env
            log_to_mlflow,
            print_table,
            write_result,
        )

        out = Path(trainer.checkpoint_callback.dirpath).parent / "evaluation" if trainer.checkpoint_callback \
            else Path(trainer.default_root_dir) / "evaluation"
        video = out / "episode.gif" if self.video else None
        result = evaluate(pl_module, episodes=self.episodes, seed=self.seed, video=video)
        print_table(result, title=f"held-out evaluation: {result.scenario}, {self.episodes} episodes",
                    before=self.initial)
        files = write_result(result, out)
        if isinstance(trainer.logger, MLFlowLogger):
            client, run_id = trainer.logger.experiment, trainer.logger.run_id
            log_to_mlflow(result, client, run_id, files + ([video] if video else []), step=pl_module.tracker.frames)
            if self.initial is not None:
                log_to_mlflow(self.initial, client, run_id, [], step=0, prefix="eval_before/")


class EvaluateEvery(Callback):
    """Held-out evaluation every ``every`` env steps during fit (and once before): learning curves.

    Logs ``<prefix><metric>`` (AS, RC, TD, CS, SR, AC, CR, return, length: means over ``episodes`` held-out
    episodes) at the env step it was taken, so success and collision rate can be plotted against env steps.

    Args:
        every: env steps between evaluations.
        episodes: held-out episodes per evaluation (the same seeds each time).
        seed: evaluation seed (offset into the held-out range).
        prefix: metric name prefix.

    Example:
        >>> trainer = L.Trainer(callbacks=[EvaluateEvery(every=1_000, episodes=5)])  # doctest: +SKIP
    """

    def __init__(self, every: int = 1_000, episodes: int = 5, seed: int = 0, prefix: str = "curve/") -> None:
        if every < 1 or episodes < 1:
            raise ZooError(f"every and episodes must be >= 1, got every={every}, episodes={episodes}")
        self.every = every
        self.episodes = episodes
        self.seed = seed
        self.prefix = prefix
        self.next_at = 0

    def _evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from zoo.evaluation import evaluate  # lazy: would load torchrl, tensordict, highway_env

        frames = pl_module.tracker.frames
        result = evaluate(pl_module, episodes=self.episodes, seed=self.seed, progress=False)
        pl_module.train()
        if trainer.logger is not None:
            metrics = {f"{self.prefix}{name}": mean for name, (mean, _) in result.summary.items()}
            trainer.logger.log_metrics(metrics, step=frames)
        self.next_at = (frames // self.every + 1) * self.every

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._evaluate(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.is_global_zero and pl_module.tracker.frames >= self.next_at:
            self._evaluate(trainer, pl_module)
