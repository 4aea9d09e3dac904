"""Point metrics against scikit-learn and the documented definitions."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from ehrbench.errors import EhrbenchError
from ehrbench.metrics.scores import auprc, auroc, brier, ece, point_metrics, roc_area


def _random_predictions(seed: int, n: int = 500, decimals: int = 1):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    # Rounding makes many ties, the case where implementations differ.
    p = np.round(np.clip(0.25 * y + 0.75 * rng.random(n), 0, 1), decimals)
    return y, p


@pytest.mark.parametrize("seed", range(5))
def test_rank_metrics_match_sklearn_with_ties(seed):
    y, p = _random_predictions(seed)
    assert auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert auprc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0])),
        min_size=2,
        max_size=60,
    )
)
def test_metrics_match_sklearn_property(rows):
    y = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows])
    if y.all() or not y.any():
        assert math.isnan(auroc(y, p)) and math.isnan(auprc(y, p))
    else:
        assert auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert auprc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert brier(y, p) == pytest.approx(np.mean((p - y) ** 2))


def test_ece_follows_its_documented_definition():
    y = np.array([1, 0, 0, 1, 1, 0], dtype=bool)
    p = np.array([0.05, 0.05, 0.15, 0.55, 1.0, 0.95])
    # bins: 0 -> {0.05, 0.05} (mean .05, frac .5); 1 -> {0.15} (mean .15, frac 0);
    # 5 -> {0.55} (mean .55, frac 1); 9 -> {1.0, 0.95} (mean .975, frac .5); 1.0 in bin 9.
    expected = (2 * 0.45 + 1 * 0.15 + 1 * 0.45 + 2 * 0.475) / 6
    assert ece(y, p) == pytest.approx(expected)


def test_perfectly_calibrated_bins_have_zero_ece():
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0], dtype=bool)
    p = np.array([0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75])
    assert ece(y, p) == pytest.approx(0.0)


def test_single_class_gives_nan_not_a_crash():
    y = np.zeros(4, dtype=bool)
    p = np.array([0.1, 0.2, 0.3, 0.4])
    metrics = point_metrics(y, p, [1, 1, 2, 3])
    assert math.isnan(metrics["auroc"]) and math.isnan(metrics["auprc"])
    assert metrics["brier"] == pytest.approx(np.mean(p**2))
    assert metrics["prevalence"] == 0.0
    assert metrics["n_rows"] == 4 and metrics["n_subjects"] == 3


def test_empty_input_gives_nan():
    metrics = point_metrics(np.array([], bool), np.array([]), np.array([], int))
    assert all(math.isnan(metrics[m]) for m in ("auroc", "auprc", "brier", "ece", "prevalence"))
    assert metrics["n_rows"] == 0


def test_probability_outside_unit_interval_is_rejected():
    with pytest.raises(EhrbenchError, match=r"predicted_boolean_probability.*\[0, 1\]"):
        auroc([True, False], [0.5, 1.5])
    with pytest.raises(EhrbenchError, match="no NaN"):
        brier([True, False], [0.5, math.nan])


def test_non_boolean_labels_and_shape_mismatch_are_rejected():
    with pytest.raises(EhrbenchError, match="`boolean_value` must hold booleans"):
        auroc([0, 2], [0.5, 0.5])
    with pytest.raises(EhrbenchError, match="equal length"):
        auroc([True, False], [0.5])


def test_roc_area_is_roc_auc_score_to_the_bit():
    rng = np.random.default_rng(0)
    for case in range(300):
        n = int(rng.integers(2, 300))
        y = rng.random(n) < rng.uniform(0.05, 0.95)
        y[:2] = [False, True]  # both classes, as every caller guarantees
        score = rng.random(n).astype(np.float32).astype(np.float64)
        if case % 3 == 0:
            score = np.round(score, 2)  # ties
        assert roc_area(y, score) == roc_auc_score(y, score)
        assert roc_area(y.astype(np.int64), score) == roc_auc_score(y, score)
