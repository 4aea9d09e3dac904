"""Regression and multiclass labels through the model corridor: each model that declares a kind
fits it, predicts its output form, repeats itself for a seed and saves and loads; a model that
does not declare it is refused with a clear error; tuning chooses by the kind's score."""

from __future__ import annotations

import numpy as np
import pytest
from models_synthetic import sequence, tabular

from ehrbench.errors import EhrbenchError
from ehrbench.meds.label_kinds import MULTICLASS, REGRESSION, LabelTarget
from ehrbench.models.base import Model, get_model, model_class, model_names, take_rows
from ehrbench.models.grid import select_and_fit, tuning_score

FAST = {"random_forest": {"n_estimators": 20}, "lightgbm": {"n_estimators": 30}}
FAST_SEQUENCE = {"max_epochs": 2, "hidden": 16, "batch_size": 32}
N_ROWS = 240
CLASSES = LabelTarget(MULTICLASS, "categorical_value", ("severe", "mild", "normal"), True)
VALUES = LabelTarget(REGRESSION, "float_value")


def _models(kind: str) -> list[str]:
    return [name for name in model_names() if kind in model_class(name).label_kinds]


def _fast(name: str) -> Model:
    kind = model_class(name).kind
    return get_model(name, **(FAST_SEQUENCE if kind == "sequence" else FAST.get(name, {})))


def _targets(features, seed: int) -> dict[str, np.ndarray]:
    """A value and a three-class label that follow the features' signal (codes 0 and 1 of the
    tabular features, code 5 and code 3's value of the sequence ones)."""
    rng = np.random.default_rng(seed)
    if hasattr(features, "matrix"):
        dense = features.matrix.toarray()
        signal = dense[:, 0] - dense[:, 1]
    else:
        values = features.values * features.value_mask
        signal = 2.0 * (features.codes == 5).any(axis=1) + values.max(axis=1)
    signal = signal + rng.normal(0, 0.2, size=signal.size)
    classes = np.digitize(signal, np.quantile(signal, [1 / 3, 2 / 3]))  # 0, 1, 2: low to high
    return {REGRESSION: 10.0 + 4.0 * signal, MULTICLASS: (2 - classes).astype(np.int64)}


@pytest.fixture(scope="module")
def sets():
    """(train, tuning, test) features with labels of each kind, for each feature kind."""
    made = {"tabular": tabular(N_ROWS, seed=0), "sequence": sequence(N_ROWS, seed=0)}
    parts = np.split(np.arange(N_ROWS), 3)
    out = {}
    for kind, (features, _) in made.items():
        labels = _targets(features, seed=1)
        out[kind] = {
            label_kind: [(take_rows(features, idx), values[idx]) for idx in parts]
            for label_kind, values in labels.items()
        }
    return out


def _fit_repeat_save_and_load(sets, name, target, tmp_path):
    """Fit `name` on `target`'s kind; check a refit with the seed and a saved and loaded copy
    predict the same bytes; return (output on the test rows, train labels, test labels)."""
    model = _fast(name)
    (train, y_train), (tuning, y_tuning), (test, y_test) = sets[model.kind][target.kind]
    model.fit(train, y_train, tuning, y_tuning, seed=3, target=target)
    output = model.predict_proba(test)
    assert output.dtype == np.float64 and np.all(np.isfinite(output))
    again = _fast(name).fit(train, y_train, tuning, y_tuning, seed=3, target=target)
    assert again.predict_proba(test).tobytes() == output.tobytes()
    model.save(tmp_path / "m")
    loaded = Model.load(tmp_path / "m")
    assert loaded.target == target
    assert loaded.predict_proba(test).tobytes() == output.tobytes()
    return output, y_train, y_test


@pytest.mark.parametrize("name", _models(REGRESSION))
def test_regression_models_fit_predict_repeat_save_and_load(sets, name, tmp_path):
    values, y_train, y_test = _fit_repeat_save_and_load(sets, name, VALUES, tmp_path)
    assert values.shape == (N_ROWS // 3,)
    if model_class(name).kind == "tabular":  # the contract is not about skill, but these learn
        assert np.mean((values - y_test) ** 2) < np.mean((y_train.mean() - y_test) ** 2)


@pytest.mark.parametrize("name", _models(MULTICLASS))
def test_multiclass_models_fit_predict_repeat_save_and_load(sets, name, tmp_path):
    p, _, y_test = _fit_repeat_save_and_load(sets, name, CLASSES, tmp_path)
    assert p.shape == (N_ROWS // 3, 3)
    assert np.allclose(p.sum(axis=1), 1.0) and np.all((p >= 0) & (p <= 1))
    if model_class(name).kind == "tabular":  # chance is a third
        assert np.mean(np.argmax(p, axis=1) == y_test) > 0.4


def test_a_class_absent_from_training_gets_probability_zero(sets):
    (train, y_train), (tuning, y_tuning), (test, _) = sets["tabular"][MULTICLASS]
    keep = np.flatnonzero(y_train != 1)
    model = get_model("logreg").fit(
        take_rows(train, keep), y_train[keep], tuning, y_tuning, seed=0, target=CLASSES
    )
    p = model.predict_proba(test)
    assert p.shape == (N_ROWS // 3, 3) and np.all(p[:, 1] == 0)


@pytest.mark.parametrize(
    ("name", "target", "kinds"),
    [
        ("ridge", LabelTarget("binary", "boolean_value"), "regression"),
        ("logreg", VALUES, "binary and multiclass"),
        ("random_forest", VALUES, "binary and multiclass"),
        ("ridge", CLASSES, "regression"),
    ],
)
def test_a_model_refuses_a_label_kind_it_does_not_fit(sets, name, target, kinds):
    (train, y_train), (tuning, y_tuning), _ = sets["tabular"][REGRESSION]
    message = f"model `{name}` cannot fit a {target.kind} label .* fits {kinds} labels only"
    with pytest.raises(EhrbenchError, match=message):
        select_and_fit(name, train, y_train, tuning, y_tuning, 0, target=target)
    with pytest.raises(EhrbenchError, match=message):
        get_model(name).fit(train, y_train, tuning, y_tuning, 0, target=target)


def test_multiclass_training_rows_need_two_classes(sets):
    (train, y_train), (tuning, y_tuning), _ = sets["tabular"][MULTICLASS]
    with pytest.raises(
        EhrbenchError, match=r"tuning rows hold 80 row\(s\) of class\(es\) \['mild'\]"
    ):
        get_model("logreg").fit(train, y_train, tuning, np.ones_like(y_tuning), 0, target=CLASSES)


def test_regression_values_must_be_finite(sets):
    (train, y_train), (tuning, y_tuning), _ = sets["tabular"][REGRESSION]
    bad = y_train.copy()
    bad[0] = np.nan
    with pytest.raises(EhrbenchError, match="1 of them not finite"):
        get_model("ridge").fit(train, bad, tuning, y_tuning, 0, target=VALUES)


def test_tuning_chooses_by_the_kinds_score(sets):
    (train, y_train), (tuning, y_tuning), _ = sets["tabular"][REGRESSION]
    grid = [{"alpha": 1e6}, {"alpha": 1.0}]
    result = select_and_fit("ridge", train, y_train, tuning, y_tuning, 0, grid=grid, target=VALUES)
    scores = [s["tuning_neg_rmse"] for s in result.grid_scores]
    assert result.params == {"alpha": 1.0} and result.tuning_score == max(scores)
    assert result.summary()["tuning_neg_rmse"] == result.tuning_score
    (train, y_train), (tuning, y_tuning), _ = sets["tabular"][MULTICLASS]
    result = select_and_fit(
        "logreg", train, y_train, tuning, y_tuning, 0, grid=[{"C": 1.0}], target=CLASSES
    )
    assert result.score_name == "macro_ovr_auroc"
    assert result.tuning_score == tuning_score(
        CLASSES, y_tuning, result.model.predict_proba(tuning)
    )
