"""Predictions in the meds-evaluation form, one parquet per run.

Columns, in this order: `subject_id` (int64), `prediction_time` (timestamp[us]), `boolean_value`
(bool, the label), `predicted_boolean_value` (bool), `predicted_boolean_probability` (float32).
`predicted_boolean_value` is `probability >= 0.5`, a fixed threshold: choosing one on held_out
rows would leak, and the benchmark's metrics use the probabilities.
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ehrbench.io import atomic_path

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


def make_predictions(labels: pl.DataFrame, probabilities: np.ndarray) -> pl.DataFrame:
    """The prediction table for `labels` (rows in the same order as `probabilities`)."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.shape != (labels.height,):
        raise ValueError(f"{probabilities.shape[0]} probabilities for {labels.height} label rows")
    return labels.select(
        pl.col("subject_id").cast(pl.Int64),
        pl.col("prediction_time").cast(pl.Datetime("us")),
        pl.col("boolean_value").cast(pl.Boolean),
        pl.Series("predicted_boolean_value", probabilities >= THRESHOLD, dtype=pl.Boolean),
        pl.Series("predicted_boolean_probability", probabilities, dtype=pl.Float32),
    )


def write_predictions(predictions: pl.DataFrame, path: str | os.PathLike) -> None:
    """Write a prediction table atomically as parquet with the exact meds-evaluation types."""
    table = predictions.select(PREDICTION_SCHEMA.names).to_arrow().cast(PREDICTION_SCHEMA)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
