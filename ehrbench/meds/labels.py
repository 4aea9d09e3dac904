"""Label tables in the MEDS 0.4 label schema.

ehrbench writes all six label columns, as ACES does: `subject_id`, `prediction_time`,
`boolean_value`, and `integer_value`, `float_value`, `categorical_value`, which stay null unless a
cohort fills them. The `meds` 0.4 schema marks the optional value columns non-nullable, so an
optional column that is null on every row is treated as absent when validating.
"""

from __future__ import annotations

import os
from pathlib import Path

import meds
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ehrbench.errors import EhrbenchError
from ehrbench.io import atomic_path

# The label table as written (arrow `string`, not polars's `large_string`, which the `meds`
# schema rejects); LABEL_SCHEMA is the same in polars types.
LABEL_ARROW_SCHEMA = pa.schema(
    [
        ("subject_id", pa.int64()),
        ("prediction_time", pa.timestamp("us")),
        ("boolean_value", pa.bool_()),
        ("integer_value", pa.int64()),
        ("float_value", pa.float32()),
        ("categorical_value", pa.string()),
    ]
)
LABEL_SCHEMA: dict[str, pl.DataType] = dict(pl.from_arrow(LABEL_ARROW_SCHEMA.empty_table()).schema)
REQUIRED_LABEL_COLUMNS = ("subject_id", "prediction_time")


def empty_labels() -> pl.DataFrame:
    """An empty label table with the full MEDS label schema."""
    return pl.DataFrame(schema=LABEL_SCHEMA)


def _validate_label_table(table: pa.Table, path: str | os.PathLike) -> None:
    """Check `table` against `meds.LabelSchema`, treating all-null optional columns as absent."""
    for name in REQUIRED_LABEL_COLUMNS:
        if name not in table.column_names:
            raise EhrbenchError(
                f"label table {path} has no `{name}` column: a MEDS label table needs "
                "`subject_id` (int64) and `prediction_time` (timestamp[us])."
            )
    all_null = [
        name
        for name in table.column_names
        if name not in REQUIRED_LABEL_COLUMNS and table.column(name).null_count == table.num_rows
    ]
    try:
        meds.LabelSchema.validate(table.drop_columns(all_null))
    except Exception as exc:  # flexible_schema raises its own exception types
        raise EhrbenchError(
            f"label table {path} does not match the MEDS label schema: {exc}"
        ) from exc


def write_labels(labels: pl.DataFrame, path: str | os.PathLike) -> None:
    """Validate `labels` against the MEDS label schema and write it atomically as parquet."""
    extra = [c for c in labels.columns if c not in LABEL_SCHEMA]
    if extra:
        raise EhrbenchError(
            f"label table for {path} has column(s) {extra} outside the MEDS label schema "
            f"(allowed: {list(LABEL_SCHEMA)})."
        )
    full = labels.with_columns(
        pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in LABEL_SCHEMA.items()
        if name not in labels.columns
    ).select(pl.col(name).cast(dtype) for name, dtype in LABEL_SCHEMA.items())
    table = full.to_arrow().cast(LABEL_ARROW_SCHEMA)
    _validate_label_table(table, path)
    with atomic_path(path) as tmp:
        # Dictionary pages only for the one column with few distinct values: on the id, time
        # and number columns they make the file larger, and their encoder's hash tables cost
        # about 70 MiB at 230,000 rows (more than the extraction that made the labels).
        pq.write_table(table, tmp, use_dictionary=["categorical_value"])


def read_labels(path: str | os.PathLike) -> pl.DataFrame:
    """Read a MEDS label table, checking its columns and their types against the schema."""
    path = Path(path)
    if not path.exists():
        raise EhrbenchError(f"label file {path} does not exist.")
    if not path.is_file():
        # pyarrow would read every parquet file under a folder as one table: several cohorts'
        # labels mixed into one task.
        raise EhrbenchError(
            f"label file {path} is a folder: expected one label table (a .parquet file, such as "
            "one cohort's file of the folder `ehrbench cohorts extract` writes)."
        )
    try:
        table = _plain_strings(pq.read_table(path))
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise EhrbenchError(f"{path} is not a readable parquet label table ({exc}).") from exc
    values = table["float_value"] if "float_value" in table.column_names else None
    # A column null on every row is as absent (see the module doc): only values need float32.
    if values is not None and pa.types.is_float64(values.type) and values.null_count < len(values):
        raise EhrbenchError(
            f"label table {path} stores `float_value` as float64 (polars' default); the MEDS "
            "label schema stores it as float32: cast it before writing "
            '(`pl.col("float_value").cast(pl.Float32)`).'
        )
    _validate_label_table(table, path)
    return pl.from_arrow(table)


def _plain_strings(table: pa.Table) -> pa.Table:
    """`table` with its large_string columns (polars writes strings so) as string, the type
    the MEDS label schema names: the same values."""
    fields = [
        field.with_type(pa.string()) if pa.types.is_large_string(field.type) else field
        for field in table.schema
    ]
    return table.cast(pa.schema(fields))


def label_values(labels: pl.DataFrame, source: str) -> np.ndarray:
    """The `boolean_value` column as a bool array; raise when it is absent or has nulls.

    >>> label_values(pl.DataFrame({"boolean_value": [True, False]}), "labels.parquet")
    array([ True, False])
    """
    if "boolean_value" not in labels.columns or labels["boolean_value"].null_count():
        raise EhrbenchError(
            f"label table {source} needs a non-null `boolean_value` on every row: the models "
            "predict a binary label."
        )
    return labels["boolean_value"].cast(pl.Boolean).to_numpy().astype(bool)
