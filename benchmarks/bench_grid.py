"""Benchmark: the per-run overhead of the few-shot grid (`ehrbench run`), in one process.

A small suite: synthetic subjects (2,000 by default, `ehrbench synth` once into
benchmarks/results/work), cohorts readmission_30d and mortality_in_hospital, logreg and LightGBM
with their own hyperparameter grids (7 and 8 settings), k in {1, 4, all}, seeds 0-4, 1,000
bootstrap resamples (as tasks/synthetic.yaml).
The grid runs into a fresh output folder; each run's time is the gap between two consecutive
`on_run` callbacks of `GridRunner` (fit, predict, metrics with intervals, store save, log line),
so the first run of each cohort, which also builds its features, is left out of the medians.

Prints the grid's wall time, the median time of a run at each k, and with `--profile` the
cProfile functions with most cumulative time over the k = 1 runs only (the grid is profiled
run by run). Usage:

    python benchmarks/bench_grid.py [--subjects 2000 | --dataset MEDS] [--out DIR] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from common import HERE, synthetic_dataset

from ehrbench.protocol.outputs import write_outputs
from ehrbench.protocol.runner import GridRunner, PlannedRun, plan_runs
from ehrbench.protocol.suite import load_suite

COHORTS = ["readmission_30d", "mortality_in_hospital"]
REPO = HERE.parent


def write_suite(folder: Path, dataset: Path, output: Path, **changes) -> Path:
    """The benchmark's suite file in `folder`, with `changes` to its keys."""
    suite = {
        "name": "bench_grid",
        "dataset": {"path": str(dataset)},
        "predicates": str(REPO / "cohorts" / "predicates" / "synthetic.yaml"),
        "cohorts_dir": str(REPO / "cohorts"),
        "cohorts": COHORTS,
        "models": ["logreg", "lightgbm"],
        "baseline": "logreg",
        "k": [1, 4, "all"],
        "seeds": [0, 1, 2, 3, 4],
        "features": {"tabular": {"windows": ["30d", "365d", "full"], "min_count": 10}},
        "bootstrap": {"resamples": 1000, "seed": 0},
        "output": str(output),
    } | changes
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return path


class RunClock:
    """The `on_run` callback: times each run as the gap since the previous run's save (or since
    the grid started), and profiles the runs at k = 1 that do not build features."""

    def __init__(self, planned: list[PlannedRun], profiler: cProfile.Profile | None) -> None:
        self.planned, self.profiler = planned, profiler
        self.times: list[float] = []
        self.last = time.perf_counter()

    def first_of_cohort(self, position: int) -> bool:
        """Whether run `position` is its cohort's first (whose time includes its features)."""
        return position == 0 or self.planned[position - 1].cohort != self.planned[position].cohort

    def start(self) -> None:
        """Start the clock (and the profiler, if the next run is profiled)."""
        position = len(self.times)
        profiled = position < len(self.planned) and str(self.planned[position].run.k) == "1"
        if self.profiler is not None and profiled and not self.first_of_cohort(position):
            self.profiler.enable()
        self.last = time.perf_counter()

    def __call__(self, planned: PlannedRun, status: str) -> None:
        self.times.append(time.perf_counter() - self.last)
        if self.profiler is not None:
            self.profiler.disable()
        self.start()

    def medians(self) -> dict[str, tuple[float, int]]:
        """Median seconds and number of runs at each k, first runs of a cohort left out."""
        by_k: dict[str, list[float]] = {}
        for position, seconds in enumerate(self.times):
            if not self.first_of_cohort(position):
                by_k.setdefault(str(self.planned[position].run.k), []).append(seconds)
        return {k: (statistics.median(s), len(s)) for k, s in by_k.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=2000)
    parser.add_argument("--dataset", type=Path, help="a MEDS folder (default: synthetic)")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    parser.add_argument("--profile", action="store_true", help="cProfile the k = 1 runs")
    args = parser.parse_args()
    dataset = args.dataset or synthetic_dataset(args.subjects, 1)
    with tempfile.TemporaryDirectory() as tmp:
        output = args.out or Path(tmp) / "out"
        suite = load_suite(write_suite(Path(tmp), dataset, output))
        # A fresh folder: the runner computes every planned run, in this order.
        profiler = cProfile.Profile() if args.profile else None
        clock = RunClock(plan_runs(suite, COHORTS, ""), profiler)
        started = time.perf_counter()
        clock.start()
        write_outputs(GridRunner(suite, on_run=clock).run())
        wall = time.perf_counter() - started
    print(f"grid: {len(clock.times)} runs in {wall:.1f} s (cohorts and features included)")
    for k, (seconds, count) in clock.medians().items():
        print(f"k={k}: median {seconds:.3f} s per run over {count} runs")
    if clock.profiler is not None:
        pstats.Stats(clock.profiler).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
