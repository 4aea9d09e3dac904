"""Choosing hyperparameters by tuning-set AUROC, the protocol's model selection.

Every setting of the grid is fitted on the training rows (the tuning rows serve only for early
stopping) with the same seed, and scored by AUROC on the tuning rows. The best score wins; ties go
to the earlier setting, so the choice is deterministic.

Refit rule: the protocol refits the chosen setting on the training rows, with the tuning rows for
early stopping. Fitting is deterministic for a seed, so that refit is exactly the model already
fitted for the chosen setting during the search; it is kept rather than recomputed. With
`refit` settings (EHRSHOT's protocol: its refit drops the search estimator's arguments, so
logistic regression refits with scikit-learn's `max_iter=100`), the chosen setting is fitted
again on the training rows with those settings in place.

`held_out` rows never reach this module: it takes the train and tuning subsets only.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from ehrbench.models.base import Model, model_class, predict

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitResult:
    """The chosen, fitted model and the search that chose it."""

    model: Model
    params: dict[str, Any]
    tuning_auroc: float
    grid_scores: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        """A JSON-able record: model name, chosen hyperparameters, tuning AUROC, every score."""
        return {
            "model": self.model.name,
            "params": self.params,
            "tuning_auroc": _finite_or_none(self.tuning_auroc),
            "grid": [
                {**score, "tuning_auroc": _finite_or_none(score["tuning_auroc"])}
                for score in self.grid_scores
            ],
        }


def _finite_or_none(value: float) -> float | None:
    """JSON has no infinity: a setting that failed to score is written as null."""
    return value if math.isfinite(value) else None


def expand_grid(
    name: str, grid: list[dict[str, Any]] | None = None, overrides: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The settings to search: `grid` (default: the model's own) with `overrides` fixed in each.

    Settings that become identical after the overrides are searched once, in first-seen order.
    """
    model_cls = model_class(name)
    points = model_cls.param_grid() if grid is None else list(grid)
    settings: list[dict[str, Any]] = []
    for point in points or [{}]:
        setting = {**point, **(overrides or {})}
        model_cls(**setting)  # raises on an unknown hyperparameter name
        if setting not in settings:
            settings.append(setting)
    return settings


def tuning_auroc(y_tuning: np.ndarray, probabilities: np.ndarray) -> float:
    """AUROC on the tuning rows; a setting with non-finite predictions scores -inf."""
    if not np.all(np.isfinite(probabilities)):
        return -math.inf
    return float(roc_auc_score(y_tuning, probabilities))


def select_and_fit(
    name: str,
    train: Any,
    y_train: np.ndarray,
    tuning: Any,
    y_tuning: np.ndarray,
    seed: int,
    grid: list[dict[str, Any]] | None = None,
    overrides: dict[str, Any] | None = None,
    refit: dict[str, Any] | None = None,
) -> FitResult:
    """Search the grid by tuning AUROC and return the chosen fitted model (refitted with the
    `refit` settings in place, when given).

    Both the training and the tuning rows must hold both classes (AUROC is undefined otherwise);
    `Model.fit` raises an `EhrbenchError` saying which set lacks which class. Works down to one
    row per class. Each setting's score is logged at DEBUG level.
    """
    settings = expand_grid(name, grid, overrides)
    model_cls = model_class(name)
    best: Model | None = None
    best_score = -math.inf
    scores: list[dict[str, Any]] = []
    for number, setting in enumerate(settings, start=1):
        model = model_cls(**setting).fit(train, y_train, tuning, y_tuning, seed)
        score = tuning_auroc(y_tuning, predict(model, tuning))
        scores.append({"params": setting, "tuning_auroc": score})
        logger.debug("%s %d/%d %s: tuning AUROC %.4f", name, number, len(settings), setting, score)
        if best is None or score > best_score:
            best, best_score = model, score
    if refit:
        best = model_cls(**{**best.params, **refit}).fit(train, y_train, tuning, y_tuning, seed)
    return FitResult(
        model=best, params=dict(best.params), tuning_auroc=best_score, grid_scores=scores
    )
