"""Many cohorts from one read of a MEDS dataset: the union of their predicates counted once.

Per shard, the predicates of every cohort are counted together (`shared_counts.SharedReading`);
each cohort then takes its own count table and is evaluated as `extract` evaluates it, so each
cohort's labels and attrition are those of its own extraction. Each shard is a task of the
current executor (`ehrbench.scheduler`); the pieces are merged in shard order.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ehrbench.cohort.artifact import Extraction
from ehrbench.cohort.extract import (
    ShardPiece,
    ShardResults,
    check_columns,
    check_disjoint,
    cohort_predicate_rows,
    evaluate_table,
)
from ehrbench.cohort.model import Cohort
from ehrbench.cohort.planning import PredicatePlan, plan_predicates
from ehrbench.cohort.reader import EventSource
from ehrbench.cohort.shared_counts import SharedReading
from ehrbench.errors import EhrbenchError
from ehrbench.logs import progress
from ehrbench.meds import MedsDataset
from ehrbench.scheduler import Call, current_executor


def extract_many(
    cohorts: Mapping[str, Cohort], dataset: MedsDataset
) -> tuple[dict[str, Extraction], dict[str, str]]:
    """Extract every cohort of `cohorts` (by name) from `dataset` in one read of its shards.

    Returns the extractions by name, each the one `extract` gives, and the message of each
    cohort that cannot be extracted on this data (a column it tests is missing), checked before
    anything is read. An error of the data itself (an unreadable shard, a subject in two shards)
    concerns every cohort and is raised.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from ehrbench.cohort.library import list_cohorts, load_library, predicates_paths
    >>> from ehrbench.meds import open_dataset
    >>> from ehrbench.synth.dataset import generate_dataset
    >>> cohorts, _ = load_library(list_cohorts()[:2], predicates_paths()["synthetic"])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     summary = generate_dataset(Path(tmp) / "meds", n_subjects=20, seed=0)
    ...     results, failures = extract_many(cohorts, open_dataset(summary.root, validate=False))
    >>> sorted(results), failures
    (['icu_transfer', 'lab_anemia'], {})
    """
    sources = [EventSource(shard) for shard in dataset.shards]
    plans, failures = {}, {}
    for name, cohort in cohorts.items():
        try:
            plan = plan_predicates(cohort)
            for source in sources:
                check_columns(cohort, source)
        except EhrbenchError as exc:
            failures[name] = str(exc)
            continue
        plans[name] = (cohort, plan)
    if not plans:
        return {}, failures
    results = {name: ShardResults(cohort, plan) for name, (cohort, plan) in plans.items()}
    seen = np.zeros(0, dtype=np.int64)
    calls = (
        Call(extract_shard_many, (plans, source), shard)
        for shard, source in zip(dataset.shards, sources, strict=True)
    )
    pieces = zip(dataset.shards, current_executor().ordered_values(calls), strict=True)
    for shard, (subjects, shard_pieces) in progress(
        pieces, total=len(sources), desc="extracting", unit="shard"
    ):
        seen = check_disjoint(seen, subjects, shard)
        for name, piece in shard_pieces.items():
            results[name].add(piece)
    return {name: result.extraction() for name, result in results.items()}, failures


def extract_shard_many(
    plans: Mapping[str, tuple[Cohort, PredicatePlan]], source: EventSource
) -> tuple[np.ndarray, dict[str, ShardPiece]]:
    """One shard's subjects and each cohort's piece of its extraction, the cohorts' columns
    checked already (a task: `extract_many`).

    The shared reading is made here, where the cohorts are: it knows them by identity.
    """
    reading = SharedReading.of(plans)
    events = reading.count(source)
    table = reading.tables(events)
    pieces = {}
    for name, (cohort, plan) in plans.items():
        rows = cohort_predicate_rows(cohort, table)
        ev = evaluate_table(cohort, plan, table(cohort, plan, rows))
        pieces[name] = ShardPiece.of(cohort, plan, ev, audit=False)
    return events.subject_ids, pieces
