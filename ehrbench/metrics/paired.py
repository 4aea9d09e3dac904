"""Paired comparisons of two models scored on the same held-out rows.

For a regression or multiclass label the same is done with the kind's primary metric (RMSE, macro
one-vs-rest AUROC: `paired_primary`); for RMSE a negative difference means A is better.

The AUROC difference (A - B) is computed on every resample of one shared `Resamples`, so the
subject-level noise common to both models cancels; the interval is the percentile interval of
that per-resample difference. The p-value-like number is the two-sided bootstrap fraction
2 * min(share of differences <= 0, share >= 0), capped at 1: small when the interval is far from
zero. Win rate across tasks is the share of tasks where A's AUROC is strictly above B's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import ArrayLike

from ehrbench.errors import EhrbenchError
from ehrbench.meds.label_kinds import BINARY, LabelTarget
from ehrbench.metrics.bootstrap import (
    CI_LEVEL,
    Resamples,
    auroc_distribution,
    percentile_interval,
)
from ehrbench.metrics.scores import as_arrays, auroc
from ehrbench.metrics.tables import primary_distribution

_KEY = ("subject_id", "prediction_time")
_PROB = "predicted_boolean_probability"


@dataclass(frozen=True)
class PairedDifference:
    """metric(A) - metric(B) (AUROC for binary labels): point value, percentile interval,
    p-value-like fraction."""

    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_boot: int
    distribution: np.ndarray


def auroc_difference(
    y_true: ArrayLike,
    prob_a: ArrayLike,
    prob_b: ArrayLike,
    subject_id: ArrayLike,
    resamples: Resamples,
    level: float = CI_LEVEL,
) -> PairedDifference:
    """Bootstrap distribution of AUROC(A) - AUROC(B) on the same rows and the same resamples."""
    y, a = as_arrays(y_true, prob_a)
    _, b = as_arrays(y, prob_b)
    diff = auroc_distribution(y, a, subject_id, resamples) - auroc_distribution(
        y, b, subject_id, resamples
    )
    return difference_summary(auroc(y, a) - auroc(y, b), diff, level)


def difference_summary(point: float, diff: np.ndarray, level: float = CI_LEVEL) -> PairedDifference:
    """A metric difference's point value, percentile interval and bootstrap p-value from its
    per-resample distribution `diff` (see the module docstring)."""
    if math.isnan(point):
        return PairedDifference(math.nan, math.nan, math.nan, math.nan, 0, diff)
    low, high, n_valid = percentile_interval(diff, level)
    valid = diff[~np.isnan(diff)]
    share = min(float(np.mean(valid <= 0)), float(np.mean(valid >= 0))) if valid.size else math.nan
    return PairedDifference(point, low, high, min(1.0, 2.0 * share), n_valid, diff)


def align_predictions(pred_a: pl.DataFrame, pred_b: pl.DataFrame) -> pl.DataFrame:
    """Join two prediction frames on (subject_id, prediction_time) into one frame.

    Returns columns subject_id, prediction_time, boolean_value, prob_a, prob_b. Both frames must
    hold exactly the same label rows (the same held-out set), with the same labels.
    """
    cols = [*_KEY, "boolean_value", _PROB]
    for name, frame in (("A", pred_a), ("B", pred_b)):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise EhrbenchError(
                f"paired comparison: predictions of model {name} lack column(s) {missing}; "
                f"expected the meds-evaluation columns {cols}."
            )
    joined = (
        pred_a.select(cols)
        .rename({_PROB: "prob_a"})
        .join(
            pred_b.select(cols).rename({_PROB: "prob_b", "boolean_value": "label_b"}),
            on=list(_KEY),
            how="full",
            coalesce=True,
        )
        .sort(list(_KEY))
    )
    unmatched = joined.filter(pl.col("prob_a").is_null() | pl.col("prob_b").is_null()).height
    if unmatched or joined.height != pred_a.height or joined.height != pred_b.height:
        raise EhrbenchError(
            f"paired comparison: the two prediction frames do not hold the same rows "
            f"({pred_a.height} and {pred_b.height} rows, {unmatched} unmatched on "
            "(subject_id, prediction_time)); compare models scored on the same held-out set."
        )
    if (joined["boolean_value"] != joined["label_b"]).any():
        raise EhrbenchError(
            "paired comparison: the two prediction frames disagree on `boolean_value` for the "
            "same (subject_id, prediction_time); they come from different label tables."
        )
    return joined.drop("label_b")


def paired_primary(
    pred_a: pl.DataFrame,
    pred_b: pl.DataFrame,
    resamples: Resamples,
    target: LabelTarget,
    level: float = CI_LEVEL,
) -> PairedDifference:
    """The difference (A - B) of the primary metric of `target`'s kind on the same rows and
    resamples: AUROC (binary, `paired_auroc`), RMSE (regression) or macro one-vs-rest AUROC
    (multiclass). Both frames must hold the same label rows with the same labels."""
    if target.kind == BINARY:
        return paired_auroc(pred_a, pred_b, resamples, level)
    key = list(_KEY)
    a, b = pred_a.sort(key), pred_b.sort(key)
    same_rows = a.height == b.height and a.select(key).equals(b.select(key))
    if not same_rows:
        raise EhrbenchError(
            f"paired comparison: the two prediction frames do not hold the same rows "
            f"({a.height} and {b.height} rows); compare models scored on the same held-out set."
        )
    if not a[target.column].equals(b[target.column]):
        raise EhrbenchError(
            f"paired comparison: the two prediction frames disagree on `{target.column}` for "
            "the same (subject_id, prediction_time); they come from different label tables."
        )
    point_a, dist_a = primary_distribution(a, resamples, target)
    point_b, dist_b = primary_distribution(b, resamples, target)
    return difference_summary(point_a - point_b, dist_a - dist_b, level)


def paired_auroc(
    pred_a: pl.DataFrame, pred_b: pl.DataFrame, resamples: Resamples, level: float = CI_LEVEL
) -> PairedDifference:
    """`auroc_difference` on two meds-evaluation prediction frames, aligned by label row."""
    rows = align_predictions(pred_a, pred_b)
    return auroc_difference(
        rows["boolean_value"].to_numpy(),
        rows["prob_a"].to_numpy(),
        rows["prob_b"].to_numpy(),
        rows["subject_id"].to_numpy(),
        resamples,
        level,
    )


def win_rate(auroc_a: ArrayLike, auroc_b: ArrayLike) -> float:
    """Share of tasks where A's AUROC > B's, over tasks where both are defined (NaN if none)."""
    a = np.asarray(auroc_a, dtype=np.float64)
    b = np.asarray(auroc_b, dtype=np.float64)
    if a.shape != b.shape:
        raise EhrbenchError(f"win rate: got {a.size} AUROCs for model A and {b.size} for B.")
    both = ~(np.isnan(a) | np.isnan(b))
    return float(np.mean(a[both] > b[both])) if both.any() else math.nan
