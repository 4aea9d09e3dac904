"""The one interface every model implements, the registry of models by name, and row helpers.

A model is fitted on training rows, may use the tuning rows for early stopping, and predicts a
probability of the positive class for any rows. It never sees `held_out` rows: callers pass only
the train and tuning subsets (see `ehrbench.models.grid.select_and_fit`).

Features are duck-typed so this package does not depend on how they are built: tabular models
read `features.matrix` (a scipy CSR matrix, one row per label), sequence models read the arrays
of a `SequenceFeatures` (`codes`, `values`, `value_mask`, `hours_before`, `lengths`, `static`,
`age_years`). Both kinds carry `rows` (subject_id, prediction_time) in label order.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from ehrbench.errors import EhrbenchError
from ehrbench.io import write_text_atomic

MODEL_FILE = "model.json"


class Model(ABC):
    """A binary classifier with a hyperparameter grid, fitted once and then read-only.

    Subclasses set `name`, `kind` ("tabular" or "sequence") and `defaults` (every hyperparameter
    with its default value), and implement `param_grid`, `fit`, `predict_proba`, `_save_state`
    and `_load_state`.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    defaults: ClassVar[dict[str, Any]]

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise EhrbenchError(
                f"model `{self.name}` has no hyperparameter(s) {unknown}; "
                f"its hyperparameters are {sorted(self.defaults)}."
            )
        self.params: dict[str, Any] = {**self.defaults, **params}
        self.fitted = False

    @classmethod
    @abstractmethod
    def param_grid(cls) -> list[dict[str, Any]]:
        """The hyperparameter settings searched by tuning-set AUROC, in a fixed order."""

    @abstractmethod
    def fit(
        self, train: Any, y_train: np.ndarray, tuning: Any, y_tuning: np.ndarray, seed: int
    ) -> Self:
        """Fit on the training rows, using the tuning rows only for early stopping."""

    @abstractmethod
    def predict_proba(self, features: Any) -> np.ndarray:
        """The probability of the positive class for each row, as float64 of shape [n]."""

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
        record = json.loads(path.read_text(encoding="utf-8"))
        _load_builtin_models()
        model_cls = MODELS.get(record.get("name"))
        if model_cls is None or not issubclass(model_cls, cls):
            raise EhrbenchError(
                f"{path} names model `{record.get('name')}`, which is not one of {sorted(MODELS)}."
            )
        model = model_cls(**record["params"])
        model._load_state(directory, record["state"])
        model.fitted = True
        return model


# Filled as the model modules are imported; use `model_names()` / `model_class()` to read it.
MODELS: dict[str, type[Model]] = {}


def register(model_cls: type[Model]) -> type[Model]:
    """Class decorator adding a model to `MODELS` under its `name`."""
    MODELS[model_cls.name] = model_cls
    return model_cls


def get_model(name: str, **params: Any) -> Model:
    """A new, unfitted model by registry name with the given hyperparameters."""
    _load_builtin_models()
    if name not in MODELS:
        raise EhrbenchError(f"unknown model `{name}`: choose one of {sorted(MODELS)}.")
    return MODELS[name](**params)


def model_names() -> list[str]:
    """Every registered model name, sorted."""
    _load_builtin_models()
    return sorted(MODELS)


def model_class(name: str) -> type[Model]:
    """The registered class for a model name."""
    _load_builtin_models()
    if name not in MODELS:
        raise EhrbenchError(f"unknown model `{name}`: choose one of {sorted(MODELS)}.")
    return MODELS[name]


def _load_builtin_models() -> None:
    """Import the modules that register the built-in models (kept lazy: torch is heavy)."""
    from ehrbench.models import sequence, tabular  # noqa: F401


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
