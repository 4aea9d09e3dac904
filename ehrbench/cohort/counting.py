"""Count a cohort's predicates per (subject, time) over a MEDS event table.

The counting rules are the spec's (section 2): a plain predicate counts its matching rows at a
timestamp, a derived predicate is 0/1 from its inputs' counts, `_ANY_EVENT` is 1 per distinct
timestamp and `_RECORD_START` / `_RECORD_END` are 1 at a subject's first / last timestamp. Only
predicates the plan names are computed, and only timestamps where one of them is non-zero are
kept, so the count table is usually far smaller than the event table.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from ehrbench.cohort.matching import any_code_test, row_match
from ehrbench.cohort.model import (
    ANY_EVENT,
    RECORD_END,
    RECORD_START,
    SPECIAL_PREDICATES,
    SUBJECT,
    TIME,
    VALUE,
    Cohort,
    DerivedPredicate,
    PlainPredicate,
)
from ehrbench.cohort.planning import BIRTH, PredicatePlan, static_predicate
from ehrbench.cohort.reader import EventSource
from ehrbench.errors import EhrbenchError

# Where a `{cohort: ...}` predicate counts 1: sorted distinct (subjects, times) arrays.
Rows = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ValueRows:
    """The non-null numeric_value of a predicate's matching timed rows, for a value label.

    Sorted by (subject, time), rows of one timestamp in file order; `times` in microseconds.
    """

    subjects: np.ndarray
    times: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class CountTable:
    """Per-(subject, time) counts of the timed predicates of the subjects that pass the filter.

    Rows are sorted by (subject, time): every timestamp where some count is non-zero (every
    distinct timestamp when `_ANY_EVENT` is used). `times` are int64 microseconds.
    `subject_ids` are all distinct subjects of the events, before the demographic filter.
    `births` are (sorted subjects, their first birth time) for the age filter; `values` the
    value label's rows.
    """

    subjects: np.ndarray
    times: np.ndarray
    counts: dict[str, np.ndarray]
    subject_ids: np.ndarray
    subjects_kept: int
    births: Rows | None = None
    values: ValueRows | None = None


@dataclass(frozen=True)
class EventCounts:
    """Per-(subject, time) counts of plain predicates over every subject, unfiltered.

    Rows are sorted by (subject, time): every timestamp where some plain count is non-zero, plus
    what `specials` asked for (every timestamp for `_ANY_EVENT`; each subject's first and last
    for `_RECORD_START` / `_RECORD_END`). `static_subjects` holds, per static predicate, the
    sorted subjects with a matching null-time row; `values`, per predicate asked for, its
    `ValueRows`. `cohort_table` turns this into one cohort's `CountTable`; several cohorts can
    share one `EventCounts` (one read of the events).
    """

    subjects: np.ndarray
    times: np.ndarray
    counts: dict[str, np.ndarray]
    subject_ids: np.ndarray
    static_subjects: dict[str, np.ndarray]
    values: dict[str, ValueRows]


def _subject_edges(subjects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted group rows: is each the first / the last row of its subject?"""
    first = np.ones(len(subjects), dtype=bool)
    first[1:] = subjects[1:] != subjects[:-1]
    last = np.ones(len(subjects), dtype=bool)
    last[:-1] = first[1:]
    return first, last


def count_events(
    cohort: Cohort,
    plan: PredicatePlan,
    source: EventSource,
    cohort_rows: Mapping[str, Rows] | None = None,
) -> CountTable:
    """Apply the demographic filter and count every timed predicate per (subject, time).

    `cohort_rows` gives, per `{cohort: ...}` predicate, the rows where it counts 1.
    """
    plain = [p for n in plan.plain if isinstance(p := cohort.predicates[n], PlainPredicate)]
    statics = [static_predicate(cohort, n) for n in plan.static]
    specials = [n for n in plan.timed if n in SPECIAL_PREDICATES]
    plain += [plan.birth] if plan.birth else []
    valued = [plan.valued] if plan.valued else []
    events = count_plain(plain, statics, specials, source, valued)
    return cohort_table(cohort, plan, events, cohort_rows=cohort_rows)


def count_plain(
    plain: list[PlainPredicate],
    statics: list[PlainPredicate],
    specials: Collection[str],
    source: EventSource,
    valued: Collection[str] = (),
) -> EventCounts:
    """Count `plain` per (subject, time) and find the subjects matching each of `statics`.

    `specials` (special predicate names) say which extra timestamps to keep; `valued` (names
    among `plain`) whose matching rows' numeric_value to keep. Predicate names must be distinct:
    they key the counts. Polars' streaming engine does the per-row work, in one run of queries
    over `source`.

    >>> from datetime import datetime
    >>> from ehrbench.cohort.model import ExactCode
    >>> events = pl.DataFrame({"subject_id": [1, 1, 1, 2], "code": ["A", "A", "B", "A"],
    ...                        "time": [datetime(2020, 1, d) for d in (1, 1, 2, 3)]})
    >>> counts = count_plain([PlainPredicate("a", ExactCode("A"))], [], [], EventSource(events))
    >>> counts.subjects.tolist(), counts.counts["a"].tolist()
    ([1, 2], [2, 1])
    """
    subjects = _subject_query(source, specials)
    queries = [subjects, _count_query(plain, specials, subjects, source)]
    for name in valued:
        pred = next(p for p in plain if p.name == name)
        queries.append(_value_query(pred, source))
    if statics:
        untimed = _rows(source, pl.col(TIME).is_null() & any_code_test(statics))
        hits = (row_match(p, source.schema).alias(p.name) for p in statics)
        queries.append(untimed.select(SUBJECT, *hits))
    distinct, counted, *rest = source.collect(queries)
    values = {name: _value_rows(rest[i]) for i, name in enumerate(valued)}
    static_subjects = {p.name: _static_subjects(rest[-1], p.name) for p in statics}
    return EventCounts(
        counted[SUBJECT].to_numpy(),
        counted[TIME].to_numpy(),
        {p.name: counted[p.name].to_numpy() for p in plain},
        np.sort(distinct[SUBJECT].to_numpy()),
        static_subjects,
        values,
    )


def _micros(source: EventSource) -> pl.Expr:
    """The time column as int64 microseconds since the epoch (finer units truncated)."""
    dtype = source.schema[TIME]
    if not isinstance(dtype, pl.Datetime):
        raise EhrbenchError(
            f"the `{TIME}` column of {source.where} has type {dtype}; MEDS needs timestamps."
        )
    ticks = pl.col(TIME).cast(pl.Int64)
    if dtype.time_unit == "ms":
        ticks = ticks * 1000
    elif dtype.time_unit == "ns":
        # Toward zero, as arrow's unsafe cast does (polars' own cast floors).
        ticks = ticks.sign() * (ticks.abs() // 1000)
    return ticks.alias(TIME)


def _ends(specials: Collection[str]) -> dict[str, pl.Expr]:
    """The subject ends the count table needs as rows of their own, by special predicate: the
    first timestamp for `_RECORD_START`, the last for `_RECORD_END` (none with `_ANY_EVENT`,
    which keeps every timestamp anyway). Only the ones asked for are aggregated: each is a
    per-subject aggregate over every row."""
    if ANY_EVENT in specials:
        return {}
    ends = {RECORD_START: pl.col(TIME).min(), RECORD_END: pl.col(TIME).max()}
    return {name: end.alias(name) for name, end in ends.items() if name in specials}


def _rows(source: EventSource, where: pl.Expr | None = None) -> pl.LazyFrame:
    """The rows of `source` passing `where` (a filter polars pushes into the parquet scan),
    subject_id as int64 and time as int64 microseconds."""
    events = source.scan()
    if where is not None:
        events = events.filter(where)
    return events.with_columns(pl.col(SUBJECT).cast(pl.Int64), _micros(source))


def _subject_query(source: EventSource, specials: Collection[str]) -> pl.LazyFrame:
    """Every distinct subject of `source` and, per end `specials` need (`_ends`), its first or
    last timestamp (null for a subject without a timed row): one grouping of every row."""
    ends = _ends(specials)
    if not ends:
        return _rows(source).select(pl.col(SUBJECT).unique())
    return _rows(source).group_by(SUBJECT).agg(*ends.values())


def _count_query(
    plain: list[PlainPredicate],
    specials: Collection[str],
    subjects: pl.LazyFrame,
    source: EventSource,
) -> pl.LazyFrame:
    """Per (subject, time), sorted, each plain predicate's matching rows (int32), at every
    timestamp where one is non-zero and every timestamp `specials` need (there all may be 0).

    Only rows whose code some predicate accepts are tested and grouped: most rows match none.
    `subjects` is `_subject_query`'s: the subjects' ends, when needed.
    """
    timed = pl.col(TIME).is_not_null()
    hits = (row_match(p, source.schema).cast(pl.Int32).alias(p.name) for p in plain)
    parts = [_rows(source, timed & any_code_test(plain)).select(SUBJECT, TIME, *hits)]
    if ANY_EVENT in specials:
        parts.append(_rows(source, timed).select(SUBJECT, TIME).unique())
    for end in _ends(specials):
        parts.append(subjects.select(SUBJECT, pl.col(end).alias(TIME)).drop_nulls(TIME))
    grouped = pl.concat(parts, how="diagonal").group_by(SUBJECT, TIME)
    return grouped.agg(pl.col(p.name).sum() for p in plain).sort(SUBJECT, TIME)


def _value_query(pred: PlainPredicate, source: EventSource) -> pl.LazyFrame:
    """The non-null numeric_value (float32) of the timed rows matching `pred`, in (subject, time)
    order, rows of one timestamp in file order (a stable sort)."""
    where = pl.col(TIME).is_not_null() & any_code_test([pred]) & pl.col(VALUE).is_not_null()
    kept = _rows(source, where).filter(row_match(pred, source.schema))
    return kept.select(SUBJECT, TIME, pl.col(VALUE).cast(pl.Float32)).sort(
        SUBJECT, TIME, maintain_order=True
    )


def _value_rows(frame: pl.DataFrame) -> ValueRows:
    return ValueRows(frame[SUBJECT].to_numpy(), frame[TIME].to_numpy(), frame[VALUE].to_numpy())


def _static_subjects(frame: pl.DataFrame, name: str) -> np.ndarray:
    """The sorted distinct subjects of the null-time rows that matched static predicate `name`."""
    return np.unique(frame.filter(pl.col(name))[SUBJECT].to_numpy())


def cohort_table(
    cohort: Cohort,
    plan: PredicatePlan,
    events: EventCounts,
    names: Mapping[str, str] | None = None,
    cohort_rows: Mapping[str, Rows] | None = None,
) -> CountTable:
    """`cohort`'s count table from `events`: demographic filter, computed counts, non-zero rows.

    `names` maps a predicate name of `cohort` to its name in `events` where they differ (when
    `events` counts several cohorts' predicates). `events` must count every plain and static
    predicate of `plan` and keep the timestamps its special predicates need; rows where all of
    `cohort`'s counts are zero are dropped, so the table is the one `count_events` gives.
    `cohort_rows` gives, per `{cohort: ...}` predicate, the rows where it counts 1 (they may
    fall between event timestamps: they join the table as rows of their own).
    """
    names = names or {}
    passers = events.subject_ids
    for name in plan.static:
        passers = np.intersect1d(passers, events.static_subjects[names.get(name, name)])
    subjects, times = events.subjects, events.times
    plain = [n for n in plan.plain if isinstance(cohort.predicates[n], PlainPredicate)]
    counts = {name: events.counts[names.get(name, name)] for name in plain}
    births = None
    if plan.birth is not None:
        births = _first_rows(subjects, times, events.counts[names.get(BIRTH, BIRTH)] > 0)
    # Special predicates count at event timestamps only, before cohort rows join the table.
    _add_special_counts(plan, subjects, counts)
    if cohort_rows:
        subjects, times, counts = _with_rows(subjects, times, counts, cohort_rows)
    if plan.static:
        keep = np.isin(subjects, passers)
        subjects, times = subjects[keep], times[keep]
        counts = {name: c[keep] for name, c in counts.items()}
    _add_derived_counts(cohort, plan, subjects, counts)
    ordered = {name: counts[name] for name in plan.timed}
    if ANY_EVENT not in plan.timed and ordered:
        nonzero = np.logical_or.reduce([c > 0 for c in ordered.values()])
        subjects, times = subjects[nonzero], times[nonzero]
        ordered = {name: c[nonzero] for name, c in ordered.items()}
    values = events.values[names.get(plan.valued, plan.valued)] if plan.valued else None
    return CountTable(subjects, times, ordered, events.subject_ids, len(passers), births, values)


def _first_rows(subjects: np.ndarray, times: np.ndarray, hit: np.ndarray) -> Rows:
    """Per subject with a `hit` row, the time of its first one (rows sorted by subject, time)."""
    subjects, times = subjects[hit], times[hit]
    first, _ = _subject_edges(subjects)
    return subjects[first], times[first]


def _with_rows(
    subjects: np.ndarray,
    times: np.ndarray,
    counts: dict[str, np.ndarray],
    cohort_rows: Mapping[str, Rows],
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The table's rows joined with the cohort predicates' rows, each counting 1 at its own.

    Every part's (subject, time) pairs are distinct; the result has each pair once, sorted.
    """
    parts = [(subjects, times), *cohort_rows.values()]
    all_subjects = np.concatenate([s for s, _ in parts])
    all_times = np.concatenate([t for _, t in parts])
    order = np.lexsort((all_times, all_subjects))
    change = np.ones(len(order), dtype=bool)
    change[1:] = (np.diff(all_subjects[order]) != 0) | (np.diff(all_times[order]) != 0)
    group = np.empty(len(order), dtype=np.int64)
    group[order] = np.cumsum(change) - 1
    size = int(change.sum())
    merged = {}
    for name, values in counts.items():
        merged[name] = np.zeros(size, dtype=values.dtype)
        merged[name][group[: len(subjects)]] = values
    offset = len(subjects)
    for name, (part, _) in cohort_rows.items():
        merged[name] = np.zeros(size, dtype=np.int32)
        merged[name][group[offset : offset + len(part)]] = 1
        offset += len(part)
    return all_subjects[order][change], all_times[order][change], merged


def _add_special_counts(
    plan: PredicatePlan, subjects: np.ndarray, counts: dict[str, np.ndarray]
) -> None:
    """Add special predicates' counts to per-(subject, time) `counts`, in place."""
    first, last = _subject_edges(subjects)
    for name in plan.timed:
        if name == ANY_EVENT:
            counts[name] = np.ones(len(subjects), dtype=np.int32)
        elif name == RECORD_START:
            counts[name] = first.astype(np.int32)
        elif name == RECORD_END:
            counts[name] = last.astype(np.int32)


def _add_derived_counts(
    cohort: Cohort, plan: PredicatePlan, subjects: np.ndarray, counts: dict[str, np.ndarray]
) -> None:
    """Add derived predicates' counts to per-(subject, time) `counts`, inputs first, in place."""
    for name in plan.timed:
        pred = cohort.predicates.get(name)
        if isinstance(pred, DerivedPredicate):
            # A static input has no rows at any timestamp, so it counts 0 there.
            zero = np.zeros(len(subjects), dtype=bool)
            inputs = [counts[n] > 0 if n in counts else zero for n in pred.inputs]
            combine = np.logical_and if pred.op == "and" else np.logical_or
            counts[name] = combine.reduce(inputs).astype(np.int32)
