"""Benchmark: ehrbench's cohort extraction against ACES 0.7.3, side by side on synthetic data.

The dataset is made once under benchmarks/results/work/ and reused, by one of two generators
(`--generator`): `ehrbench synth --subjects N --seed 0 --shards K`, or
benchmarks/second_generator.py (other code frequencies, row groups and shard sizes). Three
cohorts from benchmarks/cohorts/ (in-hospital mortality at 24 h with a gap and an event-bound
outcome window, 30-day readmission at a live discharge, hyperkalemia with `value_min`) are
extracted by both tools, each repeat running ehrbench, ACES and the scan limit one after the
other so that all three see the same machine load:

- ACES: one `aces-cli -m data=sharded data.shard=...` process that goes through the event
  files one after the other (how ACES documents running on a sharded MEDS dataset);
- ehrbench: `ehrbench cohort extract` on the whole folder, one process;
- the scan limit (`scan_limit.py`): one polars scan that only keeps the rows whose code a
  predicate of the cohort accepts, the least work a polars-based extraction must do, in a
  process that imports only polars.

Each process runs under `/usr/bin/time -v` (peak RSS). Times are medians over `--repeats` runs;
peaks are the largest over runs. Labels are compared row for row by `aces_compare`, with the
spec's section-9 differences accounted for; any other difference fails the run (exit 1). The
machine's load averages are recorded before each cohort and after the last. Results go to
benchmarks/results/cohort_<generator>_<N>_<K>.json, and benchmarks/results/cohort.md is rebuilt
from every such JSON file.

Usage: .venv/bin/python benchmarks/bench_cohort.py --generator longtail --subjects 10000 --shards 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aces_compare import compare_cohort, run_ehrbench  # noqa: E402
from aces_run import ACES_CLI, aces_available, event_shards, run_aces  # noqa: E402
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
from scan_limit import write_plan  # noqa: E402

from ehrbench.io import write_text_atomic  # noqa: E402

HERE = Path(__file__).resolve().parent
COHORTS = ("mortality_24h", "readmission_30d", "hyperkalemia_24h")


def dataset_rows(root: Path) -> int:
    """The number of event rows in the dataset (from the parquet footers)."""
    return sum(pq.ParquetFile(p).metadata.num_rows for p in event_shards(root))


def startup_cost() -> dict:
    """Wall time and peak RSS of each tool's cohort command doing nothing (`--help`)."""
    cost = {}
    for tool, args in (
        ("ehrbench", [str(EHRBENCH), "cohort", "extract", "--help"]),
        ("aces", [str(ACES_CLI), "--help"]),
    ):
        seconds, peak_mib, _ = timed(args)
        cost[f"{tool}_seconds"] = round(seconds, 2)
        cost[f"{tool}_peak_mib"] = round(peak_mib)
    return cost


def run_scan_limit(plan: Path) -> dict:
    """Run `scan_limit.py` on its `plan` in a process under `/usr/bin/time -v`: its scan seconds,
    and the whole process's wall seconds and peak RSS."""
    seconds, peak_mib, out = timed([sys.executable, str(HERE / "scan_limit.py"), str(plan)])
    return {**json.loads(out), "seconds": seconds, "peak_mib": peak_mib}


def bench_cohort(name: str, data: Path, repeats: int) -> dict:
    """Time both tools and the scan limit `repeats` times on cohort `name`; compare the labels."""
    cohort = HERE / "cohorts" / f"{name}.yaml"
    load = machine_load()
    aces_runs, ours_runs, scans = [], [], []
    with tempfile.TemporaryDirectory(prefix="scan-limit-") as tmp:
        plan = Path(tmp) / "plan.json"
        write_plan(cohort, data, plan)
        for _ in range(repeats):
            ours_runs.append(run_ehrbench(cohort, data, measure=True))
            aces_runs.append(run_aces(cohort, data, measure=True))
            scans.append(run_scan_limit(plan))
    comparison = compare_cohort(cohort, data, aces=aces_runs[0], ehrbench=ours_runs[0])
    labels = ours_runs[0].labels["boolean_value"]
    aces_s = statistics.median(r.seconds for r in aces_runs)
    ours_s = statistics.median(r.seconds for r in ours_runs)
    aces_kib = max(r.peak_rss_kib for r in aces_runs)
    ours_kib = max(r.peak_rss_kib for r in ours_runs)
    scan_s = statistics.median(s["scan_seconds"] for s in scans)
    scan_process_s = statistics.median(s["seconds"] for s in scans)
    return {
        "cohort": name,
        "load": load,
        "rows_aces": comparison.aces_rows,
        "rows_ehrbench": comparison.ehrbench_rows,
        "positives": int(labels.sum()),
        "mismatches": comparison.mismatches,
        "expected_differences": comparison.expected,
        "aces_seconds": round(aces_s, 2),
        "ehrbench_seconds": round(ours_s, 2),
        "speedup": round(aces_s / ours_s, 1),
        "aces_peak_mib": round(aces_kib / 1024),
        "ehrbench_peak_mib": round(ours_kib / 1024),
        "memory_ratio": round(ours_kib / aces_kib, 3),
        "scan_seconds": round(scan_s, 2),
        "scan_process_seconds": round(scan_process_s, 2),
        "scan_peak_mib": round(max(s["peak_mib"] for s in scans)),
        "over_scan": round(ours_s / scan_s, 1),
        "over_scan_process": round(ours_s / scan_process_s, 1),
        "repeats": repeats,
    }


def _scan_cells(cohort: dict) -> str:
    """The two scan-limit cells of a cohort's row (`-` for runs made before it was measured)."""
    if "scan_seconds" not in cohort:
        return "- | -"
    return (
        f"{cohort['scan_seconds']} / {cohort['scan_process_seconds']} "
        f"| {cohort['over_scan']}x / {cohort['over_scan_process']}x"
    )


def render(results: list[dict]) -> str:
    """The markdown report of every benchmark run on disk."""
    lines = [
        "# Cohort extraction: ehrbench vs ACES 0.7.3",
        "",
        "Written by `benchmarks/bench_cohort.py`. Synthetic data, seed 0 (origin given per run);",
        "ACES runs its documented sharded mode (one multirun process, shard after shard),",
        "ehrbench runs `ehrbench cohort extract` on the folder; both under `/usr/bin/time -v`",
        "(wall time, peak RSS). Times are medians of the repeats, peaks the largest.",
        "speedup = ACES time / ehrbench time; memory = ehrbench peak / ACES peak.",
        "The scan limit (`scan_limit.py`) keeps the rows whose code a predicate of the cohort",
        "accepts, nothing more: `scan s` is its polars scan alone, `scan process s` the whole",
        "process (Python's start-up, polars' import and the scan), like the two tools' times.",
        "`x scan` = ehrbench time / scan time (scan alone, then the process). Runs made before",
        "the scan limit was measured show `-` there. Each run's header names the ehrbench",
        "commit it measured, when it was recorded.",
        "",
    ]
    for run in sorted(results, key=lambda r: (r["subjects"], r["generator"], r["shards"])):
        lines += [
            f"## {run['subjects']:,} subjects, {run['generator']}, {run['shards']} shard(s), "
            f"{run['event_rows']:,} event rows ({run['repeats']} repeat(s), {run['machine']}"
            + (f", ehrbench {run['commit']})" if "commit" in run else ")"),
            "",
            f"Data: {run['data']}. Load average (1, 5, 15 min, as `uptime` prints it): "
            f"{run['load_before']} before, {run['load_after']} after.",
            "",
            "| cohort | load before | rows (ACES / ehrbench) | positives | mismatches | ACES s "
            "| ehrbench s | speedup | ACES peak MiB | ehrbench peak MiB | memory "
            "| scan s / process s | x scan |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in run["cohorts"]:
            lines.append(
                f"| {c['cohort']} | {c['load']} | {c['rows_aces']} / {c['rows_ehrbench']} "
                f"| {c['positives']} | {c['mismatches']} | {c['aces_seconds']} "
                f"| {c['ehrbench_seconds']} | {c['speedup']}x | {c['aces_peak_mib']} "
                f"| {c['ehrbench_peak_mib']} | {c['memory_ratio']:.1%} | {_scan_cells(c)} |"
            )
        notes = [
            f"- {c['cohort']}: {reason}: {n}"
            for c in run["cohorts"]
            for reason, n in c["expected_differences"].items()
        ]
        if notes:
            lines += ["", "Expected differences (spec section 9), not counted as mismatches:"]
            lines += notes
        startup = run["startup"]
        lines += [
            "",
            f"Startup alone (included above): `ehrbench cohort extract --help` "
            f"{startup['ehrbench_seconds']} s"
            f" / {startup['ehrbench_peak_mib']} MiB; `aces-cli --help` {startup['aces_seconds']} s"
            f" / {startup['aces_peak_mib']} MiB.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="example: .venv/bin/python benchmarks/bench_cohort.py --generator longtail "
        "--subjects 100000 "
        "--shards 10 --repeats 1",
    )
    parser.add_argument("--generator", choices=sorted(GENERATORS), default="synth")
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--repeats", type=at_least_one, default=3)
    parser.add_argument("--cohorts", nargs="+", default=list(COHORTS), choices=COHORTS)
    parser.add_argument(
        "--data", type=Path, help="an existing MEDS folder to use instead of generating one"
    )
    args = parser.parse_args(argv)
    if not aces_available():
        print("ACES is not installed: run `bash benchmarks/aces_env.sh` first.")
        return 2
    if args.data:
        data, origin = args.data, f"the MEDS folder {args.data}"
    else:
        data, origin = benchmark_dataset(args.generator, args.subjects, args.shards)
    load_before = machine_load()
    cohorts = []
    for name in args.cohorts:
        cohorts.append(bench_cohort(name, data, args.repeats))
        print(json.dumps(cohorts[-1]), flush=True)
    run = {
        "generator": "folder" if args.data else args.generator,
        "subjects": args.subjects,
        "shards": args.shards,
        "event_rows": dataset_rows(data),
        "data": origin,
        "load_before": load_before,
        "load_after": machine_load(),
        "repeats": args.repeats,
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "commit": code_commit(),
        "startup": startup_cost(),
        "cohorts": cohorts,
    }
    RESULTS.mkdir(exist_ok=True)
    name = f"cohort_{run['generator']}_{args.subjects}_{args.shards}.json"
    write_text_atomic(json.dumps(run, indent=2) + "\n", RESULTS / name)
    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("cohort_*.json"))]
    write_text_atomic(render(runs), RESULTS / "cohort.md")
    print(render([run]))
    return 0 if all(c["mismatches"] == 0 for c in cohorts) else 1


if __name__ == "__main__":
    sys.exit(main())
