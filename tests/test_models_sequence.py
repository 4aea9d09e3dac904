"""Sequence models (PyTorch): they learn and keep their early-stopping record; event order and
truncation follow the documented rules (the shared contract is in test_models_contract.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from models_synthetic import sequence
from sklearn.metrics import roc_auc_score

from ehrbench.errors import EhrbenchError
from ehrbench.models.base import Model, get_model, take_rows
from ehrbench.models.grid import select_and_fit

SEQUENCE = ["gru", "lstm", "transformer"]
FAST = {"max_epochs": 15, "patience": 3, "batch_size": 16}


@pytest.fixture(scope="module")
def data():
    features, y = sequence(600, seed=0)
    parts = np.split(np.arange(600), 3)
    return [(take_rows(features, idx), y[idx]) for idx in parts]


@pytest.mark.parametrize("name", SEQUENCE)
def test_learns_and_keeps_its_tuning_losses(data, name, tmp_path):
    (train, y_train), (tuning, y_tuning), (test, y_test) = data
    grid = [{"hidden": 32, "learning_rate": 3e-3}]
    first = select_and_fit(name, train, y_train, tuning, y_tuning, 3, grid=grid, overrides=FAST)
    assert roc_auc_score(y_test, first.model.predict_proba(test)) > 0.7
    first.model.save(tmp_path / "m")
    loaded = Model.load(tmp_path / "m")
    assert loaded.tuning_losses == first.model.tuning_losses
    assert 1 <= len(loaded.tuning_losses) <= FAST["max_epochs"]


def _newest_first(features):
    """The same events stored newest first and right-aligned (padding first)."""
    n, width = features.codes.shape
    order = np.empty((n, width), dtype=np.int64)
    for i, length in enumerate(features.lengths):
        order[i] = np.r_[np.arange(length, width), np.arange(length)[::-1]]
    arrays = ("codes", "values", "value_mask", "hours_before")
    return dataclasses.replace(
        features, **{a: np.take_along_axis(getattr(features, a), order, 1) for a in arrays}
    )


def test_event_order_in_the_features_does_not_matter(data):
    (train, y_train), (tuning, y_tuning), (test, _) = data
    model = get_model("gru", max_epochs=2).fit(train, y_train, tuning, y_tuning, seed=0)
    np.testing.assert_allclose(
        model.predict_proba(_newest_first(test)), model.predict_proba(test), rtol=0, atol=1e-6
    )


def test_max_len_keeps_only_the_most_recent_events(data):
    (train, y_train), (tuning, y_tuning), (test, _) = data
    model = get_model("transformer", max_len=1, max_epochs=2)
    model.fit(train, y_train, tuning, y_tuning, seed=0)
    older = test.codes.copy()
    last = np.maximum(test.lengths - 1, 0)
    keep = np.arange(older.shape[1])[None, :] >= last[:, None]
    older = np.where(keep | (older == 0), older, 2)  # every event but the newest becomes code 2
    changed = dataclasses.replace(test, codes=older)
    np.testing.assert_allclose(
        model.predict_proba(changed), model.predict_proba(test), rtol=0, atol=1e-6
    )
    whole = get_model("transformer", max_len=64, max_epochs=2)
    whole.fit(train, y_train, tuning, y_tuning, seed=0)
    assert np.abs(whole.predict_proba(changed) - whole.predict_proba(test)).max() > 1e-4


def test_fitting_restores_the_callers_torch_state(data):
    (train, y_train), (tuning, y_tuning), _ = data
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    rng = torch.random.get_rng_state()
    get_model("gru", max_epochs=1, num_threads=1).fit(train, y_train, tuning, y_tuning, seed=0)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_bad_pos_weight_is_rejected():
    with pytest.raises(EhrbenchError, match="pos_weight must be `none` or `balanced`"):
        get_model("gru", pos_weight="heavy")


def test_balanced_pos_weight_trains(data):
    (train, y_train), (tuning, y_tuning), (test, y_test) = data
    model = get_model("gru", pos_weight="balanced", max_epochs=4, learning_rate=3e-3)
    model.fit(train, y_train, tuning, y_tuning, seed=0)
    assert roc_auc_score(y_test, model.predict_proba(test)) > 0.6


def test_early_stopping_waits_patience_epochs_after_the_best(data):
    (train, y_train), (tuning, y_tuning), _ = data
    model = get_model("gru", learning_rate=0.05, max_epochs=30, patience=2)
    model.fit(train, y_train, tuning, y_tuning, seed=0)
    losses = model.tuning_losses
    best = int(np.argmin(losses))
    assert len(losses) < 30 and len(losses) == best + 1 + 2


def test_features_with_other_static_codes_are_rejected(data):
    (train, y_train), (tuning, y_tuning), (test, _) = data
    model = get_model("gru", max_epochs=1).fit(train, y_train, tuning, y_tuning, seed=0)
    other = dataclasses.replace(test, static=np.zeros((test.static.shape[0], 5), np.float32))
    with pytest.raises(EhrbenchError, match="fitted on 2 static codes but the features have 5"):
        model.predict_proba(other)
