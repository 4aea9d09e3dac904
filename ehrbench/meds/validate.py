"""Validation of a MEDS 0.4 dataset folder against the `meds` schemas and the MEDS invariants.

Checks, shard by shard (each shard is scanned lazily, only the columns a check needs):

- the Arrow schema of every shard against `meds.DataSchema` (required columns and their types);
- no null `subject_id` or `code`;
- deep checks (on by default): rows sorted by `subject_id` then `time`, static rows (null `time`)
  first within a subject, and every data code listed in `metadata/codes.parquet` when present;
- across shards: a subject lives in exactly one shard;
- metadata: `dataset.json` against `meds.DatasetMetadataSchema`, `codes.parquet` against
  `meds.CodeMetadataSchema`, `subject_splits.parquet` against `meds.SubjectSplitSchema`, one split
  per subject and a split for every subject in the data.

Arrow's `string` and `large_string` (and `list`/`large_list`) are accepted for one another: parquet
stores both as the same UTF-8 byte arrays, and polars writes the `large_` variants. Every other type
must match exactly. Nothing is repaired: the first problem raises an `EhrbenchError` that names
the file, the column and, for the invariants, the first offending subject.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import meds
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from flexible_schema.exceptions import SchemaValidationError, TableValidationError

from ehrbench.errors import EhrbenchError

if TYPE_CHECKING:
    from ehrbench.meds.dataset import MedsDataset

_SUBJECT = pl.col("subject_id")
_TIME = pl.col("time")


def _same_modulo_large(got: pa.DataType, want: pa.DataType) -> bool:
    """True if `got` and `want` differ at most by 32- versus 64-bit offsets."""
    strings = (pa.types.is_string, pa.types.is_large_string)
    if any(f(got) for f in strings) and any(f(want) for f in strings):
        return True
    lists = (pa.types.is_list, pa.types.is_large_list)
    if any(f(got) for f in lists) and any(f(want) for f in lists):
        return _same_modulo_large(got.value_type, want.value_type)
    return got == want


def _normalise(schema: pa.Schema, reference: pa.Schema) -> pa.Schema:
    """`schema` with each field that equals its `reference` type modulo offsets set to it."""
    fields = []
    for field in schema:
        idx = reference.get_field_index(field.name)
        want = reference.field(idx).type if idx >= 0 else None
        if want is not None and field.type != want and _same_modulo_large(field.type, want):
            field = field.with_type(want)
        fields.append(field)
    return pa.schema(fields)


def _schema_error(path: Path, what: str, schema_cls: type, exc: SchemaValidationError) -> str:
    """One paragraph naming the file, the offending columns and their expected types."""
    want = schema_cls.schema()
    parts = []
    for col in exc.missing_req_cols or []:
        parts.append(f"required column `{col}` is missing (expected type {want.field(col).type})")
    for col, expected, got in exc.mistyped_cols or []:
        parts.append(f"column `{col}` has type {got}, expected {expected}")
    for col in exc.disallowed_extra_cols or []:
        parts.append(f"column `{col}` is not allowed")
    detail = "; ".join(parts) or str(exc)
    return f"{path} does not match {what}: {detail}."


def _read_schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise EhrbenchError(f"{path} is not a readable parquet file ({exc}).") from exc


def check_shard_schema(path: Path) -> None:
    """Check one event shard's columns and types against `meds.DataSchema`."""
    schema = _normalise(_read_schema(path), meds.DataSchema.schema())
    try:
        meds.DataSchema.validate(schema)
    except SchemaValidationError as exc:
        raise EhrbenchError(
            _schema_error(path, "the MEDS data schema (meds.DataSchema)", meds.DataSchema, exc)
        ) from exc


def _first_row(condition: pl.Expr) -> pl.Expr:
    return pl.col("_row").filter(condition).first()


def _shard_stats(lf: pl.LazyFrame, deep: bool) -> pl.LazyFrame:
    """One row of counts and, when `deep`, the first row index breaking each sort rule."""
    exprs = [
        _SUBJECT.null_count().alias("null_subject_id"),
        pl.col("code").null_count().alias("null_code"),
    ]
    if deep:
        prev_subject, prev_time = _SUBJECT.shift(1), _TIME.shift(1)
        same = prev_subject == _SUBJECT
        exprs += [
            _first_row(prev_subject > _SUBJECT).alias("subject_order"),
            _first_row(same & _TIME.is_null() & prev_time.is_not_null()).alias("static_late"),
            _first_row(same & (prev_time > _TIME)).alias("time_order"),
        ]
    return lf.with_row_index("_row").select(exprs)


def _sort_error(path: Path, lf: pl.LazyFrame, rule: str, row: int) -> EhrbenchError:
    """Describe the first row (0-based `row`) that breaks `rule`, with its predecessor."""
    prev, cur = lf.slice(row - 1, 2).select("subject_id", "time").collect().iter_rows()
    if rule == "subject_order":
        msg = (
            f"rows are not sorted by `subject_id`: subject {cur[0]} (row {row}) comes after "
            f"subject {prev[0]}; MEDS needs each shard sorted by subject_id, then time"
        )
    elif rule == "static_late":
        msg = (
            f"subject {cur[0]} has a static row (null `time`, row {row}) after a timed row "
            f"({prev[1]}); MEDS puts static rows first within a subject"
        )
    else:
        msg = (
            f"rows of subject {cur[0]} are not sorted by `time`: {cur[1]} (row {row}) comes "
            f"after {prev[1]}; MEDS needs rows sorted by subject_id, then time"
        )
    return EhrbenchError(f"{path}: {msg}. Nothing was repaired: re-sort the shard.")


def check_shard_rows(path: Path, deep: bool = True) -> pl.Series:
    """Check nulls and (when `deep`) sort order of one shard; return its distinct subject ids."""
    lf = pl.scan_parquet(path, glob=False)
    stats, subjects = pl.collect_all([_shard_stats(lf, deep), lf.select(_SUBJECT.unique())])
    row = stats.row(0, named=True)
    for col in ("subject_id", "code"):
        if row[f"null_{col}"]:
            raise EhrbenchError(
                f"{path}: column `{col}` has {row[f'null_{col}']} null value(s); "
                "meds.DataSchema requires it to be non-null on every row."
            )
    if deep:
        for rule in ("subject_order", "static_late", "time_order"):
            if row[rule] is not None:
                raise _sort_error(path, lf, rule, row[rule])
    return subjects.get_column("subject_id")


def check_one_shard_per_subject(shard_subjects: dict[Path, pl.Series]) -> None:
    """Raise if any subject appears in more than one shard, naming the first such subject."""
    frames = [
        pl.DataFrame({"subject_id": ids, "shard": [str(path)] * len(ids)})
        for path, ids in shard_subjects.items()
    ]
    if not frames:
        return
    dupes = (
        pl.concat(frames)
        .group_by("subject_id")
        .agg(pl.col("shard"))
        .filter(pl.col("shard").list.len() > 1)
        .sort("subject_id")
    )
    if dupes.height:
        subject, shards = dupes.row(0)
        raise EhrbenchError(
            f"subject {subject} appears in more than one shard ({', '.join(shards)}); "
            f"{dupes.height} subject(s) in total are split across shards. MEDS keeps all rows of "
            "a subject in exactly one shard (column `subject_id`)."
        )


def check_dataset_json(path: Path) -> dict:
    """Read `dataset.json` and validate it against `meds.DatasetMetadataSchema`."""
    try:
        blob = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EhrbenchError(f"{path} is not a readable JSON file ({exc}).") from exc
    if not isinstance(blob, dict):
        raise EhrbenchError(f"{path} must hold a JSON object (the MEDS dataset metadata).")
    try:
        meds.DatasetMetadataSchema.validate(blob)
    except (SchemaValidationError, TableValidationError) as exc:
        cause = exc.__cause__
        where = ".".join(str(p) for p in getattr(cause, "absolute_path", [])) or "(top level)"
        detail = getattr(cause, "message", str(exc))
        raise EhrbenchError(
            f"{path} does not match meds.DatasetMetadataSchema: key `{where}`: {detail}."
        ) from exc
    return blob


def _read_metadata_table(path: Path, schema_cls: type, what: str) -> pl.DataFrame:
    """Read a small metadata parquet file and validate it (types and nulls) with `schema_cls`."""
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise EhrbenchError(f"{path} is not a readable parquet file ({exc}).") from exc
    table = table.cast(_normalise(table.schema, schema_cls.schema()))
    try:
        schema_cls.validate(table)
    except SchemaValidationError as exc:
        raise EhrbenchError(_schema_error(path, what, schema_cls, exc)) from exc
    except TableValidationError as exc:
        raise EhrbenchError(f"{path} does not match {what}: {exc}.") from exc
    return pl.from_arrow(table)


def read_codes(path: Path) -> pl.DataFrame:
    """Read and validate `metadata/codes.parquet`."""
    return _read_metadata_table(path, meds.CodeMetadataSchema, "meds.CodeMetadataSchema")


def read_subject_splits(path: Path) -> pl.DataFrame:
    """Read and validate `metadata/subject_splits.parquet`; one split per subject."""
    splits = _read_metadata_table(path, meds.SubjectSplitSchema, "meds.SubjectSplitSchema")
    dupes = splits.filter(_SUBJECT.is_duplicated()).sort("subject_id")
    if dupes.height:
        raise EhrbenchError(
            f"{path}: subject {dupes.item(0, 'subject_id')} has more than one row in column "
            "`subject_id`; each subject belongs to exactly one split."
        )
    return splits


def _check_splits_cover(path: Path, splits: pl.DataFrame, subjects: pl.Series) -> None:
    missing = subjects.filter(~subjects.is_in(splits.get_column("subject_id").implode()))
    if missing.len():
        raise EhrbenchError(
            f"{path}: subject {missing.sort().item(0)} of the data has no row in column "
            f"`subject_id` ({missing.len()} subject(s) missing); every subject needs a split."
        )


def _check_codes_cover(dataset: MedsDataset, codes: pl.DataFrame) -> None:
    """Every code used in the data must be listed in `codes.parquet` (the MEDS guarantee)."""
    known = codes.get_column("code").unique().implode()
    for shard in dataset.shards:
        unknown = (
            dataset.scan(shard)
            .select(pl.col("code").unique())
            .filter(~pl.col("code").is_in(known))
            .sort("code")
            .collect()
        )
        if unknown.height:
            raise EhrbenchError(
                f"{shard}: code {unknown.item(0, 'code')!r} (column `code`) is not listed in "
                f"{dataset.root / meds.code_metadata_filepath} ({unknown.height} such code(s) in "
                "this shard); MEDS lists every data code there."
            )


def validate_dataset(dataset: MedsDataset, *, deep: bool = True) -> None:
    """Check `dataset` against the MEDS 0.4 schemas and invariants; raise `EhrbenchError` if not.

    `deep=False` skips the sort-order and code-coverage checks (the costly ones), keeping the
    schema, null, one-shard-per-subject and metadata checks.
    """
    for shard in dataset.shards:
        check_shard_schema(shard)
    shard_subjects = {shard: check_shard_rows(shard, deep) for shard in dataset.shards}
    check_one_shard_per_subject(shard_subjects)
    root = dataset.root
    if (root / meds.dataset_metadata_filepath).exists():
        check_dataset_json(root / meds.dataset_metadata_filepath)
    codes_path = root / meds.code_metadata_filepath
    if codes_path.exists():
        codes = read_codes(codes_path)
        if deep:
            _check_codes_cover(dataset, codes)
    splits_path = root / meds.subject_splits_filepath
    if splits_path.exists():
        subjects = pl.concat(list(shard_subjects.values()))
        _check_splits_cover(splits_path, read_subject_splits(splits_path), subjects)
