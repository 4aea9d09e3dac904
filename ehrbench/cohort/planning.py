"""Which predicates an extraction computes, and in what order.

Only predicates the cohort refers to are computed (spec section 2). Timed predicates are counted
at timestamps, inputs of a derived predicate before the predicate itself; static predicates only
filter subjects, so they may not anchor or be counted in a window.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ehrbench.cohort.model import (
    RECORD_END,
    RECORD_START,
    SPECIAL_PREDICATES,
    Cohort,
    CohortPredicate,
    DerivedPredicate,
    ExactCode,
    PlainPredicate,
    Reference,
    ValueLabel,
    direct_references,
    label_predicates,
)
from ehrbench.errors import EhrbenchError

# The name the age filter's birth predicate is counted under: not a word, so never a config's.
BIRTH = "age.birth"


@dataclass(frozen=True)
class PredicatePlan:
    """Which predicates an extraction needs, in an order where inputs come before users.

    `timed` are the predicates counted at timestamps (plain non-static, derived, special);
    `static` are the plain static predicates every kept subject must match on a null-time row.
    `birth` is the predicate whose first row is a subject's birth, for `age` (named `BIRTH`, never
    a config's name); `valued` the plain predicate whose numeric_value a value label reads.
    `unsearched` holds the (window, side) pairs placed without a search (`unread_record_bounds`).
    """

    timed: tuple[str, ...]
    static: tuple[str, ...]
    birth: PlainPredicate | None = None
    valued: str | None = None
    unsearched: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    @property
    def plain(self) -> tuple[str, ...]:
        return tuple(n for n in self.timed if n not in SPECIAL_PREDICATES)


def plan_predicates(cohort: Cohort, *, every_window_time: bool = False) -> PredicatePlan:
    """The timed and static predicates `cohort` needs, derived inputs before derived users.

    Unless `every_window_time` (explain and audits show every window's times), a side bounded by
    the record's start or end whose time nothing reads and which every trigger places is not
    searched (`unread_record_bounds`), so `_RECORD_START` / `_RECORD_END` are not counted for it.
    Raises `EhrbenchError` for an undefined name, a cycle of derived predicates, or a static
    predicate used where a timestamp is needed.
    """
    unsearched = frozenset() if every_window_time else unread_record_bounds(cohort)
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise EhrbenchError(f"predicate `{name}` is defined in terms of itself (a cycle).")
        visiting.add(name)
        pred = cohort.predicates.get(name)
        if pred is None and name not in SPECIAL_PREDICATES:
            raise EhrbenchError(f"predicate `{name}` is referenced but not defined.")
        if isinstance(pred, DerivedPredicate):
            for child in pred.inputs:
                visit(child)
        visiting.discard(name)
        ordered.append(name)

    for name in direct_references(cohort.trigger, cohort.windows, unsearched):
        visit(name)
    static = [n for n in ordered if _is_static(cohort, n)]
    static += [n for n in cohort.demographics if n not in static]
    form = cohort.label_form
    plan = PredicatePlan(
        timed=tuple(n for n in ordered if n not in static),
        static=tuple(static),
        birth=None if cohort.age is None else PlainPredicate(BIRTH, ExactCode(cohort.age.birth)),
        valued=form.predicate if isinstance(form, ValueLabel) else None,
        unsearched=unsearched,
    )
    _check_static_uses(cohort, plan)
    return plan


def unread_record_bounds(cohort: Cohort) -> frozenset[tuple[str, str]]:
    """The window sides bounded by the record's start or end that need no search.

    A start `END <- _RECORD_START` (what `start: null` means) is the subject's first timestamp at
    or before the window's end (before it, when the start is exclusive). When that end is the
    trigger plus a duration >= 0 (> 0 for an exclusive start), such a timestamp always exists if
    the trigger is one of the subject's event timestamps (`_event_backed`: not a `{cohort: ...}`
    predicate's row, which may lie outside the record). Likewise an end `START -> _RECORD_END`
    when the start is the trigger minus a duration >= 0 (> 0 for an exclusive end). Such a side
    is left out when its time is never read: its window counts nothing (no `has`, no label), it
    is not the window's index side, and no other window is measured from it.

    >>> from ehrbench.cohort.model import Boundary, TRIGGER, Window
    >>> start = Boundary(Reference("input", "end"), "prev", predicate=RECORD_START)
    >>> end = Boundary(TRIGGER, "offset", dt.timedelta(hours=24))
    >>> window = Window("input", start, end, True, True, index_timestamp="end")
    >>> cohort = Cohort(source=None, predicates={}, demographics={}, trigger="admission",
    ...                 windows=(window,))
    >>> sorted(unread_record_bounds(cohort))
    [('input', 'start')]
    """
    if not _event_backed(cohort, cohort.trigger):
        return frozenset()
    measured_from = {
        (b.reference.window, b.reference.side)
        for w in cohort.windows
        for b in (w.start, w.end)
        if b.reference.window != w.name
    }
    unsearched = set()
    for window in cohort.windows:
        if window.has or window.has_label:
            continue
        for side, kind, record, other, inclusive, sign in (
            ("start", "prev", RECORD_START, window.end, window.start_inclusive, 1),
            ("end", "next", RECORD_END, window.start, window.end_inclusive, -1),
        ):
            bound = getattr(window, side)
            own_other = Reference(window.name, "end" if side == "start" else "start")
            from_trigger = other.kind == "offset" and other.reference.is_trigger
            beyond = sign * other.offset
            always_found = beyond > dt.timedelta(0) or (inclusive and beyond == dt.timedelta(0))
            if (
                (bound.kind, bound.predicate, bound.reference) == (kind, record, own_other)
                and from_trigger
                and always_found
                and window.index_timestamp != side
                and (window.name, side) not in measured_from
            ):
                unsearched.add((window.name, side))
    return frozenset(unsearched)


def _is_static(cohort: Cohort, name: str) -> bool:
    pred = cohort.predicates.get(name)
    return isinstance(pred, PlainPredicate) and pred.static


def _check_static_uses(cohort: Cohort, plan: PredicatePlan) -> None:
    """Static predicates only filter subjects: they have no timestamp to trigger or count at.

    The loader rejects such configs with their line; this covers cohorts built in code.
    """
    if cohort.trigger in plan.static:
        raise EhrbenchError(
            f"trigger `{cohort.trigger}` is a static predicate (it tests rows without a time), so "
            "it has no timestamp to anchor windows on: trigger on a timed predicate instead."
        )
    for window in cohort.windows:
        uses = [c.predicate for c in window.has] + [window.label]
        uses += label_predicates(window.label_form)
        uses += [b.predicate for b in (window.start, window.end)]
        for name in uses:
            if name in plan.static:
                raise EhrbenchError(
                    f"window `{window.name}` uses static predicate `{name}`, which tests rows "
                    "without a time and so has no count inside a window; use it under "
                    "`patient_demographics` to filter subjects instead."
                )


def static_predicate(cohort: Cohort, name: str) -> PlainPredicate:
    """The static predicate `name` from `patient_demographics` or `predicates`."""
    pred = cohort.demographics.get(name) or cohort.predicates[name]
    assert isinstance(pred, PlainPredicate)
    return pred


def _event_backed(cohort: Cohort, name: str) -> bool:
    """Whether predicate `name` counts only at timestamps of the subject's own events.

    A `{cohort: ...}` predicate counts at the named cohort's prediction times, which may fall
    between or outside the subject's events; a derived `and` is backed when any input is, an
    `or` when all are; plain and special predicates always are.
    """
    predicate = cohort.predicates.get(name)
    if isinstance(predicate, CohortPredicate):
        return False
    if isinstance(predicate, DerivedPredicate):
        backed = [_event_backed(cohort, n) for n in predicate.inputs]
        return any(backed) if predicate.op == "and" else all(backed)
    return True
