"""The zoo's models on the console: ``zoo models list`` (a table of the shipped, buildable and registered models)
and ``zoo models info`` (a model's card)."""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table
from safetensors import safe_open

from zoo.hub.cards import read_card
from zoo.hub.resolve import ARCHITECTURES, list_models, resolve_model, shipped_models, shipped_name
from zoo.hub.sources import resolve_pip_model


def print_models(*, kind: str | None = None, pretrained: bool = False) -> None:
    """A table of the zoo's models.

    Args:
        kind: one of reward, policy, detector, describer
        pretrained: only models with trained weights
    """
    shipped = shipped_models()
    # 80 columns: the summary goes under the name (wrapped) instead of in a column of its own
    table = Table(title="zoo models", show_lines=True)
    table.add_column("name and summary", ratio=1, overflow="fold")
    table.add_column("kind", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("source", no_wrap=True)
    for name in list_models(kind, pretrained=pretrained):
        if name in shipped:
            card = read_card(shipped[name])
            adapter = f" (adapter on {card['adapter_of']})" if "adapter_of" in card else ""
            table.add_row(f"[bold]{escape(name)}[/bold]\n{escape(card['summary'])}{escape(adapter)}",
                          card["kind"], f"{model_parameters(shipped[name]) / 1e6:.2f} M",
                          f"{shipped[name].parent.name}/")
        else:
            table.add_row(f"[bold]{escape(name)}[/bold]\n{escape(ARCHITECTURES.get(name).summary)}", "reward",
                          "", "untrained")
    Console().print(table)


def print_model_card(name: str) -> None:
    """A model's card.

    Args:
        name: zoo name (family.tag), folder or models:/ URI
    """
    console = Console()
    resolved = resolve_model(name)
    if resolved.card is None:
        console.print(f"{name}: a plain Hugging Face model at {resolved.path} (no zoo card)")
        return
    shipped = shipped_models()
    folder = shipped.get(shipped_name(name, shipped))
    readme = (folder or resolved.path) / "README.md"
    console.print(Markdown(readme.read_text()) if readme.is_file() else resolved.card)
    console.print(f"folder: {resolved.path}")


def model_parameters(folder: str | Path) -> int:
    """Number of parameters in a zoo model folder: its weights plus the ``base`` components its card names."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    card = read_card(folder) if (folder / "zoo.json").is_file() else {}
    if card.get("base"):
        files += [resolve_pip_model(spec) / "model.safetensors" for spec in card["base"].values()]
    total = 0
    for file in files:
        with safe_open(str(file), "pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                total += math.prod(f.get_slice(key).get_shape())
    return total
