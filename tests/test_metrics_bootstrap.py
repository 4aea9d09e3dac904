"""The subject bootstrap: exact against scikit-learn on resampled rows, and by subject."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from ehrbench.errors import EhrbenchError
from ehrbench.metrics import bootstrap as bootstrap_module
from ehrbench.metrics.bootstrap import (
    auroc_distribution,
    bootstrap_distribution,
    bootstrap_metrics,
    draw_resamples,
    percentile_interval,
    weighted_metrics,
)
from ehrbench.metrics.scores import ece


def _held_out(seed: int = 0, n_rows: int = 400, n_subjects: int = 120):
    rng = np.random.default_rng(seed)
    subject = np.concatenate(
        [np.arange(n_subjects), rng.integers(0, n_subjects, n_rows - n_subjects)]
    )
    y = rng.random(n_rows) < 0.3
    p = np.round(np.clip(0.3 * y + 0.7 * rng.random(n_rows), 0, 1), 2)
    return y, p, subject


def _resampled_rows(weights_row: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(weights_row.size), weights_row.astype(int))


def test_bootstrap_equals_sklearn_on_explicitly_resampled_rows():
    y, p, subject = _held_out()
    resamples = draw_resamples(subject, n_resamples=50, seed=3)
    dist = bootstrap_distribution(y, p, subject, resamples)
    weights = resamples.row_weights(subject)
    for b in (0, 1, 17, 49):
        rows = _resampled_rows(weights[b])
        yb, pb = y[rows], p[rows]
        assert dist["auroc"][b] == pytest.approx(roc_auc_score(yb, pb), abs=1e-12)
        assert dist["auprc"][b] == pytest.approx(average_precision_score(yb, pb), abs=1e-12)
        assert dist["brier"][b] == pytest.approx(np.mean((pb - yb) ** 2), abs=1e-12)
        assert dist["ece"][b] == pytest.approx(ece(yb, pb), abs=1e-12)
        assert dist["prevalence"][b] == pytest.approx(yb.mean(), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.sampled_from([0.0, 0.2, 0.5, 0.7, 1.0]), st.integers(0, 3)),
        min_size=2,
        max_size=40,
    )
)
def test_weighted_metrics_equal_repeated_rows_property(rows):
    y = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows])
    w = np.array([[r[2] for r in rows]], dtype=float)
    out = weighted_metrics(y, p, w)
    idx = _resampled_rows(w[0])
    yb, pb = y[idx], p[idx]
    if yb.size and yb.any() and not yb.all():
        assert out["auroc"][0] == pytest.approx(roc_auc_score(yb, pb), abs=1e-12)
        assert out["auprc"][0] == pytest.approx(average_precision_score(yb, pb), abs=1e-12)
    else:
        assert math.isnan(out["auroc"][0]) and math.isnan(out["auprc"][0])
    if yb.size:
        assert out["ece"][0] == pytest.approx(ece(yb, pb), abs=1e-12)
    else:
        assert math.isnan(out["brier"][0])


def test_rows_of_a_subject_move_together():
    # 50 subjects with 6 rows each, one label per subject.
    subject = np.repeat(np.arange(50), 6)
    y = np.repeat(np.arange(50) % 3 == 0, 6)
    p = np.linspace(0, 1, subject.size)
    resamples = draw_resamples(subject, n_resamples=200, seed=0)
    weights = resamples.row_weights(subject)
    per_subject = weights.reshape(200, 50, 6)
    assert (per_subject == per_subject[:, :, :1]).all()
    # Each resample draws 50 subjects in total, with all their rows.
    assert (weights.sum(axis=1) == 300).all()
    # By subject, the resampled prevalence is a whole number of subjects out of 50; a row
    # bootstrap would give fractions of 300.
    prevalence = bootstrap_distribution(y, p, subject, resamples)["prevalence"]
    assert np.allclose(prevalence * 50, np.round(prevalence * 50))
    assert np.unique(prevalence).size > 5


def test_same_seed_same_resamples_independent_of_row_order():
    y, p, subject = _held_out()
    first = draw_resamples(subject, 100, seed=7)
    shuffled = np.random.default_rng(1).permutation(subject.size)
    second = draw_resamples(subject[shuffled], 100, seed=7)
    assert np.array_equal(first.counts, second.counts)
    assert not np.array_equal(first.counts, draw_resamples(subject, 100, seed=8).counts)
    a = bootstrap_distribution(y, p, subject, first)["auroc"]
    b = bootstrap_distribution(y[shuffled], p[shuffled], subject[shuffled], second)["auroc"]
    assert np.allclose(a, b)


def test_blocks_of_resamples_give_the_same_result(monkeypatch):
    y, p, subject = _held_out()
    resamples = draw_resamples(subject, 64, seed=2)
    whole = bootstrap_distribution(y, p, subject, resamples)
    monkeypatch.setattr(bootstrap_module, "_CACHED_CELLS", 7 * y.size)
    blocked = bootstrap_distribution(y, p, subject, resamples)
    for name, values in whole.items():
        assert np.allclose(values, blocked[name], equal_nan=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("decimals", [None, 2, 1])
def test_integer_counts_path_equals_float_row_weights_to_the_bit(seed, decimals, monkeypatch):
    # bootstrap_distribution sums whole-number counts as integers, in cache-sized blocks, from
    # row weights (distinct scores) or subject counts (tied ones); weighted_metrics sums float
    # row weights: the same metrics, bit for bit.
    y, p, subject = _held_out(seed, n_rows=500, n_subjects=150)
    p = np.random.default_rng(seed).random(p.size)
    if decimals is not None:  # tied scores: 100 or 10 distinct ones
        p = np.round(p, decimals)
    resamples = draw_resamples(subject, 200, seed=seed)
    monkeypatch.setattr(bootstrap_module, "_CACHED_CELLS", 37 * y.size)
    by_counts = bootstrap_distribution(y, p, subject, resamples)
    by_rows = weighted_metrics(y, p, resamples.row_weights(subject))
    for name, values in by_rows.items():
        assert np.array_equal(by_counts[name], values, equal_nan=True), name


@pytest.mark.parametrize("decimals", [None, 1])
def test_auroc_distribution_is_the_full_distributions_auroc_to_the_bit(decimals):
    y, p, subject = _held_out(3, n_rows=400, n_subjects=120)
    if decimals is not None:
        p = np.round(p, decimals)
    resamples = draw_resamples(subject, 150, seed=4)
    expected = bootstrap_distribution(y, p, subject, resamples)["auroc"]
    assert np.array_equal(auroc_distribution(y, p, subject, resamples), expected, equal_nan=True)


def test_weighted_sums_are_the_row_weights_times_the_values():
    y, p, subject = _held_out(5, n_rows=300, n_subjects=90)
    resamples = draw_resamples(subject, 40, seed=1)
    values = np.column_stack([np.ones(y.size), y, np.round(p * 10)])
    expected = resamples.row_weights(subject) @ values
    assert np.array_equal(resamples.weighted_sums(subject, values), expected)


def test_interval_contains_point_and_counts_have_none():
    y, p, subject = _held_out()
    table = bootstrap_metrics(y, p, subject, draw_resamples(subject, 300, seed=0))
    assert table["metric"].to_list() == [
        "auroc",
        "auprc",
        "brier",
        "ece",
        "prevalence",
        "n_rows",
        "n_subjects",
    ]
    for row in table.head(5).iter_rows(named=True):
        assert row["ci_low"] < row["value"] < row["ci_high"], row
        assert row["n_boot"] == 300
    counts = table.filter(table["metric"].is_in(["n_rows", "n_subjects"]))
    assert counts["value"].to_list() == [400.0, 120.0]
    assert counts["ci_low"].null_count() == 2


def test_single_class_gives_nan_interval():
    subject = np.arange(10)
    table = bootstrap_metrics(
        np.zeros(10, bool), np.linspace(0, 1, 10), subject, draw_resamples(subject, 20)
    )
    auroc_row = table.row(0, named=True)
    assert math.isnan(auroc_row["value"]) and math.isnan(auroc_row["ci_low"])
    assert auroc_row["n_boot"] == 0
    assert not math.isnan(table.row(2, named=True)["ci_low"])  # Brier still has an interval


def test_percentile_interval_ignores_undefined_resamples():
    low, high, n = percentile_interval(np.array([math.nan, 0.0, 1.0, 2.0, 3.0, 4.0]), level=0.5)
    assert (low, high, n) == (1.0, 3.0, 5)
    assert math.isnan(percentile_interval(np.array([math.nan]))[0])


def test_unknown_subject_is_rejected():
    resamples = draw_resamples([1, 2, 3], 10)
    with pytest.raises(EhrbenchError, match=r"subject_id\(s\) \[4\] are not among the 3 subjects"):
        resamples.row_weights([1, 4])


def test_bad_arguments_are_rejected():
    with pytest.raises(EhrbenchError, match="n_resamples must be at least 1"):
        draw_resamples([1, 2], n_resamples=0)
    with pytest.raises(EhrbenchError, match=r"weights must be \[n, 2\]"):
        weighted_metrics([True, False], [0.1, 0.2], np.ones((3, 5)))
