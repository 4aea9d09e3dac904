"""Cluster bootstrap by subject, vectorised over resamples.

A resample draws as many subjects as the held-out set has, uniformly with replacement, and takes
every row of each drawn subject as many times as it was drawn. `Resamples` stores the draw as a
count matrix [n_resamples, n_subjects] over the sorted distinct subject ids, so it depends only
on (subject set, n_resamples, seed): every model scored on the same held-out rows sees the very
same resamples, which is what paired comparisons need.

Each resample is a weight vector over rows (the count of the row's subject). The metrics are
defined on any weight matrix W [n_weightings, n_rows] (`weighted_metrics`, `weighted_auroc`);
resamples are scored for a block at once from their subject counts (`bootstrap_distribution`,
`auroc_distribution`), which gives the same values, as every sum is of whole numbers:

- rows are sorted by score once for every resample; per resample, the positive and total weight
  of each distinct score is summed over the sorted rows (integer counts);
- AUROC = sum over scores of P_s * (N below s + N_s / 2) / (P * N): the Mann-Whitney statistic,
  ties counting 1/2, equal to scikit-learn's `roc_auc_score` on the explicitly resampled rows;
- AUPRC = sum over scores in descending order of P_s / P * TP_s / (TP_s + FP_s), with TP_s, FP_s
  the weights at or above s: scikit-learn's `average_precision_score` on the resampled rows;
- Brier, ECE and prevalence are weighted sums over the same per-score totals (rows sharing a
  score share its calibration bin).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl
import scipy.sparse as sp
from numpy.typing import ArrayLike

from ehrbench.errors import EhrbenchError
from ehrbench.metrics.scores import METRICS, N_BINS, as_arrays, bin_index, point_metrics

N_RESAMPLES = 1000
CI_LEVEL = 0.95
# Weight-matrix cells per block: bounds memory (about 32 MB per float64 matrix) on large sets.
_BLOCK_CELLS = 4_000_000
# Cells of a block of row weights [resamples, rows] in `bootstrap_distribution`: the metrics make
# about twenty passes over each block (and its per-score sums), several times faster while it
# stays in the CPU cache (128 K cells: 1 MB as float64) than from main memory.
_CACHED_CELLS = 1 << 17
# Metrics that get a bootstrap distribution (counts are reported without an interval).
BOOTSTRAP_METRICS = ("auroc", "auprc", "brier", "ece", "prevalence")
METRIC_ROW_SCHEMA: dict[str, pl.DataType] = {
    "metric": pl.String(),
    "value": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "n_boot": pl.Int64(),
}
# A run's full metrics table: overall (group "all", level "all") and per subgroup level.
METRIC_TABLE_SCHEMA: dict[str, pl.DataType] = {
    "group": pl.String(),
    "level": pl.String(),
    **METRIC_ROW_SCHEMA,
}


@dataclass(frozen=True, eq=False)
class Resamples:
    """Subject resamples: `counts[b, j]` is how often `subjects[j]` is drawn in resample b."""

    subjects: np.ndarray
    counts: np.ndarray
    seed: int

    @cached_property
    def by_subject(self) -> np.ndarray:
        """`counts` transposed, [n_subjects, n_resamples], C-ordered: each subject's in a row."""
        return np.ascontiguousarray(self.counts.T)

    @property
    def n_resamples(self) -> int:
        """Number of resamples (rows of `counts`)."""
        return int(self.counts.shape[0])

    def row_weights(self, subject_id: ArrayLike, rows: slice | None = None) -> np.ndarray:
        """Weight matrix [n_resamples (or the `rows` slice of them), n_rows] for these rows."""
        return self.row_counts(self.columns(subject_id), rows).astype(np.float64)

    def row_counts(self, columns: np.ndarray, rows: slice | None = None) -> np.ndarray:
        """The int32 counts [n_resamples (or the `rows` slice), n_rows] of rows whose subjects
        are `columns` of `counts` (see `columns`), C-ordered."""
        return np.take(self.counts if rows is None else self.counts[rows], columns, axis=1)

    def weighted_sums(self, subject_id: ArrayLike, values: np.ndarray) -> np.ndarray:
        """[n_resamples, m]: each resample's sum of `values` [n_rows, m], every row counted as
        often as its subject is drawn (`row_weights(subject_id) @ values`), summed per subject
        first. Whole-number values give exact sums.

        >>> resamples = Resamples(np.array([1, 2]), np.array([[2, 0], [1, 1]], np.int32), 0)
        >>> resamples.weighted_sums([1, 1, 2], np.array([[1.0], [1.0], [5.0]]))
        array([[4.],
               [7.]])
        """
        used, inverse = np.unique(self.columns(subject_id), return_inverse=True)
        per_subject = np.zeros((used.size, values.shape[1]))
        np.add.at(per_subject, inverse, values)
        return self.counts[:, used].astype(np.float64) @ per_subject

    def columns(self, subject_id: ArrayLike) -> np.ndarray:
        """Each row's subject as a column of `counts`; raises if one was not resampled."""
        ids = np.asarray(subject_id)
        cols = np.searchsorted(self.subjects, ids)
        found = cols < self.subjects.size
        found[found] = self.subjects[cols[found]] == ids[found]
        if not found.all():
            raise EhrbenchError(
                f"bootstrap: subject_id(s) {ids[~found][:3].tolist()} are not among the "
                f"{self.subjects.size} subjects the resamples were drawn over; draw the "
                "resamples from the same held-out rows that are scored."
            )
        return cols


def draw_resamples(
    subject_id: ArrayLike, n_resamples: int = N_RESAMPLES, seed: int = 0
) -> Resamples:
    """Draw `n_resamples` cluster-bootstrap resamples over the distinct ids in `subject_id`.

    Uses `numpy.random.default_rng(seed)`; the subjects are sorted first, so the result does not
    depend on row order, only on the subject set, `n_resamples` and `seed`.
    """
    if n_resamples < 1:
        raise EhrbenchError(f"bootstrap: n_resamples must be at least 1, got {n_resamples}.")
    subjects = np.unique(np.asarray(subject_id))
    n = subjects.size
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, max(n, 1), size=(n_resamples, n))
    # One bincount over all resamples: offset resample b's draws by b * n.
    flat = (draws + np.arange(n_resamples)[:, None] * n).ravel()
    counts = np.bincount(flat, minlength=n_resamples * n).reshape(n_resamples, n)
    return Resamples(subjects=subjects, counts=counts.astype(np.int32), seed=seed)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, math.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _rank_metrics(
    pos_s: np.ndarray, neg_s: np.ndarray, all_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted AUROC and AUPRC from positive, negative and total weight per distinct score,
    ascending."""
    n_pos, n_neg = pos_s.sum(axis=1), neg_s.sum(axis=1)
    both = (n_pos > 0) & (n_neg > 0)
    auroc = _auroc_sum(pos_s, neg_s, n_pos, n_neg)
    # Precision at each threshold, thresholds descending (as scikit-learn's PR curve). The
    # descending copies keep the final sum in that order (float sums depend on their order).
    pos_desc, all_desc = (np.ascontiguousarray(s[:, ::-1]) for s in (pos_s, all_s))
    tp = _cumsum(pos_desc)
    predicted = _cumsum(all_desc)
    precision = np.divide(tp, predicted, out=np.zeros(tp.shape), where=predicted > 0)
    auprc = _safe_ratio((pos_desc * precision).sum(axis=1), n_pos)
    return np.where(both, auroc, math.nan), np.where(both, auprc, math.nan)


def _cumsum(weights: np.ndarray) -> np.ndarray:
    """Running sums along each row, in the weights' own type: whole-number counts stay integers
    (exact, and an order of magnitude faster than a float cumsum)."""
    return np.cumsum(weights, axis=1, dtype=weights.dtype)


def _auroc_sum(
    pos_s: np.ndarray, neg_s: np.ndarray, n_pos: np.ndarray, n_neg: np.ndarray
) -> np.ndarray:
    """The Mann-Whitney AUROC of each weighting (NaN where a class has no weight)."""
    neg_below = _cumsum(neg_s) - neg_s
    return _safe_ratio((pos_s * (neg_below + 0.5 * neg_s)).sum(axis=1), n_pos * n_neg)


def _score_sums(
    y: np.ndarray, p: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct scores ascending, positive weight and total weight of each) per weighting."""
    if not np.all(p[1:] >= p[:-1]):
        # Callers that score many weightings sort once and so skip this column gather.
        order = np.argsort(p, kind="stable")
        p, y, w = p[order], y[order], w[:, order]
    starts = _score_starts(p)
    pos_s = np.add.reduceat(w * y, starts, axis=1)
    all_s = np.add.reduceat(w, starts, axis=1)
    return p[starts], pos_s, all_s


def _score_starts(p: np.ndarray) -> np.ndarray:
    """The first row of each distinct score of ascending scores `p`."""
    return np.flatnonzero(np.r_[True, p[1:] != p[:-1]])


def weighted_auroc(y_true: np.ndarray, y_score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of bool `y_true` against any real `y_score` for each row of `weights`
    [n_weightings, n_rows], as `weighted_metrics` computes it (NaN where one class is missing).
    The definition on any weights; resamples are scored by `auroc_distribution`."""
    if y_true.size == 0:
        return np.full(weights.shape[0], math.nan)
    _, pos_s, all_s = _score_sums(y_true, y_score, weights)
    return _auroc_of_sums(pos_s, all_s)


def _auroc_of_sums(pos_s: np.ndarray, all_s: np.ndarray) -> np.ndarray:
    """The AUROC of each weighting from its positive and total weight per distinct score
    (ascending); NaN where one class has no weight."""
    neg_s = all_s - pos_s
    n_pos, n_neg = pos_s.sum(axis=1), neg_s.sum(axis=1)
    auroc = _auroc_sum(pos_s, neg_s, n_pos, n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auroc, math.nan)


def weighted_metrics(
    y_true: ArrayLike, y_prob: ArrayLike, weights: np.ndarray, n_bins: int = N_BINS
) -> dict[str, np.ndarray]:
    """Metrics of `BOOTSTRAP_METRICS` for each row of `weights` [n_weightings, n_rows].

    Row i of `weights` weights the predictions as if each row were repeated that many times; a
    metric that is undefined for a weighting (one class, zero total weight) is NaN.
    """
    y, p = as_arrays(y_true, y_prob)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != y.size:
        raise EhrbenchError(f"bootstrap: weights must be [n, {y.size}], got {w.shape}.")
    if y.size == 0:
        return {name: np.full(w.shape[0], math.nan) for name in BOOTSTRAP_METRICS}
    score, pos_s, all_s = _score_sums(y, p, w)
    return _metrics_from_sums(_ScoreTerms.of(score, n_bins), pos_s, all_s)


@dataclass(frozen=True)
class _ScoreTerms:
    """What the metrics need of the distinct scores alone (ascending), computed once for every
    block of weightings: the scores, their calibration bins' first scores, and each score's
    squared error as a positive and as a negative."""

    score: np.ndarray
    bin_starts: np.ndarray
    positive_error: np.ndarray
    negative_error: np.ndarray

    @classmethod
    def of(cls, score: np.ndarray, n_bins: int) -> _ScoreTerms:
        bin_starts = _score_starts(bin_index(score, n_bins))
        return cls(score, bin_starts, (1.0 - score) ** 2, score**2)


def _metrics_from_sums(
    terms: _ScoreTerms, pos_s: np.ndarray, all_s: np.ndarray
) -> dict[str, np.ndarray]:
    """`BOOTSTRAP_METRICS` of each weighting from its positive and total weight per distinct
    score (ascending): every metric works on these [n_weightings, n_distinct_scores] sums, as
    all rows sharing a score share its calibration bin and its threshold."""
    neg_s = all_s - pos_s
    total = all_s.sum(axis=1)
    auroc, auprc = _rank_metrics(pos_s, neg_s, all_s)
    gap = np.add.reduceat(all_s * terms.score - pos_s, terms.bin_starts, axis=1)
    squared_error = (pos_s * terms.positive_error + neg_s * terms.negative_error).sum(axis=1)
    return {
        "auroc": auroc,
        "auprc": auprc,
        "brier": _safe_ratio(squared_error, total),
        "ece": _safe_ratio(np.abs(gap).sum(axis=1), total),
        "prevalence": _safe_ratio(pos_s.sum(axis=1), total),
    }


def bootstrap_distribution(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    subject_id: ArrayLike,
    resamples: Resamples,
    n_bins: int = N_BINS,
) -> dict[str, np.ndarray]:
    """Each metric of `BOOTSTRAP_METRICS` on every resample: arrays of length n_resamples."""
    y, p = as_arrays(y_true, y_prob)
    if y.size == 0:
        return {name: np.full(resamples.n_resamples, math.nan) for name in BOOTSTRAP_METRICS}
    score, sums = _sorted_score_sums(y, p, subject_id, resamples)
    terms = _ScoreTerms.of(score, n_bins)
    return _by_blocks(
        lambda pos_s, all_s: _metrics_from_sums(terms, pos_s, all_s), sums, score.size, resamples
    )


def auroc_distribution(
    y_true: ArrayLike, y_score: ArrayLike, subject_id: ArrayLike, resamples: Resamples
) -> np.ndarray:
    """The AUROC of bool `y_true` against any real `y_score` on every resample (NaN where one
    class is missing): `bootstrap_distribution(...)["auroc"]`, without the other metrics.

    >>> subjects, resamples = [1, 2, 3, 4], draw_resamples([1, 2, 3, 4], 3, seed=0)
    >>> auroc_distribution([True, False, True, False], [0.9, 0.1, 0.8, 0.3], subjects, resamples)
    array([1., 1., 1.])
    """
    y, p = np.asarray(y_true, dtype=bool), np.asarray(y_score, dtype=np.float64)
    if y.size == 0:
        return np.full(resamples.n_resamples, math.nan)
    score, sums = _sorted_score_sums(y, p, subject_id, resamples)
    aurocs = _by_blocks(
        lambda pos_s, all_s: {"auroc": _auroc_of_sums(pos_s, all_s)}, sums, score.size, resamples
    )
    return aurocs["auroc"]


# A block's (positive, total) weight per distinct score, given the block's slice of resamples.
BlockSums = Callable[[slice], tuple[np.ndarray, np.ndarray]]


def _sorted_score_sums(
    y: np.ndarray, p: np.ndarray, subject_id: ArrayLike, resamples: Resamples
) -> tuple[np.ndarray, BlockSums]:
    """(distinct scores ascending, the per-score sums of a block of resamples) of bool `y`
    scored by float `p`: the rows are sorted by score once for every resample."""
    order = np.argsort(p, kind="stable")
    y, p, columns = y[order], p[order], resamples.columns(subject_id)[order]
    starts = _score_starts(p)
    # Whole-number weights, kept as int32: the sums are exact, whichever way they are formed.
    if starts.size == y.size:
        return p[starts], _row_weights(resamples, columns, y)
    return p[starts], _subject_score_sums(resamples, columns, y, starts)


def _by_blocks(
    metrics_of_sums: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]],
    sums: BlockSums,
    n_scores: int,
    resamples: Resamples,
) -> dict[str, np.ndarray]:
    """`metrics_of_sums(positive, total weight per score)` over every resample, in blocks of
    [resamples, `n_scores`] sums that stay in the CPU cache: each metric's values on all
    resamples, in resample order."""
    block = max(1, _CACHED_CELLS // n_scores)
    return _concatenated(
        metrics_of_sums(*sums(slice(start, start + block)))
        for start in range(0, resamples.n_resamples, block)
    )


def _concatenated(parts: Iterable[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The blocks' metric arrays joined, metric by metric, in block order."""
    listed = list(parts)
    return {name: np.concatenate([part[name] for part in listed]) for name in listed[0]}


def _row_weights(resamples: Resamples, columns: np.ndarray, y: np.ndarray) -> BlockSums:
    """Block sums when every score is distinct: each row's weight, its subject's count (rows
    sorted by score, their subjects at `columns` of the counts), gathered C-ordered so the
    metrics' float sums add in row order."""

    def sums(block: slice) -> tuple[np.ndarray, np.ndarray]:
        weights = resamples.row_counts(columns, block)
        return weights * y, weights

    return sums


def _subject_score_sums(
    resamples: Resamples, columns: np.ndarray, y: np.ndarray, starts: np.ndarray
) -> BlockSums:
    """Block sums as two sparse [scores, subjects] matrices (how many positive rows, and rows,
    each subject has at each score) times the subject counts; for tied scores this beats
    summing gathered row weights."""
    subjects, columns = np.unique(columns, return_inverse=True)  # only the subjects scored
    score_of_row = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, y.size]))
    shape = (starts.size, subjects.size)
    ones = np.ones(y.size, dtype=np.int32)
    rows = sp.csr_matrix((ones, (score_of_row, columns)), shape=shape)
    positives = sp.csr_matrix((ones[y], (score_of_row[y], columns[y])), shape=shape)

    def sums(block: slice) -> tuple[np.ndarray, np.ndarray]:
        counts = np.ascontiguousarray(resamples.by_subject[subjects, block])
        return np.ascontiguousarray((positives @ counts).T), np.ascontiguousarray((rows @ counts).T)

    return sums


def blockwise(
    weighted: Callable[[np.ndarray], dict[str, np.ndarray]],
    subject_id: ArrayLike,
    resamples: Resamples,
) -> dict[str, np.ndarray]:
    """`weighted(W)` over every resample, W [block, n_rows] computed a block at a time (to bound
    memory): each metric's values on all resamples, in resample order."""
    subjects = np.asarray(subject_id)
    block = max(1, _BLOCK_CELLS // max(subjects.size, 1))
    return _concatenated(
        weighted(resamples.row_weights(subjects, slice(s, s + block)))
        for s in range(0, resamples.n_resamples, block)
    )


def percentile_interval(
    distribution: np.ndarray, level: float = CI_LEVEL
) -> tuple[float, float, int]:
    """(low, high, n_valid): the percentile interval over the resamples where the metric exists."""
    valid = distribution[~np.isnan(distribution)]
    if not valid.size:
        return math.nan, math.nan, 0
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(valid, [alpha, 1.0 - alpha])
    return float(low), float(high), int(valid.size)


def bootstrap_metrics(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    subject_id: ArrayLike,
    resamples: Resamples,
    n_bins: int = N_BINS,
    level: float = CI_LEVEL,
) -> pl.DataFrame:
    """One row per metric of `METRICS`: point value, percentile interval, valid resamples.

    The interval is NaN when the point value is NaN (e.g. AUROC with one class); counts
    (n_rows, n_subjects) have a null interval.
    """
    point = point_metrics(y_true, y_prob, subject_id, n_bins)
    dist = bootstrap_distribution(y_true, y_prob, subject_id, resamples, n_bins)
    return metric_rows(METRICS, point, dist, level)


def metric_rows(
    names: Sequence[str],
    point: Mapping[str, float],
    distribution: Mapping[str, np.ndarray],
    level: float = CI_LEVEL,
) -> pl.DataFrame:
    """One row per metric of `names` (`METRIC_ROW_SCHEMA`): point value and percentile interval.

    A metric without a distribution (a count) has a null interval; one whose point value is NaN
    has a NaN interval.
    """
    rows = []
    for name in names:
        if name not in distribution:
            rows.append((name, point[name], None, None, None))
        elif math.isnan(point[name]):
            rows.append((name, point[name], math.nan, math.nan, 0))
        else:
            rows.append((name, point[name], *percentile_interval(distribution[name], level)))
    return pl.DataFrame(rows, schema=METRIC_ROW_SCHEMA, orient="row")
