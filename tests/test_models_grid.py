"""Grid search by tuning AUROC, the registry, and keeping held_out out of fitting."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl
import pytest
from models_synthetic import label_rows, tabular

from ehrbench.errors import EhrbenchError
from ehrbench.meds import split_indices
from ehrbench.models import base
from ehrbench.models.base import Model, get_model
from ehrbench.models.grid import expand_grid, select_and_fit, tuning_auroc
from ehrbench.models.training import fit_and_predict


@dataclass(frozen=True)
class SpyParams:
    column: int = 0
    sign: int = 1


class Spy(Model):
    """Scores rows by a fixed column; records every row it is shown."""

    name = "spy"
    kind = "tabular"
    Hyperparameters = SpyParams
    seen: ClassVar[list[int]] = []

    @classmethod
    def param_grid(cls):
        return [{"column": 0, "sign": 1}, {"column": 0, "sign": -1}, {"column": 5, "sign": 1}]

    def _fit(self, train, y_train, tuning, y_tuning, seed):
        Spy.seen.extend(train.rows["subject_id"].to_list() + tuning.rows["subject_id"].to_list())

    def predict_proba(self, features):
        Spy.seen.extend(features.rows["subject_id"].to_list())
        column = features.matrix[:, self.params["column"]].toarray().ravel()
        return 1 / (1 + np.exp(-self.params["sign"] * column))

    def n_parameters(self):
        return 0

    def _save_state(self, directory):
        return {}

    def _load_state(self, directory, extra):
        pass


@pytest.fixture
def spy(monkeypatch):
    monkeypatch.setitem(base.MODELS, "spy", Spy)
    Spy.seen = []
    return Spy


def _sets(n=300):
    features, y = tabular(n, seed=1)
    half = n // 2
    return (
        base.take_rows(features, np.arange(half)),
        y[:half],
        base.take_rows(features, np.arange(half, n)),
        y[half:],
    )


def test_best_tuning_auroc_wins_and_scores_are_recorded(spy):
    result = select_and_fit("spy", *_sets(), seed=0)
    assert result.params == {"column": 0, "sign": 1}
    scores = [s["tuning_auroc"] for s in result.grid_scores]
    assert scores[0] > 0.6 and scores[1] == pytest.approx(1 - scores[0])
    assert result.tuning_score == max(scores)


def test_ties_go_to_the_first_setting(spy):
    tied = [{"column": 7, "sign": 2}, {"column": 7, "sign": 3}]  # same ranking, same AUROC
    result = select_and_fit("spy", *_sets(), seed=0, grid=tied)
    assert result.grid_scores[0]["tuning_auroc"] == result.grid_scores[1]["tuning_auroc"]
    assert result.params == tied[0]


@pytest.mark.parametrize(("role", "message"), [(1, "training rows hold"), (3, "tuning rows hold")])
def test_one_class_is_an_error(spy, role, message):
    args = list(_sets())
    args[role] = np.zeros_like(args[role])
    with pytest.raises(EhrbenchError, match=message):
        select_and_fit("spy", *args, seed=0)


def test_unknown_model_and_hyperparameter():
    with pytest.raises(EhrbenchError, match="unknown model `xgboost`: choose one of"):
        get_model("xgboost")
    with pytest.raises(EhrbenchError, match=r"has no hyperparameter\(s\) \['depth'\]"):
        expand_grid("lightgbm", overrides={"depth": 3})


def test_registry_lists_every_model():
    expected = ["gru", "lightgbm", "logreg", "lstm", "random_forest", "ridge", "transformer"]
    assert base.model_names() == expected


def test_overrides_are_fixed_and_duplicates_dropped():
    settings = expand_grid("lightgbm", overrides={"learning_rate": 0.1})
    assert all(s["learning_rate"] == 0.1 for s in settings)
    assert len(settings) == 4  # the two learning rates of the grid collapse into one


def _train_and_predict(name, features, labels, indices, seed):
    return fit_and_predict(name, features, labels, **indices, seed=seed)


def _run_inputs(n=600):
    features, y = tabular(n, seed=2)
    labels = label_rows(n).with_columns(pl.Series("boolean_value", y))
    names = np.array(["train", "tuning", "held_out"])[np.arange(n) % 3]
    splits = pl.DataFrame({"subject_id": labels["subject_id"], "split": names})
    return features, labels, split_indices(labels, splits, "labels.parquet")


@pytest.mark.parametrize("name", ["logreg", "lightgbm"])
def test_poisoned_held_out_labels_change_nothing(name):
    features, labels, indices = _run_inputs()
    clean = _train_and_predict(name, features, labels, indices, seed=0)
    held = np.zeros(labels.height, dtype=bool)
    held[indices["held_out"]] = True
    poisoned_labels = labels.with_columns(
        pl.when(pl.Series(held)).then(~pl.col("boolean_value")).otherwise(pl.col("boolean_value"))
    )
    poisoned = _train_and_predict(name, features, poisoned_labels, indices, seed=0)
    assert poisoned.fit.params == clean.fit.params
    assert poisoned.fit.grid_scores == clean.fit.grid_scores
    p_clean = clean.predictions["predicted_boolean_probability"].to_numpy()
    p_poisoned = poisoned.predictions["predicted_boolean_probability"].to_numpy()
    assert p_clean.tobytes() == p_poisoned.tobytes()
    assert clean.held_out_score == pytest.approx(1 - poisoned.held_out_score)


def test_held_out_rows_never_reach_the_search(spy):
    features, labels, indices = _run_inputs(90)
    _train_and_predict("spy", features, labels, indices, seed=0)
    held_out = labels["subject_id"].to_numpy()[indices["held_out"]].tolist()
    searched, predicted = Spy.seen[: -len(held_out)], Spy.seen[-len(held_out) :]
    assert predicted == held_out  # predicted once, after the model is chosen
    assert searched and not set(held_out) & set(searched)


def test_subjects_without_a_split_are_an_error():
    labels = label_rows(3)
    splits = pl.DataFrame({"subject_id": [1, 2], "split": ["train", "tuning"]})
    with pytest.raises(EhrbenchError, match=r"1 subject\(s\) \(e.g. \[3\]\) have no row"):
        split_indices(labels, splits, "labels.parquet")


def test_non_finite_predictions_score_minus_infinity_and_json_null(spy, monkeypatch):
    assert tuning_auroc(np.array([True, False]), np.array([np.nan, 0.2])) == -math.inf
    monkeypatch.setattr(
        Spy, "predict_proba", lambda self, features: np.full(features.rows.height, np.nan)
    )
    result = select_and_fit("spy", *_sets(), seed=0)
    assert result.params == Spy.param_grid()[0]
    summary = result.summary()
    assert summary["tuning_auroc"] is None and json.dumps(summary, allow_nan=False)


def test_loading_a_folder_without_a_model(tmp_path):
    with pytest.raises(EhrbenchError, match="holds no saved ehrbench model"):
        Model.load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"name": "svm", "params": {}, "state": {}}))
    with pytest.raises(EhrbenchError, match="names model `svm`, which is not one of"):
        Model.load(tmp_path)
