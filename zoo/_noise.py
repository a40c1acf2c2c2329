"""Third-party messages that say nothing to a zoo user, silenced one by one (never a blanket ignore).

Each filter names the exact message and says why it is harmless, so that every other warning (the ones
that matter) stays visible. :func:`silence_known_noise` runs on ``import zoo``, in env and collector
worker processes as well (they import zoo too).
"""

from __future__ import annotations

import logging
import warnings


class _DropMessage(logging.Filter):
    """Drop the log records whose message contains ``part``."""

    def __init__(self, part: str) -> None:
        super().__init__()
        self.part = part

    def filter(self, record: logging.LogRecord) -> bool:
        return self.part not in record.getMessage()


# bitsandbytes tries to fetch an optional faster CPU 4-bit kernel from the Hugging Face Hub; offline it
# falls back to its own kernel, with the same results.
_BITSANDBYTES_KERNELS = ("bitsandbytes.backends.cpu.ops", _DropMessage("pip install kernels"))
# Lightning advertises its cloud services (litlogger, litmodels) on every fit; the zoo tracks in MLflow.
_LIGHTNING_TIPS = [(name, _DropMessage("💡 Tip:")) for name in ("lightning.pytorch.utilities.rank_zero",
                                                                 "lightning.fabric.utilities.rank_zero")]


def silence_known_noise() -> None:
    """Install the filters (idempotent: ``zoo.envs`` calls it again, see there)."""
    # The presets build highway-env's `-v0` ids on purpose (their configs are what zoo/envs/presets.py
    # sets); gymnasium repeats this for every env and every worker process.
    warnings.filterwarnings("ignore", message=r".*The environment \S+-v0 is out of date", category=DeprecationWarning)
    # Lightning's own pytree helper still uses torch's deprecated LeafSpec; nothing a user can change.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # peft reads transformers' renamed `is_gradient_checkpointing` when it wraps a model for LoRA.
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    # ray.init announces a change of default in a future Ray (whether a task that asks for no GPU sees the GPUs);
    # the zoo's Ray tasks and env workers keep today's (they see none), nothing to do until that release.
    warnings.filterwarnings("ignore", message=r"Tip: In future versions of Ray, Ray will no longer override accelerator",
                            category=FutureWarning)
    # LightningCLI warns when it is given its arguments while sys.argv holds others; the zoo builds fit arguments on
    # purpose (a `zoo benchmark` cell run in-process, `zoo.fit.lightning_cli(argv)` from Python).
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended to run from within Python")
    for name, record_filter in [_BITSANDBYTES_KERNELS, *_LIGHTNING_TIPS]:
        logging.getLogger(name).addFilter(record_filter)  # a filter already there is not added twice
