"""Calibration curves: mean predicted probability against observed fraction, per bin.

Bins are the same equal-width bins as the ECE (`scores.bin_index`), so the curve and the ECE
describe the same grouping: ECE = sum over bins of n / total * |mean_predicted -
fraction_positive|.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import ArrayLike

from ehrbench.metrics.scores import N_BINS, as_arrays, bin_index

CALIBRATION_SCHEMA: dict[str, pl.DataType] = {
    "bin": pl.Int64(),
    "bin_low": pl.Float64(),
    "bin_high": pl.Float64(),
    "n": pl.Int64(),
    "mean_predicted": pl.Float64(),
    "fraction_positive": pl.Float64(),
}


def calibration_curve(y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = N_BINS) -> pl.DataFrame:
    """One row per bin (all `n_bins`, empty ones with n = 0 and null means)."""
    y, p = as_arrays(y_true, y_prob)
    bins = bin_index(p, n_bins)
    n = np.bincount(bins, minlength=n_bins)
    sum_p = np.bincount(bins, weights=p, minlength=n_bins)
    sum_y = np.bincount(bins, weights=y.astype(np.float64), minlength=n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    frame = pl.DataFrame(
        {
            "bin": np.arange(n_bins),
            "bin_low": edges[:-1],
            "bin_high": edges[1:],
            "n": n,
            "mean_predicted": sum_p / np.maximum(n, 1),
            "fraction_positive": sum_y / np.maximum(n, 1),
        },
        schema=CALIBRATION_SCHEMA,
    )
    empty = pl.col("n") == 0
    return frame.with_columns(
        pl.when(~empty).then(pl.col(c)).alias(c) for c in ("mean_predicted", "fraction_positive")
    )
