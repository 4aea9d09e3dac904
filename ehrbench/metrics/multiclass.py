"""Multiclass metrics: macro one-vs-rest AUROC, accuracy, macro F1 and, for ordered classes, the
per-threshold binary AUROCs; point values and subject-bootstrap intervals.

Labels are class indices into the target's classes; scores are one probability per class. The
predicted class is the most probable one (ties: the first listed). Point values are
scikit-learn's: `roc_auc_score(multi_class="ovr", average="macro")` (the mean of each class's
one-vs-rest AUROC; here over the classes that have both members and non-members, so it stays
defined when a class is absent), `accuracy_score`, `f1_score(average="macro")` (over the classes
that occur as label or prediction). For ordered classes (most severe first), threshold j scores
"one of the first j classes" against the rest with the summed probability of those classes:
`auroc_at_least//<class j>`, for j = 1 .. classes - 1. Bootstrap resamples compute the same
quantities on the resample's row weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl
from numpy.typing import ArrayLike
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from ehrbench.errors import EhrbenchError
from ehrbench.metrics.bootstrap import (
    CI_LEVEL,
    Resamples,
    auroc_distribution,
    metric_rows,
    weighted_auroc,
)

MULTICLASS_METRICS = ("macro_ovr_auroc", "accuracy", "macro_f1", "n_rows", "n_subjects")
THRESHOLD_PREFIX = "auroc_at_least//"


def _classes(y_true: ArrayLike, probabilities: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(class indices as int64, probabilities as float64 [n, classes]), checked."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or y.ndim != 1 or p.shape[0] != y.size:
        raise EhrbenchError(
            "predictions: a multiclass frame needs one class per row and one probability "
            f"column per class, got shapes {y.shape} and {p.shape}."
        )
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise EhrbenchError(f"predictions: class indices must lie in 0..{p.shape[1] - 1}.")
    return y, p


def threshold_names(classes: Sequence[str]) -> list[str]:
    """The per-threshold AUROC names of ordered `classes`, most severe first.

    >>> threshold_names(["severe", "mild", "normal"])
    ['auroc_at_least//severe', 'auroc_at_least//mild']
    """
    return [f"{THRESHOLD_PREFIX}{name}" for name in classes[:-1]]


def macro_ovr_auroc(y_true: ArrayLike, probabilities: ArrayLike) -> float:
    """The mean one-vs-rest AUROC over the classes with members and non-members (NaN if none).

    >>> macro_ovr_auroc([0, 1, 2], [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    1.0
    """
    y, p = _classes(y_true, probabilities)
    present = [c for c in range(p.shape[1]) if 0 < np.sum(y == c) < y.size]
    if not present:
        return math.nan
    if len(present) == p.shape[1] > 2:
        return float(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    return float(np.mean([roc_auc_score(y == c, p[:, c]) for c in present]))


def threshold_aurocs(y_true: ArrayLike, probabilities: ArrayLike) -> list[float]:
    """AUROC of "one of the first j classes" vs the rest, j = 1 .. classes - 1 (NaN if one side
    is empty)."""
    y, p = _classes(y_true, probabilities)
    cumulative = np.cumsum(p, axis=1)
    values = []
    for j in range(1, p.shape[1]):
        inside = y < j
        both = 0 < inside.sum() < y.size
        values.append(float(roc_auc_score(inside, cumulative[:, j - 1])) if both else math.nan)
    return values


def weighted_multiclass_metrics(
    y: np.ndarray, p: np.ndarray, weights: np.ndarray, ordered: bool
) -> dict[str, np.ndarray]:
    """Every bootstrapped metric for each row of `weights` [n_weightings, n_rows] (NaN where
    undefined); `ordered` adds `threshold_<j>` for j = 1 .. classes - 1. The definition on any
    weights; resamples are scored by `multiclass_distribution`, which equals it on their row
    weights."""
    per_class = [weighted_auroc(y == c, p[:, c], weights) for c in range(p.shape[1])]
    thresholds = [
        weighted_auroc(inside, score, weights) for inside, score in _thresholds(y, p, ordered)
    ]
    return _combined(per_class, weights @ _count_columns(y, p), thresholds)


def multiclass_distribution(
    y: np.ndarray, p: np.ndarray, subject_id: ArrayLike, resamples: Resamples, ordered: bool
) -> dict[str, np.ndarray]:
    """`weighted_multiclass_metrics` of every resample's row weights, value for value (every sum
    is of whole numbers, so exact in any order), from the resamples' subject counts: each AUROC
    sorts its rows once for all resamples (`auroc_distribution`) instead of once per block of a
    [resamples, rows] weight matrix."""
    per_class = [
        auroc_distribution(y == c, p[:, c], subject_id, resamples) for c in range(p.shape[1])
    ]
    thresholds = [
        auroc_distribution(inside, score, subject_id, resamples)
        for inside, score in _thresholds(y, p, ordered)
    ]
    return _combined(
        per_class, resamples.weighted_sums(subject_id, _count_columns(y, p)), thresholds
    )


def _thresholds(y: np.ndarray, p: np.ndarray, ordered: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """(inside threshold j, its score) for j = 1 .. classes - 1 when `ordered`, else none: "one
    of the first j classes" scored by their summed probability."""
    if not ordered:
        return []
    cumulative = np.cumsum(p, axis=1)
    return [(y < j, cumulative[:, j - 1]) for j in range(1, p.shape[1])]


def _count_columns(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """[n_rows, 2 + 2 x classes] indicators whose weighted sums the metrics need: every row, the
    correctly predicted rows, then per class its true positives, then per class its rows where
    label and prediction disagree on that class."""
    predicted = np.argmax(p, axis=1)
    classes = np.arange(p.shape[1])
    is_class, predicted_class = y[:, None] == classes, predicted[:, None] == classes
    return np.column_stack(
        [np.ones(y.size), predicted == y, is_class & predicted_class, is_class != predicted_class]
    ).astype(np.float64)


def _combined(
    per_class: list[np.ndarray], sums: np.ndarray, thresholds: list[np.ndarray]
) -> dict[str, np.ndarray]:
    """The metrics from each class's one-vs-rest AUROC, the weighted sums of `_count_columns`
    [n_weightings, 2 + 2 x classes] and the threshold AUROCs, per weighting."""
    n_classes = len(per_class)
    aurocs = np.stack(per_class)
    counts = (~np.isnan(aurocs)).sum(axis=0)
    macro = np.where(counts > 0, np.nansum(aurocs, axis=0) / np.maximum(counts, 1), math.nan)
    total, correct = sums[:, 0], sums[:, 1]
    # Class-major and contiguous, as the per-class arrays are stacked: the sum over classes then
    # adds them one after another (numpy sums a contiguous axis pairwise, in another order).
    tp = np.ascontiguousarray(sums[:, 2 : 2 + n_classes].T)
    wrong = np.ascontiguousarray(sums[:, 2 + n_classes :].T)
    denominator = 2 * tp + wrong
    f1 = np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), np.nan)
    occurring = (~np.isnan(f1)).sum(axis=0)
    out = {
        "macro_ovr_auroc": macro,
        "accuracy": np.where(total > 0, correct / np.where(total > 0, total, 1.0), math.nan),
        "macro_f1": np.where(
            occurring > 0, np.nansum(f1, axis=0) / np.maximum(occurring, 1), np.nan
        ),
    }
    for j, threshold in enumerate(thresholds, start=1):
        out[f"threshold_{j}"] = threshold
    return out


def multiclass_metrics(
    y_true: ArrayLike,
    probabilities: ArrayLike,
    subject_id: ArrayLike,
    resamples: Resamples,
    classes: Sequence[str],
    ordered: bool,
    level: float = CI_LEVEL,
) -> pl.DataFrame:
    """One row per metric of `MULTICLASS_METRICS` (then, for `ordered` classes, each threshold
    AUROC) with its subject-bootstrap interval.

    >>> from ehrbench.metrics.bootstrap import draw_resamples
    >>> table = multiclass_metrics([0, 1, 2], [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]],
    ...                            [1, 2, 3], draw_resamples([1, 2, 3], 10), ["a", "b", "c"], True)
    >>> table["metric"].to_list()[:3], table["value"].to_list()[:3]
    (['macro_ovr_auroc', 'accuracy', 'macro_f1'], [1.0, 1.0, 1.0])
    >>> table["metric"].to_list()[5:]
    ['auroc_at_least//a', 'auroc_at_least//b']
    """
    y, p = _classes(y_true, probabilities)
    subjects = np.asarray(subject_id)
    predicted = np.argmax(p, axis=1)
    point = {
        "macro_ovr_auroc": macro_ovr_auroc(y, p),
        "accuracy": float(accuracy_score(y, predicted)) if y.size else math.nan,
        "macro_f1": float(f1_score(y, predicted, average="macro")) if y.size else math.nan,
        "n_rows": float(y.size),
        "n_subjects": float(np.unique(subjects).size),
    }
    dist = multiclass_distribution(y, p, subjects, resamples, ordered)
    names = list(MULTICLASS_METRICS)
    if ordered:
        for j, (name, value) in enumerate(
            zip(threshold_names(classes), threshold_aurocs(y, p), strict=True), start=1
        ):
            point[name] = value
            dist[name] = dist.pop(f"threshold_{j}")
            names.append(name)
    return metric_rows(names, point, dist, level)
