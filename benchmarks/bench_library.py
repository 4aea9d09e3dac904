"""Benchmark: the cohort library in one read of the data, against each cohort extracted alone.

On one dataset (either generator of `common.GENERATORS`, made once under results/work/):

- one pass: `ehrbench cohorts extract --data D --predicates cohorts/predicates/synthetic.yaml
  --out DIR`, one process that counts every cohort's predicates in one read of each shard; run
  `--repeats` times (the first also warms the page cache for all the runs after it), median
  kept;
- one by one: `ehrbench cohort extract cohorts/<name>.yaml --predicates ... --out ...` for each
  cohort the one pass wrote, each its own process.

Every process runs under `/usr/bin/time -v` (wall seconds, peak RSS). Each cohort's label file
and attrition file from the one pass must be byte-identical to its own extraction's, or the run
fails (exit 1); library cohorts the one pass does not write (not expressible with the synthetic
predicates) are listed in the results. The goal (issue 16): the whole library in under twice
the time of the slowest cohort alone. Results go to results/library_<generator>_<N>_<K>.json,
and results/library.md is rebuilt from every such file.

Usage: .venv/bin/python benchmarks/bench_library.py --generator longtail --subjects 100000 \\
    --shards 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    EHRBENCH,
    GENERATORS,
    RESULTS,
    at_least_one,
    benchmark_dataset,
    code_commit,
    machine_load,
    timed,
)

from ehrbench.cohort.library import list_cohorts  # noqa: E402
from ehrbench.io import write_text_atomic  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PREDICATES = REPO / "cohorts" / "predicates" / "synthetic.yaml"


class OutputsDiffer(RuntimeError):
    """A cohort's files from the one pass differ from its own extraction's."""


def ehrbench(args: list[str]) -> tuple[float, float]:
    """Run `ehrbench --quiet args` under `/usr/bin/time -v`: (wall seconds, peak RSS MiB)."""
    seconds, peak_mib, _ = timed([str(EHRBENCH), "--quiet", *args])
    return seconds, peak_mib


def one_pass(data: Path, out: Path) -> tuple[float, float]:
    """`ehrbench cohorts extract` of the library on `data` into the new folder `out`."""
    args = ["cohorts", "extract", "--data", str(data), "--predicates", str(PREDICATES)]
    return ehrbench([*args, "--out", str(out)])


def bench_library(data: Path, repeats: int) -> dict:
    """The one pass (`repeats` times) and each cohort alone on `data`; raises if an output
    differs."""
    with tempfile.TemporaryDirectory(prefix="bench-library-") as tmp:
        together, alone = Path(tmp) / "together", Path(tmp) / "alone"
        alone.mkdir()
        load_before = machine_load()
        passes = [one_pass(data, together)]
        passes += [one_pass(data, Path(tmp) / f"again{i}") for i in range(1, repeats)]
        singles = {}
        for labels in sorted(together.glob("*.parquet")):
            name = labels.stem
            out = alone / labels.name
            singles[name] = ehrbench(
                ["cohort", "extract", str(REPO / "cohorts" / f"{name}.yaml"), "--data", str(data)]
                + ["--predicates", str(PREDICATES), "--out", str(out)]
            )
            for suffix in (".parquet", ".attrition.json"):
                mine, theirs = together / f"{name}{suffix}", alone / f"{name}{suffix}"
                if mine.read_bytes() != theirs.read_bytes():
                    raise OutputsDiffer(f"{mine.name}: the one pass differs from `cohort extract`")
    slowest = max(singles, key=lambda name: singles[name][0])
    pass_s = statistics.median(seconds for seconds, _ in passes)
    return {
        "load_before": load_before,
        "load_after": machine_load(),
        "cohorts": len(singles),
        "not_written": sorted({c.name for c in list_cohorts()} - set(singles)),
        "one_pass_seconds": round(pass_s, 2),
        "one_pass_all_seconds": [round(seconds, 2) for seconds, _ in passes],
        "one_pass_peak_mib": round(max(mib for _, mib in passes)),
        "slowest_cohort": slowest,
        "slowest_seconds": round(singles[slowest][0], 2),
        "one_by_one_seconds": round(sum(s for s, _ in singles.values()), 2),
        "largest_single_peak_mib": round(max(m for _, m in singles.values())),
        "over_slowest": round(pass_s / singles[slowest][0], 2),
        "singles": {name: [round(s, 2), round(m)] for name, (s, m) in singles.items()},
    }


def render(runs: list[dict]) -> str:
    """The markdown report of every run on disk."""
    lines = [
        "# The cohort library in one pass",
        "",
        "Written by `benchmarks/bench_library.py`. `ehrbench cohorts extract` (every library",
        "cohort the synthetic predicates express, one read of the data) against",
        "`ehrbench cohort extract` of each of those cohorts alone; wall seconds and peak RSS of",
        "each process under `/usr/bin/time -v`. Each cohort's labels and attrition are",
        "byte-identical both ways (checked on every run). The one pass runs `--repeats` times",
        "(median; the first also warms the page cache), each cohort alone once. Goal: the one",
        "pass in under twice the time of the slowest cohort alone. `cohorts` counts those",
        "written; the JSON files list the library cohorts the synthetic predicates cannot",
        "express.",
        "",
        "| subjects | generator | shards | ehrbench | load before / after | cohorts "
        "| one pass s / MiB "
        "| slowest alone s | one pass / slowest | one by one s | largest alone MiB |",
        "|---:|---|---:|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for run in sorted(runs, key=lambda r: (r["subjects"], r["generator"], r["shards"])):
        lines.append(
            f"| {run['subjects']:,} | {run['generator']} | {run['shards']} "
            f"| {run.get('commit', '-')} | {run['load_before']} / {run['load_after']} "
            f"| {run['cohorts']} "
            f"| {run['one_pass_seconds']} / {run['one_pass_peak_mib']} "
            f"| {run['slowest_seconds']} ({run['slowest_cohort']}) | {run['over_slowest']}x "
            f"| {run['one_by_one_seconds']} | {run['largest_single_peak_mib']} |"
        )
    lines += ["", "Per-cohort times and peaks are in the JSON files beside this one.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", choices=sorted(GENERATORS), default="synth")
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument(
        "--repeats", type=at_least_one, default=2, help="runs of the one pass (median)"
    )
    args = parser.parse_args(argv)
    try:
        run = measure(args)
    except OutputsDiffer as exc:
        print(f"bench_library.py: {exc}", file=sys.stderr)
        return 1
    except (RuntimeError, OSError) as exc:  # a tool failed, or the results cannot be written
        print(f"bench_library.py: {exc}", file=sys.stderr)
        return 2
    print(render([run]))
    return 0


def measure(args: argparse.Namespace) -> dict:
    """Run the benchmark the options ask for and write its results; return the run."""
    data, origin = benchmark_dataset(args.generator, args.subjects, args.shards)
    started = time.perf_counter()
    run = bench_library(data, args.repeats)
    run |= {"generator": args.generator, "subjects": args.subjects, "shards": args.shards}
    run |= {"commit": code_commit()}
    run |= {"data": origin, "benchmark_seconds": round(time.perf_counter() - started, 1)}
    name = f"library_{args.generator}_{args.subjects}_{args.shards}.json"
    RESULTS.mkdir(exist_ok=True)
    write_text_atomic(json.dumps(run, indent=2) + "\n", RESULTS / name)
    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("library_*.json"))]
    write_text_atomic(render(runs), RESULTS / "library.md")
    return run


if __name__ == "__main__":
    sys.exit(main())
