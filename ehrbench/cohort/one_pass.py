"""Many cohorts from one read of a MEDS dataset: the union of their predicates counted once.

Per shard, the plain and static predicates of every cohort are counted together into one
`EventCounts` (`counting.count_plain`); each cohort then takes its own count table from it
(`counting.cohort_table`, the table `count_events` would give) and is evaluated as `extract`
evaluates it, so each cohort's labels and attrition are those of its own extraction.

Two cohorts may give one predicate name different definitions. Predicates are therefore keyed by
definition: identical definitions are counted once, and each differing one under its own name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ehrbench.cohort.artifact import Extraction
from ehrbench.cohort.counting import CountTable, EventCounts, Rows, cohort_table, count_plain
from ehrbench.cohort.extract import (
    ShardResults,
    TableMaker,
    check_columns,
    check_disjoint,
    cohort_predicate_rows,
    evaluate_table,
)
from ehrbench.cohort.model import SPECIAL_PREDICATES, Cohort, PlainPredicate
from ehrbench.cohort.planning import BIRTH, PredicatePlan, plan_predicates, static_predicate
from ehrbench.cohort.reader import EventSource
from ehrbench.errors import EhrbenchError
from ehrbench.logs import progress
from ehrbench.meds import MedsDataset


@dataclass(frozen=True)
class SharedPredicates:
    """What one read counts for several cohorts, and where each cohort finds its predicates.

    `plain` and `statics` are distinct definitions under distinct names; `specials` the special
    predicates any cohort uses; `names[cohort][predicate]` the shared name of a cohort's plain
    or static predicate.
    """

    plain: tuple[PlainPredicate, ...]
    statics: tuple[PlainPredicate, ...]
    specials: tuple[str, ...]
    names: dict[str, dict[str, str]]


def share_predicates(plans: Mapping[str, tuple[Cohort, PredicatePlan]]) -> SharedPredicates:
    """Key the plain and static predicates of every cohort by their definition.

    A definition keeps its own name when it is the first under that name; a later, different
    definition of the name is renamed `NAME#2`, `NAME#3`, ... (never a name already in use).

    >>> from ehrbench.cohort.model import ExactCode
    >>> def cohort(code):
    ...     death = PlainPredicate("death", ExactCode(code))
    ...     return Cohort(source=None, predicates={"death": death}, demographics={},
    ...                   trigger="death")
    >>> a, b, c = cohort("DEATH"), cohort("DIED"), cohort("DEATH")
    >>> shared = share_predicates({n: (x, plan_predicates(x)) for n, x in zip("abc", (a, b, c))})
    >>> [p.name for p in shared.plain], shared.names["b"], shared.names["c"]
    (['death', 'death#2'], {'death': 'death#2'}, {'death': 'death'})
    """
    keys: dict[PlainPredicate, str] = {}
    taken = {name for cohort, _ in plans.values() for name in _defined_names(cohort)}
    names: dict[str, dict[str, str]] = {}
    specials: dict[str, None] = {}
    for cohort_name, (cohort, plan) in plans.items():
        own = _counted(cohort, plan)
        names[cohort_name] = {}
        for name, pred in own.items():
            definition = dataclasses.replace(pred, name="")
            if definition not in keys:
                used = set(keys.values())
                keys[definition] = name if name not in used else _free_name(name, taken | used)
            names[cohort_name][name] = keys[definition]
        specials.update((n, None) for n in plan.timed if n in SPECIAL_PREDICATES)
    shared = [dataclasses.replace(definition, name=key) for definition, key in keys.items()]
    return SharedPredicates(
        plain=tuple(p for p in shared if not p.static),
        statics=tuple(p for p in shared if p.static),
        specials=tuple(specials),
        names=names,
    )


def _counted(cohort: Cohort, plan: PredicatePlan) -> dict[str, PlainPredicate]:
    """The plain and static predicates of `plan` (and its birth one), by their name in `cohort`."""
    plain = {n: p for n in plan.plain if isinstance(p := cohort.predicates[n], PlainPredicate)}
    birth = {BIRTH: plan.birth} if plan.birth else {}
    return plain | birth | {n: static_predicate(cohort, n) for n in plan.static}


def _with_nested(plans: Mapping[str, tuple[Cohort, PredicatePlan]]) -> dict[str, tuple]:
    """`plans` and, under `NAME/PREDICATE`, every cohort its `{cohort: ...}` predicates name."""
    every = {}
    for name, (cohort, plan) in plans.items():
        every[name] = (cohort, plan)
        inner = {
            f"{name}/{pred}": (nested.cohort, plan_predicates(nested.cohort))
            for pred, nested in cohort.nested_cohorts().items()
        }
        every |= _with_nested(inner)
    return every


def _defined_names(cohort: Cohort) -> set[str]:
    """Every predicate name `cohort` defines, in `predicates` or `patient_demographics`."""
    return set(cohort.predicates) | set(cohort.demographics)


def _free_name(name: str, taken: set[str]) -> str:
    """The first of `name#2`, `name#3`, ... that is not taken."""
    suffix = 2
    while f"{name}#{suffix}" in taken:
        suffix += 1
    return f"{name}#{suffix}"


def _tables(events: EventCounts, names: Mapping[int, Mapping[str, str]]) -> TableMaker:
    """Count tables from one shard's shared `events` for any cohort of the read, nested ones
    too (`names`: each cohort's shared predicate names, by the cohort's identity)."""

    def table(cohort: Cohort, plan: PredicatePlan, rows: Mapping[str, Rows]) -> CountTable:
        return cohort_table(cohort, plan, events, names[id(cohort)], rows)

    return table


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
    every = _with_nested(plans)
    shared = share_predicates(every)
    # Cohorts (nested ones too) by identity, to find their shared names while evaluating.
    names = {id(cohort): shared.names[name] for name, (cohort, _) in every.items()}
    valued = [names[id(c)][p.valued] for c, p in every.values() if p.valued]
    results = {name: ShardResults(cohort, plan) for name, (cohort, plan) in plans.items()}
    seen = np.zeros(0, dtype=np.int64)
    shards = zip(dataset.shards, sources, strict=True)
    for shard, source in progress(shards, total=len(sources), desc="extracting", unit="shard"):
        events = count_plain(
            list(shared.plain), list(shared.statics), shared.specials, source, set(valued)
        )
        seen = check_disjoint(seen, events.subject_ids, shard)
        table = _tables(events, names)
        for name, (cohort, plan) in plans.items():
            rows = cohort_predicate_rows(cohort, table)
            results[name].add(evaluate_table(cohort, plan, table(cohort, plan, rows)))
    return {name: result.extraction() for name, result in results.items()}, failures
