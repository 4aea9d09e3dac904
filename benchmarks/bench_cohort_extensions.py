"""Benchmark: cohorts written with the language extensions (spec section 10) against their
boolean twins, extracted in-process on the same synthetic data.

Each pair is a library cohort and the same windows with one extension: a class label
(`lab_hyperkalemia_levels`), a duration label (`length_of_stay`), a value label (hyperkalemia's
`label: {value: potassium_measured, take: max}`), an age filter (`mortality_in_hospital_adults`),
a calendar filter (`trigger_between` over five of the record's years) and a cohort predicate
(`mortality_in_hospital_icu_first_day`, which extracts `mortality_in_hospital` first, against
that cohort alone). Times are medians of `--repeats` runs of `extract` after one warm-up run.
Results go to benchmarks/results/cohort_extensions.md.

Usage: .venv/bin/python benchmarks/bench_cohort_extensions.py --subjects 100000 --shards 10
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, at_least_one, median_seconds, synthetic_dataset  # noqa: E402

from ehrbench.cohort.config import load_cohort  # noqa: E402
from ehrbench.cohort.extract import extract  # noqa: E402
from ehrbench.cohort.library import library_dir, predicates_paths  # noqa: E402
from ehrbench.cohort.model import TriggerBetween, ValueLabel  # noqa: E402
from ehrbench.io import write_text_atomic  # noqa: E402
from ehrbench.meds import open_dataset  # noqa: E402


def _library(name: str):
    return load_cohort(library_dir() / f"{name}.yaml", predicates_paths()["synthetic"])


def _with_label_window(cohort, **changes):
    window = cohort.label_window
    windows = tuple(dataclasses.replace(w, **changes) if w is window else w for w in cohort.windows)
    return dataclasses.replace(cohort, windows=windows)


def pairs() -> list[tuple[str, object, object]]:
    """(extension, boolean twin, cohort with the extension)."""
    hyperkalemia = _library("lab_hyperkalemia")
    # The value label reads potassium_measured, which the twin already counts for its `has`.
    valued = _with_label_window(
        hyperkalemia, label=None, label_form=ValueLabel("potassium_measured", "max")
    )
    mortality = _library("mortality_in_hospital")
    # The synthetic record lies in 2055-2162 (shifted years, as in MIMIC-IV), mostly 2150-2160.
    between = TriggerBetween(dt.datetime(2150, 1, 1), dt.datetime(2155, 1, 1))
    return [
        ("classes label", hyperkalemia, _library("lab_hyperkalemia_levels")),
        ("duration label", mortality, _library("length_of_stay")),
        ("value label", hyperkalemia, valued),
        ("age", mortality, _library("mortality_in_hospital_adults")),
        ("trigger_between", mortality, dataclasses.replace(mortality, trigger_between=between)),
        ("cohort predicate", mortality, _library("mortality_in_hospital_icu_first_day")),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--repeats", type=at_least_one, default=3)
    parser.add_argument("--data", type=Path, help="an existing synthetic MEDS folder to use")
    args = parser.parse_args()
    dataset = open_dataset(args.data or synthetic_dataset(args.subjects, args.shards), deep=False)
    lines = [
        "# Cohort language extensions: speed against the boolean twin",
        "",
        f"Written by `benchmarks/bench_cohort_extensions.py`: {args.subjects:,} synthetic "
        f"subjects, {args.shards} shards, in-process `extract`, median of {args.repeats} runs "
        "after a warm-up (2-core machine, shared).",
        "",
        "| extension | twin rows | twin s | extended rows | extended s | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, twin, extended in pairs():
        rows, seconds = [], []
        for cohort in (twin, extended):
            rows.append(extract(cohort, dataset).labels.height)
            seconds.append(median_seconds(lambda c=cohort: extract(c, dataset), args.repeats))
        ratio = seconds[1] / seconds[0]
        lines.append(
            f"| {name} | {rows[0]:,} | {seconds[0]:.2f} | {rows[1]:,} | {seconds[1]:.2f} | "
            f"{ratio:.2f} |"
        )
        print(lines[-1], flush=True)
    write_text_atomic("\n".join(lines) + "\n", RESULTS / "cohort_extensions.md")


if __name__ == "__main__":
    main()
