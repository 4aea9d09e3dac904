"""Turning one flat event table into a MEDS 0.4 dataset folder.

`meds_from_events` reads a parquet event table (`subject_id`, `time`, `code`, optional
`numeric_value`, `text_value` and extra columns), assigns the stable hash split, and writes
`data/<split>/<i>.parquet` shards (each subject in one shard, subjects contiguous, rows sorted by
subject then time with static rows first), `metadata/codes.parquet` (every distinct code),
`metadata/subject_splits.parquet` and `metadata/dataset.json`, plus any licence files. The folder
is built in a temporary folder beside the target, validated, then renamed into place, so the
target either does not exist or is complete. `import_mimic_demo` specialises it to the MIMIC-IV
demo event table of `../shared/data/mimic_iv_demo_meds/` (`ehrbench.meds.eicu` does the same
for the eICU demo's CSV tables).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import meds
import polars as pl

from ehrbench import __version__
from ehrbench.errors import EhrbenchError
from ehrbench.meds.dataset import open_dataset
from ehrbench.meds.splits import DEFAULT_FRACTIONS, SPLIT_NAMES, hash_splits, split_sizes
from ehrbench.meds.writer import (
    write_codes,
    write_dataset_metadata,
    write_shard,
    write_subject_splits,
)
from ehrbench.output_paths import check_writable, refuse_existing

logger = logging.getLogger(__name__)

# MEDS column -> (accepted polars type test, type it is cast to, expected type for messages).
_COLUMN_TYPES = {
    "subject_id": (lambda t: t.is_integer(), pl.Int64(), "an integer type"),
    "time": (
        lambda t: t == pl.Date or (isinstance(t, pl.Datetime) and t.time_zone is None),
        pl.Datetime("us"),
        "a timezone-naive datetime or a date",
    ),
    "code": (lambda t: t in (pl.String, pl.Categorical), pl.String(), "a string"),
    "numeric_value": (lambda t: t.is_numeric(), pl.Float32(), "a numeric type"),
    "text_value": (lambda t: t == pl.String, pl.String(), "a string"),
}
_REQUIRED = ("subject_id", "time", "code")
MIMIC_DEMO_FILE = "mimic_iv_demo_meds_events.parquet"


def _check_target(out_dir: Path) -> None:
    check_writable(out_dir, "the output folder", folder=True)
    refuse_existing([out_dir], "a MEDS dataset is written only into a new or empty folder")


def _scan_source(src: Path, drop: Sequence[str], rename: Mapping[str, str]) -> pl.LazyFrame:
    """Scan `src`, drop and rename columns, check the MEDS columns' types and cast them."""
    if not src.is_file():
        raise EhrbenchError(f"event table {src} does not exist or is not a file.")
    try:
        lf = pl.scan_parquet(src, glob=False)
        schema = lf.collect_schema()
    except Exception as exc:  # polars raises several types for unreadable files
        raise EhrbenchError(f"{src} is not a readable parquet file ({exc}).") from exc
    for col in [*drop, *rename]:
        if col not in schema:
            raise EhrbenchError(
                f"{src} has no column `{col}` to drop or rename (columns: {list(schema)})."
            )
    kept = [col for col in schema if col not in drop and col not in rename]
    for old, new in rename.items():
        if new in kept or list(rename.values()).count(new) > 1:
            raise EhrbenchError(
                f"--rename {old}={new}: {src} would then have two `{new}` columns; drop the "
                f"other one (--drop) or rename it too."
            )
    lf = lf.drop(drop).rename(dict(rename))
    schema = lf.collect_schema()
    for col in _REQUIRED:
        if col not in schema:
            raise EhrbenchError(
                f"{src} has no column `{col}`: an event table needs `subject_id` (integer), "
                "`time` (datetime, null for static rows) and `code` (string)."
            )
    casts = []
    for col, (accepts, target, expected) in _COLUMN_TYPES.items():
        if col in schema:
            if not accepts(schema[col]):
                raise EhrbenchError(
                    f"{src}: column `{col}` has type {schema[col]}, expected {expected}."
                )
            casts.append(pl.col(col).cast(target))
    return lf.with_columns(casts)


def _check_no_nulls(src: Path, lf: pl.LazyFrame) -> None:
    nulls = lf.select(pl.col("subject_id", "code").null_count()).collect().row(0, named=True)
    for col, count in nulls.items():
        if count:
            raise EhrbenchError(
                f"{src}: column `{col}` has {count} null value(s); MEDS forbids it."
            )


def _shard_plan(splits: pl.DataFrame, shards: int) -> pl.DataFrame:
    """Give each subject a shard index within its split: contiguous runs of sorted ids, and no
    more shards in a split than it has subjects (never an empty shard).

    >>> splits = pl.DataFrame({"subject_id": [1, 2, 3], "split": ["train"] * 3})
    >>> _shard_plan(splits, 100)["shard"].to_list()
    [0, 1, 2]
    """
    rank = pl.int_range(pl.len()).over("split")
    size = pl.len().over("split")
    per_split = pl.min_horizontal(pl.lit(shards, pl.Int64), size.cast(pl.Int64))
    return splits.sort("subject_id").with_columns(shard=(rank * per_split // size).cast(pl.Int64))


def _created_at() -> str:
    """Now (UTC, ISO 8601), or SOURCE_DATE_EPOCH when set, for reproducible dataset.json."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    return when.replace(tzinfo=None).isoformat(timespec="seconds")


def _write_shards(lf: pl.LazyFrame, plan: pl.DataFrame, data_dir: Path) -> int:
    """Write one sorted shard per (split, shard) group; return the total rows written."""
    total = 0
    for split in [s for s in SPLIT_NAMES if s in set(plan.get_column("split"))]:
        in_split = plan.filter(pl.col("split") == split)
        for shard in range(in_split.get_column("shard").max() + 1):
            ids = in_split.filter(pl.col("shard") == shard).get_column("subject_id")
            events = (
                lf.filter(pl.col("subject_id").is_in(ids.implode()))
                .sort("subject_id", "time", nulls_last=False, maintain_order=True)
                .collect()
            )
            path = data_dir / split / f"{shard}.parquet"
            write_shard(events, path)
            total += events.height
            logger.info(
                "wrote %s: %s rows", path.relative_to(data_dir.parent), f"{events.height:,}"
            )
    return total


def _copy_files(files: Sequence[Path], dest: Path) -> None:
    names = [f.name for f in files]
    for path in files:
        if not path.is_file():
            raise EhrbenchError(f"licence file {path} does not exist or is not a file.")
        if names.count(path.name) > 1 or path.name in ("data", "metadata"):
            raise EhrbenchError(
                f"licence file name {path.name!r} is used twice or clashes with the MEDS layout; "
                "pass files with distinct names."
            )
    for path in files:
        shutil.copyfile(path, dest / path.name)


def meds_from_events(
    src: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    shards: int = 1,
    name: str | None = None,
    version: str | None = None,
    license: str | None = None,
    license_files: Sequence[str | os.PathLike] = (),
    drop: Sequence[str] = (),
    rename: Mapping[str, str] | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> dict:
    """Convert the event table `src` into a validated MEDS 0.4 folder at `out_dir`.

    `shards` is the number of shards per split. Refuses a non-empty `out_dir`. Returns a summary
    dict: subjects, rows, codes, shards and split sizes.
    """
    src, out_dir = Path(src), Path(out_dir)
    if shards < 1:
        raise EhrbenchError(f"--shards {shards} is invalid: expected a positive integer.")
    _check_target(out_dir)
    lf = _scan_source(src, drop, rename or {})
    _check_no_nulls(src, lf)
    subjects = lf.select(pl.col("subject_id").unique()).collect().get_column("subject_id")
    if subjects.is_empty():
        raise EhrbenchError(f"event table {src} holds no rows: a MEDS dataset needs events.")
    splits = hash_splits(subjects.to_list(), fractions)
    metadata = {
        "dataset_name": name or src.stem,
        "etl_name": "ehrbench meds-from-events",
        "etl_version": __version__,
        "meds_version": meds.__version__,
        "created_at": _created_at(),
    }
    metadata |= {k: v for k, v in (("dataset_version", version), ("license", license)) if v}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # os.mkdir honours the umask (tempfile.mkdtemp would leave the final folder owner-only).
    tmp = out_dir.parent / f".{out_dir.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir()
    try:
        rows = _write_shards(lf, _shard_plan(splits, shards), tmp / meds.data_subdirectory)
        codes = lf.select(pl.col("code").unique().sort()).collect()
        write_codes(codes, tmp)
        write_subject_splits(splits, tmp)
        write_dataset_metadata(metadata, tmp)
        _copy_files([Path(f) for f in license_files], tmp)
        dataset = open_dataset(tmp)  # validate before anything becomes visible at out_dir
        _check_target(out_dir)
        try:
            os.replace(tmp, out_dir)
        except OSError as exc:  # out_dir was filled by someone else meanwhile
            raise EhrbenchError(f"could not move the new dataset into {out_dir} ({exc}).") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "subjects": splits.height,
        "rows": rows,
        "codes": codes.height,
        "shards": len(dataset.shards),
        "splits": split_sizes(splits),
    }


def licence_files(folder: Path, dataset: str) -> list[Path]:
    """The README.md (when present) and `*.txt` licence files of a demo folder, to copy along.

    Raises `EhrbenchError` when `folder` holds no `*.txt` licence: the demos are under ODbL-1.0,
    whose text must travel with the data.
    """
    carried = sorted(p for p in folder.glob("*.txt") if p.is_file())
    if not carried:
        raise EhrbenchError(
            f"no licence file (*.txt) in {folder}: the {dataset} is under ODbL-1.0, whose "
            "text (ODbL-1.0.txt) must travel with the data."
        )
    readme = folder / "README.md"
    return [readme, *carried] if readme.is_file() else carried


def import_mimic_demo(src: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Convert the shared MIMIC-IV demo event table into a MEDS 0.4 folder at `out_dir`.

    `src` is the demo folder or its `mimic_iv_demo_meds_events.parquet`. The constant `table`
    column is dropped, `value` becomes `numeric_value`, and the folder's README.md and `*.txt`
    licence files are copied along (ODbL requires the licence to travel with the data).
    """
    src = Path(src)
    table = src / MIMIC_DEMO_FILE if src.is_dir() else src
    if not table.is_file():
        raise EhrbenchError(
            f"{table} does not exist: expected the MIMIC-IV demo folder or its {MIMIC_DEMO_FILE}."
        )
    return meds_from_events(
        table,
        out_dir,
        name="MIMIC-IV-demo",
        version="2.2",
        license="ODbL-1.0",
        license_files=licence_files(table.parent, "MIMIC-IV demo"),
        drop=["table"],
        rename={"value": "numeric_value"},
    )
