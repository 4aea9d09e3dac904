"""Predictions in the meds-evaluation form."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from models_synthetic import label_rows

from ehrbench.models.predictions import PREDICTION_SCHEMA, make_predictions, write_predictions


def _labels():
    return label_rows(4).with_columns(pl.Series("boolean_value", [True, False, True, False]))


def test_columns_types_and_threshold(tmp_path):
    frame = make_predictions(_labels(), np.array([0.9, 0.5, 0.49999, 0.1]))
    assert frame["predicted_boolean_value"].to_list() == [True, True, False, False]
    path = tmp_path / "run" / "predictions.parquet"
    write_predictions(frame, path)
    table = pq.read_table(path)
    assert table.schema.equals(PREDICTION_SCHEMA)
    assert table.column("predicted_boolean_probability").to_pylist()[0] == pytest.approx(0.9)
    assert table.column("subject_id").to_pylist() == [1, 2, 3, 4]
    assert [p.name for p in tmp_path.joinpath("run").iterdir()] == ["predictions.parquet"]


def test_length_mismatch_is_rejected():
    with pytest.raises(ValueError, match="3 probabilities for 4 label rows"):
        make_predictions(_labels(), np.array([0.1, 0.2, 0.3]))
