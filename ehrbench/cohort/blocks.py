"""Searches inside subjects' blocks of rows: rows sorted by (subject, time), each subject's rows
contiguous, so a time is located among one subject's rows by a search bounded to its block."""

from __future__ import annotations

import numpy as np


def position(
    times: np.ndarray, lo: np.ndarray, hi: np.ndarray, t: np.ndarray, after: bool
) -> np.ndarray:
    """Per query, the first index in [lo, hi) of sorted `times` that is > t (`after`) or >= t,
    else hi: a vectorised bisection inside each query's own block of rows.

    >>> position(np.array([1, 2, 2, 3]), np.array([0, 0]), np.array([4, 4]), np.array([2, 2]),
    ...          after=True).tolist()
    [3, 3]
    """
    lo, hi = lo.copy(), hi.copy()
    last = max(len(times) - 1, 0)
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) >> 1
        value = times[np.minimum(mid, last)]
        right = (value <= t) if after else (value < t)
        lo = np.where(active & right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)
