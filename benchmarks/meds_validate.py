"""Benchmark: validating a MEDS folder, ehrbench versus the `meds` package's own check.

Side by side in one run, median of `--repeats` runs each, on a generated folder of `--shards`
shards x `--rows` rows (MEDS types, written with `ehrbench.meds.write_shard`):

- `meds`: what a MEDS user does by hand: `pq.read_table` + `meds.DataSchema.validate` per shard
  (schema and nulls only; no sort order, no one-shard-per-subject check);
- `ehrbench deep`: `open_dataset(root)`, every check including sort order and code coverage;
- `ehrbench quick`: `open_dataset(root, deep=False)`.

When `../shared/data/mimic_iv_demo_meds` exists, it also times `import_mimic_demo` and the
validation of its output. Results go to benchmarks/results/meds_validate.{json,md}.

    .venv/bin/python benchmarks/meds_validate.py --shards 10 --rows 9000000
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
from pathlib import Path

import meds
import numpy as np
import polars as pl
import pyarrow.parquet as pq
from common import median_seconds

from ehrbench.meds import open_dataset, write_codes, write_shard
from ehrbench.meds.convert import import_mimic_demo

REPO = Path(__file__).resolve().parents[1]
MIMIC = (REPO / ".." / "shared" / "data" / "mimic_iv_demo_meds").resolve()
EVENTS_PER_SUBJECT = 900


def make_dataset(root: Path, shards: int, rows: int) -> None:
    """Sorted shards of `rows` rows: 900 events per subject, 2,000 lab codes, one static row."""
    rng = np.random.default_rng(0)
    n_subjects = rows // EVENTS_PER_SUBJECT
    for i in range(shards):
        ids = np.arange(i * n_subjects, (i + 1) * n_subjects, dtype=np.int64)
        subject = np.repeat(ids, EVENTS_PER_SUBJECT)
        hours = np.tile(np.arange(EVENTS_PER_SUBJECT, dtype=np.int64), n_subjects)
        frame = pl.DataFrame(
            {
                "subject_id": subject,
                "time": pl.Series(hours * 3_600_000_000 + 1_500_000_000_000_000).cast(
                    pl.Datetime("us")
                ),
                "code": "LAB//" + pl.Series(rng.integers(0, 2000, subject.size)).cast(pl.String),
                "numeric_value": rng.random(subject.size).astype(np.float32),
            }
        ).with_columns(
            # The first row of each subject is static (null time), as MEDS orders them.
            time=pl.when(pl.int_range(pl.len()).over("subject_id") == 0)
            .then(None)
            .otherwise(pl.col("time"))
        )
        write_shard(frame, root / "data" / f"{i}.parquet")
    write_codes(pl.DataFrame({"code": [f"LAB//{c}" for c in range(2000)]}), root)


def meds_check(root: Path) -> None:
    """The `meds` package's own table validation, shard by shard."""
    for shard in sorted((root / "data").rglob("*.parquet")):
        meds.DataSchema.validate(pq.read_table(shard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows per shard")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="meds_bench_"))
    try:
        make_dataset(work / "ds", args.shards, args.rows)
        results = {
            "rows": args.shards * args.rows,
            "shards": args.shards,
            "repeats": args.repeats,
            "meds_read_validate_s": median_seconds(lambda: meds_check(work / "ds"), args.repeats),
            "ehrbench_deep_s": median_seconds(lambda: open_dataset(work / "ds"), args.repeats),
            "ehrbench_quick_s": median_seconds(
                lambda: open_dataset(work / "ds", deep=False), args.repeats
            ),
        }
        if (MIMIC / "mimic_iv_demo_meds_events.parquet").exists():
            counter = iter(range(args.repeats))

            def convert() -> None:
                import_mimic_demo(MIMIC, work / f"mimic{next(counter)}")

            results["mimic_import_s"] = median_seconds(convert, args.repeats)
            results["mimic_validate_s"] = median_seconds(
                lambda: open_dataset(work / "mimic0"), args.repeats
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results = {k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "meds_validate.json").write_text(json.dumps(results, indent=2) + "\n")
    table = ["| measure | value |", "| --- | --- |"]
    table += [f"| {k} | {v} |" for k, v in results.items()]
    (args.out / "meds_validate.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
