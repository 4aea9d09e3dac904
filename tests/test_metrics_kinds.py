"""Regression and multiclass metrics: point values equal scikit-learn's, each bootstrap resample
equals scikit-learn on the explicitly repeated rows, OSMAE equals pyehr's, and the typed
evaluation, subgroups and paired comparisons take the new prediction forms."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from ehrbench.meds.label_kinds import MULTICLASS, REGRESSION, LabelTarget
from ehrbench.metrics.bootstrap import draw_resamples
from ehrbench.metrics.evaluate import evaluate_predictions
from ehrbench.metrics.multiclass import (
    macro_ovr_auroc,
    multiclass_distribution,
    multiclass_metrics,
    threshold_aurocs,
    weighted_multiclass_metrics,
)
from ehrbench.metrics.paired import paired_primary
from ehrbench.metrics.regression import osmae, regression_metrics, weighted_regression_metrics
from ehrbench.models.predictions import make_predictions

N = 60
CLASSES = ("severe", "mild", "normal")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    subjects = rng.integers(1, 25, size=N)
    y_value = rng.gamma(2.0, 3.0, size=N)
    pred_value = y_value + rng.normal(0, 2.0, size=N)
    y_class = rng.integers(0, 3, size=N)
    logits = rng.normal(size=(N, 3)) + 1.5 * np.eye(3)[y_class]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return subjects, y_value, pred_value, y_class, proba


def _row(table: pl.DataFrame, metric: str) -> dict:
    return table.filter(pl.col("metric") == metric).row(0, named=True)


def test_regression_point_values_are_scikit_learns(data):
    subjects, y, p, *_ = data
    table = regression_metrics(y, p, subjects, draw_resamples(subjects, 50))
    assert _row(table, "mae")["value"] == pytest.approx(mean_absolute_error(y, p), rel=1e-12)
    assert _row(table, "rmse")["value"] == pytest.approx(root_mean_squared_error(y, p), rel=1e-12)
    assert _row(table, "r2")["value"] == pytest.approx(r2_score(y, p), rel=1e-12)
    assert _row(table, "n_rows")["value"] == N and _row(table, "n_rows")["ci_low"] is None
    low, high = _row(table, "rmse")["ci_low"], _row(table, "rmse")["ci_high"]
    assert low < _row(table, "rmse")["value"] < high


def test_each_regression_resample_is_scikit_learn_on_repeated_rows(data):
    subjects, y, p, *_ = data
    resamples = draw_resamples(subjects, 5, seed=3)
    weights = resamples.row_weights(subjects)
    got = weighted_regression_metrics(y, p, weights)
    for b in range(5):
        rows = np.repeat(np.arange(N), weights[b].astype(int))
        assert got["mae"][b] == pytest.approx(mean_absolute_error(y[rows], p[rows]))
        assert got["rmse"][b] == pytest.approx(root_mean_squared_error(y[rows], p[rows]))
        assert got["r2"][b] == pytest.approx(r2_score(y[rows], p[rows]))


def test_r2_is_undefined_for_equal_true_values():
    table = regression_metrics([2.0, 2.0], [1.0, 3.0], [1, 2], draw_resamples([1, 2], 5))
    assert math.isnan(_row(table, "r2")["value"]) and _row(table, "mae")["value"] == 1.0


def test_multiclass_point_values_are_scikit_learns(data):
    subjects, *_, y, proba = data
    table = multiclass_metrics(y, proba, subjects, draw_resamples(subjects, 50), CLASSES, True)
    assert _row(table, "macro_ovr_auroc")["value"] == pytest.approx(
        roc_auc_score(y, proba, multi_class="ovr", average="macro"), rel=1e-12
    )
    predicted = np.argmax(proba, axis=1)
    assert _row(table, "accuracy")["value"] == pytest.approx(accuracy_score(y, predicted))
    assert _row(table, "macro_f1")["value"] == pytest.approx(
        f1_score(y, predicted, average="macro")
    )
    # Threshold j: the first j classes (most severe first) against the rest.
    first = roc_auc_score(y == 0, proba[:, 0])
    first_two = roc_auc_score(y <= 1, proba[:, 0] + proba[:, 1])
    assert _row(table, "auroc_at_least//severe")["value"] == pytest.approx(first)
    assert _row(table, "auroc_at_least//mild")["value"] == pytest.approx(first_two)
    assert table["metric"].to_list() == [
        "macro_ovr_auroc",
        "accuracy",
        "macro_f1",
        "n_rows",
        "n_subjects",
        "auroc_at_least//severe",
        "auroc_at_least//mild",
    ]


def test_unordered_classes_have_no_threshold_aurocs(data):
    subjects, *_, y, proba = data
    table = multiclass_metrics(y, proba, subjects, draw_resamples(subjects, 5), CLASSES, False)
    assert not any(m.startswith("auroc_at_least") for m in table["metric"].to_list())


def test_each_multiclass_resample_is_scikit_learn_on_repeated_rows(data):
    subjects, *_, y, proba = data
    resamples = draw_resamples(subjects, 5, seed=1)
    weights = resamples.row_weights(subjects)
    got = weighted_multiclass_metrics(y, proba, weights, ordered=True)
    for b in range(5):
        rows = np.repeat(np.arange(N), weights[b].astype(int))
        yr, pr = y[rows], proba[rows]
        predicted = np.argmax(pr, axis=1)
        assert got["macro_ovr_auroc"][b] == pytest.approx(macro_ovr_auroc(yr, pr))
        assert got["accuracy"][b] == pytest.approx(accuracy_score(yr, predicted))
        assert got["macro_f1"][b] == pytest.approx(f1_score(yr, predicted, average="macro"))
        assert [got["threshold_1"][b], got["threshold_2"][b]] == pytest.approx(
            threshold_aurocs(yr, pr)
        )


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize(("classes", "decimals"), [(4, None), (4, 1), (9, None)])
def test_multiclass_distribution_is_the_row_weights_metrics_to_the_bit(ordered, classes, decimals):
    # The subject-count path (sorted once per AUROC, integer sums) against the float
    # [resamples, rows] weight matrix: every value equal, NaN where undefined (9 classes: sums
    # over 8 or more classes, which numpy may add in another order).
    rng = np.random.default_rng(7)
    n = 500
    subjects = rng.integers(1, 160, size=n)
    y = rng.integers(0, classes, size=n)
    proba = rng.dirichlet(np.ones(classes), size=n) + 0.5 * np.eye(classes)[y]
    proba /= proba.sum(axis=1, keepdims=True)
    if decimals is not None:  # tied scores
        proba = np.round(proba, decimals)
    resamples = draw_resamples(subjects, 120, seed=3)
    weights = resamples.row_weights(subjects)
    got = multiclass_distribution(y, proba, subjects, resamples, ordered)
    expected = weighted_multiclass_metrics(y, proba, weights, ordered)
    assert got.keys() == expected.keys()
    for name, values in expected.items():
        assert np.array_equal(got[name], values, equal_nan=True), name
    assert np.array_equal(got["macro_f1"], _macro_f1_class_by_class(y, proba, weights))


def _macro_f1_class_by_class(y, proba, weights):
    """Macro F1 of each weighting, each class's F1 stacked and then summed over the classes in
    their order (how the scores were always added)."""
    predicted = np.argmax(proba, axis=1)
    f1 = []
    for c in range(proba.shape[1]):
        tp = weights @ ((y == c) & (predicted == c))
        wrong = weights @ ((y == c) != (predicted == c)).astype(np.float64)
        denominator = 2 * tp + wrong
        f1.append(
            np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), np.nan)
        )
    f1 = np.stack(f1)
    occurring = (~np.isnan(f1)).sum(axis=0)
    return np.where(occurring > 0, np.nansum(f1, axis=0) / np.maximum(occurring, 1), np.nan)


def test_macro_auroc_skips_a_class_absent_from_the_labels(data):
    _, *_, y, proba = data
    keep = y != 2
    expected = np.mean([roc_auc_score(y[keep] == c, proba[keep, c]) for c in (0, 1)])
    assert macro_ovr_auroc(y[keep], proba[keep]) == pytest.approx(expected)


def test_osmae_is_pyehrs():
    # pyehr's own example (Gao et al., the COVID-19 ICU benchmark).
    assert osmae([0, 0, 1, 1], [0.1, 0.4, 0.7, 0.2], [5, 3, 8, 1], [10, 5, 7, 3]) == pytest.approx(
        4.0638297872340425
    )
    # Right outcome, stay under gamma: the plain absolute error.
    assert osmae([1], [0.9], [2.0], [5.0], large_stay=10.0, threshold=4.0) == 3.0
    # Wrong outcome: (E - predicted) + (E - true), here 5 + 8.
    assert osmae([1], [0.1], [2.0], [5.0], large_stay=10.0, threshold=4.0) == 13.0


def _frame(target: LabelTarget, labels: list, output: np.ndarray, subjects) -> pl.DataFrame:
    rows = pl.DataFrame(
        {
            "subject_id": np.asarray(subjects, dtype=np.int64),
            "prediction_time": [datetime(2020, 1, 1, i % 24) for i in range(len(labels))],
            target.column: labels,
        }
    )
    return make_predictions(rows, output, target)


def test_evaluation_subgroups_and_paired_comparisons_take_the_new_forms(data):
    subjects, y_value, pred_value, y_class, proba = data
    demo = pl.DataFrame(
        {
            "subject_id": np.unique(subjects),
            "sex": ["F", "M"] * (np.unique(subjects).size // 2)
            + ["F"] * (np.unique(subjects).size % 2),
            "birth_datetime": [datetime(1950, 1, 1)] * np.unique(subjects).size,
        }
    )
    resamples = draw_resamples(subjects, 40)
    values = LabelTarget(REGRESSION, "float_value")
    regression = _frame(values, y_value.tolist(), pred_value, subjects)
    metrics = evaluate_predictions(regression, resamples, demo)
    assert set(metrics["group"]) == {"all", "sex", "age_band"}
    assert _row(metrics, "rmse")["value"] == pytest.approx(
        root_mean_squared_error(y_value, pred_value)
    )
    better = _frame(values, y_value.tolist(), (pred_value + y_value) / 2, subjects)
    diff = paired_primary(better, regression, resamples, values)
    assert diff.difference < 0 and diff.ci_high < 0  # a lower RMSE: negative difference
    classes = LabelTarget(MULTICLASS, "categorical_value", CLASSES, ordered=True)
    names = [CLASSES[i] for i in y_class]
    multiclass = _frame(classes, names, proba, subjects)
    metrics = evaluate_predictions(multiclass, resamples, target=classes)
    assert "auroc_at_least//mild" in metrics["metric"].to_list()
    unordered = evaluate_predictions(multiclass, resamples)  # read from the frame: no order
    assert "auroc_at_least//mild" not in unordered["metric"].to_list()
    same = paired_primary(multiclass, multiclass, resamples, classes)
    assert same.difference == 0 and same.ci_low == same.ci_high == 0
