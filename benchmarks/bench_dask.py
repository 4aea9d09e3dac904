"""Benchmark: `ehrbench run` and extraction/featurisation on 1 vs 2 Dask workers (not a test).

Grid (`grid`): one cohort (mortality_in_hospital), logreg + LightGBM + random forest with their
own grids, the full k grid (1 .. 128 and all) and seeds 0-4 (168 runs), 1,000 bootstrap
resamples, on synthetic subjects (10,000 by default, 4 shards), each scheduler into a fresh
output folder (so cohort extraction and features are counted in its total). Every run task is
timed where it runs (worker process id, seconds from its start to its outcome), and the grid's
wall time is taken around the runner's run phase. From the per-run times it prints what 16 and
64 workers would give on paper: runs placed in submission order on the first free worker, each
worker paying once per cohort for its features (as measured on the first run of a worker).

Whole grid (`wholegrid`): the grid above over every library cohort that the three models all
take (binary and multiclass labels: 21 cohorts; `length_of_stay` is a regression), on `local`
workers (2 by default). Beside the per-run times it records each cohort's runs (count, sum of
task seconds, and its span: from the grid's start or the previous cohort's last saved run to its
own last) and the on-paper figures, where each worker pays for a cohort's features once.

Shards (`shards`): `ehrbench cohorts extract` (five library cohorts in one read) and `ehrbench
featurize tabular` (mortality_in_hospital's labels) at 100,000 subjects (10 shards), in a
subprocess per scheduler.

    python benchmarks/bench_dask.py grid [--subjects 10000] [--schedulers none,1,2]
    python benchmarks/bench_dask.py wholegrid [--subjects 10000] [--schedulers 2] [--cohorts a,b]
    python benchmarks/bench_dask.py shards [--subjects 100000] [--schedulers none,1,2]

Prints Markdown rows and writes benchmarks/results/dask_<part>.json. Record `uptime` beside it:
the machine may be shared.
"""

from __future__ import annotations

import argparse
import heapq
import importlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench_grid import write_suite as grid_suite
from common import EHRBENCH, RESULTS, machine_load, synthetic_dataset

import ehrbench.protocol.runner as runner
from ehrbench.cohort.library import list_cohorts, load_library, predicates_paths
from ehrbench.meds.label_kinds import VALUE_COLUMNS
from ehrbench.protocol.commands import run_suite

COHORT = "mortality_in_hospital"
EXTRACTED = ["mortality_in_hospital", "long_los", "readmission_30d", "icu_transfer", "lab_anemia"]
MODELS = ["logreg", "lightgbm", "random_forest"]


def timed_compute_run(context, data, planned):
    """`compute_run` with its wall time and process id. Pickled by value to the workers, where
    the runner module is not patched; in process, the patched module keeps the original."""
    module = importlib.import_module("ehrbench.protocol.runner")
    compute_run = getattr(module, "untimed_compute_run", module.compute_run)
    started = time.perf_counter()
    outcome = compute_run(context, data, planned)
    outcome.bench = (time.perf_counter() - started, os.getpid())
    return outcome


class Recorder:
    """Patches the runner to time each run task and the run phase; keeps what it saw."""

    def __init__(self) -> None:
        self.runs: list[dict] = []
        self.grid_seconds = 0.0
        self.grid_started = time.perf_counter()

    def install(self) -> None:
        runner.untimed_compute_run, runner.compute_run = runner.compute_run, timed_compute_run
        record, compute = runner.GridRunner._record, runner.GridRunner._compute
        recorder = self

        def _record(self, planned, outcome, *rest):
            seconds, pid = getattr(outcome, "bench", (None, None))
            recorder.runs.append(
                {"cohort": planned.cohort, "model": planned.model, "k": str(planned.run.k),
                 "seed": planned.run.seed, "seconds": seconds, "pid": pid,
                 "saved": time.perf_counter() - recorder.grid_started}
            )  # fmt: skip
            return record(self, planned, outcome, *rest)

        def _compute(self, *args):
            recorder.grid_started = time.perf_counter()
            compute(self, *args)
            recorder.grid_seconds = time.perf_counter() - recorder.grid_started

        runner.GridRunner._record, runner.GridRunner._compute = _record, _compute


def write_suite(folder: Path, dataset: Path, scheduler: str, cohorts: list[str]) -> Path:
    """The grid's suite file in `folder`; `scheduler` is none or a number of local workers."""
    changes = {
        "name": "bench_dask",
        "cohorts": cohorts,
        "models": MODELS,
        "k": [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, "all"],
        "features": {"tabular": {"windows": ["1d", "7d", "30d", "365d", "full"], "min_count": 10}},
    }
    if scheduler != "none":
        changes |= {"scheduler": "local", "workers": int(scheduler)}
    return grid_suite(folder, dataset, folder / "out", **changes)


def mark_firsts(runs: list[dict]) -> None:
    """Mark each run that was its worker's first of its cohort (it also loaded the features)."""
    seen: set[tuple[int, str]] = set()
    for run in runs:
        run["first"] = (run["pid"], run["cohort"]) not in seen
        seen.add((run["pid"], run["cohort"]))


def on_paper(runs: list[dict], workers: int) -> float:
    """Seconds for `runs` (in submission order) on `workers` workers: each run goes to the first
    free worker, and a worker's first run of a cohort also loads the cohort's features (their
    cost: the median, over first runs, of a first run's time minus the median of the other runs
    of its cohort, model and k; a first run with no such others, an `all` run, is left out)."""
    others: dict[tuple, list[float]] = {}
    for run in runs:
        if not run["first"]:
            others.setdefault((run["cohort"], run["model"], run["k"]), []).append(run["seconds"])
    extra = [
        run["seconds"] - statistics.median(others[key])
        for run in runs
        if run["first"] and (key := (run["cohort"], run["model"], run["k"])) in others
    ]
    features = max(0.0, statistics.median(extra)) if extra else 0.0
    free = [(0.0, worker) for worker in range(workers)]
    loaded: set[tuple[int, str]] = set()
    for run in runs:
        start, worker = heapq.heappop(free)
        cost = run["seconds"] - (features if run["first"] else 0.0)
        if (worker, run["cohort"]) not in loaded:
            loaded.add((worker, run["cohort"]))
            cost += features
        heapq.heappush(free, (start + cost, worker))
    return max(end for end, _ in free)


def grid(args: argparse.Namespace) -> dict:
    return measure(args, [COHORT])


def wholegrid(args: argparse.Namespace) -> dict:
    cohorts = args.cohorts.split(",") if args.cohorts else grid_cohorts()
    report = measure(args, cohorts)
    report["cohorts"] = cohorts
    return report


def grid_cohorts() -> list[str]:
    """The library cohorts whose label kind every model of `MODELS` fits (synthetic predicates)."""
    loaded, _ = load_library(list_cohorts(), predicates_paths()["synthetic"])
    return [
        name
        for name, cohort in loaded.items()
        if all(runner.fits(model, VALUE_COLUMNS[cohort.label_column]) for model in MODELS)
    ]


def measure(args: argparse.Namespace, cohorts: list[str]) -> dict:
    """The grid of `cohorts` under each of `args.schedulers` on `args.subjects` synthetic
    subjects, each into a fresh output folder."""
    dataset = synthetic_dataset(args.subjects, 4)
    recorder = Recorder()
    recorder.install()
    report = {"subjects": args.subjects, "uptime": machine_load(), "schedulers": {}}
    for scheduler in args.schedulers.split(","):
        recorder.runs.clear()
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            run_suite(write_suite(Path(tmp), dataset, scheduler, cohorts), [])
            total = time.perf_counter() - started
        mark_firsts(recorder.runs)
        by_model_k: dict[str, list[float]] = {}
        for run in recorder.runs:
            by_model_k.setdefault(f"{run['model']} k={run['k']}", []).append(run["seconds"])
        entry = {
            "total_seconds": round(total, 1),
            "grid_seconds": round(recorder.grid_seconds, 1),
            "runs": len(recorder.runs),
            "task_seconds_sum": round(sum(r["seconds"] for r in recorder.runs), 1),
            "median_task_seconds": {
                k: round(statistics.median(v), 3) for k, v in by_model_k.items()
            },
            "uptime_after": machine_load(),
        }
        if len(cohorts) > 1:
            entry["cohorts"] = per_cohort(recorder.runs)
        if scheduler != "none":
            entry["on_paper_seconds"] = {
                str(w): round(on_paper(recorder.runs, w), 1) for w in (1, 2, 16, 64)
            }
        entry["task_seconds"] = [
            [r["cohort"], r["model"], r["k"], r["seed"], round(r["seconds"], 3)]
            for r in recorder.runs
        ]
        report["schedulers"][scheduler] = entry
        print(scheduler, json.dumps({k: v for k, v in entry.items() if k != "task_seconds"},
                                    indent=1), flush=True)  # fmt: skip
    return report


def per_cohort(runs: list[dict]) -> dict[str, dict]:
    """Each cohort's runs, sum of task seconds and span (see the module docstring), in the
    order the cohorts finished."""
    cohorts: dict[str, dict] = {}
    for run in runs:  # in the order they were saved
        entry = cohorts.setdefault(run["cohort"], {"runs": 0, "task_seconds": 0.0, "last": 0.0})
        entry["runs"] += 1
        entry["task_seconds"] += run["seconds"]
        entry["last"] = run["saved"]
    previous = 0.0
    for entry in sorted(cohorts.values(), key=lambda e: e["last"]):
        entry["span_seconds"] = round(entry["last"] - previous, 1)
        entry["task_seconds"] = round(entry["task_seconds"], 1)
        previous = entry.pop("last")
    return cohorts


def shards(args: argparse.Namespace) -> dict:
    dataset = synthetic_dataset(args.subjects, 10)
    report = {"subjects": args.subjects, "shards": 10, "uptime": machine_load(), "schedulers": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for scheduler in args.schedulers.split(","):
            option = [] if scheduler == "none" else ["--scheduler", "local", "--workers", scheduler]
            labels = Path(tmp) / f"labels_{scheduler}"
            extract = [str(EHRBENCH), "-q", "cohorts", "extract", "--data", str(dataset)]
            extract += ["--out", str(labels), "--only", ",".join(EXTRACTED), *option]
            featurize = [str(EHRBENCH), "-q", "featurize", "tabular", "--data", str(dataset)]
            featurize += ["--labels", str(labels / f"{COHORT}.parquet")]
            featurize += ["--out", str(Path(tmp) / f"features_{scheduler}"), *option]
            entry = {"extract_seconds": _seconds(extract), "featurize_seconds": _seconds(featurize)}
            entry["uptime_after"] = machine_load()
            report["schedulers"][scheduler] = entry
            print(scheduler, entry, flush=True)
    return report


def _seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["grid", "wholegrid", "shards"])
    parser.add_argument("--subjects", type=int, default=None)
    parser.add_argument("--schedulers", default=None, help="none and/or local worker counts")
    parser.add_argument("--cohorts", default=None, help="wholegrid: these cohorts, not all")
    args = parser.parse_args()
    args.subjects = args.subjects or (100_000 if args.part == "shards" else 10_000)
    args.schedulers = args.schedulers or ("2" if args.part == "wholegrid" else "1,2")
    report = {"grid": grid, "wholegrid": wholegrid, "shards": shards}[args.part](args)
    path = RESULTS / f"dask_{args.part}.json"
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
