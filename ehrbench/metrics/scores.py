"""Point estimates of the benchmark metrics on one set of predictions.

Definitions (all on `y_true` bool and `y_prob` float in [0, 1]):

- AUROC: area under the ROC curve as `sklearn.metrics.roc_auc_score` (tied scores count 1/2).
- AUPRC: average precision as `sklearn.metrics.average_precision_score` (thresholds at the
  distinct scores, no interpolation).
- Brier: mean of (y_prob - y_true)^2.
- ECE: expected calibration error with `n_bins` equal-width bins over [0, 1] (bin b holds
  probabilities in [b/n_bins, (b+1)/n_bins), the last bin also holds 1.0):
  sum over bins of |bin| / n * |mean probability in bin - fraction positive in bin|.
- prevalence: fraction of positive rows; n_rows; n_subjects (distinct subject ids).

AUROC and AUPRC are NaN when `y_true` holds a single class (AUROC is undefined, and AUPRC is
degenerate: 0 with no positive, 1 with no negative); every metric is NaN on zero rows.
"""

from __future__ import annotations

import math

import numpy as np
import sklearn
from numpy.typing import ArrayLike
from sklearn.metrics import auc, average_precision_score, roc_curve

from ehrbench.errors import EhrbenchError

N_BINS = 10
# The order of metrics in every table ehrbench writes.
METRICS = ("auroc", "auprc", "brier", "ece", "prevalence", "n_rows", "n_subjects")


def as_arrays(y_true: ArrayLike, y_prob: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return (`y_true` as bool, `y_prob` as float64), checking shape and range."""
    y = np.asarray(y_true)
    p = np.asarray(y_prob, dtype=np.float64)
    if y.ndim != 1 or p.ndim != 1 or y.shape != p.shape:
        raise EhrbenchError(
            f"predictions: `boolean_value` and `predicted_boolean_probability` must be 1-d and of "
            f"equal length, got shapes {y.shape} and {p.shape}."
        )
    if y.dtype != np.bool_:
        if not np.isin(y, (0, 1)).all():
            raise EhrbenchError(
                "predictions: `boolean_value` must hold booleans (or 0/1), "
                f"found values {np.unique(y)[:5].tolist()}."
            )
        y = y.astype(bool)
    if not np.all((p >= 0.0) & (p <= 1.0)):
        bad = p[~((p >= 0.0) & (p <= 1.0))][:3].tolist()
        raise EhrbenchError(
            "predictions: `predicted_boolean_probability` must be a probability in [0, 1] "
            f"(no NaN), found {bad}."
        )
    return y, p


def bin_index(y_prob: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Equal-width bin of each probability: floor(p * n_bins), with 1.0 in the last bin."""
    return np.minimum((y_prob * n_bins).astype(np.int64), n_bins - 1)


def _both_classes(y: np.ndarray) -> bool:
    return bool(y.any() and not y.all())


def auroc(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y, p = as_arrays(y_true, y_prob)
    return roc_area(y, p) if _both_classes(y) else math.nan


def roc_area(y: np.ndarray, score: np.ndarray) -> float:
    """`sklearn.metrics.roc_auc_score` of binary `y` holding both classes, to the bit.

    It is the area under scikit-learn's ROC curve, as `roc_auc_score` computes it; going
    there directly skips that function's label checks, which cost more than the area itself
    on the few rows of a k-shot tuning set (and a grid run scores a dozen sets). For the same
    reason scikit-learn's argument validation is skipped: the arguments are numpy arrays.

    >>> roc_area(np.array([False, True, True]), np.array([0.2, 0.1, 0.9]))
    0.5
    """
    with sklearn.config_context(skip_parameter_validation=True):
        false_positive_rate, true_positive_rate, _ = roc_curve(y, score)
        return float(auc(false_positive_rate, true_positive_rate))


def auprc(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Average precision (scikit-learn's definition); NaN when only one class is present."""
    y, p = as_arrays(y_true, y_prob)
    if not _both_classes(y):
        return math.nan
    with sklearn.config_context(skip_parameter_validation=True):  # numpy arrays, as above
        return float(average_precision_score(y, p))


def brier(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Mean squared difference between probability and outcome; NaN on zero rows."""
    y, p = as_arrays(y_true, y_prob)
    return float(np.mean((p - y) ** 2)) if y.size else math.nan


def ece(y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = N_BINS) -> float:
    """Expected calibration error over `n_bins` equal-width bins; NaN on zero rows."""
    y, p = as_arrays(y_true, y_prob)
    if not y.size:
        return math.nan
    bins = bin_index(p, n_bins)
    # |bin|/n * |mean p - mean y| = |sum p - sum y| / n, summed over bins.
    gap = np.bincount(bins, weights=p - y, minlength=n_bins)
    return float(np.abs(gap).sum() / y.size)


def point_metrics(
    y_true: ArrayLike, y_prob: ArrayLike, subject_id: ArrayLike, n_bins: int = N_BINS
) -> dict[str, float]:
    """All metrics of `METRICS` for one set of predictions, keyed by metric name."""
    y, p = as_arrays(y_true, y_prob)
    subjects = np.asarray(subject_id)
    return {
        "auroc": auroc(y, p),
        "auprc": auprc(y, p),
        "brier": brier(y, p),
        "ece": ece(y, p, n_bins),
        "prevalence": float(y.mean()) if y.size else math.nan,
        "n_rows": float(y.size),
        "n_subjects": float(np.unique(subjects).size),
    }
