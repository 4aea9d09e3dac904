"""The one interface every model implements, the registry of models by name, and row helpers.

A model is fitted on training rows, may use the tuning rows for early stopping, and predicts its
label kind's output for any rows: the probability of the positive class (binary), one probability
per class (multiclass) or the value (regression). A model declares the kinds it can fit in
`label_kinds` (binary only unless it says more, so a plugin written for binary labels is refused a
regression label with a clear error). It never sees `held_out` rows: callers pass only
the train and tuning subsets (see `ehrbench.models.grid.select_and_fit`).

Features are duck-typed so this package does not depend on how they are built: tabular models
read `features.matrix` (a scipy CSR matrix, one row per label), sequence models read the arrays
of a `SequenceFeatures` (`codes`, `values`, `value_mask`, `hours_before`, `lengths`, `static`,
`age_years`). Both kinds carry `rows` (subject_id, prediction_time) in label order.

Models come from two places: the built-ins of `BUILTIN_MODELS` and other packages' entry points
in the `ehrbench.models` group (`ehrbench.models.plugins`). Both are looked up by name, and only
the module of the model asked for is imported.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import numbers
import operator
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from ehrbench.errors import EhrbenchError
from ehrbench.features.kinds import FEATURE_KINDS
from ehrbench.io import reading_saved, write_text_atomic
from ehrbench.meds.label_kinds import BINARY, BINARY_TARGET, MULTICLASS, LabelTarget
from ehrbench.models import plugins

MODEL_FILE = "model.json"


class Model(ABC):
    """A predictor of one label kind with a hyperparameter grid, fitted once and then read-only.

    Subclasses set `name`, `kind` ("tabular" or "sequence"), `Hyperparameters` (a frozen
    dataclass declaring every hyperparameter with its type and default; a model's values are in
    `self.hyperparameters`) and, when they fit more than binary labels, `label_kinds`; they
    implement `param_grid`, `_fit`, `predict_proba`, `n_parameters`, `_save_state` and
    `_load_state`. `fit` checks the inputs, sets `self.target` (the `LabelTarget` being fitted),
    calls `_fit` and marks the model fitted. `fit_each` fits a search's settings on the same rows;
    `_fit` may compute what depends on the rows alone through `reuse`, once per search.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    Hyperparameters: ClassVar[type]
    label_kinds: ClassVar[tuple[str, ...]] = (BINARY,)

    def __init__(self, **params: Any) -> None:
        self.hyperparameters = typed_settings(self.Hyperparameters, params, f"model `{self.name}`")
        self.fitted = False
        self.target: LabelTarget = BINARY_TARGET
        self._shared: dict[Any, Any] = {}

    @property
    def params(self) -> dict[str, Any]:
        """Every hyperparameter by name, as given (the plain dict saved in JSON records)."""
        return dataclasses.asdict(self.hyperparameters)

    @classmethod
    @abstractmethod
    def param_grid(cls) -> list[dict[str, Any]]:
        """The hyperparameter settings searched by the tuning-set score (AUROC for binary
        labels), in a fixed order."""

    def fit(
        self,
        train: Any,
        y_train: np.ndarray,
        tuning: Any,
        y_tuning: np.ndarray,
        seed: int,
        target: LabelTarget = BINARY_TARGET,
    ) -> Self:
        """Fit on the training rows, using the tuning rows only for early stopping.

        `target` is the label kind (binary unless given); the model must declare it in
        `label_kinds`. Both sets need one label per row and, for a classifier, two classes;
        the labels reach `_fit` as bool (binary), int64 class indices (multiclass) or float64
        (regression) arrays.
        """
        check_label_kind(type(self), target)
        self.target = target
        y_train = _checked_labels(train, y_train, "training", target)
        y_tuning = _checked_labels(tuning, y_tuning, "tuning", target)
        try:
            with plugins.blamed(plugin_of(self.name), "fitting"):
                self._fit(train, y_train, tuning, y_tuning, seed)
        finally:
            self._shared = {}  # a fitted model holds no search state (it is pickled and shipped)
        self.fitted = True
        return self

    @classmethod
    def fit_each(
        cls,
        settings: list[dict[str, Any]],
        train: Any,
        y_train: np.ndarray,
        tuning: Any,
        y_tuning: np.ndarray,
        seed: int,
        target: LabelTarget = BINARY_TARGET,
    ) -> Iterator[Self]:
        """Each of `settings` fitted on the same rows (see `fit`), in order: a search's fits.

        What a setting's `_fit` computes through `reuse` is kept for the later settings, so work
        on the rows alone (LightGBM's binning, the forest's dense copy, the linear models'
        scaling) is done once per search, not once per setting.
        """
        shared: dict[Any, Any] = {}
        for setting in settings:
            model = cls(**setting)
            model._shared = shared
            yield model.fit(train, y_train, tuning, y_tuning, seed, target)

    def reuse(self, key: Any, compute: Callable[[], Any]) -> Any:
        """`compute()`, or what it returned for an earlier setting of the same search (see
        `fit_each`). `key` names the work and every setting it depends on besides the rows.

        >>> model = get_model("logreg")
        >>> model.reuse("rows", lambda: [1.0]) is model.reuse("rows", list)
        True
        """
        if key not in self._shared:
            self._shared[key] = compute()
        return self._shared[key]

    @abstractmethod
    def _fit(
        self, train: Any, y_train: np.ndarray, tuning: Any, y_tuning: np.ndarray, seed: int
    ) -> None:
        """Set the fitted state from checked inputs (see `fit`)."""

    @abstractmethod
    def predict_proba(self, features: Any) -> np.ndarray:
        """The model's output for each row, as float64: the probability of the positive class
        [n] (binary), the probability of each class of `self.target.classes` [n, classes]
        (multiclass), or the predicted value [n] (regression)."""

    @abstractmethod
    def n_parameters(self) -> int:
        """How many numbers the fitted model learned (its size, reported as a run's cost)."""

    @abstractmethod
    def _save_state(self, directory: Path) -> dict[str, Any]:
        """Write the fitted state into `directory`; return extra JSON-able facts to keep."""

    @abstractmethod
    def _load_state(self, directory: Path, extra: dict[str, Any]) -> None:
        """Restore the fitted state written by `_save_state`."""

    def save(self, directory: str | Path) -> None:
        """Write the fitted model to `directory`: `model.json` plus the model's own files."""
        if not self.fitted:
            raise ValueError(f"model `{self.name}` is not fitted; nothing to save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        extra = self._save_state(directory)
        record = {"name": self.name, "params": self.params, "state": extra}
        if self.target != BINARY_TARGET:  # binary records stay as they always were
            record["target"] = self.target.as_dict()
        write_text_atomic(
            json.dumps(record, indent=2, sort_keys=True) + "\n", directory / MODEL_FILE
        )

    @classmethod
    def load(cls, directory: str | Path) -> Model:
        """Read a model written by `save`; the class is taken from `model.json`."""
        directory = Path(directory)
        path = directory / MODEL_FILE
        if not path.exists():
            raise EhrbenchError(
                f"{path} does not exist: {directory} holds no saved ehrbench model."
            )
        with reading_saved(directory, "a saved model"):
            record = json.loads(path.read_text(encoding="utf-8"))
            name = record.get("name")
            if name not in model_names() or not issubclass(model_class(name), cls):
                raise EhrbenchError(
                    f"{path} names model `{name}`, which is not one of {model_names()}."
                )
            model = model_class(name)(**record["params"])
            if "target" in record:
                model.target = LabelTarget.from_dict(record["target"])
            model._load_state(directory, record["state"])
        model.fitted = True
        return model


def typed_settings(
    declared: type, params: dict[str, Any], owner: str, noun: str = "hyperparameter"
) -> Any:
    """The frozen dataclass `declared` filled from `params`, each value type- and range-checked.

    Errors name the `owner` ("model `logreg`") and the unknown, mistyped or out-of-range `noun`.
    """
    names = [f.name for f in dataclasses.fields(declared)]
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise EhrbenchError(f"{owner} has no {noun}(s) {unknown}; its {noun}s are {sorted(names)}.")
    hints = typing.get_type_hints(declared)
    fields = {f.name: f for f in dataclasses.fields(declared)}
    for name, value in params.items():
        allowed = typing.get_args(hints[name]) or (hints[name],)
        if not any(_is_a(value, kind) for kind in allowed):
            expected = " or ".join(_TYPE_NAMES.get(kind, kind.__name__) for kind in allowed)
            raise EhrbenchError(f"{owner}: {noun} `{name}` must be {expected}, not {value!r}.")
        _check_bound(f"{owner}: {noun} `{name}`", value, fields[name].metadata)
    return declared(**params)


def at_least(
    default: Any, minimum: float, *, maximum: float | None = None, below: float | None = None
) -> Any:
    """A hyperparameter field whose value must be >= `minimum`, and <= `maximum` or < `below`
    when given (None, where allowed, passes)."""
    limits = {"minimum": minimum, "maximum": maximum, "below": below}
    return dataclasses.field(default=default, metadata=_given(limits))


def above(default: Any, bound: float, *, maximum: float | None = None) -> Any:
    """A hyperparameter field whose value must be > `bound`, and <= `maximum` when given (None,
    where allowed, passes)."""
    return dataclasses.field(default=default, metadata=_given({"above": bound, "maximum": maximum}))


def _given(limits: dict[str, float | None]) -> dict[str, float]:
    return {kind: limit for kind, limit in limits.items() if limit is not None}


# Each kind of limit: how it reads, and the test a value inside it passes.
_LIMITS = {
    "minimum": ("at least", operator.ge),
    "above": ("greater than", operator.gt),
    "maximum": ("at most", operator.le),
    "below": ("below", operator.lt),
}


def _check_bound(what: str, value: Any, bounds: Mapping[str, float]) -> None:
    """Refuse a value outside its declared range, or a bounded number that is NaN or infinite
    (NaN passes every comparison's negation): no grid setting can then fit nothing.

    >>> _check_bound("x", 1.5, {"minimum": 0, "below": 1})
    Traceback (most recent call last):
    ehrbench.errors.EhrbenchError: x must be at least 0 and below 1, not 1.5.
    """
    if value is None or isinstance(value, str) or not bounds:
        return
    finite = math.isfinite(value)
    if finite and all(_LIMITS[kind][1](value, limit) for kind, limit in bounds.items()):
        return
    wanted = " and ".join(f"{_LIMITS[kind][0]} {limit}" for kind, limit in bounds.items())
    raise EhrbenchError(
        f"{what} must be {'' if finite else 'a finite number '}{wanted}, not {value!r}."
    )


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", type(None): "null"}


def _is_a(value: Any, kind: type) -> bool:
    """Whether `value` is of hyperparameter type `kind` (an integer is a number, a bool is not)."""
    if isinstance(value, bool):
        return kind is bool
    if kind in (int, float):
        return isinstance(value, numbers.Integral if kind is int else numbers.Real)
    return isinstance(value, kind)


def check_label_kind(model_cls: type[Model], target: LabelTarget) -> None:
    """Raise `EhrbenchError` unless `model_cls` declares `target`'s label kind."""
    if target.kind not in model_cls.label_kinds:
        raise EhrbenchError(
            f"model `{model_cls.name}` cannot fit a {target.kind} label (`{target.column}`): it "
            f"fits {' and '.join(model_cls.label_kinds)} labels only. Choose a model that fits "
            f"{target.kind} labels (`ehrbench models` lists each model's label kinds)."
        )


def _checked_labels(features: Any, y: np.ndarray, role: str, target: LabelTarget) -> np.ndarray:
    """`y` checked for `target`'s kind (see `fit`) and to hold one label per row of `features`."""
    if target.kind == BINARY:
        y = check_binary_labels(y, role)
    elif target.kind == MULTICLASS:
        y = _check_class_labels(y, role, target)
    else:
        y = _check_values(y, role, target)
    if n_rows(features) != len(y):
        raise ValueError(f"{role} features have {n_rows(features)} rows but {len(y)} labels")
    return y


# The module defining each built-in model: a lookup imports only the one asked for, so a
# logistic regression never pays for torch.
BUILTIN_MODELS = {
    "logreg": "ehrbench.models.tabular",
    "lightgbm": "ehrbench.models.tabular",
    "random_forest": "ehrbench.models.tabular",
    "ridge": "ehrbench.models.tabular",
    "gru": "ehrbench.models.sequence",
    "lstm": "ehrbench.models.sequence",
    "transformer": "ehrbench.models.sequence",
}
# Filled as the model modules are imported (and plugins loaded); read it through `model_names()`
# and `model_class()`.
MODELS: dict[str, type[Model]] = {}


def register(model_cls: type[Model]) -> type[Model]:
    """Class decorator adding a model to `MODELS` under its `name`."""
    MODELS[model_cls.name] = model_cls
    return model_cls


def get_model(name: str, **params: Any) -> Model:
    """A new, unfitted model by registry name with the given hyperparameters."""
    return model_class(name)(**params)


def model_names() -> list[str]:
    """Every model name, built-in and plugin, sorted (without importing any model module).

    >>> model_names()
    ['gru', 'lightgbm', 'logreg', 'lstm', 'random_forest', 'ridge', 'transformer']
    """
    return sorted(set(BUILTIN_MODELS) | set(MODELS) | {p.name for p in plugins.discovered()})


def check_model_name(name: str) -> None:
    """Raise `EhrbenchError` unless `name` is a registered model (imports nothing)."""
    if name not in model_names():
        raise EhrbenchError(f"unknown model `{name}`: choose one of {model_names()}.")


def model_class(name: str) -> type[Model]:
    """The class for a model name, importing its module (or loading its plugin) on first use.

    A plugin that fails to load, or whose name is also a built-in's, raises `EhrbenchError`.
    """
    check_model_name(name)
    plugin = plugins.find(name)
    problem = plugin and plugins.clash(plugin, BUILTIN_MODELS)
    if problem:
        raise EhrbenchError(problem)
    if name not in MODELS:
        if plugin is None:
            importlib.import_module(BUILTIN_MODELS[name])
        else:
            MODELS[name] = plugins.load_class(plugin, tuple(kind.name for kind in FEATURE_KINDS))
    return MODELS[name]


def plugin_of(name: str) -> plugins.Plugin | None:
    """The plugin that provides model `name`, or None for a built-in model."""
    return None if name in BUILTIN_MODELS else plugins.find(name)


def predict(model: Model, features: Any) -> np.ndarray:
    """`model.predict_proba(features)` (the output of the model's label kind); a plugin's
    output is checked against the contract.

    Built-in models are held to the same contract by the test suite.
    """
    plugin = plugin_of(model.name)
    with plugins.blamed(plugin, "predicting"):
        probabilities = model.predict_proba(features)
    if plugin is None:
        return probabilities
    return plugins.check_output(plugin, probabilities, n_rows(features), model.target)


def n_rows(features: Any) -> int:
    """The number of rows of tabular or sequence features."""
    return features.rows.height


def take_rows(features: Any, indices: np.ndarray) -> Any:
    """The features of the given rows (in that order); works for tabular and sequence features."""
    indices = np.asarray(indices, dtype=np.int64)
    if hasattr(features, "subset"):
        return features.subset(indices)
    return dataclasses.replace(
        features, matrix=features.matrix[indices], rows=features.rows[indices]
    )


def _check_class_labels(y: np.ndarray, role: str, target: LabelTarget) -> np.ndarray:
    """`y` as int64 class indices; raise unless it holds at least two of the classes."""
    y = np.asarray(y).astype(np.int64)
    present = np.unique(y)
    if present.size < 2:
        names = [target.classes[i] for i in present]
        raise EhrbenchError(
            f"the {role} rows hold {y.size} row(s) of class(es) {names} only "
            f"(`{target.column}`): fitting and choosing a model needs at least two of the "
            f"classes {list(target.classes)} in the {role} rows."
        )
    return y


def _check_values(y: np.ndarray, role: str, target: LabelTarget) -> np.ndarray:
    """`y` as float64; raise when it is empty or holds a non-finite value."""
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0 or not np.all(np.isfinite(y)):
        raise EhrbenchError(
            f"the {role} rows hold {y.size} value(s) of `{target.column}`, "
            f"{int((~np.isfinite(y)).sum())} of them not finite: fitting a regression model "
            f"needs at least one finite value in the {role} rows."
        )
    return y


def check_binary_labels(y: np.ndarray, role: str) -> np.ndarray:
    """Return `y` as a bool array; raise if it is empty or holds one class only."""
    y = np.asarray(y).astype(bool)
    n_pos = int(y.sum())
    if y.size == 0 or n_pos in (0, y.size):
        raise EhrbenchError(
            f"the {role} rows hold {n_pos} positive and {y.size - n_pos} negative label(s) "
            "(`boolean_value`): fitting and choosing a model needs both classes in the "
            f"{role} rows."
        )
    return y
