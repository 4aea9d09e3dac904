"""A suite mixing a binary, a regression and a multiclass cohort, end to end: grid, tables,
paired comparisons and report.

The non-binary cohorts are real cohort configs (copies of the binary readmission cohort under
other names) whose extraction in the suite's output folder is replaced, through
`Extraction.write`, by a label table written here with the same rows and a known signal: the
suite reuses an extraction whose record matches the dataset and the cohort and predicates files,
so the grid then runs on these labels. Nothing is patched. The library's own non-binary cohorts
(`length_of_stay`, the `lab_*_levels`) give their class order through their configs.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest
from protocol_helpers import COHORT, COHORTS, tiny_dataset, tiny_suite

from ehrbench.cli import main
from ehrbench.cohort.artifact import Extraction, ExtractionFiles
from ehrbench.meds import write_labels
from ehrbench.meds.label_kinds import MULTICLASS, REGRESSION
from ehrbench.protocol.outputs import write_outputs
from ehrbench.protocol.prepare import load_cohorts, prepare_dataset
from ehrbench.protocol.runner import GridRunner
from ehrbench.protocol.suite import load_suite
from ehrbench.report.build import build_report

VALUE, LEVEL = "stay_value", "stay_level"
METRIC_COLUMNS = ["group", "level", "metric", "value", "ci_low", "ci_high", "n_boot"]


def _relabel(labels: pl.DataFrame, kind: str) -> pl.DataFrame:
    """The binary labels turned into a value or one of three classes, keeping their signal."""
    rng = np.random.default_rng(0)
    positive = labels["boolean_value"].to_numpy()
    key = labels.select("subject_id", "prediction_time")
    if kind == REGRESSION:
        value = 5.0 + 10.0 * positive + rng.normal(0, 2.0, size=positive.size)
        return key.with_columns(pl.Series("float_value", value, dtype=pl.Float32))
    draw = rng.random(positive.size)
    level = np.where(
        positive & (draw < 0.8), "high", np.where(~positive & (draw < 0.6), "low", "mid")
    )
    return key.with_columns(pl.Series("categorical_value", level))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kinds")
    dataset = tiny_dataset(folder / "meds")
    cohorts = folder / "cohorts"
    cohorts.mkdir()
    for name in (COHORT, VALUE, LEVEL):
        shutil.copy(COHORTS / f"{COHORT}.yaml", cohorts / f"{name}.yaml")
    suite = load_suite(
        tiny_suite(
            folder,
            dataset,
            cohorts_dir=str(cohorts),
            cohorts=[COHORT, VALUE, LEVEL],
            models=["logreg", "ridge", "lightgbm"],
            baseline="lightgbm",
            grids={
                "logreg": [{"C": 0.1}],
                "ridge": [{"alpha": 1.0}, {"alpha": 100.0}],
                "lightgbm": [{"num_leaves": 8, "learning_rate": 0.1, "n_estimators": 50}],
            },
        )
    )
    meds = prepare_dataset(suite)
    loaded, errors = load_cohorts(suite, meds, meds.subject_splits())
    assert not errors
    for name, kind in ((VALUE, REGRESSION), (LEVEL, MULTICLASS)):
        folder = suite.output / "cohorts" / name
        files = ExtractionFiles(
            labels=folder / "labels.parquet",
            attrition=folder / "attrition.json",
            attrition_text=folder / "attrition.txt",
        )
        Extraction(_relabel(loaded[name].labels, kind), loaded[name].attrition).write(files)
    result = GridRunner(suite).run()
    write_outputs(result)
    return suite, result


def test_each_cohort_runs_with_the_models_of_its_label_kind(mixed):
    suite, result = mixed
    assert result.failed == 0 and set(result.statuses.values()) == {"ok"}
    ran = {(p.cohort, p.model) for p in result.planned}
    # logreg does not regress and ridge does not classify: those pairs are not planned.
    assert ran == {
        (COHORT, "logreg"),
        (COHORT, "lightgbm"),
        (VALUE, "ridge"),
        (VALUE, "lightgbm"),
        (LEVEL, "logreg"),
        (LEVEL, "lightgbm"),
    }
    results = pl.read_parquet(suite.output / "results.parquet")
    overall = results.filter(pl.col("group") == "all")
    metrics = {
        c: set(overall.filter(pl.col("cohort") == c)["metric"]) for c in (COHORT, VALUE, LEVEL)
    }
    assert {"auroc", "auprc", "brier"} <= metrics[COHORT]
    assert metrics[VALUE] == {"mae", "rmse", "r2", "n_rows", "n_subjects"}
    assert metrics[LEVEL] == {"macro_ovr_auroc", "accuracy", "macro_f1", "n_rows", "n_subjects"}
    rmse = overall.filter((pl.col("cohort") == VALUE) & (pl.col("metric") == "rmse"))
    assert (rmse["ci_low"] <= rmse["value"]).all() and (rmse["value"] <= rmse["ci_high"]).all()
    assert set(results.filter(pl.col("cohort") == VALUE)["group"]) == {"all", "sex", "age_band"}


def test_predictions_take_the_form_of_each_kind(mixed):
    suite, result = mixed
    forms = {}
    for planned in result.planned:
        path = suite.output / "runs" / planned.key.run_id / "predictions.parquet"
        forms[planned.cohort] = pl.read_parquet(path).columns
    assert forms[COHORT][2:] == [
        "boolean_value",
        "predicted_boolean_value",
        "predicted_boolean_probability",
    ]
    assert forms[VALUE][2:] == ["float_value", "predicted_float_value"]
    assert forms[LEVEL][2:] == [
        "categorical_value",
        "predicted_categorical_value",
        "predicted_probability//high",
        "predicted_probability//low",
        "predicted_probability//mid",
    ]


def test_k_counts_rows_per_class_or_in_all(mixed):
    suite, result = mixed
    store_runs = {(p.cohort, p.model, str(p.run.k), p.run.seed): p for p in result.planned}

    def info(cohort, model):
        planned = store_runs[(cohort, model, "4", 0)]
        record = suite.output / "runs" / planned.key.run_id / "run.json"
        return json.loads(record.read_text())["info"]

    assert info(VALUE, "ridge")["train_rows"] == 4  # k examples in all
    assert info(LEVEL, "logreg")["train_rows"] == 12  # k examples of each of three classes
    assert info(COHORT, "logreg")["train_rows"] == 8  # k of each of two classes, as before
    assert "tuning_neg_rmse" in info(VALUE, "ridge")
    assert "tuning_macro_ovr_auroc" in info(LEVEL, "logreg")


def test_paired_comparisons_use_each_kinds_primary_metric(mixed):
    suite, _ = mixed
    paired = pl.read_parquet(suite.output / "paired.parquet")
    by_cohort = dict(paired.group_by("cohort").agg(pl.col("metric").first()).iter_rows())
    assert by_cohort == {COHORT: "auroc", VALUE: "rmse", LEVEL: "macro_ovr_auroc"}
    calibration = pl.read_parquet(suite.output / "calibration.parquet")
    assert set(calibration["cohort"]) == {COHORT}


def test_the_report_shows_each_kind_with_its_fitting_plot(mixed, tmp_path):
    suite, _ = mixed
    page, markdown = build_report(suite.output, tmp_path / "report")
    text = markdown.read_text()
    assert "## Regression and multiclass cohorts" in text
    assert f"### {VALUE}" in text and "regression on `float_value`" in text
    assert "multiclass on `categorical_value`, unordered classes high, low, mid" in text
    assert "k is the number of training (and tuning) examples in all" in text
    assert (tmp_path / "report" / "figures" / f"fit_{VALUE}.png").stat().st_size > 1000
    assert (tmp_path / "report" / "figures" / f"fit_{LEVEL}.png").stat().st_size > 1000
    assert "mean float_value" in text  # the cohort counts of each kind
    # The binary sections list the binary cohort only.
    assert f"curve_{COHORT}.png" in text and f"curve_{VALUE}.png" not in text


def test_a_cohort_config_gives_the_class_order_and_the_label_kind(tmp_path):
    dataset = tiny_dataset(tmp_path / "meds")
    levels, stay = "lab_hyponatremia_levels", "length_of_stay"
    suite = load_suite(tiny_suite(tmp_path, dataset, cohorts=[levels, stay, COHORT]))
    meds = prepare_dataset(suite)
    loaded, errors = load_cohorts(suite, meds, meds.subject_splits())
    assert not errors
    target = loaded[levels].target
    # The listed classes, most severe first, then `otherwise`.
    assert target.classes == ("severe", "moderate", "mild", "normal") and target.ordered
    assert list(loaded[levels].summary["all"]["classes"]) == list(target.classes)
    assert loaded[stay].target.kind == REGRESSION and loaded[COHORT].target.kind == "binary"
    # A rerun reuses the extractions and still reads the order from the config.
    again, _ = load_cohorts(suite, meds, meds.subject_splits())
    assert again[levels].target.classes == target.classes


@pytest.mark.parametrize("cohort", [VALUE, LEVEL])
def test_evaluate_reproduces_the_runs_of_each_kind(mixed, tmp_path, cohort):
    suite, result = mixed
    runs = {
        p.model: suite.output / "runs" / p.key.run_id / "predictions.parquet"
        for p in result.planned
        if p.cohort == cohort and str(p.run.k) == "all"
    }
    labels = pl.read_parquet(suite.output / "cohorts" / cohort / "labels.parquet")
    held_out = labels.join(
        pl.read_parquet(next(iter(runs.values()))).select("subject_id", "prediction_time"),
        on=["subject_id", "prediction_time"],
        how="semi",
    )
    write_labels(held_out, tmp_path / f"{cohort}.parquet")
    out = tmp_path / "evaluated"
    code = main(
        [
            "evaluate", "--labels", str(tmp_path / f"{cohort}.parquet"),
            "--data", str(suite.dataset_path), "--out", str(out), "--resamples", "100",
            "--seed", "0", "--baseline", "lightgbm", "--predictions",
            *(f"{name}={path}" for name, path in runs.items()),
        ]
    )  # fmt: skip
    assert code == 0
    suite_results = pl.read_parquet(suite.output / "results.parquet").filter(
        (pl.col("cohort") == cohort) & (pl.col("k") == "all")
    )
    mine = pl.read_parquet(out / "results.parquet")
    for model in runs:
        expected = suite_results.filter(pl.col("model") == model).select(METRIC_COLUMNS)
        got = mine.filter(pl.col("model") == model).select(METRIC_COLUMNS)
        assert got.height > 5 and got.equals(expected), model
    report = (out / "report" / "report.md").read_text()
    assert "## Regression and multiclass cohorts" in report
    # With no binary cohort, the sections that read binary cohorts are left out.
    assert "## Macro-average" not in report and "## Calibration" not in report


def test_evaluate_refuses_predictions_without_the_kinds_columns(mixed, tmp_path, capsys):
    suite, result = mixed
    planned = next(p for p in result.planned if p.cohort == VALUE)
    frame = pl.read_parquet(suite.output / "runs" / planned.key.run_id / "predictions.parquet")
    labels = frame.select("subject_id", "prediction_time", "float_value")
    write_labels(labels, tmp_path / "labels.parquet")
    frame.drop("predicted_float_value").write_parquet(tmp_path / "p.parquet")
    code = main(
        [
            "evaluate", "--labels", str(tmp_path / "labels.parquet"), "--out",
            str(tmp_path / "out"), "--predictions", f"mine={tmp_path / 'p.parquet'}",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "needs a numeric `predicted_float_value` column" in err
    assert "(meds-evaluation form of a regression label)" in err
