"""The few-shot grid: every (cohort, model, k, seed) run of a suite, resumable.

For each cohort (extracted once) and each run of the suite's `FewShotPlan`:

1. EHRSHOT sampling: k positives and k negatives drawn from the train rows and, separately, from
   the tuning rows (`FewShotPlan.indices`); `k = all` takes every train and tuning row.
2. `select_and_fit` chooses the hyperparameters by AUROC on the k-shot tuning rows and returns
   the model fitted on the k-shot train rows.
3. The model predicts every held_out row (meds-evaluation form); metrics with 95% intervals come
   from the cohort's shared subject resamples, overall and by sex and age band.
4. The run is saved in the `ResultsStore` under its key (dataset fingerprint, cohort, model, k,
   seed, config hash). A run that raises is saved as failed, with its error, and the grid goes
   on; a run already in the store is skipped. Ctrl-C stops between two saves: nothing partial is
   kept, and the same command resumes.

held_out rows reach a model only through `predict_proba`, after it is fitted.
"""

from __future__ import annotations

import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ehrbench.errors import EhrbenchError
from ehrbench.features.kinds import FeatureKind
from ehrbench.meds import MedsDataset
from ehrbench.metrics.evaluate import evaluate_predictions
from ehrbench.models.base import take_rows
from ehrbench.models.grid import select_and_fit
from ehrbench.models.predictions import make_predictions
from ehrbench.protocol.fewshot import FewShotPlan, FewShotRun
from ehrbench.protocol.prepare import (
    CohortData,
    cohort_features,
    demographics,
    load_cohort_data,
    prepare_dataset,
)
from ehrbench.protocol.store import ResultsStore, RunKey
from ehrbench.protocol.suite import Suite

Log = Callable[[str], None]


def stderr_log(message: str) -> None:
    """Print a progress line to stderr (stdout stays for results)."""
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class PlannedRun:
    """One cell of the grid with its store key."""

    cohort: str
    model: str
    run: FewShotRun
    key: RunKey


@dataclass
class GridResult:
    """What a grid produced: its runs, cohort summaries and the cohorts that were skipped."""

    suite: Suite
    fingerprint: str
    planned: list[PlannedRun]
    cohorts: dict[str, dict[str, Any]]
    skipped_cohorts: dict[str, str]
    computed: int = 0
    failed: int = 0
    statuses: dict[str, str] = field(default_factory=dict)


def plan_runs(suite: Suite, cohorts: list[str], fingerprint: str) -> list[PlannedRun]:
    """Every run of the grid, by cohort, model, ascending k, then seed."""
    planned = []
    for cohort in cohorts:
        for model in suite.models:
            config_hash = suite.run_config_hash(cohort, model)
            for run in suite.plan.runs:
                key = RunKey(fingerprint, cohort, model, run.k, run.seed, config_hash)
                planned.append(PlannedRun(cohort, model, run, key))
    return planned


class Progress:
    """Runs done / total, elapsed time and an estimate of the time left (per model)."""

    def __init__(self, total: int, done: int, log: Log) -> None:
        self.total, self.done, self.log = total, done, log
        self.start = time.monotonic()
        self.seconds: dict[str, list[float]] = defaultdict(list)

    def record(self, model: str, seconds: float) -> None:
        """Count one finished run of `model` that took `seconds`."""
        self.done += 1
        self.seconds[model].append(seconds)

    def left(self, pending: list[PlannedRun]) -> float:
        """Estimated seconds for the pending runs: each model's mean run time so far."""
        every = [s for times in self.seconds.values() for s in times]
        if not every:
            return math.nan
        fallback = float(np.mean(every))
        means = {m: float(np.mean(t)) for m, t in self.seconds.items()}
        return sum(means.get(p.model, fallback) for p in pending)

    def line(self, text: str, pending: list[PlannedRun]) -> None:
        """Log `[done/total] text | elapsed, left`."""
        width = len(str(self.total))
        elapsed = _clock(time.monotonic() - self.start)
        self.log(
            f"[{self.done:>{width}}/{self.total}] {text} | elapsed {elapsed}, "
            f"left ~{_clock(self.left(pending))}"
        )


def _clock(seconds: float) -> str:
    if math.isnan(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def fewshot_rows(
    data: CohortData, run: FewShotRun, plan: FewShotPlan
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (into the cohort's labels) of the run's k-shot train and tuning sets."""
    train, tuning = data.indices["train"], data.indices["tuning"]
    pick_train, pick_tuning = plan.indices(run, data.y[train], data.y[tuning])
    return train[pick_train], tuning[pick_tuning]


def execute_run(
    suite: Suite,
    data: CohortData,
    features: Any,
    demo: pl.DataFrame,
    planned: PlannedRun,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Fit, predict held_out and score one run; return (metrics, predictions, info)."""
    train, tuning = fewshot_rows(data, planned.run, suite.plan)
    fit = select_and_fit(
        planned.model,
        take_rows(features, train),
        data.y[train],
        take_rows(features, tuning),
        data.y[tuning],
        planned.run.seed,
        grid=suite.grids.get(planned.model),
        overrides=suite.model_params.get(planned.model),
    )
    held_out = data.indices["held_out"]
    probabilities = fit.model.predict_proba(take_rows(features, held_out))
    predictions = make_predictions(data.labels[held_out], probabilities)
    metrics = evaluate_predictions(predictions, data.resamples, demo, suite.age_bands)
    info = {
        "params": _finite(fit.params),
        "tuning_auroc": _finite(fit.tuning_auroc),
        "grid": _finite(fit.grid_scores),
        "train_rows": int(train.size),
        "train_positives": int(data.y[train].sum()),
        "tuning_rows": int(tuning.size),
        "tuning_positives": int(data.y[tuning].sum()),
        "replicate_seeds": list(suite.plan.replicates(planned.run)),
    }
    return metrics, predictions, info


def _finite(value: Any) -> Any:
    """`value` with non-finite floats as None (run records are strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _error_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, EhrbenchError) else f"{type(exc).__name__}: {exc}"


def _auroc_text(metrics: pl.DataFrame) -> str:
    row = metrics.filter((pl.col("group") == "all") & (pl.col("metric") == "auroc")).row(
        0, named=True
    )
    if row["value"] is None or math.isnan(row["value"]):
        return "AUROC n/a"
    return f"AUROC {row['value']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


class FeatureSource:
    """Each cohort's features, built on first use; a build error is kept and re-raised per run."""

    def __init__(self, suite: Suite, dataset: MedsDataset, log: Log) -> None:
        self.suite, self.dataset, self.log = suite, dataset, log
        self.errors: dict[tuple[str, str], Exception] = {}

    def prepare(self, data: CohortData, kind: FeatureKind) -> None:
        """Build (or load from the cache) the features of `kind` if not done yet."""
        if kind.name in data.features or (data.name, kind.name) in self.errors:
            return
        started = time.monotonic()
        try:
            cohort_features(self.suite, self.dataset, data, kind)
        except Exception as exc:  # every run that needs them fails with this error
            self.errors[(data.name, kind.name)] = exc
            self.log(f"features ({kind.name}) of cohort {data.name} failed: {_error_text(exc)}")
            return
        seconds = time.monotonic() - started
        self.log(f"features ({kind.name}) of cohort {data.name}: ready in {seconds:.1f} s")

    def get(self, data: CohortData, kind: FeatureKind) -> Any:
        """The features, or the error their build raised."""
        if (data.name, kind.name) in self.errors:
            raise self.errors[(data.name, kind.name)]
        return data.features[kind.name]


class GridRunner:
    """Runs a suite's grid into its output folder's `ResultsStore`.

    `on_run(planned, status)` is called after each run is saved (tests use it to interrupt a
    grid); `retry_failed` reruns the runs recorded as failed.
    """

    def __init__(
        self,
        suite: Suite,
        *,
        retry_failed: bool = False,
        log: Log = stderr_log,
        on_run: Callable[[PlannedRun, str], None] | None = None,
    ) -> None:
        self.suite = suite
        self.retry_failed = retry_failed
        self.log = log
        self.on_run = on_run
        self.store = ResultsStore(suite.output)

    def run(self) -> GridResult:
        """Prepare the dataset and cohorts, then compute every pending run."""
        dataset = prepare_dataset(self.suite, self.log)
        fingerprint = dataset.fingerprint()
        splits = dataset.subject_splits()
        cohorts, skipped = {}, {}
        for name in self.suite.cohorts:
            try:
                cohorts[name] = load_cohort_data(self.suite, dataset, splits, name, self.log)
            except Exception as exc:  # the other cohorts still run; the report lists this one
                skipped[name] = _error_text(exc)
                self.log(f"warning: cohort {name} skipped: {skipped[name]}")
        planned = plan_runs(self.suite, list(cohorts), fingerprint)
        result = GridResult(
            self.suite, fingerprint, planned, {n: d.summary for n, d in cohorts.items()}, skipped
        )
        pending = [p for p in planned if not self.store.has(p.key, retry_failed=self.retry_failed)]
        self._announce(planned, pending)
        if pending:
            self._compute(dataset, cohorts, pending, result)
        result.statuses = {p.key.run_id: self.store.status(p.key) for p in planned}
        return result

    def _announce(self, planned: list[PlannedRun], pending: list[PlannedRun]) -> None:
        message = (
            f"grid: {len(planned)} runs, {len(planned) - len(pending)} already in "
            f"{self.suite.output}, {len(pending)} to compute"
        )
        if not self.retry_failed:
            failed = sum(1 for p in planned if self.store.status(p.key) == "failed")
            if failed:
                message += f" ({failed} recorded as failed are kept; --retry-failed reruns them)"
        self.log(message)

    def _compute(
        self,
        dataset: MedsDataset,
        cohorts: dict[str, CohortData],
        pending: list[PlannedRun],
        result: GridResult,
    ) -> None:
        demo = demographics(dataset)
        progress = Progress(len(result.planned), len(result.planned) - len(pending), self.log)
        features = FeatureSource(self.suite, dataset, self.log)
        for position, planned in enumerate(pending):
            data = cohorts[planned.cohort]
            if position and pending[position - 1].cohort != planned.cohort:
                cohorts[pending[position - 1].cohort].features.clear()  # runs go cohort by cohort
            kind = self.suite.model_kind(planned.model)
            features.prepare(data, kind)  # outside the run's timing: built once per cohort
            started = time.monotonic()
            try:
                metrics, predictions, info = execute_run(
                    self.suite, data, features.get(data, kind), demo, planned
                )
            except Exception as exc:  # a failed run is recorded and the grid goes on
                status, error = "failed", _error_text(exc)
                self.store.save(planned.key, status="failed", error=error, overwrite=True)
                result.failed += 1
                outcome = f"FAILED: {error}"
            else:
                status = "ok"
                self.store.save(planned.key, metrics, predictions, info=info, overwrite=True)
                outcome = _auroc_text(metrics)
            result.computed += 1
            progress.record(planned.model, time.monotonic() - started)
            run = planned.run
            progress.line(
                f"{planned.cohort} {planned.model} k={run.k} seed={run.seed}: {outcome}",
                pending[position + 1 :],
            )
            if self.on_run is not None:
                self.on_run(planned, status)
