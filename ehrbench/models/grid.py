"""Choosing hyperparameters by a tuning-set score, the protocol's model selection.

Every setting of the grid is fitted on the training rows (the tuning rows serve only for early
stopping) with the same seed, and scored on the tuning rows by its label kind's score
(`TUNING_SCORES`): AUROC (binary), macro one-vs-rest AUROC (multiclass), negative RMSE
(regression). The best score wins; ties go to the earlier setting, so the choice is deterministic.

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

from ehrbench.meds.label_kinds import BINARY, BINARY_TARGET, MULTICLASS, REGRESSION, LabelTarget
from ehrbench.metrics.multiclass import macro_ovr_auroc
from ehrbench.metrics.regression import rmse
from ehrbench.metrics.scores import roc_area
from ehrbench.models.base import Model, check_label_kind, model_class, predict

logger = logging.getLogger(__name__)


# The name of each label kind's tuning score; records name a score `tuning_<name>`.
TUNING_SCORES = {BINARY: "auroc", MULTICLASS: "macro_ovr_auroc", REGRESSION: "neg_rmse"}


@dataclass(frozen=True)
class FitResult:
    """The chosen, fitted model and the search that chose it (`score_name`: the tuning score,
    see `TUNING_SCORES`; each entry of `grid_scores` holds its score under `score_key`)."""

    model: Model
    params: dict[str, Any]
    tuning_score: float
    grid_scores: list[dict[str, Any]]
    score_name: str = TUNING_SCORES[BINARY]

    @property
    def score_key(self) -> str:
        """The record key of the tuning score: `tuning_auroc` for a binary label."""
        return f"tuning_{self.score_name}"

    def summary(self) -> dict[str, Any]:
        """A JSON-able record: model name, chosen hyperparameters, tuning score, every score."""
        key = self.score_key
        return {
            "model": self.model.name,
            "params": self.params,
            key: _finite_or_none(self.tuning_score),
            "grid": [{**score, key: _finite_or_none(score[key])} for score in self.grid_scores],
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
    return roc_area(y_tuning, probabilities)


def tuning_score(target: LabelTarget, y_tuning: np.ndarray, output: np.ndarray) -> float:
    """The tuning score of `target`'s kind (higher is better; see `TUNING_SCORES`); a setting
    with non-finite output scores -inf.

    >>> from ehrbench.meds.label_kinds import LabelTarget
    >>> target = LabelTarget("regression", "float_value")
    >>> tuning_score(target, np.array([1.0, 3.0]), np.array([2.0, 2.0]))
    -1.0
    """
    if target.kind == BINARY:
        return tuning_auroc(y_tuning, output)
    if not np.all(np.isfinite(output)):
        return -math.inf
    if target.kind == REGRESSION:
        return -rmse(y_tuning, output)
    score = macro_ovr_auroc(y_tuning, output)
    return score if math.isfinite(score) else -math.inf


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
    target: LabelTarget = BINARY_TARGET,
) -> FitResult:
    """Search the grid by the tuning score of `target`'s kind and return the chosen fitted
    model (refitted with the `refit` settings in place, when given).

    For a binary label both the training and the tuning rows must hold both classes (AUROC is
    undefined otherwise), for a multiclass one at least two classes; `Model.fit` raises an
    `EhrbenchError` saying which set lacks which class. Works down to one row per class. Each
    setting's score is logged at DEBUG level.
    """
    model_cls = model_class(name)
    check_label_kind(model_cls, target)  # before any setting is fitted
    settings = expand_grid(name, grid, overrides)
    score_name = TUNING_SCORES[target.kind]
    best: Model | None = None
    best_score = -math.inf
    scores: list[dict[str, Any]] = []
    fitted = model_cls.fit_each(settings, train, y_train, tuning, y_tuning, seed, target)
    for number, (setting, model) in enumerate(zip(settings, fitted, strict=True), start=1):
        score = tuning_score(target, y_tuning, predict(model, tuning))
        scores.append({"params": setting, f"tuning_{score_name}": score})
        logger.debug(
            "%s %d/%d %s: tuning %s %.4f", name, number, len(settings), setting, score_name, score
        )
        if best is None or score > best_score:
            best, best_score = model, score
    if refit:
        best = model_cls(**{**best.params, **refit}).fit(
            train, y_train, tuning, y_tuning, seed, target
        )
    return FitResult(best, dict(best.params), best_score, scores, score_name)
