"""`ehrbench evaluate`: outside predictions reproduce a suite run's numbers exactly, and every
mismatch between a prediction file and the labels is a clear error."""

from __future__ import annotations

import json

import polars as pl
import pytest
from protocol_helpers import COHORT, tiny_dataset, tiny_suite

from ehrbench.cli import main
from ehrbench.errors import EhrbenchError
from ehrbench.protocol.commands import run_suite
from ehrbench.protocol.outside import Evaluation, evaluate_outside

METRIC_COLUMNS = ["group", "level", "metric", "value", "ci_low", "ci_high", "n_boot"]


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
    """A tiny grid at k = all; the held-out label rows; each model's run predictions."""
    folder = tmp_path_factory.mktemp("outside")
    dataset = tiny_dataset(folder / "meds")
    output = run_suite(tiny_suite(folder, dataset, k=["all"], seeds=[0]), []).suite.output
    runs = pl.read_csv(output / "runs.csv")
    predictions = {
        row["model"]: output / "runs" / row["run_id"] / "predictions.parquet"
        for row in runs.iter_rows(named=True)
    }
    labels = pl.read_parquet(output / "cohorts" / COHORT / "labels.parquet")
    held_out = labels.join(
        pl.read_parquet(predictions["logreg"]).select("subject_id", "prediction_time"),
        on=["subject_id", "prediction_time"],
        how="semi",
        maintain_order="left",
    )
    held_out_path = folder / "held_out.parquet"
    held_out.write_parquet(held_out_path)
    return folder, dataset, output, held_out_path, predictions


def test_evaluate_reproduces_the_suite_runs_exactly(suite_run, capsys):
    folder, dataset, output, labels, predictions = suite_run
    out = folder / "evaluated"
    code = main(
        [
            "evaluate", "--labels", str(labels), "--data", str(dataset), "--out", str(out),
            "--resamples", "100", "--seed", "0", "--baseline", "logreg", "--predictions",
            *(f"{name}={path}" for name, path in predictions.items()),
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    suite_results = pl.read_parquet(output / "results.parquet")
    mine = pl.read_parquet(out / "results.parquet")
    for model in predictions:
        expected = suite_results.filter(pl.col("model") == model).select(METRIC_COLUMNS)
        got = mine.filter(pl.col("model") == model).select(METRIC_COLUMNS)
        assert got.height > 10 and {"sex", "age_band"} <= set(got["group"])
        assert got.equals(expected), model
    paired_columns = ["model", "baseline", "difference", "ci_low", "ci_high", "p_value", "n_boot"]
    assert (
        pl.read_parquet(out / "paired.parquet")
        .select(paired_columns)
        .equals(pl.read_parquet(output / "paired.parquet").select(paired_columns))
    )
    assert (out / "report" / "report.html").is_file()
    report = (out / "report" / "report.md").read_text(encoding="utf-8")
    assert "lightgbm - logreg" in report and "Calibration" in report


def test_without_data_there_are_no_subgroups_and_the_report_says_so(suite_run):
    folder, _, _, labels, predictions = suite_run
    out = folder / "no_data"
    main(["evaluate", "--labels", str(labels), "--out", str(out), "--baseline", "lightgbm",
          "--predictions", *(f"{n}={p}" for n, p in predictions.items())])  # fmt: skip
    results = pl.read_parquet(out / "results.parquet")
    assert set(results["group"]) == {"all"}
    assert set(pl.read_parquet(out / "paired.parquet")["baseline"]) == {"lightgbm"}
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["k"] == ["all"] and manifest["models"] == list(predictions)
    report = (out / "report" / "report.md").read_text(encoding="utf-8")
    assert "No --data was given, so there are no subgroup" in report


def _mismatched(predictions: pl.DataFrame) -> dict[str, tuple[pl.DataFrame, str]]:
    probability = pl.col("predicted_boolean_probability")
    stranger = predictions.head(1).with_columns(pl.lit(-5, pl.Int64).alias("subject_id"))
    return {
        "missing": (predictions.slice(1), "1 of "),
        "extra": (
            pl.concat([predictions, stranger]),
            "1 prediction row(s) match no label row; the first is row",
        ),
        "duplicated": (
            pl.concat([predictions, predictions.slice(2, 1)]),
            "1 prediction row(s) repeat the (subject_id, prediction_time) of an earlier row",
        ),
        "nan": (
            predictions.with_row_index().with_columns(
                pl.when(pl.col("index") == 3).then(float("nan")).otherwise(probability)
                .alias("predicted_boolean_probability")
            ).drop("index"),
            "1 row(s) have a null or NaN `predicted_boolean_probability`; the first is row 3",
        ),
        "null": (
            predictions.with_row_index().with_columns(
                pl.when(pl.col("index") == 4).then(None).otherwise(probability)
                .alias("predicted_boolean_probability")
            ).drop("index"),
            "the first is row 4",
        ),
        "outside": (
            predictions.with_columns((probability * 3).alias("predicted_boolean_probability")),
            "value(s) lie outside [0, 1]",
        ),
        "labels": (
            predictions.with_columns(~pl.col("boolean_value")),
            "`boolean_value` disagrees with the label table",
        ),
        "no probability": (
            predictions.drop("predicted_boolean_probability"),
            "needs a numeric `predicted_boolean_probability` column",
        ),
    }  # fmt: skip


@pytest.mark.parametrize("case", ["missing", "extra", "duplicated", "nan", "null", "outside",
                                  "labels", "no probability"])  # fmt: skip
def test_prediction_rows_that_do_not_match_the_labels_are_errors(suite_run, tmp_path, case):
    _, _, _, labels, predictions = suite_run
    frame, expected = _mismatched(pl.read_parquet(predictions["logreg"]))[case]
    path = tmp_path / "bad.parquet"
    frame.write_parquet(path)
    evaluation = Evaluation(labels=labels, predictions={"mine": path}, out=tmp_path / "out")
    with pytest.raises(EhrbenchError) as caught:
        evaluate_outside(evaluation)
    assert f"prediction file {path} (model mine)" in str(caught.value)
    assert expected in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_command_line_errors_are_messages(suite_run, tmp_path, capsys):
    _, _, _, labels, predictions = suite_run
    common = ["evaluate", "--labels", str(labels), "--out", str(tmp_path / "o")]
    assert main([*common, "--predictions", str(predictions["logreg"])]) == 2
    assert "expected NAME=FILE.parquet" in capsys.readouterr().err
    assert main([*common, "--predictions", "a=x.parquet", "a=y.parquet"]) == 2
    assert "names the model `a` twice" in capsys.readouterr().err
    good = f"a={predictions['logreg']}"
    assert main([*common, "--predictions", good, "--baseline", "b"]) == 2
    assert "--baseline b is not among the named models ['a']" in capsys.readouterr().err
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "mine.txt").write_text("keep")
    assert main([*common, "--predictions", good]) == 2
    assert "would be overwritten" in capsys.readouterr().err
