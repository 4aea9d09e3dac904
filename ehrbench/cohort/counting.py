"""Count a cohort's predicates per (subject, time) over a MEDS event table.

The counting rules are the spec's (section 2): a plain predicate counts its matching rows at a
timestamp, a derived predicate is 0/1 from its inputs' counts, `_ANY_EVENT` is 1 per distinct
timestamp and `_RECORD_START` / `_RECORD_END` are 1 at a subject's first / last timestamp. Only
predicates the plan names are computed, and only timestamps where one of them is non-zero are
kept, so the count table is usually far smaller than the event table.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ehrbench.cohort.blocks import position
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
# Rows of a count table: subjects, int64 microsecond times, counts by predicate name (int32,
# or uint8 hits before they are summed per timestamp).
TableRows = tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]


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

    Rows are sorted by (subject, time): every timestamp where some plain count is non-zero, and
    every other one when `specials` asked for `_ANY_EVENT`. `ends` holds, per `_RECORD_START` /
    `_RECORD_END` asked for (without `_ANY_EVENT`, whose rows hold them), each subject's first /
    last timestamp as sorted (subjects, times): only the cohorts that count them add them to
    their tables. `static_subjects` holds, per static predicate, the sorted subjects with a
    matching null-time row; `values`, per predicate asked for, its `ValueRows`. `cohort_table`
    turns this into one cohort's `CountTable`; several cohorts can share one `EventCounts` (one
    read of the events).
    """

    subjects: np.ndarray
    times: np.ndarray
    counts: dict[str, np.ndarray]
    subject_ids: np.ndarray
    static_subjects: dict[str, np.ndarray]
    values: dict[str, ValueRows]
    ends: dict[str, Rows]
    # Row lists found once and shared by every cohort taking its table from these counts (one
    # EventCounts per shard task, read by one thread: the frozen record's caches fill safely).
    _nonzero: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    _nonzero_counts: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _edges: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def nonzero_count(self, name: str) -> int:
        """How many rows have a non-zero count of `name`."""
        if name not in self._nonzero_counts:
            self._nonzero_counts[name] = int(np.count_nonzero(self.counts[name]))
        return self._nonzero_counts[name]

    def nonzero_rows(self, name: str) -> np.ndarray:
        """The rows, ascending, where `name`'s count is non-zero."""
        if name not in self._nonzero:
            self._nonzero[name] = np.flatnonzero(self.counts[name])
        return self._nonzero[name]

    def edge_rows(self, special: str) -> np.ndarray:
        """The rows, ascending, where `special` (`_RECORD_START` / `_RECORD_END`) counts 1: each
        subject's first / last row."""
        if not self._edges:
            first, last = subject_edges(self.subjects)
            self._edges.update(
                {RECORD_START: np.flatnonzero(first), RECORD_END: np.flatnonzero(last)}
            )
        return self._edges[special]


def subject_edges(subjects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by subject: is each the first / the last row of its subject?

    >>> [mask.tolist() for mask in subject_edges(np.array([3, 3, 5]))]
    [[True, False, True], [False, True, True]]
    """
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

    `specials` (special predicate names) say which extra timestamps to keep (every one for
    `_ANY_EVENT`) or find (each subject's first / last, `EventCounts.ends`); `valued` (names
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
    queries = [_subject_query(source, specials), _hit_query(plain, source)]
    if ANY_EVENT in specials:
        queries.append(_timestamp_query(source))
    for name in valued:
        pred = next(p for p in plain if p.name == name)
        queries.append(_value_query(pred, source))
    if statics:
        untimed = _rows(source, pl.col(TIME).is_null() & any_code_test(statics))
        hits = (row_match(p, source.schema).alias(p.name) for p in statics)
        queries.append(untimed.select(SUBJECT, *hits))
    distinct, hit_rows, *rest = source.collect(queries)
    table = sum_per_timestamp(_frame_rows(hit_rows, [p.name for p in plain]))
    del hit_rows  # the largest result: freed before the table grows
    if ANY_EVENT in specials:
        table = sum_per_timestamp(_concat_rows([table, _frame_rows(rest.pop(0))]))
    ends = {end: _end_rows(distinct, end) for end in _ends(specials)}
    values = {name: _value_rows(rest[i]) for i, name in enumerate(valued)}
    static_subjects = {p.name: _static_subjects(rest[-1], p.name) for p in statics}
    subject_ids = np.sort(distinct[SUBJECT].to_numpy())
    return EventCounts(*table, subject_ids, static_subjects, values, ends)


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
    """The subject ends the count tables need, by special predicate (`EventCounts.ends`): the
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
    last timestamp (null for a subject without a timed row): one pass over every row.

    The rows are first cut into runs of one subject (`rle_id`): a MEDS shard holds each
    subject's rows together, so only about one run per subject is hashed, not every row. A
    subject split over several runs still comes out once (its runs are grouped again).
    """
    ends = _ends(specials)
    if not ends:
        runs = pl.col(SUBJECT).rle().struct.field("value")
        return _rows(source).select(runs.unique().alias(SUBJECT))
    run = pl.col(SUBJECT).rle_id().alias("_run")
    # Selected before grouping: polars streams this form (a grouping on the expression
    # itself runs about twice as slowly).
    rows = _rows(source).select(run, SUBJECT, TIME)
    runs = rows.group_by("_run").agg(pl.col(SUBJECT).first(), *ends.values())
    merged = {RECORD_START: pl.col(RECORD_START).min(), RECORD_END: pl.col(RECORD_END).max()}
    return runs.group_by(SUBJECT).agg(merged[name] for name in ends)


def _hit_query(plain: list[PlainPredicate], source: EventSource) -> pl.LazyFrame:
    """The timed rows whose code some predicate of `plain` accepts, in file order: subject,
    time and, per predicate, 1 if the row matches it, else 0 (uint8: a byte per row, which
    numpy takes over far faster than polars' packed booleans).

    One code test picks the rows (most rows match no predicate); each predicate's own test then
    runs on those only.
    """
    timed = pl.col(TIME).is_not_null()
    hits = (row_match(p, source.schema).cast(pl.UInt8).alias(p.name) for p in plain)
    return _rows(source, timed & any_code_test(plain)).select(SUBJECT, TIME, *hits)


def _timestamp_query(source: EventSource) -> pl.LazyFrame:
    """Every distinct (subject, time) of the timed rows (`_ANY_EVENT`'s), unordered."""
    return _rows(source, pl.col(TIME).is_not_null()).select(SUBJECT, TIME).unique()


def _end_rows(subjects: pl.DataFrame, end: str) -> Rows:
    """Each subject's `end` timestamp (`_subject_query`'s column) as sorted (subjects, times)."""
    rows = subjects.select(SUBJECT, pl.col(end).alias(TIME)).drop_nulls(TIME).sort(SUBJECT)
    return rows[SUBJECT].to_numpy(), rows[TIME].to_numpy()


def _frame_rows(frame: pl.DataFrame, names: Collection[str] = ()) -> TableRows:
    """`frame`'s subject and time columns, and its count columns `names`, as arrays."""
    counts = {name: frame[name].to_numpy() for name in names}
    return frame[SUBJECT].to_numpy(), frame[TIME].to_numpy(), counts


def _concat_rows(parts: list[TableRows]) -> TableRows:
    """The rows of `parts` one after the other; a count a part lacks is 0 in its rows."""
    names = dict.fromkeys(name for _, _, counts in parts for name in counts)
    counts = {
        name: np.concatenate([c.get(name, np.zeros(len(s), dtype=np.int32)) for s, _, c in parts])
        for name in names
    }
    subjects = np.concatenate([s for s, _, _ in parts])
    return subjects, np.concatenate([t for _, t, _ in parts]), counts


def sum_per_timestamp(rows: TableRows) -> TableRows:
    """One row per distinct (subject, time) of `rows`, sorted, each count (or hit) summed over
    the rows there, as int32.

    Rows that come in file order from a MEDS shard (sorted by subject and time) need no sort:
    one linear pass sums each timestamp's run of rows. Others are sorted first, stably.
    """
    subjects, times, counts = rows
    same_subject = subjects[1:] == subjects[:-1]
    in_order = (subjects[1:] > subjects[:-1]) | (same_subject & (times[1:] >= times[:-1]))
    if not np.all(in_order):
        order = np.lexsort((times, subjects))
        subjects, times = subjects[order], times[order]
        counts = {name: c[order] for name, c in counts.items()}
        same_subject = subjects[1:] == subjects[:-1]
    new = np.ones(len(subjects), dtype=bool)
    new[1:] = ~same_subject | (times[1:] != times[:-1])
    if new.all():
        return subjects, times, {name: c.astype(np.int32) for name, c in counts.items()}
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], len(subjects))
    summed = {}
    for name, values in counts.items():
        running = running_sums(values)
        summed[name] = (running[ends] - running[starts]).astype(np.int32, copy=False)
    return subjects[starts], times[starts], summed


def running_sums(values: np.ndarray) -> np.ndarray:
    """0, then the running sums of `values` (one more entry than `values`), so that the sum of
    `values[i:j]` is `sums[j] - sums[i]`. int32 when the total fits (always, short of 2**31
    matching rows in a shard): half the memory of int64, and faster.

    >>> running_sums(np.array([1, 0, 2], dtype=np.uint8)).tolist()
    [0, 1, 1, 3]
    """
    wide = values.sum(dtype=np.int64) >= np.iinfo(np.int32).max
    running = np.zeros(len(values) + 1, dtype=np.int64 if wide else np.int32)
    np.cumsum(values, dtype=running.dtype, out=running[1:])
    return running


def _with_timestamps(
    table: TableRows, subjects: np.ndarray, times: np.ndarray, counts: dict[str, np.ndarray]
) -> TableRows:
    """`table` (sorted, one row per timestamp) with the rows (`subjects`, `times`), sorted and
    distinct, added: each adds its `counts` to the table's row at its timestamp, or is inserted
    in order as a row of its own (its other counts 0). A count the table lacks is 0 in its rows.

    Each row is found by a search among its subject's rows, so the table is not sorted again:
    cheap when the rows are few against the table (each subject's first or last timestamp, a
    cohort predicate's rows). `table`'s arrays are not changed.
    """
    table_subjects, table_times, table_counts = table
    lo = np.searchsorted(table_subjects, subjects, side="left")
    hi = np.searchsorted(table_subjects, subjects, side="right")
    at = position(table_times, lo, hi, times, after=False)
    present = at < hi
    present[present] = table_times[at[present]] == times[present]
    new = ~present
    merged = {}
    for name in dict.fromkeys([*table_counts, *counts]):
        column = table_counts.get(name, np.zeros(len(table_subjects), dtype=np.int32))
        if name in counts:
            column = column.copy()  # the table's own column stays as it was
            column[at[present]] += counts[name][present]
        merged[name] = np.insert(column, at[new], counts[name][new] if name in counts else 0)
    return (
        np.insert(table_subjects, at[new], subjects[new]),
        np.insert(table_times, at[new], times[new]),
        merged,
    )


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
    `events` counts several cohorts' predicates: the cohort then starts from the rows where its
    own counts may be non-zero, `_rows_that_may_count`). `events` must count every plain and
    static predicate of `plan` and keep or find the timestamps its special predicates need (the
    subjects' ends join the table here, for the cohorts that count them); rows where all of
    `cohort`'s counts are zero are dropped, so the table is the one `count_events` gives.
    `cohort_rows` gives, per `{cohort: ...}` predicate, the rows where it counts 1 (they may
    fall between event timestamps: they join the table as rows of their own).
    """
    names = names or {}
    passers = events.subject_ids
    for name in plan.static:
        passers = np.intersect1d(passers, events.static_subjects[names.get(name, name)])
    plain = [n for n in plan.plain if isinstance(cohort.predicates[n], PlainPredicate)]
    births = None
    if plan.birth is not None:
        birth_rows = events.nonzero_rows(names.get(BIRTH, BIRTH))
        births = _first_rows(events.subjects[birth_rows], events.times[birth_rows])
    rows = _rows_that_may_count(
        plan, events, [names.get(name, name) for name in plain], names.get(BIRTH, BIRTH)
    )
    counts = {name: events.counts[names.get(name, name)][rows] for name in plain}
    table = (events.subjects[rows], events.times[rows], counts)
    for special, (end_subjects, end_times) in events.ends.items():
        if special in plan.timed:
            table = _with_timestamps(table, end_subjects, end_times, {})
    subjects, times, counts = table
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


# A cohort whose predicates' non-zero rows add up to this share of a shared table's rows or more
# takes the whole table: picking its rows out first would cost more than it spares.
WHOLE_TABLE_SHARE = 0.25


def _rows_that_may_count(
    plan: PredicatePlan, events: EventCounts, plain: list[str], birth: str
) -> np.ndarray | slice:
    """The rows of `events` where a cohort's timed counts may be non-zero (`plain` and `birth`:
    its plain and birth predicates' names in `events`); every row when it counts `_ANY_EVENT`,
    uses every count, or when its predicates' non-zero rows add up to `WHOLE_TABLE_SHARE` of the
    rows or more (a row two of them share counts twice: a bound, cheap to find).

    Any other row holds only zero counts of the cohort (a derived count is non-zero only where
    an input is), so its count table drops it: taking these rows first spares each cohort the
    rows of the others when several share one `EventCounts`, unless they are most rows anyway
    (taking them then costs more than it spares). Where the rows hold every timestamp
    (`_ANY_EVENT`, so no separate `ends`), each subject's first and last rows stay when the
    cohort counts `_RECORD_START` / `_RECORD_END`, so they remain the subject's edges.
    """
    if ANY_EVENT in plan.timed or set(events.counts) <= {*plain, birth}:
        return slice(None)
    if sum(events.nonzero_count(name) for name in plain) >= WHOLE_TABLE_SHARE * len(
        events.subjects
    ):
        return slice(None)
    kept = np.zeros(len(events.subjects), dtype=bool)
    for name in plain:
        kept[events.nonzero_rows(name)] = True
    for special in (RECORD_START, RECORD_END):
        if special in plan.timed and special not in events.ends:
            kept[events.edge_rows(special)] = True
    return np.flatnonzero(kept)


def _first_rows(subjects: np.ndarray, times: np.ndarray) -> Rows:
    """Per subject, its first row's time (rows sorted by subject, time)."""
    first, _ = subject_edges(subjects)
    return subjects[first], times[first]


def _with_rows(
    subjects: np.ndarray,
    times: np.ndarray,
    counts: dict[str, np.ndarray],
    cohort_rows: Mapping[str, Rows],
) -> TableRows:
    """The table's rows joined with the cohort predicates' rows, each counting 1 at its own.

    Every part's (subject, time) pairs are distinct; the result has each pair once, sorted.
    """
    table = (subjects, times, counts)
    for name, (rows_subjects, rows_times) in cohort_rows.items():
        ones = np.ones(len(rows_subjects), dtype=np.int32)
        table = _with_timestamps(table, rows_subjects, rows_times, {name: ones})
    return table


def _add_special_counts(
    plan: PredicatePlan, subjects: np.ndarray, counts: dict[str, np.ndarray]
) -> None:
    """Add special predicates' counts to per-(subject, time) `counts`, in place."""
    first, last = subject_edges(subjects)
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
