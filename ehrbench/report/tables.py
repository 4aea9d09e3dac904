"""The report's numbers, computed from a results folder written by `ehrbench run`.

Conventions used throughout the report:

- a learning-curve point is the mean over replicate seeds of the run's value; its band is the
  mean over seeds of the runs' 95% bootstrap interval bounds (the typical uncertainty of one
  replicate); `k = all` is one run (under `protocol: ehrshot`, one per seed, averaged the same
  way; its paired comparison, subgroups and calibration curve show the first seed's run);
- the macro average of a model at a k is the mean of those points over the cohorts where the
  model has a value at that k (the count of cohorts is reported with it);
- the win rate of a model against the baseline at a k is the share of cohorts where its
  seed-mean AUROC is strictly higher.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ehrbench.errors import EhrbenchError
from ehrbench.io import DAMAGED_FILE_ERRORS
from ehrbench.models.cost import COST_COLUMNS
from ehrbench.protocol.fewshot import ALL, MAX_K
from ehrbench.protocol.manifest import MANIFEST_FILE, Manifest

REQUIRED_FILES = (MANIFEST_FILE, "results.parquet", "paired.parquet", "calibration.parquet")
CURVE_METRICS = ("auroc", "auprc")
REWRITE = (
    "Rerun the suite to write the results folder's tables again (finished runs are not recomputed)."
)


@dataclass(frozen=True)
class ResultsFolder:
    """Everything `ehrbench run` wrote that the report reads."""

    root: Path
    manifest: Manifest
    results: pl.DataFrame
    paired: pl.DataFrame
    calibration: pl.DataFrame
    runs: pl.DataFrame

    @property
    def models(self) -> list[str]:
        """The suite's models, in suite order."""
        return list(self.manifest.models)

    @property
    def cohorts(self) -> list[str]:
        """The cohorts that were run, in suite order."""
        return list(self.manifest.cohort_order)

    @property
    def baseline(self) -> str | None:
        """The model the paired comparisons are against."""
        return self.manifest.baseline


def load_results(root: str | Path) -> ResultsFolder:
    """Read a results folder; raise `EhrbenchError` naming what is missing or damaged."""
    root = Path(root)
    if not root.is_dir():
        raise EhrbenchError(
            f"{root} is not a folder: expected the output folder of `ehrbench run`."
        )
    missing = [name for name in REQUIRED_FILES if not (root / name).exists()]
    if missing:
        raise EhrbenchError(
            f"{root} lacks {missing}: expected the output folder of a finished `ehrbench run` "
            "(one cut short, or writing its tables now, has no manifest.json: rerun the suite "
            "to write them, finished runs are not recomputed; or rerun `ehrbench evaluate`)."
        )
    written = _file_identity(root / MANIFEST_FILE)
    folder = _read_tables(root)
    if _file_identity(root / MANIFEST_FILE) != written:
        raise EhrbenchError(
            f"{root} was written again while the report read it (an `ehrbench run` finishing): "
            "its tables may mix two runs' results. Run the report again."
        )
    return folder


def _file_identity(path: Path) -> tuple[int, int, int, bytes] | None:
    """`path`'s size, modification and change times and bytes, or None when it is missing: a
    manifest written again differs in one of them (its bytes count the runs; the times tell a
    rewrite of the same bytes on file systems with fine timestamps)."""
    try:
        stat = path.stat()
        return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, path.read_bytes()
    except FileNotFoundError:
        return None


def _read_tables(root: Path) -> ResultsFolder:
    """The manifest and tables of the results folder `root`, each checked as it is read."""
    runs_csv = root / "runs.csv"
    with _reading(root / MANIFEST_FILE):
        manifest = Manifest.read(root)
    with _reading(root / "results.parquet"):
        results = pl.read_parquet(root / "results.parquet")
    _check_rows(root / "results.parquet", results, manifest)
    with _reading(root / "paired.parquet"):
        paired = pl.read_parquet(root / "paired.parquet")
    with _reading(root / "calibration.parquet"):
        calibration = pl.read_parquet(root / "calibration.parquet")
    with _reading(runs_csv):
        runs = (
            pl.read_csv(runs_csv, schema_overrides={"k": pl.String})
            if runs_csv.exists()
            else pl.DataFrame()
        )
    return ResultsFolder(root, manifest, results, paired, calibration, runs)


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Read `path`, a file `ehrbench run` wrote, inside this block: a damaged or hand-edited
    file gives one clear error naming it, and how a results folder's tables are written again
    (`ehrbench.io.reading_saved`'s remedy for a file of its own would not say)."""
    try:
        yield
    except (OSError, *DAMAGED_FILE_ERRORS) as exc:
        # Polars follows what is wrong with lines of hints: the first line says it.
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EhrbenchError(
            f"{path} cannot be read ({detail}): it was damaged or edited after `ehrbench run` "
            f"wrote it. {REWRITE}"
        ) from None


def _check_rows(path: Path, results: pl.DataFrame, manifest: Manifest) -> None:
    """Refuse a results table with no rows when the manifest counts finished runs (a grid whose
    every run failed has no rows, and its report lists the failures)."""
    if results.is_empty() and manifest.runs.ok:
        raise EhrbenchError(
            f"{path} holds no rows, but {MANIFEST_FILE} beside it counts {manifest.runs.ok} "
            f"finished run(s): it was emptied or replaced after `ehrbench run` wrote it. {REWRITE}"
        )


def k_order(k: str) -> int:
    """Sort key of a k label: numbers ascending, `all` last."""
    return MAX_K + 1 if k == ALL else int(k)


def _k_sort() -> pl.Expr:
    return pl.col("k").map_elements(k_order, return_dtype=pl.Int64)


def overall(folder: ResultsFolder, metric: str) -> pl.DataFrame:
    """Per (cohort, model, k, seed): the run's overall value and interval for `metric`."""
    return folder.results.filter((pl.col("group") == "all") & (pl.col("metric") == metric)).select(
        "cohort", "model", "k", "seed", "value", "ci_low", "ci_high"
    )


def curve(folder: ResultsFolder, metric: str) -> pl.DataFrame:
    """Per (cohort, model, k): seed-mean value and interval bounds, and the number of seeds."""
    return (
        overall(folder, metric)
        .filter(pl.col("value").is_not_nan())
        .group_by("cohort", "model", "k")
        .agg(
            pl.col("value").mean(),
            pl.col("ci_low").mean(),
            pl.col("ci_high").mean(),
            pl.col("value").alias("per_seed"),
            pl.len().alias("n_seeds"),
        )
        .sort("cohort", "model", _k_sort())
    )


def macro(folder: ResultsFolder, metric: str) -> pl.DataFrame:
    """Per (model, k): mean over cohorts of the seed-mean value, and how many cohorts."""
    return (
        curve(folder, metric)
        .group_by("model", "k")
        .agg(pl.col("value").mean(), pl.len().alias("n_cohorts"))
        .sort("model", _k_sort())
    )


def ks_present(folder: ResultsFolder) -> list[str]:
    """The k values with at least one result, in grid order."""
    return sorted(set(folder.results["k"].to_list()), key=k_order)


def at_all(folder: ResultsFolder, metric: str) -> pl.DataFrame:
    """The k = all value and interval for `metric` per (cohort, model), seed-mean when `all`
    ran once per seed."""
    return (
        overall(folder, metric)
        .filter(pl.col("k") == ALL)
        .group_by("cohort", "model", maintain_order=True)
        .agg(pl.col("value", "ci_low", "ci_high").mean())
    )


def win_rates(folder: ResultsFolder) -> pl.DataFrame:
    """Per (model, k): cohorts won against the baseline (seed-mean AUROC), and cohorts compared."""
    baseline = folder.baseline
    points = curve(folder, "auroc").select("cohort", "model", "k", "value")
    if baseline is None or points.is_empty():
        return pl.DataFrame(
            schema={"model": pl.String, "k": pl.String, "wins": pl.Int64, "compared": pl.Int64}
        )
    base = points.filter(pl.col("model") == baseline).select(
        "cohort", "k", pl.col("value").alias("base")
    )
    return (
        points.filter(pl.col("model") != baseline)
        .join(base, on=["cohort", "k"])
        .group_by("model", "k")
        .agg((pl.col("value") > pl.col("base")).sum().alias("wins"), pl.len().alias("compared"))
        .sort("model", _k_sort())
    )


def paired_at(folder: ResultsFolder, k: str) -> pl.DataFrame:
    """Paired AUROC differences against the baseline at one k, per (cohort, model)."""
    return folder.paired.filter(pl.col("k") == k).sort("cohort", "model", "seed")


def first_seed(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows of each (cohort, model)'s first seed (`all` may run once per seed)."""
    return frame.filter(pl.col("seed") == pl.col("seed").min().over("cohort", "model"))


def subgroups(folder: ResultsFolder) -> pl.DataFrame:
    """k = all subgroup rows: cohort, model, group, level, metric, value, ci_low, ci_high."""
    return first_seed(
        folder.results.filter((pl.col("k") == ALL) & (pl.col("group") != "all"))
    ).select("cohort", "model", "group", "level", "metric", "value", "ci_low", "ci_high")


def calibration_at_all(folder: ResultsFolder) -> pl.DataFrame:
    """The calibration bins of the k = all runs (the first seed's); none when no binary run
    finished."""
    if folder.calibration.is_empty() or "k" not in folder.calibration.columns:
        return folder.calibration
    return first_seed(folder.calibration.filter((pl.col("k") == ALL) & (pl.col("n") > 0)))


def failed_runs(folder: ResultsFolder) -> pl.DataFrame:
    """Failed runs grouped by (cohort, model, error): how many and at which k."""
    if folder.runs.is_empty():
        return pl.DataFrame(
            schema={
                "cohort": pl.String,
                "model": pl.String,
                "runs": pl.Int64,
                "k": pl.String,
                "error": pl.String,
            }
        )
    return (
        folder.runs.filter(pl.col("status") == "failed")
        .with_columns(pl.col("k").cast(pl.String))
        .group_by("cohort", "model", "error")
        .agg(pl.len().alias("runs"), pl.col("k").unique().alias("ks"))
        .with_columns(
            pl.col("ks")
            .map_elements(lambda ks: ", ".join(sorted(ks, key=k_order)), return_dtype=pl.String)
            .alias("k")
        )
        .select("cohort", "model", "runs", "k", "error")
        .sort("cohort", "model", "error")
    )


def costs_at_all(folder: ResultsFolder) -> pl.DataFrame:
    """Per model: the mean over cohorts of its ok k = all runs' cost columns (`runs.csv`).

    Empty for a results folder written before runs recorded their cost.
    """
    if not set(COST_COLUMNS) <= set(folder.runs.columns):
        return pl.DataFrame(schema={"model": pl.String, **dict.fromkeys(COST_COLUMNS, pl.Float64)})
    return (
        folder.runs.filter((pl.col("status") == "ok") & (pl.col("k").cast(pl.String) == ALL))
        .group_by("model")
        .agg(pl.col(name).cast(pl.Float64).mean() for name in COST_COLUMNS)
    )


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for a table cell ("n/a" when missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def fmt_interval(value: float | None, low: float | None, high: float | None) -> str:
    """`0.812 [0.771, 0.850]`, or the bare value when the interval is missing."""
    if fmt(low) == "n/a" or fmt(high) == "n/a":
        return fmt(value)
    return f"{fmt(value)} [{fmt(low)}, {fmt(high)}]"


def fmt_signed_interval(value: float, low: float, high: float) -> str:
    """`+0.012 [-0.004, +0.030]` for differences."""
    if any(fmt(v) == "n/a" for v in (value, low, high)):
        return "n/a"
    return f"{value:+.3f} [{low:+.3f}, {high:+.3f}]"
