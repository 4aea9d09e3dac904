"""One way to fit and predict: labels + features + row sets -> chosen model, held_out predictions.

`ehrbench train` (all train and tuning rows) and every run of `ehrbench run` (the k-shot rows)
go through `fit_and_predict`. Only the train and tuning rows reach `select_and_fit`, so held_out
rows and labels cannot influence the model or its hyperparameters; held_out rows are used once,
to predict.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from threadpoolctl import ThreadpoolController

from ehrbench.io import write_text_atomic
from ehrbench.meds.label_kinds import BINARY, LabelTarget, label_target, target_values
from ehrbench.metrics.scores import roc_area
from ehrbench.models.base import predict, take_rows
from ehrbench.models.cost import PeakMemory, RunCost
from ehrbench.models.grid import FitResult, select_and_fit, tuning_score
from ehrbench.models.predictions import make_predictions, write_predictions


def safe_auroc(y: np.ndarray, probabilities: np.ndarray) -> float | None:
    """AUROC, or None when `y` holds one class only."""
    return roc_area(y, probabilities) if 0 < y.sum() < y.size else None


@cache
def _blas_threads() -> ThreadpoolController:
    """The BLAS libraries loaded (numpy's and scipy's), found once: a scan takes milliseconds."""
    return ThreadpoolController()


def held_out_score(target: LabelTarget, y: np.ndarray, output: np.ndarray) -> float | None:
    """The held_out rows' score of the tuning kind (`TUNING_SCORES`), or None where undefined."""
    if target.kind == BINARY:
        return safe_auroc(y, output)
    score = tuning_score(target, y, output) if y.size else -math.inf
    return score if math.isfinite(score) else None


@dataclass(frozen=True)
class RunResult:
    """What fitting and predicting produced, and what it cost (`held_out_score`: the score named
    `fit.score_name` on the held_out rows)."""

    fit: FitResult
    predictions: pl.DataFrame
    held_out_score: float | None
    cost: RunCost


def fit_and_predict(
    name: str,
    features: Any,
    labels: pl.DataFrame,
    *,
    train: np.ndarray,
    tuning: np.ndarray,
    held_out: np.ndarray,
    seed: int,
    grid: list[dict[str, Any]] | None = None,
    overrides: dict[str, Any] | None = None,
    refit: dict[str, Any] | None = None,
    class_order: list[str] | None = None,
) -> RunResult:
    """Choose and fit model `name` on the `train`/`tuning` rows, then predict the `held_out` rows.

    `features` and `labels` hold every row (label order); `train`, `tuning` and `held_out` are
    row indices into them. The label kind comes from the value column `labels` fills
    (`label_target`; `class_order` orders a multiclass label's classes, most severe first). The
    grid (default: the model's own, with `overrides` fixed in each setting) is searched by the
    kind's tuning score; `refit` settings, when given, replace the chosen setting's in a final
    fit on the train rows. The predictions are in meds-evaluation form. The cost times the whole
    search (and any refit) as fitting and the held_out prediction as predicting.

    >>> from datetime import datetime
    >>> import numpy as np, polars as pl, scipy.sparse as sp
    >>> from ehrbench.features.tabular import TabularFeatures
    >>> labels = pl.DataFrame({
    ...     "subject_id": range(12),
    ...     "prediction_time": [datetime(2020, 1, 1)] * 12,
    ...     "boolean_value": [True, False] * 6,
    ... })
    >>> matrix = sp.csr_matrix(np.tile([[1.0, 0.0], [0.0, 1.0]], (6, 1)).astype(np.float32))
    >>> features = TabularFeatures(matrix, labels.drop("boolean_value"), ["a", "b"])
    >>> rows = np.arange(12)
    >>> result = fit_and_predict(
    ...     "logreg", features, labels, train=rows[:4], tuning=rows[4:8], held_out=rows[8:],
    ...     seed=0, grid=[{"C": 0.1}, {"C": 10.0}],
    ... )
    >>> result.fit.params, result.held_out_score
    ({'C': 0.1, 'max_iter': 1000}, 1.0)
    >>> result.predictions["predicted_boolean_value"].to_list()
    [True, False, True, False]
    """
    target = label_target(labels, "given", class_order)
    y = target_values(labels, target)
    # One BLAS thread: the many small fits of a k-shot grid (lbfgs on a few rows) spend more in
    # waking and joining BLAS threads than in computing, by a factor of about 5 on 2 cores.
    with PeakMemory() as memory, _blas_threads().limit(limits=1, user_api="blas"):
        started = time.perf_counter()
        fit = select_and_fit(
            name,
            take_rows(features, train),
            y[train],
            take_rows(features, tuning),
            y[tuning],
            seed,
            grid=grid,
            overrides=overrides,
            refit=refit,
            target=target,
        )
        fitted = time.perf_counter()
        probabilities = predict(fit.model, take_rows(features, held_out))
        predicted = time.perf_counter()
    cost = RunCost(fitted - started, predicted - fitted, memory.peak_mb, fit.model.n_parameters())
    predictions = make_predictions(labels[held_out], probabilities, target)
    return RunResult(fit, predictions, held_out_score(target, y[held_out], probabilities), cost)


def write_run(result: RunResult, out: Path, seed: int) -> None:
    """Write the fitted model, hyperparameters.json (with the run's cost) and (last)
    predictions.parquet."""
    result.fit.model.save(out / "model")
    record = {
        **result.fit.summary(),
        "seed": seed,
        f"held_out_{result.fit.score_name}": result.held_out_score,
        "cost": result.cost.as_dict(),
        "refit": "chosen setting fitted on train, tuning for early stopping (same seed)",
    }
    write_text_atomic(
        json.dumps(record, indent=2, sort_keys=True) + "\n", out / "hyperparameters.json"
    )
    write_predictions(result.predictions, out / "predictions.parquet")
