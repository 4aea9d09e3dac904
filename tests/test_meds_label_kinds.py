"""The label kind comes from the one value column a label table fills; the prediction form of
each kind."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from ehrbench.errors import EhrbenchError
from ehrbench.meds import read_labels, write_labels
from ehrbench.meds.label_kinds import (
    BINARY_TARGET,
    LabelTarget,
    label_target,
    prediction_target,
    target_values,
)
from ehrbench.models.predictions import make_predictions, write_predictions
from ehrbench.protocol.fewshot import MAX_K, fewshot_indices

AT = datetime(2020, 1, 1)


def _written(tmp_path, **values) -> pl.DataFrame:
    """A label table with the given value column(s), written and read back as MEDS."""
    n = len(next(iter(values.values())))
    frame = pl.DataFrame({"subject_id": range(1, n + 1), "prediction_time": [AT] * n, **values})
    write_labels(frame, tmp_path / "labels.parquet")
    return read_labels(tmp_path / "labels.parquet")


@pytest.mark.parametrize(
    ("values", "kind", "column"),
    [
        ({"boolean_value": [True, False]}, "binary", "boolean_value"),
        ({"integer_value": [3, 0]}, "regression", "integer_value"),
        ({"float_value": [1.5, 2.0]}, "regression", "float_value"),
        ({"categorical_value": ["b", "a"]}, "multiclass", "categorical_value"),
    ],
)
def test_the_filled_column_decides_the_kind(tmp_path, values, kind, column):
    target = label_target(_written(tmp_path, **values), "labels.parquet")
    assert (target.kind, target.column) == (kind, column)


def test_multiclass_classes_are_alphabetical_or_in_the_given_order(tmp_path):
    labels = _written(tmp_path, categorical_value=["mild", "severe", "normal", "mild"])
    target = label_target(labels, "t")
    assert target.classes == ("mild", "normal", "severe") and not target.ordered
    assert target_values(labels, target).tolist() == [0, 2, 1, 0]
    ordered = label_target(labels, "t", ["severe", "moderate", "mild", "normal"])
    assert ordered.classes == ("severe", "moderate", "mild", "normal") and ordered.ordered
    assert target_values(labels, ordered).tolist() == [2, 0, 3, 2]


def test_no_or_several_filled_columns_are_clear_errors(tmp_path):
    none = pl.DataFrame(
        {"subject_id": [1], "boolean_value": [None]}, schema_overrides={"boolean_value": pl.Boolean}
    )
    with pytest.raises(EhrbenchError, match=r"labels.parquet must fill exactly one .* none of"):
        label_target(none, "labels.parquet")
    several = pl.DataFrame({"boolean_value": [True], "float_value": [1.0]})
    with pytest.raises(EhrbenchError, match=r"2 of them \(\['boolean_value', 'float_value'\]\)"):
        label_target(several, "labels.parquet")
    partial = pl.DataFrame({"float_value": [1.0, None]})
    with pytest.raises(EhrbenchError, match="needs a non-null `float_value` on every row, but 1"):
        label_target(partial, "labels.parquet")
    with pytest.raises(EhrbenchError, match="class order is given, but the label is regression"):
        label_target(pl.DataFrame({"float_value": [1.0]}), "t", ["a", "b"])
    classes = pl.DataFrame({"categorical_value": ["a", "b"]})
    with pytest.raises(EhrbenchError, match=r"names a twice"):
        label_target(classes, "t", ["a", "a", "b"])


def test_each_prediction_form_is_written_and_read_back(tmp_path):
    rows = pl.DataFrame({"subject_id": [1, 2], "prediction_time": [AT, AT]})
    value = LabelTarget("regression", "integer_value")
    classes = LabelTarget("multiclass", "categorical_value", ("hi", "lo"), ordered=True)
    cases = [
        (
            rows.with_columns(boolean_value=pl.Series([True, False])),
            np.array([0.7, 0.2]),
            BINARY_TARGET,
        ),
        (rows.with_columns(integer_value=pl.Series([3, 1])), np.array([2.5, 1.0]), value),
        (
            rows.with_columns(categorical_value=pl.Series(["lo", "hi"])),
            np.array([[0.3, 0.7], [0.6, 0.4]]),
            classes,
        ),
    ]
    for labels, output, target in cases:
        path = tmp_path / f"{target.kind}.parquet"
        write_predictions(make_predictions(labels, output, target), path)
        back = pl.read_parquet(path)
        assert prediction_target(back, str(path)).kind == target.kind
        if target is classes:
            assert back["predicted_categorical_value"].to_list() == ["lo", "hi"]
            schema = pq.read_schema(path)
            assert str(schema.field("predicted_probability//hi").type) == "float"
        if target is value:
            assert back["predicted_float_value"].to_list() == [2.5, 1.0]
            assert back["integer_value"].dtype == pl.Int64


def test_multiclass_few_shot_takes_k_per_class_in_class_order():
    y = np.array([2, 0, 1, 0, 2, 1, 1, 0, 2, 2])
    picked = fewshot_indices(y, seed=4, k=2, kind="multiclass")
    assert y[picked].tolist() == [0, 0, 1, 1, 2, 2]
    # A smaller k is a prefix of each class's list, as for binary labels.
    small = fewshot_indices(y, seed=4, k=1, kind="multiclass")
    assert small.tolist() == picked[[0, 2, 4]].tolist()
    assert fewshot_indices(y, seed=4, k="all", kind="multiclass").tolist() == list(range(10))


def test_regression_few_shot_takes_k_examples_in_all():
    y = np.linspace(0, 1, 300)
    picked = fewshot_indices(y, seed=1, k=16, kind="regression")
    assert picked.size == 16 and np.unique(picked).size == 16
    assert fewshot_indices(y, seed=1, k=8, kind="regression").tolist() == picked[:8].tolist()
    few = fewshot_indices(y[:5], seed=1, k=MAX_K, kind="regression")
    assert few.size == MAX_K and sorted(set(few[:5].tolist())) == [0, 1, 2, 3, 4]


def test_a_label_file_written_by_polars_is_read_and_a_float64_value_named(tmp_path):
    # polars writes strings as large_string (the same values: accepted) and floats as float64
    # (the schema's float32 would round them: refused, saying how to cast).
    when = [datetime(2020, 1, 1)] * 2
    classes = pl.DataFrame({"subject_id": [1, 2], "prediction_time": when,
                            "categorical_value": ["a", "b"]})  # fmt: skip
    classes.write_parquet(tmp_path / "classes.parquet")
    assert read_labels(tmp_path / "classes.parquet").equals(classes)
    values = classes.drop("categorical_value").with_columns(float_value=pl.lit(1.5))
    values.write_parquet(tmp_path / "values.parquet")
    with pytest.raises(EhrbenchError, match=r"float64 \(polars' default\).*cast\(pl.Float32\)"):
        read_labels(tmp_path / "values.parquet")
    unset = values.with_columns(float_value=pl.lit(None, pl.Float64), boolean_value=True)
    unset.write_parquet(tmp_path / "unset.parquet")
    assert read_labels(tmp_path / "unset.parquet")["boolean_value"].to_list() == [True, True]
