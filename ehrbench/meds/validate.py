"""Validation of a MEDS 0.4 dataset folder against the `meds` schemas and the MEDS invariants.

Two tiers. The cheap checks (`list_shards`, `check_shard_footer`) read only each shard's parquet
footer, so every reader runs them whenever it opens a dataset (`open_dataset`, even with
`validate=False`):

- `data/` holds parquet shards and sub-folders only: no other file (it would be silently
  ignored), no dangling symbolic link, no folder named `*.parquet`;
- every shard is a readable parquet file whose Arrow schema matches `meds.DataSchema` (required
  columns and their types);
- no null `subject_id` or `code` and no infinite `numeric_value`, decided from the footer's
  row-group statistics (null counts, min/max); a shard written without statistics has those
  columns scanned instead.

The full checks (`validate_dataset`) read whole columns, shard by shard (lazily, only the columns a
check needs):

- deep checks (on by default): rows sorted by `subject_id` then `time`, static rows (null `time`)
  first within a subject, and every data code listed in `metadata/codes.parquet` when present;
- implausible times, a warning with a count (the data is still valid): events before the year
  1800 or from the year 2300 on, and (deep) events before the subject's `MEDS_BIRTH`;
- across shards: a subject lives in exactly one shard;
- metadata: `dataset.json` against `meds.DatasetMetadataSchema`, `codes.parquet` against
  `meds.CodeMetadataSchema`, `subject_splits.parquet` against `meds.SubjectSplitSchema`, one split
  per subject, a split for every subject in the data and no split row for a subject with no data.

Arrow's `string` and `large_string` (and `list`/`large_list`) are accepted for one another: parquet
stores both as the same UTF-8 byte arrays, and polars writes the `large_` variants. Every other type
must match exactly. Nothing is repaired: the first problem raises an `EhrbenchError` that names
the file, the column and, for the invariants, the first offending subject.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
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

log = logging.getLogger(__name__)

_SUBJECT = pl.col("subject_id")
_TIME = pl.col("time")
_VALUE = pl.col("numeric_value")
# Times outside [1800, 2300) are warned about, not refused: no living record starts before
# 1800, and 2300 leaves room for de-identified datasets that shift dates into the future
# (MIMIC-IV's shifted years reach past 2200).
PLAUSIBLE_TIMES = (dt.datetime(1800, 1, 1), dt.datetime(2300, 1, 1))
# Columns that must hold no null (meds.DataSchema) and the one that must hold no infinity.
_NON_NULL = ("subject_id", "code")
_FINITE = "numeric_value"


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


def list_shards(data_dir: Path) -> tuple[Path, ...]:
    """The parquet event shards under `data_dir`, sorted; refuse anything else found there.

    A file that is not `*.parquet` would be silently skipped by every reader, a dangling link or a
    folder named `*.parquet` would fail later with an unhelpful message: each is an error here.
    """
    shards = []
    for path in sorted(data_dir.rglob("*")):
        if path.is_dir():
            if path.suffix == ".parquet":
                raise EhrbenchError(
                    f"{path} is a folder, not a parquet event shard: a MEDS `data/` folder holds "
                    "`*.parquet` files and sub-folders not named `*.parquet`."
                )
            continue
        if path.is_symlink() and not path.exists():
            raise EhrbenchError(
                f"{path} is a symbolic link to {os.readlink(path)}, which does not exist: "
                "expected a parquet event shard. Remove the link or restore its target."
            )
        if path.suffix != ".parquet" or not path.is_file():
            raise EhrbenchError(
                f"{path} is not a parquet event shard (a regular `*.parquet` file) but lies in "
                f"{data_dir}, where it would be silently ignored: move it out of the data folder."
            )
        shards.append(path)
    return tuple(shards)


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn a failure to decode `path` while reading it into the message naming the file.

    The footer is checked when a dataset is opened, but a damaged data page shows only when it is
    read: wrap each collect of a shard's rows in this.
    """
    try:
        yield
    except (OSError, pa.ArrowException, pl.exceptions.ComputeError) as exc:
        raise EhrbenchError(f"{path} is not a readable parquet file ({exc}).") from exc


def _read_footer(path: Path) -> pq.FileMetaData:
    try:
        return pq.read_metadata(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise EhrbenchError(f"{path} is not a readable parquet file ({exc}).") from exc


def check_shard_footer(path: Path) -> None:
    """The cheap checks of one event shard, from its parquet footer alone (see the module doc).

    Raises `EhrbenchError` naming the file and the column, with the message `validate` gives.
    """
    footer = _read_footer(path)
    _check_data_schema(path, footer.schema.to_arrow_schema())
    nulls = {col: _footer_nulls(footer, col) for col in _NON_NULL}
    infinite = _footer_has_infinity(footer, _FINITE)
    unknown = [col for col, n in nulls.items() if n is None]
    if unknown or infinite is None:
        # No statistics in the footer: count by scanning just those columns.
        exprs = [pl.col(col).null_count().alias(col) for col in unknown]
        exprs.append(_VALUE.is_infinite().any().alias(_FINITE))
        with reading(path):
            counts = pl.scan_parquet(path, glob=False).select(exprs).collect().row(0, named=True)
        nulls.update({col: counts[col] for col in unknown})
        infinite = counts[_FINITE]
    for col, count in nulls.items():
        if count:
            raise EhrbenchError(
                f"{path}: column `{col}` has {count} null value(s); "
                "meds.DataSchema requires it to be non-null on every row."
            )
    if infinite:
        raise _infinity_error(path)


def _check_data_schema(path: Path, schema: pa.Schema) -> None:
    """Check one event shard's Arrow schema against `meds.DataSchema`."""
    try:
        meds.DataSchema.validate(_normalise(schema, meds.DataSchema.schema()))
    except SchemaValidationError as exc:
        raise EhrbenchError(
            _schema_error(path, "the MEDS data schema (meds.DataSchema)", meds.DataSchema, exc)
        ) from exc


def _column_statistics(footer: pq.FileMetaData, column: str) -> list | None:
    """(row count, statistics) of `column` in each row group; None if a group has none."""
    names = footer.schema.names
    if column not in names:
        return []
    index = names.index(column)
    groups = [footer.row_group(i) for i in range(footer.num_row_groups)]
    stats = [(group.num_rows, group.column(index).statistics) for group in groups]
    return None if any(s is None or not s.has_null_count for _, s in stats) else stats


def _footer_nulls(footer: pq.FileMetaData, column: str) -> int | None:
    """Nulls in `column` by the footer's statistics, or None when the footer does not say."""
    stats = _column_statistics(footer, column)
    return None if stats is None else sum(s.null_count for _, s in stats)


def _footer_has_infinity(footer: pq.FileMetaData, column: str) -> bool | None:
    """Whether `column` holds +-inf by the footer's min/max, or None when the footer does not say.

    Parquet writers leave NaN out of min/max but keep infinities, so min/max bound every
    non-null, non-NaN value of the row group.
    """
    stats = _column_statistics(footer, column)
    if stats is None:
        return None
    found = False
    for rows, s in stats:
        if not s.has_min_max:
            if s.null_count < rows:  # values, but no bounds recorded for them
                return None
            continue
        found = found or s.min == float("-inf") or s.max == float("inf")
    return found


def _infinity_error(path: Path) -> EhrbenchError:
    with reading(path):
        count = pl.scan_parquet(path, glob=False).select(_VALUE.is_infinite().sum()).collect()
    return EhrbenchError(
        f"{path}: column `numeric_value` has {count.item()} infinite value(s) (+inf or -inf); "
        "expected finite numbers, or null where a code has no value."
    )


def _first_row(condition: pl.Expr) -> pl.Expr:
    return pl.col("_row").filter(condition).first()


def _shard_stats(lf: pl.LazyFrame, deep: bool) -> pl.LazyFrame:
    """One row of implausible-time counts and, when `deep`, the first row breaking each sort
    rule."""
    early, late = PLAUSIBLE_TIMES
    exprs = [
        _TIME.lt(early).sum().alias("before_1800"),
        _TIME.ge(late).sum().alias("from_2300"),
    ]
    if deep:
        birth = _TIME.filter(pl.col("code") == meds.birth_code).min().over("subject_id")
        prev_subject, prev_time = _SUBJECT.shift(1), _TIME.shift(1)
        same = prev_subject == _SUBJECT
        exprs += [
            _first_row(prev_subject > _SUBJECT).alias("subject_order"),
            _first_row(same & _TIME.is_null() & prev_time.is_not_null()).alias("static_late"),
            _first_row(same & (prev_time > _TIME)).alias("time_order"),
            _TIME.lt(birth).sum().alias("before_birth"),
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
    """Check (when `deep`) the sort order of one shard, warn on implausible times; return its
    distinct subject ids."""
    lf = pl.scan_parquet(path, glob=False)
    with reading(path):
        stats, subjects = pl.collect_all([_shard_stats(lf, deep), lf.select(_SUBJECT.unique())])
    row = stats.row(0, named=True)
    _warn_implausible_times(path, row)
    if deep:
        for rule in ("subject_order", "static_late", "time_order"):
            if row[rule] is not None:
                raise _sort_error(path, lf, rule, row[rule])
    return subjects.get_column("subject_id")


def _warn_implausible_times(path: Path, counts: dict) -> None:
    """Log a warning for each kind of implausible time `_shard_stats` counted in `path`."""
    early, late = PLAUSIBLE_TIMES
    what = {
        "before_1800": f"before {early:%Y-%m-%d}",
        "from_2300": f"on or after {late:%Y-%m-%d}",
        "before_birth": f"before the subject's {meds.birth_code} event",
    }
    for key, when in what.items():
        if counts.get(key):
            log.warning(
                "%s: %d event(s) in column `time` are %s; check the source's dates "
                "(the data is still read as it is).",
                path,
                counts[key],
                when,
            )


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
    """Every subject of the data has a split, and every split row a subject in the data."""
    listed = splits.get_column("subject_id")
    missing = subjects.filter(~subjects.is_in(listed.implode()))
    if missing.len():
        raise EhrbenchError(
            f"{path}: subject {missing.sort().item(0)} of the data has no row in column "
            f"`subject_id` ({missing.len()} subject(s) missing); every subject needs a split."
        )
    absent = listed.filter(~listed.is_in(subjects.implode()))
    if absent.len():
        raise EhrbenchError(
            f"{path}: column `subject_id` names subject {absent.sort().item(0)}, which has no "
            f"event in the data ({absent.len()} such subject(s)); the splits must list exactly "
            "the subjects of `data/`."
        )


def _check_codes_cover(dataset: MedsDataset, codes: pl.DataFrame) -> None:
    """Every code used in the data must be listed in `codes.parquet` (the MEDS guarantee)."""
    known = codes.get_column("code").unique().implode()
    for shard in dataset.shards:
        codes = dataset.scan(shard).select(pl.col("code").unique())
        with reading(shard):
            unknown = codes.filter(~pl.col("code").is_in(known)).sort("code").collect()
        if unknown.height:
            raise EhrbenchError(
                f"{shard}: code {unknown.item(0, 'code')!r} (column `code`) is not listed in "
                f"{dataset.root / meds.code_metadata_filepath} ({unknown.height} such code(s) in "
                "this shard); MEDS lists every data code there."
            )


def validate_dataset(dataset: MedsDataset, *, deep: bool = True) -> None:
    """Check `dataset` against the MEDS 0.4 schemas and invariants; raise `EhrbenchError` if not.

    The cheap per-shard checks already ran when `dataset` was opened (`open_dataset`). `deep=False`
    skips the sort-order, birth and code-coverage checks (the costly ones), keeping the
    one-shard-per-subject, implausible-year and metadata checks.
    """
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
