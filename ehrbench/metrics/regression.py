"""Regression metrics: MAE, RMSE and R², point values and subject-bootstrap intervals, and OSMAE.

Point values are scikit-learn's (`mean_absolute_error`, `root_mean_squared_error`, `r2_score`);
R² is NaN when the true values are all equal (scikit-learn would report 1 or 0 by convention).
The bootstrap computes the same quantities on each resample's row weights, so a resample equals
scikit-learn on the explicitly repeated rows.

OSMAE, the outcome-specific MAE of the COVID-19 ICU benchmark (Gao et al., arXiv:2209.07805, as
pyehr computes it), scores a length-of-stay prediction together with an outcome prediction
(death or not): where the outcome is predicted right (probability > 0.5 on the right side) a row
costs |predicted - true stay|; where it is wrong, (max(0, E - predicted) + max(0, E - true)),
E being a large stay (default: the 95th percentile of the true stays). Either cost is scaled by a
decay that is 1 for a true stay up to gamma (default: half the mean true stay) and falls linearly
to 0 at E. It needs an outcome for every row and a model's probability of it, which a regression
cohort alone does not have: it applies when a suite pairs a length-of-stay cohort with an outcome
cohort on the same prediction times, and is computed by `osmae` from those two prediction frames;
the run metrics of a regression cohort are MAE, RMSE and R².
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from numpy.typing import ArrayLike
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

from ehrbench.errors import EhrbenchError
from ehrbench.metrics.bootstrap import CI_LEVEL, Resamples, blockwise, metric_rows

REGRESSION_METRICS = ("mae", "rmse", "r2", "n_rows", "n_subjects")


def _values(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as float64, checked to be 1-d, of equal length and finite."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if y.ndim != 1 or y.shape != p.shape:
        raise EhrbenchError(
            "predictions: the label and `predicted_float_value` must be 1-d and of equal "
            f"length, got shapes {y.shape} and {p.shape}."
        )
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(p))):
        raise EhrbenchError("predictions: the label and `predicted_float_value` must be finite.")
    return y, p


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error; NaN on zero rows.

    >>> mae([1.0, 3.0], [2.0, 2.0])
    1.0
    """
    y, p = _values(y_true, y_pred)
    return float(mean_absolute_error(y, p)) if y.size else math.nan


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error; NaN on zero rows."""
    y, p = _values(y_true, y_pred)
    return float(root_mean_squared_error(y, p)) if y.size else math.nan


def r2(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Coefficient of determination; NaN when the true values are all equal (or absent)."""
    y, p = _values(y_true, y_pred)
    return float(r2_score(y, p)) if y.size and np.ptp(y) > 0 else math.nan


def weighted_regression_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """MAE, RMSE and R² for each row of `weights` [n_weightings, n_rows] (NaN where undefined)."""
    total = weights.sum(axis=1)
    defined = total > 0
    safe = np.where(defined, total, 1.0)
    error = y_pred - y_true
    residual = weights @ error**2
    squared = residual / safe
    mean = (weights @ y_true) / safe
    spread = (weights * (y_true[None, :] - mean[:, None]) ** 2).sum(axis=1)
    r2_values = np.full(total.shape, math.nan)
    np.divide(residual, spread, out=r2_values, where=spread > 1e-12 * np.maximum(safe, 1.0))
    return {
        "mae": np.where(defined, (weights @ np.abs(error)) / safe, math.nan),
        "rmse": np.where(defined, np.sqrt(squared), math.nan),
        "r2": np.where(np.isnan(r2_values), math.nan, 1.0 - r2_values),
    }


def regression_metrics(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    subject_id: ArrayLike,
    resamples: Resamples,
    level: float = CI_LEVEL,
) -> pl.DataFrame:
    """One row per metric of `REGRESSION_METRICS` with its subject-bootstrap interval.

    >>> from ehrbench.metrics.bootstrap import draw_resamples
    >>> table = regression_metrics([1.0, 2.0, 4.0], [1.0, 2.5, 3.0], [1, 2, 3],
    ...                            draw_resamples([1, 2, 3], 10))
    >>> table["metric"].to_list()
    ['mae', 'rmse', 'r2', 'n_rows', 'n_subjects']
    >>> table.filter(pl.col("metric") == "mae")["value"].item()
    0.5
    """
    y, p = _values(y_true, y_pred)
    subjects = np.asarray(subject_id)
    point = {
        "mae": mae(y, p),
        "rmse": rmse(y, p),
        "r2": r2(y, p),
        "n_rows": float(y.size),
        "n_subjects": float(np.unique(subjects).size),
    }
    dist = blockwise(lambda w: weighted_regression_metrics(y, p, w), subjects, resamples)
    return metric_rows(REGRESSION_METRICS, point, dist, level)


def osmae(
    outcome_true: ArrayLike,
    outcome_probability: ArrayLike,
    stay_true: ArrayLike,
    stay_pred: ArrayLike,
    large_stay: float | None = None,
    threshold: float | None = None,
) -> float:
    """Outcome-specific MAE (see the module docstring); `large_stay` is E, `threshold` gamma.

    >>> osmae([0, 0, 1, 1], [0.1, 0.4, 0.7, 0.2], [5, 3, 8, 1], [10, 5, 7, 3])
    4.0638297872340425
    """
    stay, predicted = _values(stay_true, stay_pred)
    outcome = np.asarray(outcome_true).astype(bool)
    probability = np.asarray(outcome_probability, dtype=np.float64)
    if outcome.shape != stay.shape or probability.shape != stay.shape:
        raise EhrbenchError(
            f"osmae: outcomes ({outcome.shape}), probabilities ({probability.shape}) and stays "
            f"({stay.shape}) must have one value per row."
        )
    if not stay.size:
        return math.nan
    large = float(np.sort(stay)[int(0.95 * stay.size)]) if large_stay is None else large_stay
    gamma = 0.5 * float(np.mean(stay)) if threshold is None else threshold
    decay = np.where(stay <= gamma, 1.0, np.maximum(0.0, (stay - large) / (gamma - large)))
    right = (probability > 0.5) == outcome
    wrong_cost = np.maximum(0.0, large - predicted) + np.maximum(0.0, large - stay)
    cost = np.where(right, np.abs(predicted - stay), wrong_cost)
    return float(np.mean(decay * cost))
