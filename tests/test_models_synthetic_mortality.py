"""Slow: every tabular model and a GRU on the synthetic in-hospital mortality cohort.

Checks that each model beats chance clearly on held_out, and that LightGBM beats models that see
only age and sex. Run with `pytest -m slow tests/test_models_synthetic_mortality.py`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sklearn.metrics import roc_auc_score

from ehrbench.cli import main
from ehrbench.features.sequence import build_sequences
from ehrbench.features.tabular import build_tabular
from ehrbench.meds import label_values, open_dataset, read_labels, split_indices
from ehrbench.models.base import take_rows
from ehrbench.models.grid import select_and_fit

REPO = Path(__file__).parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_mortality")
    assert main(["synth", "--subjects", "2000", "--seed", "0", "--out", str(root / "meds")]) == 0
    labels_path = root / "mortality.parquet"
    code = main(
        [
            "cohort", "extract", str(REPO / "cohorts" / "mortality_in_hospital.yaml"),
            "--predicates", str(REPO / "cohorts" / "predicates" / "synthetic.yaml"),
            "--data", str(root / "meds"), "--out", str(labels_path),
        ]
    )  # fmt: skip
    assert code == 0
    dataset = open_dataset(root / "meds", deep=False)
    labels = read_labels(labels_path)
    indices = split_indices(labels, dataset.subject_splits(), str(labels_path))
    return dataset, labels, label_values(labels, "mortality"), indices


def _held_out_auroc(name, features, y, indices, **overrides):
    train, tuning, held_out = indices["train"], indices["tuning"], indices["held_out"]
    fit = select_and_fit(
        name, take_rows(features, train), y[train], take_rows(features, tuning), y[tuning], 0,
        overrides=overrides or None,
    )  # fmt: skip
    return roc_auc_score(y[held_out], fit.model.predict_proba(take_rows(features, held_out)))


def test_models_beat_chance_and_lightgbm_beats_age_and_sex(cohort):
    dataset, labels, y, indices = cohort
    features = build_tabular(dataset, labels)
    scores = {name: _held_out_auroc(name, features, y, indices) for name in ("logreg", "lightgbm")}
    scores["random_forest"] = _held_out_auroc("random_forest", features, y, indices)
    keep = [
        i
        for i, name in enumerate(features.feature_names)
        if name == "age/years" or name.startswith("static/GENDER//")
    ]
    assert len(keep) == 3
    age_sex = dataclasses.replace(
        features, matrix=features.matrix[:, keep].tocsr(), feature_names=["a", "b", "c"]
    )
    baseline = max(_held_out_auroc(n, age_sex, y, indices) for n in ("logreg", "lightgbm"))
    assert all(score > 0.75 for score in scores.values()), scores
    assert scores["lightgbm"] > baseline + 0.1, (scores, baseline)


def test_gru_beats_chance(cohort):
    dataset, labels, y, indices = cohort
    features = build_sequences(dataset, labels)
    assert _held_out_auroc("gru", features, y, indices, hidden=32, learning_rate=1e-3) > 0.7
