"""Writing MEDS 0.4 files with exactly the `meds` package's Arrow types.

polars keeps strings as Arrow `large_string`, while `meds.DataSchema` wants `code` as `string`
(and `text_value` as `large_string`). Every table therefore goes through the matching `meds`
schema's `align` (a safe, data-preserving cast) and is written with pyarrow, so a reader that
validates with the `meds` package sees exactly the schema it expects. Every file is atomic.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import meds
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ehrbench.io import atomic_path, write_text_atomic

# zstd: about half the size of snappy on event data, and still fast to read.
_COMPRESSION = "zstd"


def _to_arrow(frame: pl.DataFrame, schema: type) -> pa.Table:
    """Convert `frame` to Arrow and align it to a `meds` PyArrow schema."""
    return schema.align(frame.to_arrow())


def _write_table(table: pa.Table, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression=_COMPRESSION)


def write_shard(events: pl.DataFrame, path: str | os.PathLike) -> None:
    """Write one event shard, typed as `meds.DataSchema`, atomically.

    The caller is responsible for the MEDS invariants (sorted rows, one shard per subject).
    """
    _write_table(_to_arrow(events, meds.DataSchema), path)


def write_codes(codes: pl.DataFrame, root: str | os.PathLike) -> None:
    """Write `metadata/codes.parquet` (columns `code`, optional `description`, `parent_codes`)."""
    full = codes.with_columns(
        pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in (("description", pl.String), ("parent_codes", pl.List(pl.String)))
        if name not in codes.columns
    )
    _write_table(_to_arrow(full, meds.CodeMetadataSchema), Path(root) / meds.code_metadata_filepath)


def write_subject_splits(splits: pl.DataFrame, root: str | os.PathLike) -> None:
    """Write `metadata/subject_splits.parquet` from a (subject_id, split) frame."""
    table = _to_arrow(splits.select("subject_id", "split"), meds.SubjectSplitSchema)
    _write_table(table, Path(root) / meds.subject_splits_filepath)


def write_dataset_metadata(metadata: Mapping[str, Any], root: str | os.PathLike) -> None:
    """Validate `metadata` against `meds.DatasetMetadataSchema` and write `dataset.json`."""
    meds.DatasetMetadataSchema.validate(dict(metadata))
    text = json.dumps(dict(metadata), indent=2, sort_keys=True) + "\n"
    write_text_atomic(text, Path(root) / meds.dataset_metadata_filepath)
