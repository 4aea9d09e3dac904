"""`make bench`: every benchmark in turn, each side by side with its peer tool where one exists.

The peer tools live in their own virtual environments, created here when missing (ACES 0.7.3 in
benchmarks/.venv-aces, MEDS-Tab in benchmarks/.venv-medstab; never dependencies of ehrbench).
Each script writes its table under benchmarks/results/; this runner only sequences them, so one
benchmark can also be rerun alone with the command it prints. The cohort and feature benchmarks
run on both data generators (`ehrbench synth` and benchmarks/second_generator.py) and on both
shard layouts (3 large shards, 10 small ones); every table records the machine's load.
compare_meds_tab.py checks the feature values against MEDS-Tab's cell by cell (200 subjects, a
few minutes per generator).

Usage: .venv/bin/python benchmarks/run_all.py [--quick]
  --quick  small sizes only (2,000 subjects for cohorts; features at 200 subjects in one shard,
           where MEDS-Tab takes minutes; no 100,000 runs)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from common import GENERATORS

HERE = Path(__file__).resolve().parent


def on_every_layout(script: str, subjects: int, layouts: tuple[int, ...], *options: str):
    """`script` on both data generators and every shard count in `layouts`."""
    return [
        [script, "--generator", generator, "--subjects", str(subjects), "--shards", str(shards)]
        + list(options)
        for generator in GENERATORS
        for shards in layouts
    ]


def steps(quick: bool) -> list[list[str]]:
    """The benchmark commands, as script name and options."""
    if quick:
        return [
            ["meds_validate.py", "--shards", "4", "--rows", "2000000", "--repeats", "3"],
            ["bench_metrics.py"],
            ["bench_synth.py", "--sizes", "10000"],
            *on_every_layout("bench_cohort.py", 2000, (3, 10), "--repeats", "1"),
            *on_every_layout("bench_library.py", 2000, (3, 10)),
            *on_every_layout("bench_features.py", 200, (1,), "--repeats", "1"),
            *on_every_layout("compare_meds_tab.py", 200, (1,)),
            ["bench_storage.py", "--subjects", "200", "--shards", "1", "--repeats", "3"],
        ]
    return [
        ["meds_validate.py", "--shards", "10", "--rows", "9000000", "--repeats", "3"],
        ["bench_metrics.py"],
        ["bench_synth.py", "--sizes", "10000", "100000"],
        *on_every_layout("bench_cohort.py", 100_000, (3, 10), "--repeats", "1"),
        *on_every_layout("bench_library.py", 100_000, (3, 10)),
        *on_every_layout("bench_features.py", 1000, (3, 10), "--repeats", "1"),
        *on_every_layout("compare_meds_tab.py", 200, (1,)),
        *on_every_layout("bench_features.py", 100_000, (3, 10), "--no-medstab", "--repeats", "1"),
        ["bench_storage.py", "--subjects", "100000", "--shards", "10", "--repeats", "3"],
    ]


def ensure_side_environments() -> None:
    """Create the peer tools' virtual environments when they are missing."""
    if not (HERE / ".venv-aces" / "bin" / "aces-cli").exists():
        subprocess.run(["bash", str(HERE / "aces_env.sh")], check=True)
    if not (HERE / ".venv-medstab").exists():
        subprocess.run(["bash", str(HERE / "meds_tab_env.sh")], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    args = parser.parse_args()
    ensure_side_environments()
    failed = []
    for script, *options in steps(args.quick):
        command = [sys.executable, str(HERE / script), *options]
        print(f"\n=== {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        if subprocess.run(command).returncode != 0:
            failed.append(script)
        print(f"=== {script} took {time.monotonic() - started:.0f} s", flush=True)
    print(f"\nresults: {HERE / 'results'}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
