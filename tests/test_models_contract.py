"""The contract every registered model keeps, checked on each of them.

Fit on train/tuning rows, predict a float64 probability per row, give the same predictions for
the same seed, save and load to the same predictions, fit down to one row per class, and refuse
unknown or badly typed hyperparameters, and one-class labels, before any work.
"""

from __future__ import annotations

import dataclasses
import typing

import numpy as np
import pytest
from models_synthetic import one_per_class, sequence, tabular

from ehrbench.errors import EhrbenchError
from ehrbench.meds.label_kinds import BINARY
from ehrbench.models.base import Model, get_model, model_class, model_names, take_rows

# The contract is not about skill: tiny data, few trees, one or two epochs.
FAST = {"random_forest": {"n_estimators": 20}, "lightgbm": {"n_estimators": 30}}
FAST_SEQUENCE = {"max_epochs": 2, "hidden": 16, "batch_size": 32}
N_ROWS = 240
# The binary contract binds every model that fits binary labels (the others: test_models_kinds).
BINARY_MODELS = [name for name in model_names() if BINARY in model_class(name).label_kinds]


@pytest.fixture(scope="module")
def sets():
    """(train, tuning, test) features and labels of each kind."""
    made = {"tabular": tabular(N_ROWS, seed=0), "sequence": sequence(N_ROWS, seed=0)}
    parts = np.split(np.arange(N_ROWS), 3)
    return {
        kind: [(take_rows(features, idx), y[idx]) for idx in parts]
        for kind, (features, y) in made.items()
    }


def _fast_model(name: str) -> Model:
    kind = model_class(name).kind
    return get_model(name, **(FAST_SEQUENCE if kind == "sequence" else FAST.get(name, {})))


@pytest.mark.parametrize("name", BINARY_MODELS)
def test_fit_predict_repeat_save_and_load(sets, name, tmp_path):
    model = _fast_model(name)
    (train, y_train), (tuning, y_tuning), (test, _) = sets[model.kind]
    assert not model.fitted
    assert model.fit(train, y_train, tuning, y_tuning, seed=3) is model and model.fitted
    p = model.predict_proba(test)
    assert p.shape == (N_ROWS // 3,) and p.dtype == np.float64
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    assert isinstance(model.n_parameters(), int) and model.n_parameters() > 0
    again = _fast_model(name).fit(train, y_train, tuning, y_tuning, seed=3)
    assert again.predict_proba(test).tobytes() == p.tobytes()
    model.save(tmp_path / "m")
    loaded = Model.load(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.params == model.params and loaded.fitted
    assert loaded.predict_proba(test).tobytes() == p.tobytes()
    for saved in sorted((tmp_path / "m").iterdir()):  # each file damaged: a clear error
        kept = saved.read_bytes()
        saved.write_bytes(b"{ damaged")
        with pytest.raises(EhrbenchError, match="is not a saved model ehrbench can read"):
            Model.load(tmp_path / "m")
        saved.write_bytes(kept)


@pytest.mark.parametrize("name", BINARY_MODELS)
def test_one_row_per_class_fits(sets, name):
    model = _fast_model(name)
    (train, y_train), (tuning, y_tuning), (test, _) = sets[model.kind]
    tr, tu = one_per_class(y_train), one_per_class(y_tuning)
    model.fit(take_rows(train, tr), y_train[tr], take_rows(tuning, tu), y_tuning[tu], seed=0)
    p = model.predict_proba(test)
    assert p.shape == (N_ROWS // 3,) and np.all((p >= 0) & (p <= 1))


@pytest.mark.parametrize("name", BINARY_MODELS)
def test_one_class_labels_are_refused(sets, name):
    model = _fast_model(name)
    (train, y_train), (tuning, y_tuning), _ = sets[model.kind]
    with pytest.raises(EhrbenchError, match="tuning rows hold 0 positive"):
        model.fit(train, y_train, tuning, np.zeros_like(y_tuning), seed=0)
    assert not model.fitted


def _numeric_hyperparameter(name: str) -> str:
    declared = model_class(name).Hyperparameters
    hints = typing.get_type_hints(declared)
    return next(f.name for f in dataclasses.fields(declared) if hints[f.name] in (int, float))


@pytest.mark.parametrize("name", model_names())
def test_unknown_and_badly_typed_hyperparameters_are_refused(name):
    unknown = rf"model `{name}` has no hyperparameter\(s\) \['nope'\]"
    with pytest.raises(EhrbenchError, match=unknown):
        get_model(name, nope=1)
    field = _numeric_hyperparameter(name)
    for wrong in ("abc", True, None):
        with pytest.raises(EhrbenchError, match=rf"model `{name}`: hyperparameter `{field}` must"):
            get_model(name, **{field: wrong})


@pytest.mark.parametrize("name", model_names())
def test_hyperparameters_are_declared_with_defaults(name):
    declared = model_class(name).Hyperparameters
    assert dataclasses.is_dataclass(declared) and declared.__dataclass_params__.frozen
    defaults = {f.name: f.default for f in dataclasses.fields(declared)}
    assert get_model(name).params == defaults


@pytest.mark.parametrize("name", ["gru", "transformer"])
def test_a_sequence_dropout_of_one_or_more_and_a_nan_rate_are_refused(name):
    # Each would reach torch (which refuses a dropout above 1) or train on NaN.
    with pytest.raises(EhrbenchError, match=r"`dropout` must be at least 0 and below 1, not 1"):
        get_model(name, dropout=1.0)
    with pytest.raises(EhrbenchError, match=r"`learning_rate` must be a finite number greater"):
        get_model(name, learning_rate=float("nan"))
