"""Count several cohorts' predicates in one read of an event table, each definition once.

Several cohorts (those `extract_many` extracts, or one cohort and the cohorts its
`{cohort: ...}` predicates name) are counted together into one `EventCounts`
(`counting.count_plain`); each then takes its own count table from it (`counting.cohort_table`,
the table `count_events` would give).

Two cohorts may give one predicate name different definitions. Predicates are therefore keyed by
definition: identical definitions are counted once, and each differing one under its own name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ehrbench.cohort.counting import CountTable, EventCounts, Rows, cohort_table, count_plain
from ehrbench.cohort.model import SPECIAL_PREDICATES, Cohort, PlainPredicate
from ehrbench.cohort.planning import BIRTH, PredicatePlan, plan_predicates, static_predicate
from ehrbench.cohort.reader import EventSource

# Makes a cohort's count table, given the rows of its `{cohort: ...}` predicates.
TableMaker = Callable[[Cohort, PredicatePlan, Mapping[str, Rows]], CountTable]


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


def with_nested(plans: Mapping[str, tuple[Cohort, PredicatePlan]]) -> dict[str, tuple]:
    """`plans` and, under `NAME/PREDICATE`, every cohort its `{cohort: ...}` predicates name."""
    every = {}
    for name, (cohort, plan) in plans.items():
        every[name] = (cohort, plan)
        inner = {
            f"{name}/{pred}": (nested.cohort, plan_predicates(nested.cohort))
            for pred, nested in cohort.nested_cohorts().items()
        }
        every |= with_nested(inner)
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


@dataclass(frozen=True)
class SharedReading:
    """How to count several cohorts, nested ones included, in one read of each event table.

    `names` holds each cohort's shared predicate names by the cohort's identity (nested cohorts
    are found while evaluating, not by name); `valued` the shared names whose numeric_value a
    value label reads.
    """

    shared: SharedPredicates
    names: dict[int, dict[str, str]]
    valued: frozenset[str]

    @classmethod
    def of(cls, plans: Mapping[str, tuple[Cohort, PredicatePlan]]) -> SharedReading:
        """The reading of the cohorts of `plans` and every cohort they name."""
        every = with_nested(plans)
        shared = share_predicates(every)
        names = {id(cohort): shared.names[name] for name, (cohort, _) in every.items()}
        valued = frozenset(names[id(c)][p.valued] for c, p in every.values() if p.valued)
        return cls(shared, names, valued)

    def count(self, source: EventSource) -> EventCounts:
        """Count every shared predicate over one event table."""
        shared = self.shared
        return count_plain(
            list(shared.plain), list(shared.statics), shared.specials, source, self.valued
        )

    def tables(self, events: EventCounts) -> TableMaker:
        """Count tables from `events` (made by `count`) for any cohort of the reading."""

        def table(cohort: Cohort, plan: PredicatePlan, rows: Mapping[str, Rows]) -> CountTable:
            return cohort_table(cohort, plan, events, self.names[id(cohort)], rows)

        return table
