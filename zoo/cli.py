"""The ``zoo`` command.

``zoo fit --config recipes/<recipe>.yaml [--key value ...]`` is Lightning's CLI over the zoo's modules
(:mod:`zoo.fit`; recipes are LightningCLI YAML with OmegaConf ``${...}`` interpolation, ``--config <name>`` names a
shipped recipe from any folder, and a composed recipe stands for its parts). Every other command is a typed function
of the room it belongs to (:data:`COMMANDS`): jsonargparse builds its options from the signature and their help from
the docstring's ``Args``, spelt as the zoo's docs write them (:class:`CommandParser`). User errors print one line
naming the bad value and exit 2; options out of range or that do not go together
(:class:`~zoo.errors.UsageError`) print the command's usage too.
"""

from __future__ import annotations

import importlib
import inspect
import shlex
import sys
import typing
from collections.abc import Callable
from types import UnionType
from typing import Any, Literal, NoReturn, get_args, get_origin

from jsonargparse import ArgumentParser
from rich.console import Console
from rich.markup import escape

from zoo.errors import UsageError, ZooError, user_error
from zoo.fit.recipes import recipe_arguments
from zoo.registry import unknown_choice
from zoo.tracking import configure_mlflow

configure_mlflow()

LIGHTNING_COMMANDS = ("fit",)
# Lightning's `validate` runs a validation dataloader; an agent has none, since its held-out check is
# episodes on unseen seeds (`zoo evaluate`), and reward-model recipes already validate every epoch of fit.
REPLACED_COMMANDS = {"validate": "a checkpoint's held-out evaluation is `zoo evaluate --ckpt <checkpoint>` "
                                 "(reward-model recipes validate every epoch of `zoo fit`)"}

#: the zoo's own commands: ``"module:function"``, or a group of subcommands with its help under ``"_help"``
#: (imported only when run)
COMMANDS: dict[str, str | dict[str, str]] = {
    "evaluate": "zoo.policy_evaluation:evaluate_policy",
    "reward": {"_help": "Reward-model tools.",
               "calibrate": "zoo.rewards.calibrate:calibrate_model",
               "evaluate": "zoo.evaluation.reward_evaluation:evaluate_reward_models"},
    "data": {"_help": "Datasets made from the simulator.",
             "bev-captions": "zoo.data.bev_captions:record_bev_captions"},
    "models": {"_help": "The zoo's models: shipped, buildable, registered.",
               "list": "zoo.hub.catalog:print_models",
               "info": "zoo.hub.catalog:print_model_card",
               "save-policy": "zoo.hub.policies:save_checkpoint_as_policy"},
    "register": "zoo.hub.registration:register",
    "tracking": {"_help": "MLflow tracking tools.",
                 "sync": "zoo.tracking.pending:sync_journals",
                 "import": "zoo.tracking.transfer:import_experiment"},
    "benchmark": "zoo.benchmark.run:run_benchmark",
    "export": "zoo.export:export",
}
#: a command function's parameter that is no option: the command line as typed (``zoo reward calibrate ...``), for
#: the commands that record how their output was made
COMMAND_LINE = "command_line"

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


class CommandParser(ArgumentParser):
    """jsonargparse's parser of a function's parameters, spelt as the zoo's commands have always been (argparse's
    conventions, which jsonargparse's own differ from): ``--allow-pickle`` for ``allow_pickle`` and ``--as`` for
    ``as_`` (a Python keyword), a ``bool`` a flag without a value, a ``list`` or ``tuple`` the values after its option
    (a positional ``list`` any number of them), a ``Literal`` one of its values."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._hints: dict[str, Any] = {}  # set first: the parser adds its --help while it is built
        #: option spellings by the key jsonargparse names a missing option with (``"calibrate.model"`` in a group)
        self.spelling: dict[str, str] = {}
        super().__init__(*args, **kwargs)

    def add_command(self, function: Callable[..., Any]) -> None:
        """The options of ``function``: its required parameters positional, keyword-only ones options."""
        self._hints = typing.get_type_hints(function)
        skip = {COMMAND_LINE} & set(inspect.signature(function).parameters)
        self.add_function_arguments(function, as_group=False, as_positional=True, skip=skip)

    def add_argument(self, *args: str, **kwargs: Any):
        hint = self._hints.get(args[0].lstrip("-")) if args else None
        if hint is None:  # jsonargparse's own options (--help)
            return super().add_argument(*args, **kwargs)
        name, optional, hint = args[0].lstrip("-"), args[0].startswith("-"), _without_none(hint)
        if optional:  # only the option itself: jsonargparse's "--name+" appends to a list given as one value
            args = ("--" + name.rstrip("_").replace("_", "-"),)
            kwargs["dest"], self.spelling[name] = name, args[0]
        if isinstance(kwargs.get("default"), tuple):  # jsonargparse checks a list's items in place
            kwargs["default"] = list(kwargs["default"])
        if hint is bool:
            kwargs.pop("type", None)
            kwargs["action"] = "store_true"
        elif get_origin(hint) in (list, tuple):
            items = get_args(hint)
            kwargs.pop("action", None)
            kwargs["type"] = items[0]
            fixed = get_origin(hint) is tuple and Ellipsis not in items
            kwargs["nargs"] = len(items) if fixed else "+" if optional else "*"
            if not optional:  # none given: an empty list
                kwargs["default"] = []
        elif get_origin(hint) is Literal:
            values = get_args(hint)
            if all(isinstance(value, str) for value in values):  # argparse's "invalid choice" names them
                kwargs["choices"] = values
            else:  # jsonargparse converts the text and names the choices when it does not fit
                kwargs["metavar"] = "{" + ",".join(map(str, values)) + "}"
        elif name.endswith("_"):
            kwargs["metavar"] = name.rstrip("_").upper()
        return super().add_argument(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        head, required, keys = message.partition(_REQUIRED)
        if required:
            message = head + required + ", ".join(self.spelling.get(key, key) for key in keys.split(", "))
        super().error(message, ex)


#: jsonargparse's error for missing options, which it names by their keys
_REQUIRED = "the following arguments are required: "


def _without_none(hint: Any) -> Any:
    """``X`` for ``X | None``, else ``hint``."""
    if get_origin(hint) in (typing.Union, UnionType):
        rest = [arg for arg in get_args(hint) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint


def _function(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _description(function: Callable[..., Any]) -> str:
    """A command's description: its function's docstring up to ``Args:``."""
    return (inspect.getdoc(function) or "").split("\nArgs:")[0].strip()


def run_command(argv: list[str]) -> None:
    """Parse ``argv`` (``["reward", "calibrate", ...]``) against its command's function and call it."""
    name, entry = argv[0], COMMANDS[argv[0]]
    if isinstance(entry, str):
        functions = {None: _function(entry)}
        parser = CommandParser(prog=f"zoo {name}", description=_description(functions[None]))
        parser.add_command(functions[None])
        parsers = {None: parser}
    else:
        functions = {sub: _function(target) for sub, target in entry.items() if sub != "_help"}
        parsers = {sub: CommandParser(description=_description(function)) for sub, function in functions.items()}
        parser = CommandParser(prog=f"zoo {name}", description=entry["_help"])
        subcommands = parser.add_subcommands(required=True)
        for sub, function in functions.items():
            subcommands.add_subcommand(sub, parsers[sub], help=_description(function).split("\n")[0])
            parsers[sub].add_command(function)
            parser.spelling.update({f"{sub}.{key}": option for key, option in parsers[sub].spelling.items()})
    config = parser.parse_args(argv[1:])
    chosen = config.get("subcommand")
    kwargs = (config[chosen] if chosen else config).as_dict()
    if COMMAND_LINE in inspect.signature(functions[chosen]).parameters:
        kwargs[COMMAND_LINE] = shlex.join(["zoo", *argv])
    try:
        functions[chosen](**kwargs)
    except UsageError as err:  # shown with the command's usage, as argparse shows its own refusals
        parsers[chosen].error(str(err))


def main(argv: list[str] | None = None) -> int:
    """Run ``zoo <argv>`` (default: ``sys.argv``); return the exit code (2: a user error, said in one line)."""
    from_sys = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    console = Console(stderr=True)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command = argv[0]
    try:
        if command in COMMANDS:
            run_command(argv)
        elif command in LIGHTNING_COMMANDS:
            argv = recipe_arguments(argv)
            from zoo.fit.lightning_cli import lightning_cli  # lazy: would load lightning, torch, scipy

            if from_sys:  # LightningCLI reads sys.argv itself (and warns when given both it and args)
                sys.argv[1:] = argv
            lightning_cli(None if from_sys else argv)
        elif command in REPLACED_COMMANDS:
            raise ZooError(f"there is no `zoo {command}`: {REPLACED_COMMANDS[command]}")
        else:
            raise ZooError(unknown_choice("command", command, [*LIGHTNING_COMMANDS, *COMMANDS]))
    except Exception as err:
        found = user_error(err)
        if found is None:
            raise
        # one line whatever the terminal's width; the message is text, never markup (it may quote a file's content)
        console.print(f"[bold red]error:[/bold red] {escape(str(found))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
