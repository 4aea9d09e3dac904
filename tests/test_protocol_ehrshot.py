"""`protocol: ehrshot`: one test per rule EHRSHOT's evaluation changes, and the default kept."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import yaml
from meds_builders import events_frame, write_meds_folder
from protocol_helpers import tiny_dataset, tiny_suite
from sklearn.model_selection import ParameterGrid

import ehrbench.protocol.runner as runner_module
from ehrbench.features.ehrshot_counts import build_ehrshot_counts
from ehrbench.features.kinds import EHRSHOT_COUNTS, TABULAR
from ehrbench.features.tabular import TabularFeatures
from ehrbench.meds import open_dataset
from ehrbench.models.grid import expand_grid, select_and_fit
from ehrbench.models.tabular import LightGBMModel
from ehrbench.protocol import ehrshot
from ehrbench.protocol.fewshot import ALL, FewShotPlan
from ehrbench.protocol.outputs import write_outputs
from ehrbench.protocol.runner import GridRunner
from ehrbench.protocol.store import ResultsStore
from ehrbench.protocol.suite import load_suite
from ehrbench.report.build import build_report
from ehrbench.report.tables import at_all, load_results, overall

# EHRSHOT's grids as its code writes them (utils.py), with the keys its script adds.
EHRSHOT_LGBM = {
    "max_depth": [3, 6, -1],
    "learning_rate": [0.02, 0.1, 0.5],
    "num_leaves": [10, 25, 100],
    "min_child_samples": [1],
}
EHRSHOT_RF = {
    "n_estimators": [10, 20, 50, 100, 300],
    "max_depth": [3, 5, 10, 20, 50],
    "min_samples_leaf": [1],
    "min_samples_split": [2],
}
EHRSHOT_LR = {"C": [1e-8, 1e-6, 1e-4, 1e-2, 1e-1, 1, 1e2, 1e4], "penalty": ["l2"]}


def _features(matrix: np.ndarray) -> TabularFeatures:
    rows = pl.DataFrame({"subject_id": range(matrix.shape[0])})
    names = [f"f{i}" for i in range(matrix.shape[1])]
    return TabularFeatures(sp.csr_matrix(matrix.astype(np.float32)), rows, names)


def _only(point: dict, keys: tuple[str, ...]) -> dict:
    return {key: point[key] for key in keys}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("ehrshot") / "meds")


def test_grids_are_ehrshots_in_parameter_grid_order(tmp_path, dataset):
    suite = load_suite(
        tiny_suite(tmp_path, dataset, protocol="ehrshot", grids=None),
        overrides=["models=[logreg,lightgbm,random_forest]"],
    )
    lightgbm = expand_grid("lightgbm", suite.grids["lightgbm"], suite.model_params["lightgbm"])
    keys = ("learning_rate", "max_depth", "num_leaves")
    assert [_only(p, keys) for p in lightgbm] == [
        _only(p, keys) for p in ParameterGrid(EHRSHOT_LGBM)
    ]
    assert {(p["n_estimators"], p["early_stopping"], p["min_data_in_leaf"]) for p in lightgbm} == {
        (100, False, 1)
    }
    forest = expand_grid("random_forest", suite.grids["random_forest"])
    keys = ("max_depth", "n_estimators")
    assert [_only(p, keys) for p in forest] == [_only(p, keys) for p in ParameterGrid(EHRSHOT_RF)]
    logreg = expand_grid("logreg", suite.grids["logreg"], suite.model_params["logreg"])
    assert [p["C"] for p in logreg] == [p["C"] for p in ParameterGrid(EHRSHOT_LR)]
    assert {p["max_iter"] for p in logreg} == {1000}
    assert suite.refit_settings("logreg") == {"max_iter": 100}  # EHRSHOT refits with defaults


def test_a_suites_own_grid_still_wins_under_ehrshot(tmp_path, dataset):
    suite = load_suite(tiny_suite(tmp_path, dataset, protocol="ehrshot"))
    assert suite.grids["logreg"] == [{"C": 0.01}, {"C": 0.1}]
    assert suite.model_params["lightgbm"]["early_stopping"] is False


def test_lightgbm_without_early_stopping_grows_exactly_100_trees():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = x[:, 0] + rng.normal(scale=0.5, size=60) > 0
    params = {"n_estimators": 100, "early_stopping": False, "min_data_in_leaf": 1}
    model = LightGBMModel(**params).fit(_features(x[:40]), y[:40], _features(x[40:]), y[40:], 0)
    assert model.booster.num_trees() == 100
    # The tuning rows play no part in the fit: other tuning rows, the same model.
    other = LightGBMModel(**params).fit(_features(x[:40]), y[:40], _features(-x[40:]), ~y[40:], 0)
    np.testing.assert_array_equal(
        model.predict_proba(_features(x)), other.predict_proba(_features(x))
    )
    early = LightGBMModel(n_estimators=100).fit(
        _features(x[:40]), y[:40], _features(x[40:]), y[40:], 0
    )
    assert early.booster.num_trees() < 100  # ehrbench's default still stops early


def test_refit_settings_replace_the_chosen_settings_in_a_final_fit():
    x = np.tile([[1.0, 0.0], [0.0, 1.0]], (6, 1))
    y = np.tile([True, False], 6)
    fit = select_and_fit(
        "logreg",
        _features(x[:6]),
        y[:6],
        _features(x[6:]),
        y[6:],
        0,
        grid=[{"C": 0.1}, {"C": 10.0}],
        refit={"max_iter": 100},
    )
    assert fit.params == {"C": 0.1, "max_iter": 100}


@pytest.mark.parametrize("size", [1, 2, 8, 256])
@pytest.mark.parametrize("seed", [0, 1, 4])
def test_shuffle_is_numpys_seeded_global_shuffle(size, seed):
    rows = np.arange(100, 100 + size)
    idx = np.arange(size)
    np.random.seed(seed)
    np.random.shuffle(idx)
    np.testing.assert_array_equal(ehrshot.shuffle_rows(rows, seed), rows[idx])


def test_all_runs_once_per_seed():
    plan = FewShotPlan((4, ALL), (0, 1, 2, 3, 4), all_per_seed=True)
    assert [r.seed for r in plan.runs if r.k == ALL] == [0, 1, 2, 3, 4]
    assert all(plan.replicates(r) == (r.seed,) for r in plan.runs)
    shared = FewShotPlan((4, ALL), (0, 1, 2, 3, 4))
    assert [r.seed for r in shared.runs if r.k == ALL] == [0]


def test_ehrshot_defaults_k_seeds_and_features(tmp_path, dataset):
    path = tiny_suite(tmp_path, dataset, protocol="ehrshot")
    settings = yaml.safe_load(path.read_text())
    del settings["k"], settings["seeds"]
    path.write_text(yaml.safe_dump(settings))
    suite = load_suite(path)
    assert suite.plan.ks == (1, 2, 4, 8, 16, 32, 64, 128, ALL)
    assert suite.plan.seeds == (0, 1, 2, 3, 4) and suite.plan.all_per_seed
    assert suite.model_kind("lightgbm") is EHRSHOT_COUNTS
    assert load_suite(tiny_suite(tmp_path, dataset)).model_kind("lightgbm") is TABULAR


def test_an_unknown_protocol_is_an_error_naming_the_key(tmp_path, dataset):
    with pytest.raises(Exception, match=r"`protocol`.*must be one of.*Did you mean 'ehrshot'"):
        load_suite(tiny_suite(tmp_path, dataset, protocol="ehrshoot"))


def test_the_protocol_is_in_the_hashes_and_the_default_keeps_them(tmp_path, dataset):
    absent = load_suite(tiny_suite(tmp_path, dataset))
    explicit = load_suite(tiny_suite(tmp_path, dataset, protocol="ehrbench"))
    other = load_suite(tiny_suite(tmp_path, dataset, protocol="ehrshot"))
    assert absent.config_hash() == explicit.config_hash() != other.config_hash()
    run = ("readmission_30d", "logreg")
    assert absent.run_config_hash(*run) == explicit.run_config_hash(*run)
    assert absent.run_config_hash(*run) != other.run_config_hash(*run)


# Hand-made dataset: subjects 1 and 2 train, 3 held_out.
ICD = "DIAGNOSIS//ICD//10//"
EVENTS = [
    (1, None, "GENDER//F", None),
    (1, dt.datetime(2000, 1, 1), "MEDS_BIRTH", None),
    (1, dt.datetime(2010, 1, 1), ICD + "E119", None),
    (1, dt.datetime(2010, 6, 1), ICD + "E118", None),
    (1, dt.datetime(2010, 6, 1), "LAB//A", 5.0),  # valued: counts nowhere
    (1, dt.datetime(2010, 7, 1), "LAB//A", None),
    (1, dt.datetime(2020, 1, 2), ICD + "E119", None),  # after the first row's time
    (2, None, "GENDER//M", None),
    (2, dt.datetime(1990, 1, 1), "MEDS_BIRTH", None),
    (2, dt.datetime(2019, 1, 1), ICD + "I10", None),  # at the prediction time: counts
    (2, dt.datetime(2019, 1, 1), "LAB//B", 1.0),  # only ever valued: no column
    (3, dt.datetime(1980, 1, 1), "MEDS_BIRTH", None),
    (3, dt.datetime(2018, 1, 1), ICD + "E119", None),
    (3, dt.datetime(2018, 1, 1), ICD + "Z992", None),  # held_out only: no column
]
LABEL_TIMES = [
    (1, dt.datetime(2020, 1, 1)),
    (1, dt.datetime(2021, 1, 1)),
    (2, dt.datetime(2019, 1, 1)),
    (3, dt.datetime(2019, 1, 1)),
]
BIRTHS = {1: dt.datetime(2000, 1, 1), 2: dt.datetime(1990, 1, 1), 3: dt.datetime(1980, 1, 1)}
EXPECTED_CODES = [
    ICD + "E11",
    ICD + "E118",
    ICD + "E119",
    ICD + "I10",
    "GENDER//F",
    "GENDER//M",
    "LAB//A",
    "MEDS_BIRTH",
]
EXPECTED_COUNTS = [
    [2, 1, 1, 0, 1, 0, 1, 1],
    [3, 1, 2, 0, 1, 0, 1, 1],
    [0, 0, 0, 1, 0, 1, 0, 1],
    [1, 0, 1, 0, 0, 0, 0, 1],
]


@pytest.fixture(scope="module")
def hand_made_counts(tmp_path_factory):
    root = write_meds_folder(
        tmp_path_factory.mktemp("counts") / "meds",
        events_frame(EVENTS),
        splits={1: "train", 2: "train", 3: "held_out"},
    )
    labels = pl.DataFrame(LABEL_TIMES, schema=["subject_id", "prediction_time"], orient="row")
    return build_ehrshot_counts(open_dataset(root), labels)


def test_count_features_match_hand_counts_with_prefix_ancestors(hand_made_counts):
    features = hand_made_counts
    assert features.feature_names == ["age/z_score"] + [
        f"{c}/count/lifetime" for c in EXPECTED_CODES
    ]
    np.testing.assert_array_equal(features.matrix.toarray()[:, 1:], EXPECTED_COUNTS)


def test_count_features_shape_is_read_from_their_file(hand_made_counts, tmp_path):
    hand_made_counts.save(tmp_path)
    assert EHRSHOT_COUNTS.shape(tmp_path) == hand_made_counts.shape
    assert TABULAR.shape(tmp_path) == hand_made_counts.shape  # the same matrix file


def test_age_is_whole_days_over_365_z_scored_on_train_rows(hand_made_counts):
    ages = np.array([(t - BIRTHS[s]).days / 365 for s, t in LABEL_TIMES])
    mean, std = ages[:3].mean(), ages[:3].std(ddof=1)  # the three train rows
    np.testing.assert_allclose(
        hand_made_counts.matrix.toarray()[:, 0], (ages - mean) / std, rtol=1e-6
    )


def test_vocabulary_comes_from_train_rows_only(hand_made_counts):
    names = hand_made_counts.feature_names
    assert not any("Z99" in name for name in names)  # held_out subject's code
    assert not any("LAB//B" in name for name in names)  # only valued events


@pytest.fixture(scope="module")
def ehrshot_grid(tmp_path_factory, dataset):
    """A tiny grid under `protocol: ehrshot`, recording what reached the model fit."""
    folder = tmp_path_factory.mktemp("ehrshot_grid")
    suite = load_suite(
        tiny_suite(folder, dataset, protocol="ehrshot"),
        overrides=["models=[logreg]", "grids.logreg=[{C: 0.01}]"],
    )
    drawn, fitted = [], []
    real_rows, real_fit = runner_module.fewshot_rows, runner_module.fit_and_predict

    def record_rows(data, run, plan):
        rows = real_rows(data, run, plan)
        drawn.append((run, rows[0]))
        return rows

    def record_fit(name, features, labels, **kwargs):
        fitted.append(kwargs)
        return real_fit(name, features, labels, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner_module, "fewshot_rows", record_rows)
        patch.setattr(runner_module, "fit_and_predict", record_fit)
        result = GridRunner(suite).run()
    write_outputs(result)
    return suite, result, drawn, fitted


def test_ehrshot_grid_shuffles_train_rows_and_runs_all_per_seed(ehrshot_grid):
    suite, result, drawn, fitted = ehrshot_grid
    assert [(str(r.k), r.seed) for r, _ in drawn] == [("4", 0), ("4", 1), ("all", 0), ("all", 1)]
    for (run, rows), kwargs in zip(drawn, fitted, strict=True):
        idx = np.arange(rows.size)
        np.random.seed(run.seed)
        np.random.shuffle(idx)
        np.testing.assert_array_equal(kwargs["train"], rows[idx])
        assert kwargs["seed"] == run.seed and kwargs["refit"] == {"max_iter": 100}
    all_runs = [
        kwargs["train"] for (run, _), kwargs in zip(drawn, fitted, strict=True) if run.k == ALL
    ]
    assert sorted(all_runs[0]) == sorted(all_runs[1]) and list(all_runs[0]) != list(all_runs[1])
    assert set(result.statuses.values()) == {"ok"}
    assert list((suite.output / "features").glob("ehrshot_counts-*"))


def test_report_header_and_manifest_name_the_protocol(ehrshot_grid):
    suite = ehrshot_grid[0]
    assert json.loads((suite.output / "manifest.json").read_text())["protocol"] == "ehrshot"
    _, markdown = build_report(suite.output)
    header = markdown.read_text().split("\n## ")[0]
    assert "| protocol | ehrshot (EHRSHOT's grids" in header


# Predictions of the default-protocol tiny grid, as written before `protocol` existed
# (sha256 of their CSV, first 16 hex digits), with the run config hashes (which cover the
# predicates file: they changed when it gained the EHRSHOT level predicates, the CSVs did not).
DEFAULT_RUNS = {
    ("logreg", "4", 0): ("34f71f7e8afee6e8", "bee68856a0d09b92"),
    ("logreg", "4", 1): ("34f71f7e8afee6e8", "047e26e33af7f0b3"),
    ("logreg", "all", 0): ("34f71f7e8afee6e8", "57362a80aad5f507"),
    ("lightgbm", "4", 0): ("6d97a56eb07896fe", "f622c78eade8d693"),
    ("lightgbm", "4", 1): ("6d97a56eb07896fe", "61d4eeb6744cbb83"),
    ("lightgbm", "all", 0): ("6d97a56eb07896fe", "a5ad4a4ddeced1ed"),
}


def test_the_default_protocol_writes_the_same_predictions_as_before(tmp_path, dataset):
    suite = load_suite(tiny_suite(tmp_path, dataset))
    result = GridRunner(suite).run()
    store = ResultsStore(suite.output)
    found = {}
    for planned in result.planned:
        csv = store.predictions(planned.key).write_csv().encode()
        key = (planned.model, str(planned.run.k), planned.run.seed)
        found[key] = (planned.key.config_hash, hashlib.sha256(csv).hexdigest()[:16])
    assert found == DEFAULT_RUNS


def test_the_leaderboard_at_all_is_the_mean_over_seeds(ehrshot_grid):
    folder = load_results(ehrshot_grid[0].output)
    runs = overall(folder, "auroc").filter(pl.col("k") == ALL)
    assert runs.height == 2  # seeds 0 and 1
    assert at_all(folder, "auroc")["value"].to_list() == [runs["value"].mean()]
