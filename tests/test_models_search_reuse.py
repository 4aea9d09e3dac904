"""A search's settings share work on the same rows (`Model.fit_each`, `Model.reuse`) and the
random forest fits a dense copy of dense-enough features: every fitted model is the one the
setting gives fitted alone on the sparse matrix, byte for byte, on real synthetic features."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from meds_builders import synthetic_mortality
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler

from ehrbench.features.config import TabularConfig
from ehrbench.features.tabular import build_tabular
from ehrbench.meds import label_values, open_dataset, read_labels
from ehrbench.meds.label_kinds import REGRESSION, LabelTarget
from ehrbench.models.base import get_model, model_class, take_rows
from ehrbench.models.grid import expand_grid
from ehrbench.models.tabular import forest_input


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    """Train and tuning rows (features, labels) of synthetic in-hospital mortality, with the
    benchmark's windows: counts about as dense as the grid's."""
    meds, labels_path = synthetic_mortality(tmp_path_factory.mktemp("search_reuse"), 400)
    labels = read_labels(labels_path)
    features = build_tabular(open_dataset(meds, deep=False), labels, TabularConfig())
    y = label_values(labels, "labels.parquet")
    order = np.random.default_rng(0).permutation(len(y))
    train, tuning = order[: len(y) // 2], order[len(y) // 2 :]
    assert 0 < y[train].sum() < train.size and 0 < y[tuning].sum() < tuning.size
    return take_rows(features, train), y[train], take_rows(features, tuning), y[tuning]


def _searched(name, rows, grid=None, **overrides):
    """Every setting of the search fitted through `fit_each` (the settings sharing work)."""
    settings = expand_grid(name, grid, overrides)
    return settings, list(model_class(name).fit_each(settings, *rows, seed=3))


@pytest.mark.parametrize(
    "grid",
    [
        model_class("lightgbm").param_grid()[1:4],  # depth, leaves and rate: one binning
        [{"min_data_in_leaf": 5}, {"min_data_in_leaf": 40}, {"min_data_in_leaf": 5}],
    ],
    ids=["own grid", "rebinning settings"],
)
def test_lightgbm_on_shared_datasets_is_each_setting_fitted_alone(rows, grid):
    train, y_train, tuning, y_tuning = rows
    settings, models = _searched("lightgbm", rows, grid, n_estimators=100)
    for setting, model in zip(settings, models, strict=True):
        alone = get_model("lightgbm", **setting).fit(train, y_train, tuning, y_tuning, seed=3)
        assert model.booster.model_to_string() == alone.booster.model_to_string()
        assert model.predict_proba(tuning).tobytes() == alone.predict_proba(tuning).tobytes()


@pytest.mark.parametrize(
    ("name", "estimator_of"),
    [
        (
            "logreg",
            lambda s: LogisticRegression(C=s["C"], l1_ratio=0.0, max_iter=1000, random_state=3),
        ),
        ("ridge", lambda s: Ridge(alpha=s["alpha"], solver="sparse_cg")),
    ],
)
def test_linear_settings_on_rows_scaled_once_are_scikit_learns_own_pipelines(
    rows, name, estimator_of
):
    """Each setting of a search, its scaler fitted once (`_fit_scaled`), pickles to the bytes of
    scikit-learn's own pipeline of that setting fitted alone."""
    train, y_train, tuning, y_tuning = rows
    target = LabelTarget(REGRESSION, "float_value") if name == "ridge" else None
    y = y_train.astype(np.float64) if target else y_train
    settings = expand_grid(name, None, {})
    extra = {"target": target} if target else {}
    models = model_class(name).fit_each(settings, train, y, tuning, y_tuning, seed=3, **extra)
    for setting, model in zip(settings, models, strict=True):
        own = make_pipeline(MaxAbsScaler(), estimator_of(setting)).fit(train.matrix, y)
        assert pickle.dumps(model.estimator) == pickle.dumps(own)  # scaler and coefficients


def test_random_forest_on_a_dense_copy_grows_the_sparse_trees(rows):
    train, y_train, tuning, _ = rows
    assert isinstance(
        forest_input(train.matrix, "F"), np.ndarray
    )  # the dense path is the one tested
    settings, models = _searched("random_forest", rows, n_estimators=25)
    for setting, model in zip(settings, models, strict=True):
        sparse = RandomForestClassifier(random_state=3, **setting)
        sparse.fit(train.matrix, y_train)
        trees = zip(model.estimator.estimators_, sparse.estimators_, strict=True)
        for dense_tree, sparse_tree in trees:
            for part in ("feature", "threshold", "value", "children_left"):
                got, want = getattr(dense_tree.tree_, part), getattr(sparse_tree.tree_, part)
                assert got.tobytes() == want.tobytes()
        expected = sparse.predict_proba(tuning.matrix)[:, 1]
        assert model.predict_proba(tuning).tobytes() == expected.tobytes()


@pytest.mark.parametrize("n_train", [4, 9, 10, 30, 49, 50, 120])
def test_forest_settings_whose_depth_cannot_bind_share_trees_fitted_alone(rows, n_train):
    # On fewer than 10 rows depth 8 cannot bind at leaf size 1, on fewer than 50 at leaf size 5
    # (`binding_depth`): the search grows those trees once. Each setting must still be the
    # forest scikit-learn grows for it alone, tree for tree, and say its own max_depth.
    train, y_train, tuning, y_tuning = rows
    y_train = y_train.astype(bool)
    positives = np.flatnonzero(y_train)[: n_train // 2]
    picked = np.sort(np.r_[positives, np.flatnonzero(~y_train)[: n_train - positives.size]])
    few = (take_rows(train, picked), y_train[picked], tuning, y_tuning)
    settings, models = _searched("random_forest", few, n_estimators=20)
    for setting, model in zip(settings, models, strict=True):
        alone = RandomForestClassifier(random_state=3, **setting)
        alone.fit(few[0].matrix, few[1])
        assert model.estimator.max_depth == setting["max_depth"]
        for tree, alone_tree in zip(model.estimator.estimators_, alone.estimators_, strict=True):
            assert tree.max_depth == setting["max_depth"]
            for part in ("feature", "threshold", "value", "children_left"):
                got, want = getattr(tree.tree_, part), getattr(alone_tree.tree_, part)
                assert got.tobytes() == want.tobytes()
        expected = alone.predict_proba(tuning.matrix)[:, 1]
        assert model.predict_proba(tuning).tobytes() == expected.tobytes()
    shared = {
        (setting["max_depth"], setting["min_samples_leaf"]): model.estimator.estimators_[0].tree_
        for setting, model in zip(settings, models, strict=True)
    }
    for leaf, shares_below in ((1, 10), (5, 50)):
        assert (shared[(8, leaf)] is shared[(None, leaf)]) == (n_train < shares_below)


@pytest.mark.parametrize("name", ["logreg", "lightgbm", "random_forest"])
def test_a_fitted_model_keeps_no_search_state(rows, name):
    _, models = _searched(name, rows, model_class(name).param_grid()[:2])
    models.append(get_model(name, **models[0].params).fit(*rows, seed=3))
    assert all(model._shared == {} for model in models)
    assert pickle.loads(pickle.dumps(models[0]))._shared == {}
