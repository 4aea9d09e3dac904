"""Benchmark `ehrbench synth`: wall time, peak memory and rows at 10,000 and 100,000 subjects.

Each size runs `ehrbench synth` in a fresh process under `/usr/bin/time -v` (peak RSS of the
process), then reports rows per subject and the outcome prevalences of the smallest size, read
back from the written events. Results: `benchmarks/results/synth.md` and `synth.json`.

    .venv/bin/python benchmarks/bench_synth.py                 # 10,000 and 100,000 subjects
    .venv/bin/python benchmarks/bench_synth.py --sizes 10000   # quick run
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl
from common import EHRBENCH, RESULTS, wall_and_peak

from ehrbench.synth.summary import admissions, prevalences

ROOT = Path(__file__).resolve().parents[1]


def run_once(n_subjects: int, seed: int, out: Path) -> dict:
    """Time one `ehrbench synth` run into `out`."""
    cmd = ["/usr/bin/time", "-v", str(EHRBENCH), "synth", "--subjects", str(n_subjects)]
    cmd += ["--seed", str(seed), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall, rss = wall_and_peak(done.stderr)
    rows = int(re.search(r"subjects, ([\d,]+) rows", done.stdout).group(1).replace(",", ""))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {
        "subjects": n_subjects,
        "rows": rows,
        "rows_per_subject": rows / n_subjects,
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(rss),
        "disk_mib": round(size / 2**20, 1),
        "rows_per_s": round(rows / wall),
    }


def outcome_table(root: Path) -> dict:
    """Prevalence of the main outcomes, computed from the written events."""
    events = pl.read_parquet(root / "data" / "**" / "*.parquet")
    stays = admissions(events)
    table = {
        name: {"prevalence": round(p, 4), "n": n} for name, (p, n) in prevalences(stays).items()
    }
    table["_admissions_per_subject"] = round(stays.height / events["subject_id"].n_unique(), 3)
    return table


def write_markdown(runs: list[dict], outcomes: dict, outcome_size: int) -> str:
    lines = [
        "# `ehrbench synth` benchmark",
        "",
        "One run per size on the shared 2-core machine (timings are noisy); `/usr/bin/time -v`.",
        "",
        "| subjects | rows | rows/subject | wall (s) | peak RSS (MiB) | on disk (MiB) | rows/s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        lines.append(
            f"| {r['subjects']:,} | {r['rows']:,} | {r['rows_per_subject']:.0f} | {r['wall_s']} "
            f"| {r['peak_rss_mib']:,} | {r['disk_mib']} | {r['rows_per_s']:,} |"
        )
    lines += [
        "",
        f"## Outcome prevalences at {outcome_size:,} subjects (seed 0)",
        "",
        f"Admissions per subject: {outcomes['_admissions_per_subject']}. Mortality, ICU transfer "
        "and long stay count admissions still in hospital at 24 h (ICU transfer: not in ICU by "
        "24 h); readmission counts live discharges; abnormal labs count stays with the lab "
        "measured after 24 h.",
        "",
        "| outcome | prevalence | admissions |",
        "| --- | ---: | ---: |",
    ]
    for name, row in outcomes.items():
        if not name.startswith("_"):
            lines.append(f"| {name} | {row['prevalence']:.3f} | {row['n']:,} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runs, outcomes = [], None
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        for n in sorted(args.sizes):
            out = Path(tmp) / f"synth_{n}"
            runs.append(run_once(n, args.seed, out))
            print(json.dumps(runs[-1]), flush=True)
            if outcomes is None:
                outcomes = outcome_table(out)
            shutil.rmtree(out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    smallest = min(args.sizes)
    (RESULTS / "synth.md").write_text(write_markdown(runs, outcomes, smallest), encoding="utf-8")
    payload = {"runs": runs, "outcomes_subjects": smallest, "outcomes": outcomes}
    (RESULTS / "synth.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print((RESULTS / "synth.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
