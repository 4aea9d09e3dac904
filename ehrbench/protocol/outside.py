"""Scoring predictions written by another framework (`ehrbench evaluate`).

A prediction file in the meds-evaluation form (`subject_id`, `prediction_time`,
`predicted_boolean_probability`; `boolean_value` and `predicted_boolean_value` optional; for a
regression label table `predicted_float_value`, for a multiclass one a
`predicted_probability//<CLASS>` column per class) is matched one to one to the rows of a label
table (`ehrbench.alignment`: a missing, extra or repeated row is an error, never a silent inner
join), then scored exactly as a run of the few-shot grid is: `evaluate_predictions` on the
subject resamples that `draw_resamples` draws from the label rows' subjects, with the same
`resamples` and `seed`. So a suite run's predictions, evaluated against its held-out label rows,
give the run's own numbers.

The output folder is a results folder like the one `ehrbench run` writes (results, runs.csv,
paired, calibration, manifest.json): one model per prediction file, each a single `k = all`
cell, so `ehrbench report` renders it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from ehrbench import __version__
from ehrbench.alignment import match_label_rows
from ehrbench.cohort.artifact import read_label_file
from ehrbench.digest import file_digest, json_digest
from ehrbench.errors import EhrbenchError
from ehrbench.io import folder_made
from ehrbench.meds import open_dataset
from ehrbench.meds.label_kinds import (
    BINARY,
    BINARY_TARGET,
    MULTICLASS,
    PREDICTED_COLUMNS,
    PROBABILITY_PREFIX,
    REGRESSION,
    LabelTarget,
    label_target,
    probability_columns,
)
from ehrbench.metrics.bootstrap import N_RESAMPLES, Resamples, draw_resamples
from ehrbench.metrics.evaluate import evaluate_predictions
from ehrbench.metrics.subgroups import DEFAULT_AGE_BANDS
from ehrbench.metrics.tables import PRIMARY_METRICS
from ehrbench.models.predictions import make_predictions
from ehrbench.output_paths import check_writable, refuse_existing
from ehrbench.protocol.fewshot import ALL, FewShotRun
from ehrbench.protocol.manifest import (
    BootstrapInfo,
    CohortInfo,
    DatasetInfo,
    Manifest,
    RunCounts,
    SuiteInfo,
)
from ehrbench.protocol.outputs import calibration_table, paired_table, write_tables
from ehrbench.protocol.prepare import cohort_summary, demographics
from ehrbench.protocol.runner import PlannedRun
from ehrbench.protocol.store import RESULTS_SCHEMA, RUNS_SCHEMA, RunKey

logger = logging.getLogger(__name__)

PROBABILITY = "predicted_boolean_probability"
# The replicate seed recorded for each evaluated model: one `k = all` cell, as in a suite.
CELL_SEED = 0


@dataclass(frozen=True)
class Evaluation:
    """What to score: the label table, each model's prediction file, and the bootstrap."""

    labels: Path
    predictions: dict[str, Path]
    out: Path
    data: Path | None = None
    baseline: str | None = None
    resamples: int = N_RESAMPLES
    seed: int = 0
    age_bands: tuple[int, ...] = DEFAULT_AGE_BANDS
    class_order: tuple[str, ...] | None = None


def _first(mask: pl.Series) -> int:
    return int(mask.arg_true()[0])


def read_outside_predictions(
    path: Path, labels: pl.DataFrame, name: str, target: LabelTarget = BINARY_TARGET
) -> pl.DataFrame:
    """The predictions of `path` for every label row, in label order, in meds-evaluation form
    of `target`'s label kind.

    Raises `EhrbenchError` naming the file, the count and the first offending row for rows that
    do not match the label rows one to one, null/NaN outputs, probabilities outside [0, 1], and
    a label column that disagrees with the label table.
    """
    source = f"prediction file {path} (model {name})"
    if not path.is_file():
        raise EhrbenchError(f"{source} does not exist or is not a file.")
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises several kinds for a file that is not parquet
        raise EhrbenchError(f"{source} is not a readable parquet file ({exc}).") from exc
    columns = _output_columns(frame, target, source)
    order = match_label_rows(frame, labels, source, "prediction")
    outputs = [_checked_output(frame[c].cast(pl.Float64), c, target, source) for c in columns]
    if target.column in frame.columns:
        _check_labels_agree(frame[target.column].gather(order), labels, target.column, source)
    output = np.column_stack([o.gather(order).to_numpy() for o in outputs])
    return make_predictions(labels, output if target.kind == MULTICLASS else output[:, 0], target)


def _output_columns(frame: pl.DataFrame, target: LabelTarget, source: str) -> list[str]:
    """The numeric columns holding the model's output for `target`'s kind, checked present."""
    if target.kind == BINARY:
        columns = [PROBABILITY]
    elif target.kind == REGRESSION:
        columns = [PREDICTED_COLUMNS[REGRESSION]]
    else:
        columns = probability_columns(target.classes)
        extra = [c for c in frame.columns if c.startswith(PROBABILITY_PREFIX) and c not in columns]
        if extra:
            raise EhrbenchError(
                f"{source}: column(s) {extra} name classes the label table does not hold "
                f"(classes: {list(target.classes)}); give every class with --class-order."
            )
    bad = [c for c in columns if c not in frame.columns or not frame.schema[c].is_numeric()]
    if bad:
        needed = f"a numeric `{bad[0]}` column" if len(bad) == 1 else f"numeric columns {bad}"
        form = "" if target.kind == BINARY else f" of a {target.kind} label"
        raise EhrbenchError(
            f"{source}: needs {needed} (meds-evaluation form{form}); its columns are "
            f"{dict(frame.schema)}."
        )
    return columns


def _checked_output(values: pl.Series, column: str, target: LabelTarget, source: str) -> pl.Series:
    """`values` unless one is null or NaN, or, for a probability, outside [0, 1]."""
    bad = values.is_null() | values.is_nan()
    if bad.any():
        raise EhrbenchError(
            f"{source}: {int(bad.sum())} row(s) have a null or NaN `{column}`; the first is "
            f"row {_first(bad)} (rows count from 0)."
        )
    outside = (values < 0) | (values > 1)
    if target.kind != REGRESSION and outside.any():
        row = _first(outside)
        raise EhrbenchError(
            f"{source}: {int(outside.sum())} `{column}` value(s) lie outside [0, 1]; the "
            f"first is row {row} ({values[row]}; rows count from 0). Expected "
            "probabilities, not scores or logits."
        )
    return values


def _check_labels_agree(given: pl.Series, labels: pl.DataFrame, column: str, source: str) -> None:
    """Refuse a prediction file whose label column is not the label table's."""
    differs = given.cast(labels[column].dtype).ne_missing(labels[column])
    if differs.any():
        row = _first(differs)
        raise EhrbenchError(
            f"{source}: `{column}` disagrees with the label table on {int(differs.sum())} "
            f"row(s); the first is label row {row} (subject_id {labels['subject_id'][row]}). "
            "Were the predictions made for another label table?"
        )


def _models(evaluation: Evaluation) -> tuple[list[str], str]:
    names = list(evaluation.predictions)
    baseline = evaluation.baseline or names[0]
    if baseline not in names:
        raise EhrbenchError(f"--baseline {baseline} is not among the named models {names}.")
    return names, baseline


def _results(
    planned: list[PlannedRun],
    frames: dict[str, pl.DataFrame],
    resamples: Resamples,
    demo: pl.DataFrame | None,
    age_bands: tuple[int, ...],
    target: LabelTarget = BINARY_TARGET,
) -> pl.DataFrame:
    """Every model's metrics table with its run's key columns (`RESULTS_SCHEMA`)."""
    tables = []
    for run in planned:
        metrics = evaluate_predictions(
            frames[run.key.run_id], resamples, demo, age_bands, target=target
        )
        key = pl.DataFrame([{"run_id": run.key.run_id, **run.key.as_dict()}])
        tables.append(key.join(metrics, how="cross"))
    return pl.concat(tables).select(pl.col(c).cast(t) for c, t in RESULTS_SCHEMA.items())


def _runs(planned: list[PlannedRun]) -> pl.DataFrame:
    rows = [
        {"run_id": p.key.run_id, **p.key.as_dict(), "status": "ok", "error": None, "info": None}
        for p in planned
    ]
    return pl.DataFrame(rows, schema=RUNS_SCHEMA).drop("info")


def _manifest(
    evaluation: Evaluation,
    cohort: str,
    labels: pl.DataFrame,
    fingerprint: str,
    config_hash: str,
    names: list[str],
    baseline: str,
    target: LabelTarget = BINARY_TARGET,
) -> Manifest:
    # Every label row is scored, so the report shows them all as held_out.
    splits = {"train": np.arange(0), "tuning": np.arange(0), "held_out": np.arange(labels.height)}
    description = (
        f"Outside predictions scored by `ehrbench evaluate` against {evaluation.labels}: every "
        "label row is scored (reported as held_out), one `k = all` cell per model, nothing "
        "trained here. Prediction files: "
        + ", ".join(f"{name} = {path}" for name, path in evaluation.predictions.items())
        + "."
    )
    if evaluation.data is None:
        description += " No --data was given, so there are no subgroup (sex, age band) metrics."
    return Manifest(
        suite=SuiteInfo(
            name=f"evaluate {cohort}",
            description=description,
            file=str(evaluation.labels),
            overrides=(),
        ),
        ehrbench_version=__version__,
        config_hash=config_hash,
        dataset=DatasetInfo(
            path=str(evaluation.data) if evaluation.data else "none (no --data)",
            fingerprint=fingerprint,
            synthetic=None,
        ),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        models=tuple(names),
        baseline=baseline,
        k=(str(ALL),),
        seeds=(CELL_SEED,),
        bootstrap=BootstrapInfo(resamples=evaluation.resamples, seed=evaluation.seed),
        age_bands=evaluation.age_bands,
        features={},
        cohorts={
            cohort: CohortInfo(
                counts=cohort_summary(labels, splits, target),
                attrition={"steps": []},
                label_target=None if target.kind == BINARY else target.as_dict(),
            )
        },
        cohort_order=(cohort,),
        skipped_cohorts={},
        runs=RunCounts(total=len(names), ok=len(names), failed=0),
    )


def _planned_run(evaluation: Evaluation, cohort: str, name: str, settings: dict) -> PlannedRun:
    """Model `name`'s single `k = all` cell, keyed by the label and prediction files' digests."""
    config_hash = json_digest(
        {**settings, "predictions": file_digest(evaluation.predictions[name])}
    )
    key = RunKey(file_digest(evaluation.labels), cohort, name, ALL, CELL_SEED, config_hash)
    return PlannedRun(cohort, name, FewShotRun(ALL, CELL_SEED), key)


def evaluate_outside(evaluation: Evaluation) -> Path:
    """Score every prediction file against the label table; write the results folder.

    Returns the output folder. Raises `EhrbenchError` for an existing output, a label table
    or prediction file that cannot be read, and prediction rows that do not match the labels.

    >>> import tempfile
    >>> from ehrbench.meds import write_labels
    >>> from ehrbench.models.predictions import write_predictions
    >>> folder = Path(tempfile.mkdtemp())
    >>> labels = pl.DataFrame({
    ...     "subject_id": [1, 2, 3, 4],
    ...     "prediction_time": [datetime(2020, 1, 1)] * 4,
    ...     "boolean_value": [True, False, True, False],
    ... })
    >>> write_labels(labels, folder / "labels.parquet")
    >>> write_predictions(make_predictions(labels, [0.9, 0.2, 0.6, 0.4]), folder / "p.parquet")
    >>> out = evaluate_outside(Evaluation(
    ...     folder / "labels.parquet", {"mine": folder / "p.parquet"}, folder / "out", resamples=20
    ... ))
    >>> results = pl.read_parquet(out / "results.parquet")
    >>> results.filter(pl.col("metric") == "auroc").select("model", "k", "value").row(0)
    ('mine', 'all', 1.0)
    """
    out = evaluation.out
    check_writable(out, "--out", folder=True)
    refuse_existing([out], "choose a new --out folder (earlier results are never overwritten)")
    names, baseline = _models(evaluation)
    labels = read_label_file(evaluation.labels)
    # Every label row needs a value in the one value column the table fills.
    target = label_target(labels, str(evaluation.labels), evaluation.class_order)
    frames_by_name = {
        name: read_outside_predictions(path, labels, name, target)
        for name, path in evaluation.predictions.items()
    }
    demo, fingerprint = None, file_digest(evaluation.labels)
    if evaluation.data is not None:
        dataset = open_dataset(evaluation.data, deep=False)
        demo, fingerprint = demographics(dataset), dataset.fingerprint()
    resamples = draw_resamples(
        labels["subject_id"].to_numpy(), evaluation.resamples, evaluation.seed
    )
    cohort = evaluation.labels.stem
    settings = {
        "resamples": evaluation.resamples,
        "seed": evaluation.seed,
        "age_bands": list(evaluation.age_bands),
        "subgroups": evaluation.data is not None,
    }
    planned = [_planned_run(evaluation, cohort, name, settings) for name in names]
    frames = {run.key.run_id: frames_by_name[run.model] for run in planned}
    results = _results(planned, frames, resamples, demo, evaluation.age_bands, target)
    paired = paired_table(
        planned, frames, baseline, evaluation.resamples, evaluation.seed, {cohort: target}
    )
    binary = planned if target.kind == BINARY else []
    config_hash = json_digest({**settings, "runs": [p.key.run_id for p in planned]})
    manifest = _manifest(
        evaluation, cohort, labels, fingerprint, config_hash, names, baseline, target
    )
    tables = {
        "results": results,
        "paired": paired,
        "calibration": calibration_table(binary, frames),
    }
    with folder_made(out):
        write_tables(out, tables, _runs(planned), manifest)
    metric = PRIMARY_METRICS[target.kind][0]
    name = "AUROC" if target.kind == BINARY else metric
    overall = results.filter((pl.col("group") == "all") & (pl.col("metric") == metric))
    for row in overall.iter_rows(named=True):
        logger.info(
            "%s: %s %.4f [%.4f, %.4f]",
            row["model"],
            name,
            row["value"],
            row["ci_low"],
            row["ci_high"],
        )
    return out
