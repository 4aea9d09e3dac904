"""Tabular models: they learn, and what is particular to each (the shared contract is in
test_models_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest
from models_synthetic import tabular
from sklearn.metrics import roc_auc_score

from ehrbench.models.base import get_model, take_rows
from ehrbench.models.grid import select_and_fit

TABULAR = ["logreg", "lightgbm", "random_forest"]


@pytest.fixture(scope="module")
def data():
    features, y = tabular(900, seed=0)
    parts = np.split(np.arange(900), 3)
    return [(take_rows(features, idx), y[idx]) for idx in parts]


@pytest.mark.parametrize("name", TABULAR)
def test_learns_with_its_own_grid(data, name):
    (train, y_train), (tuning, y_tuning), (test, y_test) = data
    first = select_and_fit(name, train, y_train, tuning, y_tuning, seed=7)
    again = select_and_fit(name, train, y_train, tuning, y_tuning, seed=7)
    assert roc_auc_score(y_test, first.model.predict_proba(test)) > 0.7
    assert first.params == again.params
    assert len(first.grid_scores) == len(type(first.model).param_grid())


def test_lightgbm_early_stops_on_tuning_rows(data):
    (train, y_train), (tuning, y_tuning), _ = data
    noise = np.random.default_rng(0).random(len(y_tuning)) < 0.5
    model = get_model("lightgbm", learning_rate=0.5, n_estimators=300)
    model.fit(train, y_train, tuning, noise, seed=0)
    assert model.booster.num_trees() < 300


def test_random_forest_seed_changes_the_model(data):
    (train, y_train), (tuning, y_tuning), (test, _) = data
    a = get_model("random_forest").fit(train, y_train, tuning, y_tuning, seed=0)
    b = get_model("random_forest").fit(train, y_train, tuning, y_tuning, seed=1)
    assert a.predict_proba(test).tobytes() != b.predict_proba(test).tobytes()


def test_scikit_learn_checks_still_refuse_what_they_refused(data):
    # Fits skip scikit-learn's parameter validation only for a setting that passed it, and its
    # finiteness checks only for finite matrices: a bad setting or value still fails each time.
    (train, y_train), (tuning, y_tuning), _ = data
    for _ in range(2):
        with pytest.raises(ValueError, match="max_features"):
            get_model("random_forest", max_features="most").fit(
                train, y_train, tuning, y_tuning, seed=0
            )
    broken = take_rows(train, np.arange(train.matrix.shape[0]))
    broken.matrix.data[0] = np.inf
    for _ in range(2):
        with pytest.raises(ValueError, match="infinity"):
            get_model("logreg").fit(broken, y_train, tuning, y_tuning, seed=0)
