"""`ehrbench models`: every model, built-in and plugin, with its source, feature kind, the label
kinds it fits and its grid.

Listing loads each model's class (torch for the sequence models, a plugin's own module), so a
plugin that fails to load shows here with its error, beside the models that work.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from ehrbench.errors import EhrbenchError
from ehrbench.models import plugins
from ehrbench.models.base import BUILTIN_MODELS, model_class, model_names, plugin_of

EXAMPLE = """example:
  ehrbench models

A model from another package is registered under the entry-point group `ehrbench.models`
(see README, "Bring your own model", and examples/ehrbench-plugin-example). A plugin that
cannot be used is listed with its error; the other models are not affected.
"""


@dataclass(frozen=True)
class CatalogEntry:
    """One model as `ehrbench models` shows it; `error` is set when it cannot be used."""

    name: str
    source: str
    kind: str = ""
    grid: str = ""
    error: str | None = None
    labels: str = ""


def compact_grid(grid: list[dict[str, Any]]) -> str:
    """A grid as its size and each hyperparameter's values in first-seen order.

    >>> compact_grid([{"C": 0.1}, {"C": 1.0}])
    '2 settings: C {0.1, 1.0}'
    >>> compact_grid([{"a": 1, "b": "x"}, {"a": 2, "b": "x"}])
    '2 settings: a {1, 2} x b {x}'
    """
    values: dict[str, list[Any]] = {}
    for setting in grid:
        for name, value in setting.items():
            if value not in values.setdefault(name, []):
                values[name].append(value)
    axes = " x ".join(f"{name} {{{', '.join(map(str, seen))}}}" for name, seen in values.items())
    noun = "setting" if len(grid) == 1 else "settings"
    return f"{len(grid)} {noun}: {axes or 'the defaults'}"


def catalog_entry(name: str) -> CatalogEntry:
    """Load model `name` and describe it, or describe why it cannot be used."""
    plugin = plugin_of(name) or (plugins.find(name) if name in BUILTIN_MODELS else None)
    source = "built-in" if plugin is None else plugin.package
    try:
        model_cls = model_class(name)
        with plugins.blamed(plugin, "listing its grid"):
            grid = model_cls.param_grid()
    except EhrbenchError as exc:
        return CatalogEntry(name, source, error=str(exc))
    labels = ",".join(model_cls.label_kinds)
    return CatalogEntry(name, source, model_cls.kind, compact_grid(grid), labels=labels)


def _list(args: argparse.Namespace) -> int:
    entries = [catalog_entry(name) for name in model_names()]
    header = CatalogEntry("model", "source", "kind", "default grid", labels="labels")
    width_name = max(len(e.name) for e in [header, *entries])
    width_source = max(len(e.source) for e in [header, *entries])
    width_labels = max(len(e.labels) for e in [header, *entries])
    for entry in [header, *entries]:
        kind, grid = (entry.kind, entry.grid) if entry.error is None else ("-", "unusable (below)")
        print(
            f"{entry.name:<{width_name}}  {entry.source:<{width_source}}  {kind:<8}  "
            f"{entry.labels:<{width_labels}}  {grid}"
        )
    broken = [e for e in entries if e.error is not None]
    if broken:
        print()
        for entry in broken:
            print(f"{entry.name}: {entry.error}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `models` verb."""
    parser = subparsers.add_parser(
        "models",
        help="list every model (built-in and plugin) with its feature kind and grid",
        description=(
            "List every model ehrbench can train: the built-in ones and those other packages\n"
            "register as plugins, with where each comes from, the kind of features it reads,\n"
            "the label kinds it fits (binary, multiclass, regression) and its default\n"
            "hyperparameter grid (searched by the label kind's tuning score)."
        ),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=_list)
