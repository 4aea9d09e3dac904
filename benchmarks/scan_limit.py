"""The scan limit of a cohort: the least work any engine must do to extract it.

One polars lazy scan of every event shard of a MEDS folder, on the streaming engine, that keeps
(subject_id, time, code) of each row whose code one of the cohort's predicates accepts (the code
test ehrbench's engine uses, `ehrbench.cohort.matching.any_code_test`). Nothing is grouped,
sorted or evaluated, so an extraction cannot read less; a cohort that needs `_ANY_EVENT` must
also group every row, which this scan does not.

Prints one JSON line: the rows kept and the seconds of the scan alone (`collect`), without the
start-up of Python and the imports. `bench_cohort.py` runs it as a process under
`/usr/bin/time -v`, so the whole process is measured too.

Usage: .venv/bin/python benchmarks/scan_limit.py COHORT.yaml MEDS_FOLDER
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import polars as pl

from ehrbench.cohort.config import load_cohort
from ehrbench.cohort.matching import any_code_test
from ehrbench.cohort.model import CODE, SUBJECT, TIME, PlainPredicate
from ehrbench.meds import open_dataset


def scan_limit(cohort_path: Path, data: Path) -> dict:
    """Run the scan of `cohort_path`'s codes over the dataset at `data`; return rows, seconds."""
    cohort = load_cohort(cohort_path)
    plain = [p for p in cohort.predicates.values() if isinstance(p, PlainPredicate)]
    shards = [str(shard) for shard in open_dataset(data, validate=False).shards]
    started = time.perf_counter()
    kept = (
        pl.scan_parquet(shards)
        .filter(any_code_test(plain))
        .select(SUBJECT, TIME, CODE)
        .collect(engine="streaming")
    )
    return {"rows": kept.height, "scan_seconds": round(time.perf_counter() - started, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort", type=Path)
    parser.add_argument("data", type=Path)
    args = parser.parse_args(argv)
    print(json.dumps(scan_limit(args.cohort, args.data)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
