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
import pyarrow as pa
import pyarrow.compute as pc

from ehrbench.cohort.matching import CodeTests, joined, plain_hits, value_columns
from ehrbench.cohort.model import (
    ANY_EVENT,
    CODE,
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


def _int64_values(column: pa.ChunkedArray) -> np.ndarray:
    """The int64 values of a column as one numpy array (values under nulls are arbitrary)."""
    parts = []
    for chunk in column.chunks:
        chunk = chunk.cast(pa.int64())
        data = chunk.buffers()[1]
        if len(chunk) and data is not None:
            values = np.frombuffer(data, dtype=np.int64, count=chunk.offset + len(chunk))
            parts.append(values[chunk.offset :])
    return joined(parts, np.int64)


def _timestamps(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(microseconds since the epoch, is-not-null) of a time column."""
    if not pa.types.is_timestamp(column.type):
        raise EhrbenchError(f"the `{TIME}` column has type {column.type}; MEDS needs timestamps.")
    column = column.cast(pa.timestamp("us", tz=column.type.tz), safe=False)
    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    return _int64_values(column), valid


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


@dataclass
class _Partial:
    """Grouped counts of one batch, plus what the demographic filter needs from it."""

    subjects: np.ndarray
    times: np.ndarray
    counts: dict[str, np.ndarray]
    all_subjects: np.ndarray
    static_subjects: dict[str, np.ndarray]
    values: dict[str, ValueRows]


def _group(subjects, times, values: dict[str, np.ndarray]):
    """Sum `values` per (subject, time), sorting first when needed; returns sorted groups."""
    if len(subjects) > 1 and not _is_sorted(subjects, times):
        order = np.lexsort((times, subjects))
        subjects, times = subjects[order], times[order]
        values = {name: v[order] for name, v in values.items()}
    change = np.ones(len(subjects), dtype=bool)
    change[1:] = (subjects[1:] != subjects[:-1]) | (times[1:] != times[:-1])
    starts = np.flatnonzero(change)
    if len(starts) == len(subjects):
        # Every (subject, time) once already: the sums are the values themselves.
        return subjects, times, {name: v.astype(np.int32, copy=False) for name, v in values.items()}
    sums = {
        name: np.add.reduceat(v, starts, dtype=np.int32) if len(starts) else np.zeros(0, np.int32)
        for name, v in values.items()
    }
    return subjects[starts], times[starts], sums


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values; linear when already sorted (MEDS shards are sorted by subject)."""
    if len(values) > 1 and not np.all(values[1:] >= values[:-1]):
        return np.unique(values)
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


def _subject_edges(subjects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted group rows: is each the first / the last row of its subject?"""
    first = np.ones(len(subjects), dtype=bool)
    first[1:] = subjects[1:] != subjects[:-1]
    last = np.ones(len(subjects), dtype=bool)
    last[:-1] = first[1:]
    return first, last


def _count_batch(
    batch: pa.Table,
    specials: Collection[str],
    plain: list[PlainPredicate],
    statics: list[PlainPredicate],
    codes: CodeTests,
    valued: Collection[str],
) -> _Partial:
    times, timed = _timestamps(batch.column(TIME))
    subjects = _int64_values(batch.column(SUBJECT))
    all_subjects = _distinct(subjects)
    ids = codes.ids(batch.column(CODE)) if codes.preds else np.zeros(len(subjects), np.int64)
    untimed = np.flatnonzero(~timed)
    hits = plain_hits(batch, codes, ids, untimed, statics)
    static_subjects = {p.name: _distinct(subjects[untimed[hits[p.name]]]) for p in statics}
    # Only the rows that can change a count are gathered, tested and grouped: most rows of a
    # batch match no referenced code.
    candidates = codes.any_test([p.name for p in plain], ids) & timed
    rows = _needed_rows(specials, subjects, times, timed, candidates)
    values = plain_hits(batch, codes, ids, rows, plain)
    numeric = {name: _value_rows(batch, rows[values[name]], subjects, times) for name in valued}
    group_subjects, group_times, counts = _group(subjects[rows], times[rows], values)
    return _Partial(group_subjects, group_times, counts, all_subjects, static_subjects, numeric)


def _value_rows(
    batch: pa.Table, rows: np.ndarray, subjects: np.ndarray, times: np.ndarray
) -> ValueRows:
    """The listed rows of `batch` whose numeric_value is not null, in file order."""
    column = batch.column(VALUE).take(pa.array(rows, pa.int64())).cast(pa.float32())
    present = pc.is_valid(column).to_numpy(zero_copy_only=False)
    values = column.fill_null(0).to_numpy()
    rows = rows[present]
    return ValueRows(subjects[rows], times[rows], values[present])


def _sorted_value_rows(parts: list[ValueRows]) -> ValueRows:
    """The batches' value rows in (subject, time) order, ties in file order (a stable sort)."""
    subjects = joined([p.subjects for p in parts], np.int64)
    times = joined([p.times for p in parts], np.int64)
    values = joined([p.values for p in parts], np.float32)
    order = np.lexsort((times, subjects))
    return ValueRows(subjects[order], times[order], values[order])


def _needed_rows(
    specials: Collection[str],
    subjects: np.ndarray,
    times: np.ndarray,
    timed: np.ndarray,
    candidates: np.ndarray,
) -> np.ndarray:
    """The timed rows the counts need: `candidates`, and what the special predicates need.

    `_ANY_EVENT` needs every timestamp; `_RECORD_START` / `_RECORD_END` need each subject's
    first and last timestamp, which lie among its first and last rows of some batch.
    """
    if ANY_EVENT in specials:
        return np.flatnonzero(timed)
    if RECORD_START in specials or RECORD_END in specials:
        candidates[_edge_rows(subjects, times, np.flatnonzero(timed))] = True
    return np.flatnonzero(candidates)


def _edge_rows(subjects: np.ndarray, times: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Of `rows`, each subject's earliest and latest one."""
    row_subjects, row_times = subjects[rows], times[rows]
    if len(rows) > 1 and not _is_sorted(row_subjects, row_times):
        order = np.lexsort((row_times, row_subjects))
        rows, row_subjects = rows[order], row_subjects[order]
    first, last = _subject_edges(row_subjects)
    return rows[first | last]


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
    among `plain`) whose matching rows' numeric_value to keep. Each batch of rows is reduced to
    grouped counts; the groups of all batches are then merged (a (subject, time) may straddle two
    batches). Predicate names must be distinct: they key the counts.
    """
    columns = [SUBJECT, TIME] + ([CODE] if plain or statics else [])
    columns += sorted(set(value_columns(plain + statics)) | ({VALUE} if valued else set()))
    codes = CodeTests(plain + statics)
    parts = [
        _count_batch(b, specials, plain, statics, codes, valued) for b in source.batches(columns)
    ]
    all_subjects = _union([p.all_subjects for p in parts])
    static_subjects = {
        p.name: _union([part.static_subjects[p.name] for part in parts]) for p in statics
    }
    values = {name: _sorted_value_rows([part.values[name] for part in parts]) for name in valued}
    # Column by column, each batch's copy dropped once joined: the merge holds one extra column.
    subjects = joined([_take(part, "subjects") for part in parts], np.int64)
    times = joined([_take(part, "times") for part in parts], np.int64)
    counts = {p.name: joined([part.counts.pop(p.name) for part in parts], np.int64) for p in plain}
    del parts
    subjects, times, counts = _group(subjects, times, counts)
    return EventCounts(subjects, times, counts, all_subjects, static_subjects, values)


def _union(parts: list[np.ndarray]) -> np.ndarray:
    """The sorted distinct values of all `parts`."""
    return np.unique(np.concatenate(parts or [np.zeros(0, np.int64)]))


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


def _take(part: _Partial, name: str) -> np.ndarray:
    """`part`'s array `name`, which `part` no longer holds."""
    values = getattr(part, name)
    setattr(part, name, values[:0].copy())
    return values


def _is_sorted(subjects: np.ndarray, times: np.ndarray) -> bool:
    same = subjects[1:] == subjects[:-1]
    return bool(np.all((subjects[1:] > subjects[:-1]) | (same & (times[1:] >= times[:-1]))))


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
