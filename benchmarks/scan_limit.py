"""The scan limit of a cohort: the least work a polars-based extraction must do.

One polars lazy scan of every event shard of a MEDS folder, on the streaming engine, that keeps
(subject_id, time, code) of each row whose code one of the cohort's predicates accepts (the code
test ehrbench's engine uses, `ehrbench.cohort.matching.any_code_test`). Nothing is grouped,
sorted or evaluated, so an extraction cannot read less; a cohort that needs `_ANY_EVENT` must
also group every row, which this scan does not.

`write_plan` (run by `bench_cohort.py`, which imports ehrbench anyway) writes the shard list and
the code test (a serialised polars expression) to a JSON file; this script, given that file,
imports nothing but polars, so its process is Python's start-up, polars' import and the scan.
It prints one JSON line: the rows kept and the seconds of the scan alone (`collect`).

Usage: .venv/bin/python benchmarks/scan_limit.py PLAN.json
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import polars as pl

COLUMNS = ("subject_id", "time", "code")


def write_plan(cohort_path: Path, data: Path, plan: Path) -> None:
    """Write the scan of `cohort_path`'s codes over the dataset at `data` to the file `plan`."""
    from ehrbench.cohort.config import load_cohort
    from ehrbench.cohort.matching import any_code_test
    from ehrbench.cohort.model import PlainPredicate
    from ehrbench.meds import open_dataset

    cohort = load_cohort(cohort_path)
    plain = [p for p in cohort.predicates.values() if isinstance(p, PlainPredicate)]
    shards = [str(shard) for shard in open_dataset(data, validate=False).shards]
    test = any_code_test(plain).meta.serialize(format="json")
    plan.write_text(json.dumps({"shards": shards, "test": test}), encoding="utf-8")


def scan(plan: dict) -> dict:
    """Run the planned scan; return the rows kept and the seconds it took."""
    test = pl.Expr.deserialize(io.StringIO(plan["test"]), format="json")
    started = time.perf_counter()
    kept = pl.scan_parquet(plan["shards"]).filter(test).select(COLUMNS).collect(engine="streaming")
    return {"rows": kept.height, "scan_seconds": round(time.perf_counter() - started, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plan", type=Path, help="the file `write_plan` wrote")
    args = parser.parse_args(argv)
    try:
        plan = json.loads(args.plan.read_text(encoding="utf-8"))
        print(json.dumps(scan(plan)))
    except (OSError, ValueError, KeyError, pl.exceptions.PolarsError) as exc:
        # ValueError covers a file that is not JSON; KeyError a plan without its two entries.
        print(f"scan_limit.py: cannot scan with the plan {args.plan}: {exc!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
