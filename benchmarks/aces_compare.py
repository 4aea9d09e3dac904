"""Compare ehrbench's cohort labels with ACES 0.7.3's, row for row, on one MEDS dataset.

For each cohort config, both tools extract labels from the same data (ACES shard after shard,
from the side environment made by `benchmarks/aces_env.sh`; ehrbench through its command line),
and the multisets of (subject_id, prediction_time, boolean_value) rows are compared. The ACES
defects of the spec's section 9 are accounted for explicitly, never hidden:

- rows ACES leaks with a null trigger (its window statistics say so) are removed from ACES's side
  and counted as "expected difference (spec §9: null-row leak)";
- on an index window written `start: end - Δ` ACES reports the other boundary as prediction time
  (#196): its prediction times are moved by Δ and counted as "§9 #196";
- zero-length windows written `end: start` / `+ 0h` lose their `has` in ACES (#212): ehrbench
  is also run on a copy of the config without those `has`, which must equal ACES; the rows those
  constraints drop are counted as "§9 #212".

Usage:
  .venv/bin/python benchmarks/aces_compare.py --data DIR [--predicates P.yaml] COHORT.yaml ...
Exit status 1 when any cohort has an unexplained difference.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aces_run import AcesError, AcesRun, aces_available, run_aces  # noqa: E402
from common import EHRBENCH, peak_rss_kib  # noqa: E402

from ehrbench.cohort.config import load_cohort  # noqa: E402
from ehrbench.cohort.model import Cohort, Window  # noqa: E402
from ehrbench.errors import EhrbenchError  # noqa: E402

KEY = ["subject_id", "prediction_time", "boolean_value"]
KEY_TYPES = {
    "subject_id": pl.Int64,
    "prediction_time": pl.Datetime("us"),
    "boolean_value": pl.Boolean,
}
SHOWN_ROWS = 5
GOLDENS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "aces_goldens"


@dataclass(frozen=True)
class ToolRun:
    """Labels of one ehrbench run, its wall time and peak RSS (None when not measured)."""

    labels: pl.DataFrame
    seconds: float
    peak_rss_kib: int | None


@dataclass
class Comparison:
    """The outcome of comparing one cohort's labels between the two tools."""

    cohort: str
    aces_rows: int
    ehrbench_rows: int
    expected: dict[str, int] = field(default_factory=dict)
    aces_only: pl.DataFrame | None = None
    ehrbench_only: pl.DataFrame | None = None
    failure: str | None = None

    @property
    def mismatches(self) -> int:
        return sum(f.height for f in (self.aces_only, self.ehrbench_only) if f is not None)

    @property
    def agrees(self) -> bool:
        return self.failure is None and self.mismatches == 0


def run_ehrbench(
    cohort: Path, data: Path, predicates: Path | None = None, measure: bool = False
) -> ToolRun:
    """Run `ehrbench cohort extract` in a subprocess (under `/usr/bin/time -v` with `measure`)."""
    with tempfile.TemporaryDirectory(prefix="ehrbench-") as tmp:
        out = Path(tmp) / "labels.parquet"
        args = [str(EHRBENCH), "cohort", "extract", str(cohort), "--data", str(data)]
        args += ["--out", str(out)]
        if predicates is not None:
            args += ["--predicates", str(predicates)]
        if measure:
            args = ["/usr/bin/time", "-v", *args]
        started = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"ehrbench failed on {cohort}:\n{proc.stdout}{proc.stderr}")
        labels = pl.read_parquet(out)
    return ToolRun(labels, seconds, peak_rss_kib(proc.stderr) if measure else None)


def key_rows(labels: pl.DataFrame) -> pl.DataFrame:
    """The compared columns with their label-schema types."""
    return labels.select(pl.col(c).cast(t) for c, t in KEY_TYPES.items())


def multiset_difference(left: pl.DataFrame, right: pl.DataFrame) -> pl.DataFrame:
    """Rows of `left` not matched by a row of `right`, with multiplicity (nulls match nulls)."""
    counts_l = left.group_by(KEY).len("n_left")
    counts_r = right.group_by(KEY).len("n_right")
    joined = counts_l.join(counts_r, on=KEY, how="left", nulls_equal=True)
    surplus = joined.with_columns(
        (pl.col("n_left") - pl.col("n_right").fill_null(0)).alias("n")
    ).filter(pl.col("n") > 0)
    return (
        surplus.select(*KEY, pl.col("n").cast(pl.Int64))
        .select(pl.all().repeat_by("n").explode())
        .drop("n")
        .sort(KEY, nulls_last=True)
    )


def _internal_side(window: Window) -> str:
    return "start" if window.anchored_side == "end" else "end"


def _zero_length_windows(cohort: Cohort) -> list[Window]:
    """Windows whose own-side boundary is a bare reference (`end: start`, `+ 0h`): ACES #212."""
    found = []
    for window in cohort.windows:
        inner = getattr(window, _internal_side(window))
        if inner.kind == "offset" and inner.offset == dt.timedelta(0):
            found.append(window)
    return found


def index_shift_196(cohort: Cohort) -> dt.timedelta | None:
    """How far ACES's prediction times must move to undo #196, or None when it does not apply.

    On an index window written `start: end - Δ`, ACES reports the end for `index_timestamp: start`
    (true time = reported - Δ) and the start for `index_timestamp: end` (true = reported + Δ).
    """
    window = cohort.index_window
    if window is None or window.anchored_side != "end":
        return None
    start = window.start
    if start.kind != "offset" or start.offset == dt.timedelta(0):
        return None
    delta = -start.offset
    return -delta if window.index_timestamp == "start" else delta


def without_212_constraints(cohort_path: Path, windows: list[Window], out: Path) -> Path:
    """Write a copy of the cohort YAML whose zero-length windows have no `has`: what ACES runs."""
    config = yaml.safe_load(cohort_path.read_text())
    for window in windows:
        config["windows"][window.name].pop("has", None)
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def compare_cohort(
    cohort_path: Path,
    data: Path,
    predicates: Path | None = None,
    aces: AcesRun | None = None,
    ehrbench: ToolRun | None = None,
) -> Comparison:
    """Run both tools (unless their runs are given) and compare their rows, section 9 aside."""
    cohort = load_cohort(cohort_path, predicates)
    aces = aces or run_aces(cohort_path, data, predicates)
    ehrbench = ehrbench or run_ehrbench(cohort_path, data, predicates)
    result = Comparison(cohort_path.stem, aces.labels.height, ehrbench.labels.height)

    aces_rows = key_rows(aces.labels.filter(~aces.leaked))
    leaked = int(aces.leaked.sum())
    if leaked:
        result.expected["§9 null-row leak (ACES rows with null trigger)"] = leaked
    shift = index_shift_196(cohort)
    if shift is not None and aces_rows.height:
        aces_rows = aces_rows.with_columns(pl.col("prediction_time") + shift)
        result.expected[f"§9 #196 (ACES prediction_time moved by {shift})"] = aces_rows.height

    ours = key_rows(ehrbench.labels)
    zero_length = [w for w in _zero_length_windows(cohort) if w.has]
    if zero_length:
        with tempfile.TemporaryDirectory() as tmp:
            relaxed = without_212_constraints(cohort_path, zero_length, Path(tmp) / "relaxed.yaml")
            relaxed_rows = key_rows(run_ehrbench(relaxed, data, predicates).labels)
        dropped = multiset_difference(relaxed_rows, ours)
        names = ", ".join(w.name for w in zero_length)
        result.expected[f"§9 #212 (rows dropped by `has` of {names})"] = dropped.height
        # Whatever ehrbench keeps must also be kept without the constraints.
        extra = multiset_difference(ours, relaxed_rows)
        ours = relaxed_rows
    else:
        extra = None

    result.aces_only = multiset_difference(aces_rows, ours)
    result.ehrbench_only = multiset_difference(ours, aces_rows)
    if extra is not None and extra.height:
        result.ehrbench_only = pl.concat([result.ehrbench_only, extra])
    return result


def _error_line(text: str) -> str:
    """The most telling line of a tool's failure output (its exception), shortened."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [
        line
        for line in lines
        if ("Error" in line or "Exception" in line) and not line.startswith("Error executing job")
    ]
    return (errors or lines or ["(no output)"])[-1][:240]


def safe_compare(cohort_path: Path, data: Path, predicates: Path | None) -> Comparison:
    """`compare_cohort`, with a tool's failure recorded in the result instead of raised."""
    try:
        return compare_cohort(cohort_path, data, predicates)
    except (AcesError, EhrbenchError, RuntimeError) as exc:
        return Comparison(cohort_path.stem, 0, 0, failure=_error_line(str(exc)))


def compare_goldens() -> list[Comparison]:
    """Compare live on each golden case (its events as a one-shard MEDS folder)."""
    results = []
    for case in sorted(p for p in GOLDENS.iterdir() if p.is_dir()):
        with tempfile.TemporaryDirectory() as tmp:
            shard = Path(tmp) / "data" / "0.parquet"
            shard.parent.mkdir()
            pl.read_parquet(case / "events.parquet").write_parquet(shard)
            predicates = case / "predicates.yaml"
            result = safe_compare(
                case / "cohort.yaml", Path(tmp), predicates if predicates.exists() else None
            )
        result.cohort = case.name
        results.append(result)
    return results


def format_report(results: list[Comparison]) -> str:
    """A markdown table of the comparisons, then the first differing rows of each."""
    lines = [
        "| cohort | rows ACES | rows ehrbench | mismatches | expected differences (spec §9) |",
        "|---|---:|---:|---:|---|",
    ]
    for r in results:
        expected = "; ".join(f"{k}: {v}" for k, v in r.expected.items()) or "none"
        if r.failure:
            lines.append(f"| {r.cohort} | - | - | - | FAILED: {r.failure} |")
            continue
        lines.append(
            f"| {r.cohort} | {r.aces_rows} | {r.ehrbench_rows} | {r.mismatches} | {expected} |"
        )
    for r in results:
        if r.failure or not r.mismatches:
            continue
        lines.append(f"\n{r.cohort}: first differing rows")
        for side, rows in (("only in ACES", r.aces_only), ("only in ehrbench", r.ehrbench_only)):
            if rows is not None and rows.height:
                lines.append(f"  {side} ({rows.height}):")
                lines += [f"    {row}" for row in rows.head(SHOWN_ROWS).iter_rows()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="example: .venv/bin/python benchmarks/aces_compare.py --data synth_10k "
        "benchmarks/cohorts/*.yaml",
    )
    parser.add_argument("cohorts", nargs="*", type=Path, help="cohort config files")
    parser.add_argument("--data", type=Path, help="MEDS dataset folder")
    parser.add_argument("--predicates", type=Path, help="predicates file for every cohort")
    parser.add_argument(
        "--goldens",
        action="store_true",
        help="instead, run both tools live on every case of tests/fixtures/aces_goldens/",
    )
    args = parser.parse_args(argv)
    if not aces_available():
        print("ACES is not installed: run `bash benchmarks/aces_env.sh` first.")
        return 2
    if args.goldens:
        results = compare_goldens()
    elif args.data is None or not args.cohorts:
        parser.error("give --data DIR and at least one cohort (or --goldens)")
    else:
        results = [safe_compare(c, args.data, args.predicates) for c in args.cohorts]
    print(format_report(results))
    return 0 if all(r.agrees for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
