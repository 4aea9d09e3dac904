"""The cost of a run: fit and predict seconds, peak memory, and each model's parameter count."""

from __future__ import annotations

import sys
import time

import numpy as np
import polars as pl
import pytest
from models_synthetic import tabular

from ehrbench.models.base import get_model, take_rows
from ehrbench.models.cost import SAMPLE_SECONDS, PeakMemory
from ehrbench.models.training import fit_and_predict

N_ROWS = 240


@pytest.fixture(scope="module")
def sets():
    features, y = tabular(N_ROWS, seed=0)
    parts = np.split(np.arange(N_ROWS), 3)
    return features, y, parts


def _fitted(name, sets, **params):
    features, y, (train, tuning, _) = sets
    model = get_model(name, **params)
    return model.fit(
        take_rows(features, train), y[train], take_rows(features, tuning), y[tuning], 0
    )


def test_logreg_counts_coefficients_and_intercept(sets):
    n_features = sets[0].matrix.shape[1]
    assert _fitted("logreg", sets).n_parameters() == n_features + 1


def test_tree_models_count_their_nodes(sets):
    forest = _fitted("random_forest", sets, n_estimators=5)
    assert forest.n_parameters() == sum(t.tree_.node_count for t in forest.estimator.estimators_)
    boosted = _fitted("lightgbm", sets, n_estimators=10)
    leaves = [tree["num_leaves"] for tree in boosted.booster.dump_model()["tree_info"]]
    assert boosted.n_parameters() == sum(2 * n - 1 for n in leaves) > 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RSS is read from /proc")
def test_peak_memory_sees_native_allocations():
    with PeakMemory() as memory:
        block = np.ones(80 * 2**20 // 8)  # 80 MB written, so resident
        # Held for many sampling periods: on a busy machine the sampler thread may wait its turn
        # (the process's high-water mark, read exactly, may already lie above this block).
        time.sleep(40 * SAMPLE_SECONDS)
        del block
    assert memory.peak_mb >= 60


def test_fit_and_predict_reports_its_cost_apart_from_the_predictions(sets):
    features, y, (train, tuning, held_out) = sets
    labels = features.rows.with_columns(boolean_value=pl.Series(y))
    runs = [
        fit_and_predict(
            "logreg", features, labels, train=train, tuning=tuning, held_out=held_out, seed=0
        )
        for _ in range(2)
    ]
    cost = runs[0].cost
    assert cost.fit_seconds > 0 and cost.predict_seconds > 0
    assert cost.n_parameters == features.matrix.shape[1] + 1
    assert set(cost.as_dict()) == {
        "fit_seconds",
        "predict_seconds",
        "peak_memory_mb",
        "n_parameters",
    }
    # Timings differ between the two runs; the predictions do not.
    assert runs[0].predictions.equals(runs[1].predictions)
