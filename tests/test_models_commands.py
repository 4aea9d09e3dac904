"""`ehrbench train` end to end on a small MEDS folder, and its errors (no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from meds_builders import events_frame, write_meds_folder

from ehrbench.cli import main
from ehrbench.errors import EhrbenchError
from ehrbench.meds import label_values, write_labels
from ehrbench.models.predictions import PREDICTION_SCHEMA

N_SUBJECTS = 90
PREDICTION_TIME = datetime(2020, 1, 1)


def _split(subject: int) -> str:
    return ("train", "tuning", "held_out")[subject % 3]


@pytest.fixture(scope="module")
def meds_dir(tmp_path_factory):
    """90 subjects; the label is whether sepsis was coded before the prediction time."""
    rng = np.random.default_rng(0)
    rows, labels = [], []
    for subject in range(1, N_SUBJECTS + 1):
        sick = bool(rng.random() < 0.4)
        birth = datetime(1940, 1, 1) + timedelta(days=int(rng.integers(0, 15000)))
        rows += [
            (subject, None, "GENDER//F" if rng.random() < 0.5 else "GENDER//M", None),
            (subject, birth, "MEDS_BIRTH", None),
        ]
        for day in range(1, 6):
            at = PREDICTION_TIME - timedelta(days=day)
            rows.append((subject, at, "LAB//50912//mg/dL", float(rng.normal(1 + sick, 0.3))))
        if sick:
            rows.append(
                (subject, PREDICTION_TIME - timedelta(hours=3), "DIAGNOSIS//ICD//10//A419", None)
            )
        rows.append(
            (
                subject,
                PREDICTION_TIME + timedelta(days=1),
                "MEDS_DEATH" if sick else "OUTPATIENT_VISIT",
                None,
            )
        )
        labels.append((subject, PREDICTION_TIME, sick))
    root = tmp_path_factory.mktemp("models_cli")
    splits = {s: _split(s) for s in range(1, N_SUBJECTS + 1)}
    write_meds_folder(root / "meds", events_frame(rows), splits=splits)
    frame = pl.DataFrame(
        labels, schema=["subject_id", "prediction_time", "boolean_value"], orient="row"
    )
    return root / "meds", frame


def _labels_file(tmp_path, frame, name="labels.parquet"):
    path = tmp_path / name
    write_labels(frame.with_columns(pl.col("prediction_time").cast(pl.Datetime("us"))), path)
    return path


def _train(meds, labels, out, *extra):
    return main(["train", "--data", str(meds), "--labels", str(labels), "--out", str(out), *extra])


@pytest.mark.parametrize(
    ("model", "extra"),
    [("logreg", []), ("lightgbm", ["learning_rate=0.2"]), ("gru", ["max_epochs=3", "hidden=16"])],
)
def test_train_writes_a_run(meds_dir, tmp_path, capsys, model, extra):
    meds, frame = meds_dir
    labels = _labels_file(tmp_path, frame)
    out = tmp_path / "run"
    code = _train(meds, labels, out, "--model", model, "features.min_count=1", *extra)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "tuning AUROC" in captured.out and "held_out AUROC" in captured.out
    assert "cost: fit " in captured.out and " parameters" in captured.out
    table = pq.read_table(out / "predictions.parquet")
    assert table.schema.equals(PREDICTION_SCHEMA)
    held_out = sorted(s for s in range(1, N_SUBJECTS + 1) if _split(s) == "held_out")
    assert sorted(table.column("subject_id").to_pylist()) == held_out
    record = json.loads((out / "hyperparameters.json").read_text())
    assert record["model"] == model and record["seed"] == 0 and record["grid"]
    cost = record["cost"]
    assert cost["fit_seconds"] > 0 and cost["predict_seconds"] >= 0 and cost["n_parameters"] > 0
    assert (out / "model" / "model.json").exists()
    if model != "gru":
        assert record["held_out_auroc"] > 0.8


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "example:" in capsys.readouterr().out


def _error(capsys, code):
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.err
    return captured.err


def test_one_class_in_train(meds_dir, tmp_path, capsys):
    meds, frame = meds_dir
    train_rows = pl.col("subject_id").map_elements(_split, return_dtype=pl.String) == "train"
    labels = _labels_file(
        tmp_path,
        frame.with_columns(
            pl.when(train_rows)
            .then(False)
            .otherwise(pl.col("boolean_value"))
            .alias("boolean_value")
        ),
    )
    err = _error(capsys, _train(meds, labels, tmp_path / "run", "--model", "logreg"))
    assert "the `train` split has 0 positive" in err and "both classes" in err


def test_empty_tuning_split(meds_dir, tmp_path, capsys):
    meds, frame = meds_dir
    keep = frame.filter(
        pl.col("subject_id").map_elements(_split, return_dtype=pl.String) != "tuning"
    )
    labels = _labels_file(tmp_path, keep)
    err = _error(capsys, _train(meds, labels, tmp_path / "run", "--model", "logreg"))
    assert "no row in the `tuning` split" in err


def test_subjects_missing_from_the_data(meds_dir, tmp_path, capsys):
    meds, frame = meds_dir
    extra = pl.DataFrame(
        [(5000, PREDICTION_TIME, True)],
        schema=frame.schema,
        orient="row",
    )
    labels = _labels_file(tmp_path, pl.concat([frame, extra]))
    err = _error(capsys, _train(meds, labels, tmp_path / "run", "--model", "logreg"))
    assert "(e.g. [5000]) are not in the dataset" in err


def test_existing_run_folder_is_not_overwritten(meds_dir, tmp_path, capsys):
    meds, frame = meds_dir
    labels = _labels_file(tmp_path, frame)
    out = tmp_path / "run"
    out.mkdir()
    (out / "predictions.parquet").write_text("keep me")
    err = _error(capsys, _train(meds, labels, out, "--model", "logreg"))
    assert "refusing to replace" in err
    assert (out / "predictions.parquet").read_text() == "keep me"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "xgboost"], "unknown model `xgboost`"),
        (["--model", "logreg", "depth=3"], "has no hyperparameter(s) ['depth']"),
        (["--model", "logreg", "C=abc"], "model `logreg`: hyperparameter `C` must be a number"),
        (["--model", "gru", "max_epochs=2.5"], "hyperparameter `max_epochs` must be an integer"),
        (["--model", "logreg", "C"], "override 'C' is not `key=value`"),
        (["--model", "logreg", "features.bins=3"], "unknown feature setting(s) ['features.bins']"),
        (["--model", "logreg", "features=3"], "`features=` needs a setting name"),
        (["--model", "logreg", "C=[1"], "the overrides ['C=[1'] cannot be read"),
        (["--model", "logreg", "C.x=1"], "override `C` has the value {'x': 1}"),
    ],
)
def test_bad_arguments(meds_dir, tmp_path, capsys, args, message):
    meds, frame = meds_dir
    labels = _labels_file(tmp_path, frame)
    err = _error(capsys, _train(meds, labels, tmp_path / "run", *args))
    assert message in err
    assert not (tmp_path / "run").exists()


def test_one_class_in_tuning(meds_dir, tmp_path, capsys):
    meds, frame = meds_dir
    tuning_rows = pl.col("subject_id").map_elements(_split, return_dtype=pl.String) == "tuning"
    value = pl.when(tuning_rows).then(True).otherwise(pl.col("boolean_value"))
    labels = _labels_file(tmp_path, frame.with_columns(value.alias("boolean_value")))
    err = _error(capsys, _train(meds, labels, tmp_path / "run", "--model", "logreg"))
    assert "the `tuning` split has 30 positive and 0 negative" in err


def test_empty_held_out_split(meds_dir, tmp_path, capsys):
    meds, frame = meds_dir
    keep = frame.filter(
        pl.col("subject_id").map_elements(_split, return_dtype=pl.String) != "held_out"
    )
    labels = _labels_file(tmp_path, keep)
    err = _error(capsys, _train(meds, labels, tmp_path / "run", "--model", "logreg"))
    assert "no row in the `held_out` split" in err and "to score the model" in err


def test_null_labels():
    frame = pl.DataFrame({"subject_id": [1, 2], "boolean_value": [True, None]})
    with pytest.raises(EhrbenchError, match="labels.parquet needs a non-null `boolean_value`"):
        label_values(frame, "labels.parquet")
    with pytest.raises(EhrbenchError, match="needs a non-null `boolean_value`"):
        label_values(frame.drop("boolean_value"), "labels.parquet")


def test_a_logistic_regression_never_imports_torch(meds_dir, tmp_path):
    meds, frame = meds_dir
    labels = _labels_file(tmp_path, frame)
    argv = ["train", "--data", str(meds), "--labels", str(labels), "--model", "logreg"]
    argv += ["--out", str(tmp_path / "run"), "features.min_count=1"]
    code = (
        f"import sys; from ehrbench.cli import main; assert main({argv!r}) == 0; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr


def _typed_labels(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The sepsis labels as a value (hours of stay) and as three ordered levels."""
    sick = frame["boolean_value"].to_numpy()
    noise = np.random.default_rng(1).normal(0, 1.0, size=sick.size)
    levels = np.where(sick, np.where(noise > 0, "severe", "moderate"), "normal")
    key = frame.select("subject_id", "prediction_time")
    return {
        "regression": key.with_columns(
            pl.Series("float_value", 24.0 + 48.0 * sick + 4.0 * noise, dtype=pl.Float32)
        ),
        "count": key.with_columns(pl.Series("integer_value", (3 * sick + (noise > 0)).astype(int))),
        "multiclass": key.with_columns(pl.Series("categorical_value", levels)),
    }


@pytest.mark.parametrize(
    ("kind", "model", "extra", "score"),
    [
        ("regression", "ridge", [], "-RMSE"),
        ("count", "lightgbm", [], "-RMSE"),
        ("multiclass", "logreg", ["--class-order", "severe,moderate,normal"], "macro OvR AUROC"),
        ("multiclass", "gru", ["max_epochs=2", "hidden=16"], "macro OvR AUROC"),
    ],
)
def test_train_fits_the_label_kind_of_the_label_column(
    meds_dir, tmp_path, capsys, kind, model, extra, score
):
    meds, frame = meds_dir
    labels = _labels_file(tmp_path, _typed_labels(frame)[kind])
    out = tmp_path / "run"
    code = _train(meds, labels, out, "--model", model, "features.min_count=1", *extra)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"tuning {score}" in captured.out and f"held_out {score}" in captured.out
    predictions = pl.read_parquet(out / "predictions.parquet")
    record = json.loads((out / "hyperparameters.json").read_text())
    saved = json.loads((out / "model" / "model.json").read_text())
    if kind == "multiclass":
        assert predictions.columns[3] == "predicted_categorical_value"
        order = ["severe", "moderate", "normal"] if extra[0] == "--class-order" else None
        classes = order or ["moderate", "normal", "severe"]
        assert predictions.columns[4:] == [f"predicted_probability//{c}" for c in classes]
        assert saved["target"]["classes"] == classes
        assert saved["target"]["ordered"] == (order is not None)
        assert "held_out_macro_ovr_auroc" in record
    else:
        assert predictions.columns[2:] == [labels_column(kind), "predicted_float_value"]
        assert record["held_out_neg_rmse"] < 0 and saved["target"]["kind"] == "regression"


def labels_column(kind: str) -> str:
    return "float_value" if kind == "regression" else "integer_value"


def test_train_refuses_a_model_that_cannot_fit_the_label_kind(meds_dir, tmp_path, capsys):
    meds, frame = meds_dir
    labels = _labels_file(tmp_path, _typed_labels(frame)["regression"])
    err = _error(capsys, _train(meds, labels, tmp_path / "run", "--model", "logreg"))
    assert "model `logreg` cannot fit a regression label (`float_value`)" in err
    assert "fits binary and multiclass labels only" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_train_refuses_a_label_table_with_several_value_columns(meds_dir, tmp_path, capsys):
    meds, frame = meds_dir
    both = frame.with_columns(pl.lit(1.5).alias("float_value"))
    labels = _labels_file(tmp_path, both)
    err = _error(capsys, _train(meds, labels, tmp_path / "run", "--model", "logreg"))
    assert "must fill exactly one of the value columns" in err
    assert "2 of them (['boolean_value', 'float_value'])" in err


def test_a_class_order_must_name_every_class(meds_dir, tmp_path, capsys):
    meds, frame = meds_dir
    labels = _labels_file(tmp_path, _typed_labels(frame)["multiclass"])
    code = _train(
        meds, labels, tmp_path / "run", "--model", "logreg", "--class-order", "severe,normal"
    )
    err = _error(capsys, code)
    assert "holds class(es) ['moderate'] that the class order ['severe', 'normal']" in err
