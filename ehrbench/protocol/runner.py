"""The few-shot grid: every (cohort, model, k, seed) run of a suite, resumable.

Once the cohorts are extracted, each model of the suite's `pretrained:` section is pretrained
and embeds them (`ehrbench.protocol.pretrained`, cached in the output folder). Then, for each
cohort and each run of the suite's `FewShotPlan`:

1. EHRSHOT sampling: k positives and k negatives drawn from the train rows and, separately, from
   the tuning rows (`FewShotPlan.indices`); `k = all` takes every train and tuning row. A
   multiclass cohort draws k rows per class, a regression cohort k rows in all.
2. `fit_and_predict` chooses the hyperparameters by the label kind's tuning score (AUROC for
   binary labels) on the k-shot tuning rows, fits the model on the k-shot train rows and
   predicts every held_out row (meds-evaluation form).
3. Metrics with 95% intervals come from the cohort's shared subject resamples, overall and by
   sex and age band.
4. The run is saved in the `ResultsStore` under its key (dataset fingerprint, cohort, model, k,
   seed, config hash). A run that raises is saved as failed, with its error, and the grid goes
   on; a run already in the store is skipped. Ctrl-C stops between two saves: nothing partial is
   kept, and the same command resumes.

Each run is a task of the current executor (`ehrbench.scheduler`): in process, one after the
other in the order above; on Dask workers, each cohort's runs longest first (`all`, then
descending k), saved by this process as they come back. A progress bar ticks once per computed
run (with the workers and the runs in flight); each run's result line is logged at INFO level.

held_out rows reach a model only through `predict_proba`, after it is fitted.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from tqdm.contrib.logging import logging_redirect_tqdm

from ehrbench.errors import EhrbenchError
from ehrbench.features.kinds import REPRESENTATION
from ehrbench.features.representation import read_representation
from ehrbench.interrupts import raise_if_stopping
from ehrbench.logs import ROOT, progress
from ehrbench.meds import MedsDataset
from ehrbench.meds.label_kinds import BINARY
from ehrbench.metrics.evaluate import evaluate_predictions
from ehrbench.metrics.tables import PRIMARY_METRICS
from ehrbench.models.base import Model, model_class
from ehrbench.models.training import fit_and_predict
from ehrbench.protocol.external import ExternalSite
from ehrbench.protocol.external_runs import needs_scores, prepare_sites, score_run
from ehrbench.protocol.fewshot import ALL, MAX_K, FewShotPlan, FewShotRun
from ehrbench.protocol.manifest import CohortInfo
from ehrbench.protocol.prepare import (
    CohortData,
    cohort_features,
    demographics,
    load_cohorts,
    prepare_dataset,
)
from ehrbench.protocol.pretrained import with_pretrained
from ehrbench.protocol.store import ResultsStore, RunKey
from ehrbench.protocol.suite import Suite, head_model
from ehrbench.scheduler import Call, current_executor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedRun:
    """One cell of the grid with its store key."""

    cohort: str
    model: str
    run: FewShotRun
    key: RunKey


@dataclass
class GridResult:
    """What a grid produced: its runs, each cohort's counts and attrition, the skipped cohorts."""

    suite: Suite
    fingerprint: str
    planned: list[PlannedRun]
    cohorts: dict[str, CohortInfo]
    skipped_cohorts: dict[str, str]
    computed: int = 0
    failed: int = 0
    statuses: dict[str, str] = field(default_factory=dict)


def fits(model: str, kind: str) -> bool:
    """Whether the suite's `model` fits labels of `kind`. A model that cannot be loaded is
    planned, as always: its runs fail with its error."""
    try:
        return kind in model_class(head_model(model)).label_kinds
    except EhrbenchError:
        return True


def plan_runs(
    suite: Suite, cohorts: list[str], fingerprint: str, kinds: dict[str, str] | None = None
) -> list[PlannedRun]:
    """Every run of the grid, by cohort, model, ascending k, then seed.

    `kinds` gives each cohort's label kind (default binary); a model is not run on a cohort
    whose label kind it does not fit (a suite may mix binary, regression and multiclass
    cohorts, and list models for each), which is logged once per model.
    """
    planned = []
    not_run: dict[str, list[str]] = {}
    for cohort in cohorts:
        kind = (kinds or {}).get(cohort, BINARY)
        for model in suite.models:
            if not fits(model, kind):
                not_run.setdefault(model, []).append(f"{cohort} ({kind})")
                continue
            config_hash = suite.run_config_hash(cohort, model)
            for run in suite.plan.runs:
                key = RunKey(fingerprint, cohort, model, run.k, run.seed, config_hash)
                planned.append(PlannedRun(cohort, model, run, key))
    for model, skipped in not_run.items():
        logger.info(
            "model %s is not run on %s: it does not fit that label kind",
            model,
            ", ".join(skipped),
        )
    return planned


def fewshot_rows(
    data: CohortData, run: FewShotRun, plan: FewShotPlan
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (into the cohort's labels) of the run's k-shot train and tuning sets."""
    train, tuning = data.indices["train"], data.indices["tuning"]
    pick_train, pick_tuning = plan.indices(run, data.y[train], data.y[tuning], data.target.kind)
    return train[pick_train], tuning[pick_tuning]


def execute_run(
    suite: Suite,
    data: CohortData,
    features: Any,
    demo: pl.DataFrame,
    planned: PlannedRun,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any], Model]:
    """Fit, predict held_out and score one run; return (metrics, predictions, info, the fitted
    model)."""
    train, tuning = fewshot_rows(data, planned.run, suite.plan)
    train = suite.train_order(train, planned.run.seed)
    result = fit_and_predict(
        head_model(planned.model),
        features,
        data.labels,
        train=train,
        tuning=tuning,
        held_out=data.indices["held_out"],
        seed=planned.run.seed,
        grid=suite.grids.get(planned.model),
        overrides=suite.model_params.get(planned.model),
        refit=suite.refit_settings(planned.model),
        class_order=data.class_order,
    )
    fit, predictions = result.fit, result.predictions
    metrics = evaluate_predictions(
        predictions, data.resamples, demo, suite.age_bands, target=data.target
    )
    info = {
        "params": _finite(fit.params),
        fit.score_key: _finite(fit.tuning_score),
        "grid": _finite(fit.grid_scores),
        "train_rows": int(train.size),
        "tuning_rows": int(tuning.size),
        "replicate_seeds": list(suite.plan.replicates(planned.run)),
        "cost": result.cost.as_dict(),
    }
    if data.target.kind == BINARY:
        info["train_positives"] = int(data.y[train].sum())
        info["tuning_positives"] = int(data.y[tuning].sum())
    return metrics, predictions, info, fit.model


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


def _primary_text(metrics: pl.DataFrame, kind: str) -> str:
    """The run's headline metric with its interval, for the log line."""
    metric = PRIMARY_METRICS[kind][0]
    name = "AUROC" if kind == BINARY else metric
    row = metrics.filter((pl.col("group") == "all") & (pl.col("metric") == metric)).row(
        0, named=True
    )
    if row["value"] is None or math.isnan(row["value"]):
        return f"{name} n/a"
    return f"{name} {row['value']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def cohort_info(data: CohortData) -> CohortInfo:
    """What the manifest keeps of a loaded cohort (its label target only when not binary)."""
    target = None if data.target.kind == BINARY else data.target.as_dict()
    return CohortInfo(data.summary, data.attrition.to_dict(), target)


class FeatureSource:
    """Each cohort's features, built on first use; a build error is kept and re-raised per run.

    ehrbench's own features are held under their kind's name; the embeddings a `HEAD@NAME`
    model reads, under the file they come from (one per representation and cohort).
    """

    def __init__(self, suite: Suite, dataset: MedsDataset) -> None:
        self.suite, self.dataset = suite, dataset
        self.errors: dict[tuple[str, str], Exception] = {}

    def feature_name(self, data: CohortData, model: str) -> str:
        """The name `model`'s features of `data` are held under."""
        kind = self.suite.model_kind(model)
        if kind is REPRESENTATION:
            return str(self.suite.representation_file(model, data.name))
        return kind.name

    def _build(self, data: CohortData, model: str, name: str) -> None:
        kind = self.suite.model_kind(model)
        if kind is REPRESENTATION:
            data.features[name] = read_representation(name, data.labels)
        else:
            cohort_features(self.suite, self.dataset, data, kind)

    def prepare(self, data: CohortData, model: str) -> None:
        """Build (or load from the cache) the features `model` reads if not done yet."""
        name = self.feature_name(data, model)
        if name in data.features or (data.name, name) in self.errors:
            return
        started = time.monotonic()
        try:
            self._build(data, model, name)
        except Exception as exc:  # every run that needs them fails with this error
            raise_if_stopping(exc)
            self.errors[(data.name, name)] = exc
            logger.warning(
                "features (%s) of cohort %s failed: %s", name, data.name, _error_text(exc)
            )
            return
        seconds = time.monotonic() - started
        logger.info("features (%s) of cohort %s: ready in %.1f s", name, data.name, seconds)

    def get(self, data: CohortData, model: str) -> Any:
        """The features `model` reads, or the error their build raised."""
        name = self.feature_name(data, model)
        if (data.name, name) in self.errors:
            raise self.errors[(data.name, name)]
        return data.features[name]


@dataclass
class RunContext:
    """What every run of a grid reads besides its cohort, held once per worker: the suite, the
    feature source (so a worker builds or loads each cohort's features once, not per run), the
    subjects' demographics, and the cohorts whose fitted models come back to be scored on the
    suite's external datasets."""

    suite: Suite
    features: FeatureSource
    demo: pl.DataFrame
    scored: frozenset[str] = frozenset()


@dataclass
class RunOutcome:
    """What a run task sends back: its metrics, predictions and info, or its error; its fitted
    model only when it is scored on external datasets."""

    metrics: pl.DataFrame | None = None
    predictions: pl.DataFrame | None = None
    info: dict[str, Any] | None = None
    model: Model | None = None
    error: str | None = None

    @classmethod
    def lost(cls, reason: str) -> RunOutcome:
        """The outcome of a run whose worker was lost on both attempts."""
        return cls(error=f"its worker was lost twice ({reason})")


def compute_run(context: RunContext, data: CohortData, planned: PlannedRun) -> RunOutcome:
    """One run of the grid as a task: fit, predict and score it (nothing is written here; the
    driver saves the outcome). A run that raises comes back with its error."""
    context.features.prepare(data, planned.model)  # built (or loaded) once per cohort
    try:
        features = context.features.get(data, planned.model)
        metrics, predictions, info, model = execute_run(
            context.suite, data, features, context.demo, planned
        )
    except Exception as exc:  # a failed run is recorded and the grid goes on
        raise_if_stopping(exc)
        return RunOutcome(error=_error_text(exc))
    return RunOutcome(
        metrics, predictions, info, model if planned.cohort in context.scored else None
    )


def prepare_features(context: RunContext, data: CohortData, model: str) -> None:
    """Build (or load) the features `model` reads of one cohort, as a task before the cohort's
    runs: on many workers the first build (and the disk cache it writes) happens once, and the
    runs' workers then load from that cache."""
    context.features.prepare(data, model)


def longest_first(pending: list[PlannedRun]) -> list[PlannedRun]:
    """`pending` cohort by cohort as before, each cohort's runs by descending k (`all` first):
    on many workers the long runs start first, so no worker is left alone with one at the end.

    >>> from ehrbench.protocol.fewshot import FewShotRun
    >>> runs = [PlannedRun("c", "m", FewShotRun(k, 0), None) for k in (1, 128, "all")]
    >>> [p.run.k for p in longest_first(runs)]
    ['all', 128, 1]
    """
    cohorts = list(dict.fromkeys(p.cohort for p in pending))

    def order(planned: PlannedRun) -> tuple[int, int]:
        k = planned.run.k
        return cohorts.index(planned.cohort), -(MAX_K + 1 if k == ALL else k)

    return sorted(pending, key=order)


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
        on_run: Callable[[PlannedRun, str], None] | None = None,
    ) -> None:
        self.suite = suite
        self.retry_failed = retry_failed
        self.on_run = on_run
        self.store = ResultsStore(suite.output)
        self.sites: list[ExternalSite] = []

    def run(self) -> GridResult:
        """Prepare the dataset and cohorts, pretrain and embed (or reuse) the suite's
        `pretrained:` models, then compute every pending run."""
        dataset = prepare_dataset(self.suite)
        fingerprint = dataset.fingerprint()
        splits = dataset.subject_splits()
        cohorts, errors = load_cohorts(self.suite, dataset, splits)
        skipped = {name: _error_text(exc) for name, exc in errors.items()}
        for name, message in skipped.items():  # the other cohorts still run; the report lists it
            logger.warning("cohort %s skipped: %s", name, message)
        # External validation reports an AUROC drop: it scores the binary cohorts.
        binary = [name for name, data in cohorts.items() if data.target.kind == BINARY]
        self.sites = prepare_sites(self.suite, binary)
        # The suite's `pretrained:` models become representations of the cohorts just loaded.
        self.suite = with_pretrained(self.suite, dataset, cohorts)
        kinds = {name: data.target.kind for name, data in cohorts.items()}
        planned = plan_runs(self.suite, list(cohorts), fingerprint, kinds)
        infos = {name: cohort_info(data) for name, data in cohorts.items()}
        result = GridResult(self.suite, fingerprint, planned, infos, skipped)
        pending = [p for p in planned if self._computes(p)]
        self._announce(planned, pending)
        if pending:
            self._compute(dataset, cohorts, pending, result)
        result.statuses = {p.key.run_id: self.store.status(p.key) for p in planned}
        return result

    def _computes(self, planned: PlannedRun) -> bool:
        """Whether the run is computed now: it never finished, it failed and a retry is asked,
        or it finished but an external dataset still lacks its score (one read of its record)."""
        status = self.store.status(planned.key)
        if status == "ok":
            return needs_scores(self.sites, planned.key, planned.cohort, self.retry_failed)
        return status is None or self.retry_failed

    def _announce(self, planned: list[PlannedRun], pending: list[PlannedRun]) -> None:
        message = (
            f"grid: {len(planned)} runs, {len(planned) - len(pending)} already in "
            f"{self.suite.output}, {len(pending)} to compute"
        )
        if not self.retry_failed:
            failed = sum(1 for p in planned if self.store.status(p.key) == "failed")
            if failed:
                message += f" ({failed} recorded as failed are kept; --retry-failed reruns them)"
        logger.info(message)

    def _compute(
        self,
        dataset: MedsDataset,
        cohorts: dict[str, CohortData],
        pending: list[PlannedRun],
        result: GridResult,
    ) -> None:
        """Run `pending` as tasks of the current executor, saving each as it completes."""
        executor = current_executor()
        scored = frozenset(c for site in self.sites for c in site.cohorts)
        features = FeatureSource(self.suite, dataset)
        context = RunContext(self.suite, features, demographics(dataset), scored)
        held_context = executor.hold(context)
        held: dict[str, Any] = {}  # each cohort's data, held while its runs are in flight
        remaining = Counter(p.cohort for p in pending)
        if executor.workers > 1:
            pending = longest_first(pending)

        def prepare_once(cohort: str) -> None:
            """One task per distinct feature name the cohort's runs read, waited for (a lost
            one leaves the build to the runs)."""
            models: dict[str, str] = {}
            for planned in pending:
                if planned.cohort == cohort:
                    name = features.feature_name(cohorts[cohort], planned.model)
                    models.setdefault(name, planned.model)
            prepares = [
                Call(prepare_features, (held_context, held[cohort], model), (cohort, name))
                for name, model in models.items()
            ]
            for _ in executor.results(prepares):
                pass

        def calls() -> Iterator[Call]:
            for planned in pending:
                if planned.cohort not in held:
                    held[planned.cohort] = executor.hold(cohorts[planned.cohort])
                    if executor.workers > 1:
                        prepare_once(planned.cohort)
                yield Call(compute_run, (held_context, held[planned.cohort], planned), planned)

        # The bar ticks once per run; log lines print above it instead of through it.
        with (
            logging_redirect_tqdm(loggers=[logging.getLogger(ROOT)]),
            progress(None, total=len(pending), desc="runs", unit="run") as bar,
        ):
            for done in executor.results(calls()):
                planned = done.call.tag
                outcome = done.value if done.lost is None else RunOutcome.lost(done.lost)
                self._record(planned, outcome, cohorts[planned.cohort], context, result)
                bar.update()
                if executor.load() is not None:
                    bar.set_postfix_str(executor.load())
                remaining[planned.cohort] -= 1
                if not remaining[planned.cohort]:  # cohort by cohort: its features go
                    del held[planned.cohort]
                    cohorts[planned.cohort].features.clear()

    def _record(
        self,
        planned: PlannedRun,
        outcome: RunOutcome,
        data: CohortData,
        context: RunContext,
        result: GridResult,
    ) -> None:
        """Save one run as ok or failed, log its result line, then score it on the suite's
        external datasets."""
        if outcome.error is not None:
            status = "failed"
            self.store.save(planned.key, status=status, error=outcome.error, overwrite=True)
            result.failed += 1
            text = f"FAILED: {outcome.error}"
        else:
            status = "ok"
            self.store.save(
                planned.key, outcome.metrics, outcome.predictions, info=outcome.info,
                overwrite=True,
            )  # fmt: skip
            text = _primary_text(outcome.metrics, data.target.kind)
        result.computed += 1
        run = planned.run
        logger.info("%s %s k=%s seed=%s: %s", planned.cohort, planned.model, run.k, run.seed, text)
        if status == "ok" and planned.cohort in context.scored:  # then on every external dataset
            context.features.prepare(data, planned.model)  # in process: the run's own
            score_run(
                self.sites, self.suite, planned.key, outcome.model,
                context.features.get(data, planned.model), outcome.predictions, data.resamples,
            )  # fmt: skip
        if self.on_run is not None:
            self.on_run(planned, status)
