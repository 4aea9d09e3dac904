"""One metrics table per prediction frame, whatever its label kind.

`score_table` reads a meds-evaluation prediction frame of any label kind
(`ehrbench.meds.label_kinds`) and returns its metric rows with subject-bootstrap intervals:
AUROC, AUPRC, Brier, ECE and prevalence (binary, `ehrbench.metrics.bootstrap`), MAE, RMSE and R²
(regression, `ehrbench.metrics.regression`), or macro one-vs-rest AUROC, accuracy, macro F1 and,
for ordered classes, the per-threshold AUROCs (multiclass, `ehrbench.metrics.multiclass`); every
table ends with n_rows and n_subjects. `PRIMARY_METRICS` names each kind's headline metric (the
one paired comparisons and leaderboards use) and whether higher is better.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ehrbench.errors import EhrbenchError
from ehrbench.meds.label_kinds import (
    BINARY,
    MULTICLASS,
    PREDICTED_COLUMNS,
    REGRESSION,
    LabelTarget,
    probability_columns,
)
from ehrbench.metrics.bootstrap import CI_LEVEL, Resamples, blockwise, bootstrap_metrics
from ehrbench.metrics.multiclass import (
    macro_ovr_auroc,
    multiclass_distribution,
    multiclass_metrics,
)
from ehrbench.metrics.regression import regression_metrics, rmse, weighted_regression_metrics
from ehrbench.metrics.scores import N_BINS

# Each kind's headline metric and whether a higher value is better.
PRIMARY_METRICS: dict[str, tuple[str, bool]] = {
    BINARY: ("auroc", True),
    REGRESSION: ("rmse", False),
    MULTICLASS: ("macro_ovr_auroc", True),
}


def required_columns(target: LabelTarget) -> list[str]:
    """The columns the metrics of `target`'s kind read from a prediction frame."""
    key = ["subject_id", "prediction_time", target.column]
    if target.kind == BINARY:
        return [*key, "predicted_boolean_probability"]
    if target.kind == REGRESSION:
        return [*key, PREDICTED_COLUMNS[REGRESSION]]
    return [*key, *probability_columns(target.classes)]


def class_indices(predictions: pl.DataFrame, target: LabelTarget, source: str) -> np.ndarray:
    """The label of each row of a multiclass frame as its index in `target.classes`."""
    index = {name: position for position, name in enumerate(target.classes)}
    values = predictions[target.column].to_list()
    unknown = sorted({v for v in values if v not in index})
    if unknown:
        raise EhrbenchError(
            f"{source}: `{target.column}` holds class(es) {unknown} with no probability column "
            f"(classes: {list(target.classes)})."
        )
    return np.array([index[v] for v in values], dtype=np.int64)


def score_table(
    predictions: pl.DataFrame,
    resamples: Resamples,
    target: LabelTarget,
    n_bins: int = N_BINS,
    level: float = CI_LEVEL,
) -> pl.DataFrame:
    """The metric rows (`METRIC_ROW_SCHEMA`) of a prediction frame of `target`'s kind.

    Binary probabilities are scored as stored (float32); the caller has cast them.
    """
    subjects = predictions["subject_id"].to_numpy()
    if target.kind == BINARY:
        return bootstrap_metrics(
            predictions["boolean_value"].to_numpy(),
            predictions["predicted_boolean_probability"].to_numpy(),
            subjects,
            resamples,
            n_bins,
            level,
        )
    if target.kind == REGRESSION:
        return regression_metrics(
            predictions[target.column].cast(pl.Float64).to_numpy(),
            predictions[PREDICTED_COLUMNS[REGRESSION]].cast(pl.Float64).to_numpy(),
            subjects,
            resamples,
            level,
        )
    probabilities = (
        predictions.select(probability_columns(target.classes)).cast(pl.Float64).to_numpy()
    )
    return multiclass_metrics(
        class_indices(predictions, target, "predictions"),
        probabilities,
        subjects,
        resamples,
        target.classes,
        target.ordered,
        level,
    )


def primary_distribution(
    predictions: pl.DataFrame, resamples: Resamples, target: LabelTarget
) -> tuple[float, np.ndarray]:
    """(point value, value on every resample) of the primary metric of a regression (RMSE) or
    multiclass (macro one-vs-rest AUROC) prediction frame; binary frames use
    `ehrbench.metrics.paired.paired_auroc`."""
    subjects = predictions["subject_id"].to_numpy()
    if target.kind == REGRESSION:
        y = predictions[target.column].cast(pl.Float64).to_numpy()
        p = predictions[PREDICTED_COLUMNS[REGRESSION]].cast(pl.Float64).to_numpy()
        dist = blockwise(lambda w: weighted_regression_metrics(y, p, w), subjects, resamples)
        return rmse(y, p), dist["rmse"]
    if target.kind != MULTICLASS:
        raise EhrbenchError(f"primary_distribution: not for {target.kind} predictions.")
    y = class_indices(predictions, target, "predictions")
    p = predictions.select(probability_columns(target.classes)).cast(pl.Float64).to_numpy()
    dist = multiclass_distribution(y, p, subjects, resamples, False)
    return macro_ovr_auroc(y, p), dist["macro_ovr_auroc"]
