"""Predictions in the meds-evaluation form, one parquet per run.

Binary columns, in this order: `subject_id` (int64), `prediction_time` (timestamp[us]),
`boolean_value` (bool, the label), `predicted_boolean_value` (bool),
`predicted_boolean_probability` (float32). `predicted_boolean_value` is `probability >= 0.5`, a
fixed threshold: choosing one on held_out rows would leak, and the benchmark's metrics use the
probabilities.

The other label kinds extend the form the obvious way (`ehrbench.meds.label_kinds`): after the
key columns comes the label's own column (`integer_value`, `float_value` or
`categorical_value`, typed as in the label table), then `predicted_float_value` (float64) for
regression, or `predicted_categorical_value` (string, the most probable class; ties: the first
listed) and one `predicted_probability//<CLASS>` (float32) per class, in class order, for
multiclass.
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ehrbench.io import atomic_path
from ehrbench.meds.label_kinds import (
    BINARY_TARGET,
    MULTICLASS,
    PREDICTED_COLUMNS,
    REGRESSION,
    LabelTarget,
    prediction_target,
    probability_columns,
)
from ehrbench.meds.labels import LABEL_ARROW_SCHEMA, LABEL_SCHEMA

THRESHOLD = 0.5
PREDICTION_SCHEMA = pa.schema(
    [
        ("subject_id", pa.int64()),
        ("prediction_time", pa.timestamp("us")),
        ("boolean_value", pa.bool_()),
        ("predicted_boolean_value", pa.bool_()),
        ("predicted_boolean_probability", pa.float32()),
    ]
)


def prediction_schema(target: LabelTarget) -> pa.Schema:
    """The arrow schema of `target`'s prediction frame (`PREDICTION_SCHEMA` for binary)."""
    if target.kind not in (REGRESSION, MULTICLASS):
        return PREDICTION_SCHEMA
    fields = [
        LABEL_ARROW_SCHEMA.field("subject_id"),
        LABEL_ARROW_SCHEMA.field("prediction_time"),
        LABEL_ARROW_SCHEMA.field(target.column),
    ]
    if target.kind == REGRESSION:
        return pa.schema([*fields, (PREDICTED_COLUMNS[REGRESSION], pa.float64())])
    probabilities = [(name, pa.float32()) for name in probability_columns(target.classes)]
    return pa.schema([*fields, (PREDICTED_COLUMNS[MULTICLASS], pa.string()), *probabilities])


def make_predictions(
    labels: pl.DataFrame, output: np.ndarray, target: LabelTarget = BINARY_TARGET
) -> pl.DataFrame:
    """The prediction table for `labels` (rows in the same order as the model's `output`).

    >>> from datetime import datetime
    >>> from ehrbench.meds.label_kinds import LabelTarget
    >>> labels = pl.DataFrame({"subject_id": [1, 2], "prediction_time": [datetime(2020, 1, 1)] * 2,
    ...                        "categorical_value": ["mild", "severe"]})
    >>> target = LabelTarget("multiclass", "categorical_value", ("severe", "mild"), True)
    >>> make_predictions(labels, np.array([[0.2, 0.8], [0.6, 0.4]]), target).columns[3:]
    ['predicted_categorical_value', 'predicted_probability//severe', 'predicted_probability//mild']
    """
    output = np.asarray(output, dtype=np.float64)
    expected = (
        (labels.height, len(target.classes)) if target.kind == MULTICLASS else (labels.height,)
    )
    if output.shape != expected:
        raise ValueError(f"{output.shape[0]} probabilities for {labels.height} label rows")
    key = labels.select(
        pl.col("subject_id").cast(pl.Int64), pl.col("prediction_time").cast(pl.Datetime("us"))
    )
    if target.kind == REGRESSION:
        predicted = [pl.Series(PREDICTED_COLUMNS[REGRESSION], output, dtype=pl.Float64)]
    elif target.kind == MULTICLASS:
        names = np.asarray(target.classes, dtype=object)[np.argmax(output, axis=1)]
        predicted = [
            pl.Series(PREDICTED_COLUMNS[MULTICLASS], names.tolist(), dtype=pl.String),
            *(
                pl.Series(name, output[:, i], dtype=pl.Float32)
                for i, name in enumerate(probability_columns(target.classes))
            ),
        ]
    else:
        probabilities = output.astype(np.float32)
        predicted = [
            pl.Series("predicted_boolean_value", probabilities >= THRESHOLD, dtype=pl.Boolean),
            pl.Series("predicted_boolean_probability", probabilities, dtype=pl.Float32),
        ]
    label = labels.select(pl.col(target.column).cast(LABEL_SCHEMA[target.column]))
    return pl.concat([key, label, pl.DataFrame(predicted)], how="horizontal")


def write_predictions(predictions: pl.DataFrame, path: str | os.PathLike) -> None:
    """Write a prediction table atomically as parquet with the exact meds-evaluation types."""
    schema = prediction_schema(prediction_target(predictions, str(path)))
    table = predictions.select(schema.names).to_arrow().cast(schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
