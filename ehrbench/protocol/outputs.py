"""The tables a finished (or resumed) grid leaves in its results folder, built from the store.

- `results.parquet` / `results.csv`: one row per (run, group, level, metric) with value and 95%
  interval bounds, for the runs of the current grid only (a store may also hold runs of an
  earlier version of the suite, which are kept but not reported);
- `runs.csv`: one row per run of the grid with its status and, for a failed run, its error,
  and its cost (`COST_COLUMNS`: fit and predict seconds, peak memory MB, trained parameters);
  costs vary between runs of the same grid, so they stay out of the metrics tables;
- `paired.parquet` / `.csv`: per (cohort, k, seed), each model's AUROC minus the baseline's on the
  same subject resamples, with its interval and bootstrap p-value (for a regression cohort its
  RMSE minus the baseline's, for a multiclass one its macro one-vs-rest AUROC; `metric` names it);
- `calibration.parquet` / `.csv`: the 10-bin calibration curve of every ok run of a binary
  cohort;
- `manifest.json`: what the report's header and cohort sections need.

Everything here is recomputed from the stored runs, so it is the same whether the grid ran in
one go or was resumed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from ehrbench import __version__
from ehrbench.features.config import config_record
from ehrbench.io import write_parquet_atomic, write_text_atomic
from ehrbench.meds.label_kinds import BINARY, BINARY_TARGET, LabelTarget
from ehrbench.metrics.bootstrap import draw_resamples
from ehrbench.metrics.calibration import calibration_curve
from ehrbench.metrics.paired import paired_primary
from ehrbench.metrics.tables import PRIMARY_METRICS
from ehrbench.models.cost import COST_COLUMNS
from ehrbench.protocol.manifest import (
    MANIFEST_FILE,
    BootstrapInfo,
    DatasetInfo,
    Manifest,
    RunCounts,
    SuiteInfo,
)
from ehrbench.protocol.runner import GridResult, PlannedRun
from ehrbench.protocol.store import ResultsStore

KEY_COLUMNS = ("run_id", "cohort", "model", "k", "seed")
PAIRED_SCHEMA: dict[str, pl.DataType] = {
    "cohort": pl.String(),
    "model": pl.String(),
    "baseline": pl.String(),
    "k": pl.String(),
    "seed": pl.Int64(),
    "metric": pl.String(),
    "difference": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "p_value": pl.Float64(),
    "n_boot": pl.Int64(),
}


def write_tables(
    folder: Path, tables: dict[str, pl.DataFrame], runs: pl.DataFrame, manifest: Manifest
) -> None:
    """Write a results folder as one unit: each of `tables` as `<name>.parquet` and `.csv`,
    `runs` as runs.csv, and `manifest` as manifest.json.

    The old manifest goes first and the new one comes last, and everything is computed before:
    a write cut short (Ctrl-C, a kill) leaves a folder without manifest.json, which `ehrbench
    report` refuses, never new tables beside the old paired comparisons and manifest.
    """
    (folder / MANIFEST_FILE).unlink(missing_ok=True)
    for stem, frame in tables.items():
        write_parquet_atomic(frame, folder / f"{stem}.parquet")
        write_text_atomic(frame.write_csv(), folder / f"{stem}.csv")
    write_text_atomic(runs.write_csv(), folder / "runs.csv")
    manifest.write(folder)


def _ok(result: GridResult) -> list[PlannedRun]:
    return [p for p in result.planned if result.statuses.get(p.key.run_id) == "ok"]


def write_outputs(result: GridResult) -> dict[str, Path]:
    """Write every table of the module docstring into the suite's output folder."""
    suite = result.suite
    folder = suite.output
    store = ResultsStore(folder)
    run_ids = [p.key.run_id for p in result.planned]
    results = store.load_all().filter(pl.col("run_id").is_in(run_ids))
    runs = store.runs().filter(pl.col("run_id").is_in(run_ids))
    runs = runs.with_columns(
        pl.col("info").str.json_path_match(f"$.cost.{name}").cast(dtype).alias(name)
        for name, dtype in COST_COLUMNS.items()
    ).drop("info")
    ok = _ok(result)
    predictions = {p.key.run_id: store.predictions(p.key) for p in ok}
    targets = {name: info.target for name, info in result.cohorts.items()}
    paired = paired_table(
        ok, predictions, suite.baseline, suite.resamples, suite.bootstrap_seed, targets
    )
    binary = [p for p in ok if targets[p.cohort].kind == BINARY]
    tables = {
        "results": results,
        "paired": paired,
        "calibration": calibration_table(binary, predictions),
    }
    write_tables(folder, tables, runs, manifest(result))
    return {name: folder / f"{name}.parquet" for name in ("results", "paired", "calibration")}


def paired_table(
    ok: list[PlannedRun],
    predictions: dict[str, pl.DataFrame],
    baseline: str | None,
    n_resamples: int,
    bootstrap_seed: int,
    targets: dict[str, LabelTarget] | None = None,
) -> pl.DataFrame:
    """metric(model) - metric(baseline) per (cohort, k, seed), on shared subject resamples; the
    metric is the primary one of the cohort's label kind (`targets`, default binary: AUROC).

    `ok` are the finished runs and `predictions` their frames by run id; the resamples are
    drawn as for the runs' own intervals (`n_resamples`, `bootstrap_seed`).
    """
    if baseline is None:
        return pl.DataFrame(schema=PAIRED_SCHEMA)
    by_cell = {(p.cohort, p.model, str(p.run.k), p.run.seed): p for p in ok}
    rows = []
    for (cohort, model, k, seed), planned in by_cell.items():
        base = by_cell.get((cohort, baseline, k, seed))
        if model == baseline or base is None:
            continue
        mine, theirs = predictions[planned.key.run_id], predictions[base.key.run_id]
        # The same draw as the runs' own intervals: it depends only on the held-out subjects.
        resamples = draw_resamples(mine["subject_id"].to_numpy(), n_resamples, bootstrap_seed)
        target = (targets or {}).get(cohort, BINARY_TARGET)
        diff = paired_primary(mine, theirs, resamples, target)
        rows.append(
            (
                cohort,
                model,
                baseline,
                k,
                seed,
                PRIMARY_METRICS[target.kind][0],
                diff.difference,
                diff.ci_low,
                diff.ci_high,
                diff.p_value,
                diff.n_boot,
            )
        )
    return pl.DataFrame(rows, schema=PAIRED_SCHEMA, orient="row")


def calibration_table(ok: list[PlannedRun], predictions: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The calibration curve of every ok run, with the run's key columns."""
    tables = []
    for planned in ok:
        frame = predictions[planned.key.run_id]
        curve = calibration_curve(
            frame["boolean_value"].to_numpy(),
            frame["predicted_boolean_probability"].cast(pl.Float64).to_numpy(),
        )
        key = pl.DataFrame(
            [
                (
                    planned.key.run_id,
                    planned.cohort,
                    planned.model,
                    str(planned.run.k),
                    planned.run.seed,
                )
            ],
            schema={
                "run_id": pl.String,
                "cohort": pl.String,
                "model": pl.String,
                "k": pl.String,
                "seed": pl.Int64,
            },
            orient="row",
        )
        tables.append(key.join(curve, how="cross"))
    if not tables:
        return pl.DataFrame(schema={c: pl.String for c in KEY_COLUMNS})
    return pl.concat(tables)


def manifest(result: GridResult) -> Manifest:
    """The facts the report header and cohort sections show."""
    suite = result.suite
    statuses = list(result.statuses.values())
    return Manifest(
        suite=SuiteInfo(
            name=suite.name,
            description=suite.description,
            file=str(suite.source),
            overrides=tuple(suite.overrides),
        ),
        ehrbench_version=__version__,
        config_hash=suite.config_hash(),
        dataset=DatasetInfo(
            path=str(suite.dataset_path),
            fingerprint=result.fingerprint,
            synthetic=suite.synthetic.as_dict() if suite.synthetic else None,
        ),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        models=tuple(suite.models),
        baseline=suite.baseline,
        k=tuple(str(k) for k in suite.plan.ks),
        seeds=tuple(suite.plan.seeds),
        bootstrap=BootstrapInfo(resamples=suite.resamples, seed=suite.bootstrap_seed),
        age_bands=tuple(suite.age_bands),
        features={
            "tabular": _plain(config_record(suite.tabular)),
            "sequence": _plain(config_record(suite.sequence)),
        },
        cohorts=result.cohorts,
        cohort_order=tuple(result.cohorts),
        skipped_cohorts=result.skipped_cohorts,
        runs=RunCounts(
            total=len(result.planned), ok=statuses.count("ok"), failed=statuses.count("failed")
        ),
        protocol=suite.protocol,
    )


def _plain(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}
