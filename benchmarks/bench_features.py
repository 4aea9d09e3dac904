"""Benchmark: ehrbench's tabular featuriser against MEDS-Tab 0.2.0, side by side.

Both tools featurise the same synthetic dataset (made once under benchmarks/results/work/ by
`--generator`: `ehrbench synth --subjects N --seed 0 --shards K`, or benchmarks/second_generator.py
with its long tail of rare codes) for the same label table: one row per hospital admission,
predicting at admission + 24 h. Same windows (1d, 30d, 365d, full), same minimum code count
(10), same aggregations: code count, value count, sum, sum of squares, min, max, plus static
codes. (ehrbench computes a superset: it also adds value/last, age and time since last event.)

- MEDS-Tab (its own venv, `bash benchmarks/meds_tab_env.sh`): `meds-tab-describe`,
  `meds-tab-tabularize-static`, then `meds-tab-tabularize-time-series` with `input_label_dir`, its
  task-specific mode that aggregates only at the label times (its fastest route to the same
  matrix). Its input is the dataset re-laid as `data/<split>/<shard>.parquet` with labels as
  `labels/<split>/<shard>.parquet`, prepared outside the timing.
- ehrbench: `ehrbench featurize tabular` on the MEDS folder, one process, empty cache.

Each process runs under `/usr/bin/time -v`; a tool's time is the sum over its stages and its
peak memory the largest peak RSS of any stage. Runs alternate between the tools so both see the
same machine load; times are medians over runs, and the load averages before and after are
recorded. Results: benchmarks/results/features_<generator>_<N>_<K>.json, and
benchmarks/results/features.md rebuilt from all of them.

Usage:
  .venv/bin/python benchmarks/bench_features.py --subjects 1000 --shards 3 --repeats 3
  .venv/bin/python benchmarks/bench_features.py --generator longtail --subjects 100000 \
      --shards 10 --no-medstab --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import polars as pl
from common import (
    EHRBENCH,
    GENERATORS,
    RESULTS,
    benchmark_dataset,
    features_work,
    machine_load,
    timed,
)

from ehrbench.io import write_text_atomic
from ehrbench.meds import open_dataset, write_labels

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MEDSTAB_BIN = HERE / ".venv-medstab" / "bin"
WINDOWS = ("1d", "30d", "365d", "full")
MIN_COUNT = 10
MEDSTAB_TS_AGGS = (
    "code/count",
    "value/count",
    "value/sum",
    "value/sum_sqd",
    "value/min",
    "value/max",
)
MEDSTAB_STATIC_AGGS = ("static/present",)


def admission_labels(root: Path, target: Path) -> pl.DataFrame:
    """One label per hospital admission at admission + 24 h (the value is irrelevant here)."""
    dataset = open_dataset(root, deep=False)
    parts = [
        dataset.scan(shard)
        .filter(pl.col("code").str.starts_with("HOSPITAL_ADMISSION//"))
        .select(
            pl.col("subject_id").cast(pl.Int64),
            (pl.col("time").cast(pl.Datetime("us")) + pl.duration(hours=24)).alias(
                "prediction_time"
            ),
        )
        .collect()
        for shard in dataset.shards
    ]
    labels = (
        pl.concat(parts)
        .unique(maintain_order=True)
        .sort("subject_id", "prediction_time")
        .with_columns((pl.col("subject_id") % 2 == 0).alias("boolean_value"))
    )
    write_labels(labels, target)
    return labels


def medstab_input(root: Path, labels: pl.DataFrame, target: Path) -> Path:
    """Lay the dataset out as MEDS-Tab reads it: data/<split>/<i>.parquet, labels alike."""
    if (target / "done").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    dataset = open_dataset(root, deep=False)
    splits = dataset.subject_splits()
    for i, shard in enumerate(dataset.shards):
        events = dataset.read_shard(shard).join(splits, on="subject_id")
        for (split,), part in events.group_by("split", maintain_order=True):
            (target / "data" / split).mkdir(parents=True, exist_ok=True)
            (target / "labels" / split).mkdir(parents=True, exist_ok=True)
            part = part.drop("split").sort("subject_id", "time", nulls_last=False)
            part.write_parquet(target / "data" / split / f"{i}.parquet")
            ids = part["subject_id"].unique()
            labels.filter(pl.col("subject_id").is_in(ids.implode())).write_parquet(
                target / "labels" / split / f"{i}.parquet"
            )
    (target / "done").write_text("ok")
    return target


def run_ehrbench(root: Path, labels_path: Path, work: Path, log: Path) -> dict:
    """One ehrbench run with a fresh output folder and an empty cache."""
    out = work / "ehrbench_out"
    shutil.rmtree(out, ignore_errors=True)
    args = [str(EHRBENCH), "featurize", "tabular", "--data", str(root)]
    args += ["--labels", str(labels_path), "--out", str(out), "--windows", ",".join(WINDOWS)]
    args += ["--min-count", str(MIN_COUNT)]
    wall, peak, _ = timed(args, log)
    import scipy.sparse as sp

    matrix = sp.load_npz(out / "features.npz")
    return {"seconds": wall, "peak_mib": peak, "shape": list(matrix.shape), "nnz": matrix.nnz}


def run_medstab(data: Path, work: Path, log: Path, static_at_labels: bool = False) -> dict:
    """One MEDS-Tab run (describe, static, time series at label times) into a fresh folder.

    The static step runs at every event time unless `static_at_labels` (then at label times, one
    row per label row, as benchmarks/compare_meds_tab.py needs)."""
    out = work / "medstab_out"
    labels = [f"input_label_dir={data / 'labels'}"]
    shutil.rmtree(out, ignore_errors=True)
    common = [f"input_dir={data / 'data'}", f"output_dir={out}"]
    tab = [
        f"tabularization.min_code_inclusion_count={MIN_COUNT}",
        f"tabularization.window_sizes=[{','.join(WINDOWS)}]",
    ]
    stages = {
        "describe": [str(MEDSTAB_BIN / "meds-tab-describe"), *common],
        "static": [
            str(MEDSTAB_BIN / "meds-tab-tabularize-static"),
            *common,
            *tab,
            f"tabularization.aggs=[{','.join(MEDSTAB_STATIC_AGGS)}]",
            *(labels if static_at_labels else []),
        ],
        "time_series": [
            str(MEDSTAB_BIN / "meds-tab-tabularize-time-series"),
            *common,
            *tab,
            f"tabularization.aggs=[{','.join(MEDSTAB_TS_AGGS)}]",
            *labels,
        ],
    }
    result = {"stages": {}}
    for name, args in stages.items():
        wall, peak, _ = timed(args, log)
        result["stages"][name] = {"seconds": wall, "peak_mib": peak}
    result["seconds"] = sum(s["seconds"] for s in result["stages"].values())
    result["peak_mib"] = max(s["peak_mib"] for s in result["stages"].values())
    result["files"] = len(list((out / "tabularize").rglob("*.npz")))
    return result


def summarise(runs: list[dict]) -> dict:
    """Median time and largest peak over runs."""
    return {
        "seconds_median": statistics.median(r["seconds"] for r in runs),
        "seconds_all": [round(r["seconds"], 2) for r in runs],
        "peak_mib_max": max(r["peak_mib"] for r in runs),
        "last_run": runs[-1],
    }


def write_markdown() -> None:
    """Rebuild benchmarks/results/features.md from every features_<N>.json."""
    lines = [
        "# Tabular featurisation: ehrbench vs MEDS-Tab 0.2.0",
        "",
        "Made by `benchmarks/bench_features.py` (see its docstring for the protocol). Same "
        "synthetic data and labels (one per admission, at admission + 24 h), windows "
        f"{', '.join(WINDOWS)}, min code count {MIN_COUNT}, aggregations code count, value "
        "count/sum/sum of squares/min/max and static codes. MEDS-Tab runs in task mode (only at "
        "label times): describe + static + time series. Times are medians (wall clock), "
        "memory the peak RSS of any process, on a shared 2-core machine whose load averages "
        "(1, 5, 15 min, as `uptime` prints them) are given before and after each row's runs.",
        "",
        "| subjects | generator | shards | load before / after | events | label rows "
        "| ehrbench s | ehrbench peak MiB | MEDS-Tab s | MEDS-Tab peak MiB | speed-up "
        "| memory ratio |",
        "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    results = [json.loads(path.read_text()) for path in RESULTS.glob("features_*.json")]
    for r in sorted(results, key=lambda r: (r["subjects"], r["generator"], r["shards"])):
        ours = r["ehrbench"]
        theirs = r.get("medstab")
        cells = [
            f"{r['subjects']:,}",
            r["generator"],
            str(r["shards"]),
            f"{r['load_before']} / {r['load_after']}",
            f"{r['events']:,}",
            f"{r['label_rows']:,}",
            f"{ours['seconds_median']:.1f}",
            f"{ours['peak_mib_max']:.0f}",
        ]
        if theirs:
            cells += [
                f"{theirs['seconds_median']:.1f}",
                f"{theirs['peak_mib_max']:.0f}",
                f"{theirs['seconds_median'] / ours['seconds_median']:.1f}x",
                f"{ours['peak_mib_max'] / theirs['peak_mib_max']:.2f}",
            ]
        else:
            cells += ["not run"] * 2 + ["-"] * 2
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Speed-up = MEDS-Tab time / ehrbench time; memory ratio = ehrbench peak / MEDS-Tab peak. "
        "Per-run times and per-stage figures are in the JSON files beside this one.",
        "",
        "Notes:",
        "- ehrbench's time is the whole `ehrbench featurize tabular` process, including the "
        "start-up of the `ehrbench` command line (it imports every area's commands: several "
        "seconds on a loaded machine) and writing the outputs; the featurisation itself is "
        "what the command prints.",
        "- ehrbench computes more than MEDS-Tab here: also value/last per window, age and time "
        "since the last event.",
        "- Since 12efe97 `featurize` writes the matrix to features.npz a piece of rows at a time "
        "and never holds it whole (the peak memory) and accumulates the running value figures "
        "with numpy rather than polars' window functions (most of the time); the files are the "
        "same bytes. The 100,000-subject rows were measured after that change (before it, on 10 "
        "shards: synth 76.0 s, 1,255 MiB; longtail 98.3 s, 2,566 MiB).",
        "- MEDS-Tab is not run at 10,000 subjects: at 1,000 it already needs about 9 to 14 "
        "minutes, so 10,000 would exceed the 30-minute budget.",
        "- Only ehrbench's output shape is checked here; the feature values are compared cell "
        "by cell in meds_tab_compare.md (benchmarks/compare_meds_tab.py).",
    ]
    write_text_atomic("\n".join(lines) + "\n", RESULTS / "features.md")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", choices=sorted(GENERATORS), default="synth")
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--medstab-repeats", type=int, default=None, help="default: --repeats")
    parser.add_argument("--no-medstab", action="store_true", help="run ehrbench alone")
    parser.add_argument("--data", type=Path, help="use this MEDS folder instead of synthesising")
    args = parser.parse_args(argv)
    generator = "folder" if args.data else args.generator
    root = args.data or benchmark_dataset(generator, args.subjects, args.shards)[0]
    work = features_work(generator, args.subjects, args.shards)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    labels = admission_labels(root, work / "labels.parquet")
    events = sum(
        open_dataset(root, deep=False).scan(s).select(pl.len()).collect().item()
        for s in open_dataset(root, deep=False).shards
    )
    use_medstab = not args.no_medstab
    if use_medstab and not (MEDSTAB_BIN / "meds-tab-describe").exists():
        subprocess.run(["bash", str(HERE / "meds_tab_env.sh")], check=True)
    data = medstab_input(root, labels, work / "medstab_input") if use_medstab else None
    medstab_repeats = args.medstab_repeats or args.repeats
    load_before = machine_load()
    ours, theirs = [], []
    for i in range(max(args.repeats, medstab_repeats if use_medstab else 0)):
        if i < args.repeats:
            ours.append(run_ehrbench(root, work / "labels.parquet", work, log))
            print(f"ehrbench run {i + 1}: {ours[-1]['seconds']:.1f} s", flush=True)
        if use_medstab and i < medstab_repeats:
            theirs.append(run_medstab(data, work, log))
            print(f"MEDS-Tab run {i + 1}: {theirs[-1]['seconds']:.1f} s", flush=True)
    result = {
        "generator": generator,
        "subjects": args.subjects,
        "shards": args.shards,
        "load_before": load_before,
        "load_after": machine_load(),
        "events": events,
        "label_rows": labels.height,
        "windows": list(WINDOWS),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "ehrbench": summarise(ours),
    }
    if theirs:
        result["medstab"] = summarise(theirs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"features_{generator}_{args.subjects}_{args.shards}.json"
    write_text_atomic(json.dumps(result, indent=1), RESULTS / name)
    write_markdown()
    print((RESULTS / "features.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
