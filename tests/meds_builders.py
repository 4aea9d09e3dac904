"""Small MEDS folders for tests: written from a polars frame, checked with the `meds` package.

`write_meds_folder` writes what it is given: it does not validate, so tests can also build broken
folders. With `sort=True` (default) rows are sorted by subject then time, static rows first.
`meds_validates` checks a folder with the `meds` package's schemas alone. `synthetic_mortality`
writes a synthetic folder and its in-hospital mortality labels, through the command line.
"""

from __future__ import annotations

import json
from pathlib import Path

import meds
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ehrbench.cli import main
from ehrbench.meds.splits import hash_splits
from ehrbench.synth import generate_dataset


def _arrow(frame: pl.DataFrame) -> pa.Table:
    """To Arrow with `string` columns (what meds expects), `text_value` as `large_string`."""
    table = frame.to_arrow()
    fields = [
        f.with_type(pa.large_string() if f.name == "text_value" else pa.string())
        if pa.types.is_large_string(f.type)
        else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


def events_frame(rows: list[tuple]) -> pl.DataFrame:
    """Events from (subject_id, time, code, numeric_value) tuples, with the MEDS dtypes."""
    return pl.DataFrame(
        rows,
        schema={
            "subject_id": pl.Int64,
            "time": pl.Datetime("us"),
            "code": pl.String,
            "numeric_value": pl.Float32,
        },
        orient="row",
    )


def write_meds_folder(
    root: str | Path,
    events: pl.DataFrame,
    splits: dict[int, str] | None = None,
    shards: int = 1,
    *,
    sort: bool = True,
    write_splits: bool = True,
    dataset_json: dict | None = None,
) -> Path:
    """Write `events` as a MEDS folder at `root` and return `root`.

    Subjects (in sorted order) are cut into `shards` contiguous groups, written as
    `data/<i>.parquet`. `splits` maps subject_id -> split; None means the stable 70/15/15 hash
    split. `metadata/codes.parquet` lists every distinct code (if there is a `code` column).
    """
    root = Path(root)
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "metadata").mkdir(exist_ok=True)
    if sort:
        events = events.sort("subject_id", "time", nulls_last=False, maintain_order=True)
    subjects = events.get_column("subject_id").unique().sort().to_list()
    for i in range(shards):
        chunk = set(subjects[i * len(subjects) // shards : (i + 1) * len(subjects) // shards])
        part = events.filter(pl.col("subject_id").is_in(list(chunk)))
        pq.write_table(_arrow(part), root / "data" / f"{i}.parquet")
    if "code" in events.columns:
        codes = events.select(pl.col("code").unique().sort()).to_arrow()
        pq.write_table(meds.CodeMetadataSchema.align(codes), root / meds.code_metadata_filepath)
    if write_splits:
        table = (
            hash_splits(subjects)
            if splits is None
            else pl.DataFrame(
                {"subject_id": list(splits), "split": list(splits.values())},
                schema={"subject_id": pl.Int64, "split": pl.String},
            )
        )
        pq.write_table(_arrow(table), root / meds.subject_splits_filepath)
    blob = {"dataset_name": "test", "meds_version": meds.__version__} | (dataset_json or {})
    (root / meds.dataset_metadata_filepath).write_text(json.dumps(blob))
    return root


def meds_validates(root: Path) -> None:
    """Validate with the `meds` package alone, reading with pyarrow as any MEDS tool would."""
    for shard in sorted((root / "data").rglob("*.parquet")):
        meds.DataSchema.validate(pq.read_table(shard))
    meds.CodeMetadataSchema.validate(pq.read_table(root / "metadata" / "codes.parquet"))
    meds.SubjectSplitSchema.validate(pq.read_table(root / "metadata" / "subject_splits.parquet"))
    meds.DatasetMetadataSchema.validate(json.loads((root / "metadata/dataset.json").read_text()))


def synthetic_mortality(folder: Path, n_subjects: int) -> tuple[Path, Path]:
    """A synthetic MEDS folder of `n_subjects` in `folder`/meds and its in-hospital mortality
    labels (`folder`/labels.parquet)."""
    root = folder / "meds"
    generate_dataset(root, n_subjects=n_subjects, seed=0)
    labels = folder / "labels.parquet"
    cohorts = Path(__file__).parents[1] / "cohorts"
    argv = ["-q", "cohort", "extract", str(cohorts / "mortality_in_hospital.yaml"),
            "--predicates", str(cohorts / "predicates" / "synthetic.yaml"),
            "--data", str(root), "--out", str(labels)]  # fmt: skip
    assert main(argv) == 0
    return root, labels
