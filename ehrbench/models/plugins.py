"""Models from other packages: the `ehrbench.models` entry-point group and its contract checks.

A package registers a model in its `pyproject.toml`:

    [project.entry-points."ehrbench.models"]
    example_centroid = "ehrbench_plugin_example.model:NearestCentroidModel"

Discovering the names reads installed packages' metadata only; a plugin's module is imported
when its model is first used (or listed in detail by `ehrbench models`). Everything a plugin
does wrong (its module fails to import, its class breaks the contract, its code raises, its
predictions are malformed) becomes an `EhrbenchError` naming the plugin, its entry point and
its package, and touches no other model.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import numpy as np

from ehrbench.errors import EhrbenchError
from ehrbench.meds.label_kinds import BINARY, MULTICLASS, REGRESSION, LabelTarget

GROUP = "ehrbench.models"


@dataclass(frozen=True)
class Plugin:
    """One entry point of the group: a model name, its `module:Class`, and its package (the
    distribution's name and version)."""

    name: str
    target: str
    package: str
    entry_point: EntryPoint

    @property
    def label(self) -> str:
        """How messages name the plugin: model, entry point and package."""
        return (
            f"model plugin `{self.name}` (entry point `{self.name} = {self.target}` in group "
            f"`{GROUP}`, package {self.package})"
        )


def _package(entry: EntryPoint) -> str:
    dist = entry.dist
    return "(unknown package)" if dist is None else f"{dist.name} {dist.version}"


@functools.cache
def discovered() -> tuple[Plugin, ...]:
    """Every entry point of the group, in name order (reads metadata, imports nothing)."""
    plugins = {}
    for entry in entry_points(group=GROUP):
        plugin = Plugin(entry.name, entry.value, _package(entry), entry)
        plugins.setdefault((plugin.name, plugin.target, plugin.package), plugin)
    return tuple(sorted(plugins.values(), key=lambda p: (p.name, p.package)))


def clash(plugin: Plugin, builtin: dict[str, str]) -> str | None:
    """Why `plugin`'s name cannot be used (it is a built-in's, or another plugin's), or None."""
    if plugin.name in builtin:
        return (
            f"{plugin.label} has the name of the built-in model `{plugin.name}` "
            f"(module {builtin[plugin.name]}); the package must register it under another name."
        )
    others = [p for p in discovered() if p.name == plugin.name and p != plugin]
    if others:
        packages = " and ".join(p.package for p in [plugin, *others])
        return (
            f"model plugin name `{plugin.name}` is registered by {packages} "
            f"(entry points {[p.target for p in [plugin, *others]]}); uninstall one of them."
        )
    return None


def find(name: str) -> Plugin | None:
    """The plugin registered as `name`, or None."""
    return next((p for p in discovered() if p.name == name), None)


def load_class(plugin: Plugin, kinds: tuple[str, ...]) -> type:
    """Import the plugin's class and check it against the model contract (`kinds`: the known
    feature kind names)."""
    try:
        cls = plugin.entry_point.load()
    # Any failure inside a third-party import is the plugin's, a `sys.exit()` there too.
    except (Exception, SystemExit) as exc:
        raise EhrbenchError(
            f"{plugin.label} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    problems = contract_problems(cls, plugin.name, kinds)
    if problems:
        raise EhrbenchError(f"{plugin.label} breaks the model contract: {'; '.join(problems)}.")
    return cls


def contract_problems(cls: Any, name: str, kinds: tuple[str, ...]) -> list[str]:
    """What a plugin class lacks of the contract (see README, "Bring your own model")."""
    from ehrbench.models.base import Model

    if not (inspect.isclass(cls) and issubclass(cls, Model)):
        return [f"{cls!r} is not a subclass of ehrbench.models.base.Model"]
    problems = []
    if getattr(cls, "name", None) != name:
        problems.append(f"its `name` is {getattr(cls, 'name', None)!r}, not {name!r}")
    if getattr(cls, "kind", None) not in kinds:
        problems.append(f"its `kind` is {getattr(cls, 'kind', None)!r}, not one of {list(kinds)}")
    declared = getattr(cls, "Hyperparameters", None)
    if not (dataclasses.is_dataclass(declared) and declared.__dataclass_params__.frozen):
        problems.append("its `Hyperparameters` is not a frozen dataclass")
    kinds_fitted = getattr(cls, "label_kinds", None)
    if (
        not isinstance(kinds_fitted, tuple)
        or not kinds_fitted
        or not set(kinds_fitted) <= {BINARY, MULTICLASS, REGRESSION}
    ):
        problems.append(
            f"its `label_kinds` is {kinds_fitted!r}, not a non-empty tuple of "
            f"{[BINARY, MULTICLASS, REGRESSION]}"
        )
    if inspect.isabstract(cls):
        problems.append(f"it does not implement {sorted(cls.__abstractmethods__)}")
    return problems


@contextmanager
def blamed(plugin: Plugin | None, action: str) -> Iterator[None]:
    """Turn an unexpected exception from a plugin's code into an `EhrbenchError` naming it."""
    if plugin is None:
        yield
        return
    try:
        yield
    except EhrbenchError:
        raise
    # A `sys.exit()` in a plugin is its failure too, not the end of ehrbench's command.
    except (Exception, SystemExit) as exc:
        raise EhrbenchError(
            f"{plugin.label} raised while {action}: {type(exc).__name__}: {exc}"
        ) from exc


def check_output(plugin: Plugin, output: Any, n_rows: int, target: LabelTarget) -> np.ndarray:
    """`output` if it keeps the contract for `target`'s kind: float64, finite, one row per
    label row; probabilities of the positive class in [0, 1] (binary, shape [n]), one
    probability per class summing to 1 (multiclass, [n, classes]), or values (regression, [n])."""
    shape = (n_rows, len(target.classes)) if target.kind == MULTICLASS else (n_rows,)
    if not isinstance(output, np.ndarray):
        problem = f"a {type(output).__name__}, not a numpy array"
    elif output.shape != shape:
        problem = f"shape {output.shape} for {n_rows} rows (expected {shape})"
    elif output.dtype != np.float64:
        problem = f"dtype {output.dtype} (expected float64)"
    elif not np.all(np.isfinite(output)):
        problem = f"{int((~np.isfinite(output)).sum())} non-finite value(s)"
    elif (
        target.kind != REGRESSION and output.size and not (output.min() >= 0 and output.max() <= 1)
    ):
        problem = f"values outside [0, 1] (from {output.min()} to {output.max()})"
    elif target.kind == MULTICLASS and not np.allclose(output.sum(axis=1), 1.0, atol=1e-4):
        problem = "class probabilities that do not sum to 1 on every row"
    else:
        return output
    raise EhrbenchError(
        f"{plugin.label} breaks the model contract: predict_proba returned {problem}; it must "
        f"return {_EXPECTED[target.kind]}."
    )


_EXPECTED = {
    BINARY: "float64 probabilities of the positive class, one per row, in [0, 1]",
    MULTICLASS: "float64 probabilities, one row per label row and one column per class, "
    "each row summing to 1",
    REGRESSION: "float64 predicted values, one per row",
}
