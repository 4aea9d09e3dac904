"""What the benchmark scripts share: the synthetic datasets they reuse and process measurements."""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
WORK = RESULTS / "work"
EHRBENCH = Path(sys.executable).parent / "ehrbench"


def at_least_one(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a count of repeats), else argparse's
    one-line usage error (exit 2).

    >>> at_least_one("3")
    3
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def synthetic_dataset(subjects: int, shards: int) -> Path:
    """The synthetic MEDS folder for `subjects` and `shards`, made once by `ehrbench synth`."""
    command = [str(EHRBENCH), "synth", "--subjects", str(subjects), "--seed", "0"]
    return _made_once(f"synth_{subjects}_{shards}", command + ["--shards", str(shards)])


def longtail_dataset(subjects: int, shards: int) -> Path:
    """The MEDS folder of benchmarks/second_generator.py for `subjects` and `shards`, made once."""
    command = [sys.executable, str(HERE / "second_generator.py"), "--subjects", str(subjects)]
    return _made_once(
        f"longtail_{subjects}_{shards}", command + ["--shards", str(shards), "--seed", "0"]
    )


def _made_once(name: str, command: list[str]) -> Path:
    """`WORK/name`, made by `command` (given `--out` it) unless it already holds a dataset;
    raises RuntimeError when `command` fails (its own message is printed above)."""
    root = WORK / name
    if not (root / "data").is_dir():
        WORK.mkdir(parents=True, exist_ok=True)
        if subprocess.run([*command, "--out", str(root)]).returncode != 0:
            raise RuntimeError(f"could not make the dataset {root} (`{' '.join(command)}`).")
    return root


def features_work(generator: str, subjects: int, shards: int) -> Path:
    """The work folder of bench_features.py's run on this data (bench_storage.py reads it)."""
    return WORK / f"features_{generator}_{subjects}_{shards}"


# Each benchmark runs on both generators: a speed ratio depends on the data as well as the tools.
GENERATORS = {
    "synth": (synthetic_dataset, "`ehrbench synth --subjects {n} --seed 0 --shards {k}`"),
    "longtail": (
        longtail_dataset,
        "`benchmarks/second_generator.py --subjects {n} --shards {k} --seed 0` (Zipf-like long "
        "tail of 50,000 codes, 50,000-row row groups, unequal shards)",
    ),
}


def benchmark_dataset(generator: str, subjects: int, shards: int) -> tuple[Path, str]:
    """(folder, how it was made) of `generator`'s dataset of `subjects` in `shards` shards."""
    make, origin = GENERATORS[generator]
    return make(subjects, shards), origin.format(n=subjects, k=shards)


def machine_load() -> str:
    """The load averages over 1, 5 and 15 minutes, as `uptime` prints them."""
    return ", ".join(f"{load:.2f}" for load in os.getloadavg())


def peak_rss_kib(report: str) -> int | None:
    """The peak RSS that `/usr/bin/time -v` printed, in KiB (None when it is absent)."""
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    return int(found.group(1)) if found else None


def wall_and_peak(report: str) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) from the report of `/usr/bin/time -v`."""
    wall = re.search(r"Elapsed \(wall clock\) time .*: (?:(\d+):)?(\d+):([\d.]+)", report)
    hours, minutes, seconds = (float(g) if g else 0.0 for g in wall.groups())
    return hours * 3600 + minutes * 60 + seconds, peak_rss_kib(report) / 1024


def timed(args: list[str], log: Path | None = None) -> tuple[float, float, str]:
    """Run `args` under `/usr/bin/time -v`, its report in a file of its own (so the command's
    output cannot mix with it): (wall seconds, peak RSS MiB, the command's stdout). The command's
    output is appended to `log` when given; a failure raises RuntimeError with that output."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        command = ["/usr/bin/time", "-v", "-o", report.name, *args]
        proc = subprocess.run(command, capture_output=True, text=True)
        text = report.read()
    if log is not None:
        with log.open("a") as out:
            out.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(args)}` failed:\n{proc.stdout}{proc.stderr}")
    wall, peak = wall_and_peak(text)
    return wall, peak, proc.stdout


def code_commit() -> str:
    """The ehrbench commit being measured (short hash, `-dirty` if ehrbench/ has uncommitted
    changes), or `unknown` outside a git checkout: recorded beside each benchmark result."""
    repo = HERE.parent
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True)
    if head.returncode != 0:
        return "unknown"
    changes = subprocess.run(
        ["git", "status", "--porcelain", "--", "ehrbench"], cwd=repo, capture_output=True
    )
    return head.stdout.decode().strip() + ("-dirty" if changes.stdout.strip() else "")


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """The median wall time of `repeats` calls of `fn`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
