"""Compile a cohort's predicates into per-(subject, time) counts over a MEDS event table.

The counting rules are the spec's (section 2): a plain predicate counts its matching rows at a
timestamp, a derived predicate is 0/1 from its inputs' counts, `_ANY_EVENT` is 1 per distinct
timestamp and `_RECORD_START` / `_RECORD_END` are 1 at a subject's first / last timestamp. Only
predicates the cohort refers to are computed, and only timestamps where one of them is non-zero
are kept, so the count table is usually far smaller than the event table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ehrbench.cohort.model import (
    ANY_EVENT,
    RECORD_END,
    RECORD_START,
    SPECIAL_PREDICATES,
    AnyCode,
    Cohort,
    DerivedPredicate,
    ExactCode,
    PlainPredicate,
    RegexCode,
)
from ehrbench.errors import EhrbenchError

SUBJECT = "subject_id"
TIME = "time"
CODE = "code"
VALUE = "numeric_value"


@dataclass(frozen=True)
class PredicatePlan:
    """Which predicates an extraction needs, in an order where inputs come before users.

    `timed` are the predicates counted at timestamps (plain non-static, derived, special);
    `static` are the plain static predicates every kept subject must match on a null-time row.
    """

    timed: tuple[str, ...]
    static: tuple[str, ...]

    @property
    def plain(self) -> tuple[str, ...]:
        return tuple(n for n in self.timed if n not in SPECIAL_PREDICATES)


def _window_references(cohort: Cohort) -> list[str]:
    """Predicate names named directly by the trigger and the windows, in config order."""
    names = [cohort.trigger]
    for window in cohort.windows:
        for boundary in (window.start, window.end):
            if boundary.predicate:
                names.append(boundary.predicate)
        names.extend(c.predicate for c in window.has)
        if window.label:
            names.append(window.label)
    return names


def plan_predicates(cohort: Cohort) -> PredicatePlan:
    """The timed and static predicates `cohort` needs, derived inputs before derived users."""
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

    for name in _window_references(cohort):
        visit(name)
    static = [n for n in ordered if _is_static(cohort, n)]
    static += [n for n in cohort.demographics if n not in static]
    timed = tuple(n for n in ordered if n not in static)
    return PredicatePlan(timed=timed, static=tuple(static))


def _is_static(cohort: Cohort, name: str) -> bool:
    pred = cohort.predicates.get(name)
    return isinstance(pred, PlainPredicate) and pred.static


def static_predicate(cohort: Cohort, name: str) -> PlainPredicate:
    """The static predicate `name` from `patient_demographics` or `predicates`."""
    pred = cohort.demographics.get(name) or cohort.predicates[name]
    assert isinstance(pred, PlainPredicate)
    return pred


def _literal_for(value: object, dtype: pl.DataType) -> pl.Expr:
    """`value` as a literal of the column's type, so a YAML 5 compares equal to a string "5"."""
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return pl.lit(str(value).lower() if isinstance(value, bool) else str(value))
    return pl.lit(value).cast(dtype, strict=False)


def code_test(pred: PlainPredicate) -> pl.Expr:
    """A boolean expression on the `code` column: exact, unanchored regex search, or any-of."""
    code = pl.col(CODE).cast(pl.String)
    match pred.code:
        case ExactCode(value):
            test = code == pl.lit(value)
        case RegexCode(pattern):
            test = code.str.contains(pattern)
        case AnyCode(values):
            test = code.is_in(list(values))
    return test.fill_null(False)


def row_test(pred: PlainPredicate, schema: pl.Schema) -> pl.Expr | None:
    """The non-code part of `pred` (value bounds, column equalities), or None when there is none.

    Null never passes: a null numeric_value fails any bound, a null column fails an equality.
    """
    for column in (c for c, _ in pred.other_cols):
        if column not in schema:
            raise EhrbenchError(
                f"predicate `{pred.name}` tests column `{column}`, which the data does not have "
                f"(columns: {', '.join(schema.names())})."
            )
    tests = []
    if pred.value_min is not None or pred.value_max is not None:
        if VALUE not in schema:
            raise EhrbenchError(
                f"predicate `{pred.name}` bounds `{VALUE}`, which the data does not have."
            )
        # float32 on both sides: the MEDS type of numeric_value (spec section 2).
        value = pl.col(VALUE).cast(pl.Float32)
        if pred.value_min is not None:
            bound = pl.lit(pred.value_min, dtype=pl.Float32)
            tests.append(value >= bound if pred.value_min_inclusive else value > bound)
        if pred.value_max is not None:
            bound = pl.lit(pred.value_max, dtype=pl.Float32)
            tests.append(value <= bound if pred.value_max_inclusive else value < bound)
    for column, expected in pred.other_cols:
        tests.append(pl.col(column) == _literal_for(expected, schema[column]))
    return pl.all_horizontal(tests).fill_null(False) if tests else None


def row_match(pred: PlainPredicate, schema: pl.Schema) -> pl.Expr:
    """A boolean expression: does a row match the plain predicate `pred`? Null never matches."""
    if CODE not in schema:
        raise EhrbenchError(f"predicate `{pred.name}` tests `{CODE}`, which the data lacks.")
    rest = row_test(pred, schema)
    return code_test(pred) if rest is None else code_test(pred) & rest


# Rows per batch: large enough that per-batch overhead stays small, small enough that a batch
# and the few row-length arrays made from it stay around a MiB (so the reader, not the shard's
# size, sets the engine's peak memory).
BATCH_ROWS = 1 << 16
# Rows read between returns of arrow's cached memory to the system. Arrow's allocator keeps
# freed batches for reuse and its cache keeps growing while a shard is read; releasing after
# every batch would instead make each batch fault its pages in afresh, which costs time.
RELEASE_ROWS = 1 << 19


class EventSource:
    """An event table read in batches of rows: a parquet shard, or an in-memory frame.

    Only the columns the cohort needs are read, with `code` dictionary-encoded where parquet
    stores it so (each code test then runs once per distinct code).
    """

    def __init__(self, source: Path | pl.DataFrame | pl.LazyFrame):
        self._file = source if isinstance(source, Path) else None
        self._frame = None if isinstance(source, Path) else source.lazy()
        if self._file is not None:
            try:
                self.names = list(pq.read_schema(self._file).names)
            except (OSError, pa.ArrowException) as exc:
                raise EhrbenchError(
                    f"{self._file} is not a readable parquet event shard ({exc})."
                ) from exc
        else:
            self.names = self._frame.collect_schema().names()

    def batches(self, columns: list[str]) -> Iterator[pa.Table]:
        """The `columns` in batches of at most `BATCH_ROWS` rows."""
        for name in columns:
            if name not in self.names:
                raise EhrbenchError(
                    f"the event data has no `{name}` column (columns: {', '.join(self.names)})."
                )
        if self._file is not None:
            yield from _file_batches(self._file, columns)
            return
        frame = self._frame.select(columns).collect()
        for offset in range(0, frame.height, BATCH_ROWS):
            yield frame.slice(offset, BATCH_ROWS).to_arrow()


def _file_batches(path: Path, columns: list[str]) -> Iterator[pa.Table]:
    """A parquet file's `columns` streamed in `BATCH_ROWS`-row batches, decoding page by page.

    One decoding thread: the columns are few and the batches small, and each extra thread
    would add its own allocator cache to the peak.
    """
    encoded = [CODE] if CODE in columns else None
    pool = pa.default_memory_pool()
    unreleased = 0
    with pq.ParquetFile(path, read_dictionary=encoded) as reader:
        for batch in reader.iter_batches(batch_size=BATCH_ROWS, columns=columns, use_threads=False):
            yield pa.Table.from_batches([batch])
            unreleased += batch.num_rows
            if unreleased >= RELEASE_ROWS:
                pool.release_unused()
                unreleased = 0


class CodeTests:
    """Each predicate's code test, evaluated once per distinct code string.

    Parquet gives each row group its own code dictionary; the tests run (through polars, so
    regex semantics are polars') only on codes not seen before. Each row is mapped to the id
    of its code among the codes seen so far (-1 for a null code), and a predicate's test of
    any set of rows is then one gather from its per-code results.
    """

    def __init__(self, preds: list[PlainPredicate]):
        self.preds = preds
        self._position: dict[str, int] = {}
        # Per predicate, its result for every code seen so far, then a final False that the
        # id -1 (a null code) picks.
        self._known: dict[str, np.ndarray] = {p.name: np.zeros(1, bool) for p in preds}
        self._last: tuple[pa.Array, np.ndarray] | None = None

    def _learn(self, codes: list[str | None]) -> None:
        new = [c for c in dict.fromkeys(codes) if c is not None and c not in self._position]
        if not new:
            return
        tests = pl.DataFrame({CODE: new}, schema={CODE: pl.String}).select(
            code_test(p).alias(p.name) for p in self.preds
        )
        for code in new:
            self._position[code] = len(self._position)
        for p in self.preds:
            known = self._known[p.name]
            self._known[p.name] = np.concatenate([known[:-1], tests[p.name].to_numpy(), [False]])

    def _dictionary_ids(self, dictionary: pa.Array) -> np.ndarray:
        """Per dictionary entry its code's id, plus a final -1 for null indices."""
        # Consecutive batches of one row group carry equal dictionaries: answer once.
        if self._last is not None and self._last[0].equals(dictionary):
            return self._last[1]
        codes = dictionary.to_pylist()
        self._learn(codes)
        ids = np.array([self._position.get(c, -1) for c in codes] + [-1], dtype=np.int64)
        self._last = (dictionary, ids)
        return ids

    def ids(self, codes: pa.ChunkedArray) -> np.ndarray:
        """Per row, the id of its code (-1 for a null code)."""
        parts = []
        for chunk in codes.chunks:
            if not pa.types.is_dictionary(chunk.type):
                chunk = pc.dictionary_encode(chunk)
            indices = chunk.indices
            if indices.null_count:
                indices = pc.fill_null(indices, len(chunk.dictionary))
            parts.append(self._dictionary_ids(chunk.dictionary)[indices.to_numpy()])
        return _joined(parts, np.int64)

    def test(self, name: str, ids: np.ndarray) -> np.ndarray:
        """Per id, whether its code passes predicate `name`'s code test."""
        return self._known[name][ids]

    def any_test(self, names: list[str], ids: np.ndarray) -> np.ndarray:
        """Per id, whether its code passes the code test of any of `names`."""
        known = np.zeros(len(self._position) + 1, dtype=bool)
        for name in names:
            known |= self._known[name]
        return known[ids]


def _joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    """The parts end to end, without a copy when there is just one."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _value_columns(preds: list[PlainPredicate]) -> list[str]:
    """The non-code columns the predicates test."""
    wanted = []
    for p in preds:
        if p.value_min is not None or p.value_max is not None:
            wanted.append(VALUE)
        wanted += [c for c, _ in p.other_cols]
    return sorted(set(wanted))


def plain_hits(
    batch: pa.Table,
    codes: CodeTests,
    ids: np.ndarray,
    rows: np.ndarray,
    preds: list[PlainPredicate],
) -> dict[str, np.ndarray]:
    """Per row of `batch` listed in `rows`, whether it matches each of `preds` (numpy bools).

    `ids` are the batch's per-row code ids from `codes`; only the listed rows are tested.
    """
    row_ids = ids[rows]
    hits = {p.name: codes.test(p.name, row_ids) for p in preds}
    columns = _value_columns(preds)
    if not columns:
        return hits
    wanted = [c for c in columns if c in batch.column_names]
    others = pl.from_arrow(batch.select(wanted).take(rows))
    assert isinstance(others, pl.DataFrame)
    rests = {p.name: rest for p in preds if (rest := row_test(p, others.schema)) is not None}
    if rests:
        passed = others.select(rest.alias(name) for name, rest in rests.items())
        for name in rests:
            hits[name] &= passed[name].to_numpy()
    return hits


def _int64_values(column: pa.ChunkedArray) -> np.ndarray:
    """The int64 values of a column as one numpy array (values under nulls are arbitrary)."""
    parts = []
    for chunk in column.chunks:
        chunk = chunk.cast(pa.int64())
        data = chunk.buffers()[1]
        if len(chunk) and data is not None:
            values = np.frombuffer(data, dtype=np.int64, count=chunk.offset + len(chunk))
            parts.append(values[chunk.offset :])
    return _joined(parts, np.int64)


def _timestamps(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(microseconds since the epoch, is-not-null) of a time column."""
    if not pa.types.is_timestamp(column.type):
        raise EhrbenchError(f"the `{TIME}` column has type {column.type}; MEDS needs timestamps.")
    column = column.cast(pa.timestamp("us", tz=column.type.tz), safe=False)
    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    return _int64_values(column), valid


@dataclass(frozen=True)
class CountTable:
    """Per-(subject, time) counts of the timed predicates of the subjects that pass the filter.

    Rows are sorted by (subject, time): every timestamp where some count is non-zero (every
    distinct timestamp when `_ANY_EVENT` is used). `times` are int64 microseconds.
    `subject_ids` are all distinct subjects of the events, before the demographic filter.
    """

    subjects: np.ndarray
    times: np.ndarray
    counts: dict[str, np.ndarray]
    subject_ids: np.ndarray
    subjects_kept: int


@dataclass
class _Partial:
    """Grouped counts of one batch, plus what the demographic filter needs from it."""

    subjects: np.ndarray
    times: np.ndarray
    counts: dict[str, np.ndarray]
    all_subjects: np.ndarray
    static_subjects: dict[str, np.ndarray]


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
    plan: PredicatePlan,
    plain: list[PlainPredicate],
    statics: list[PlainPredicate],
    codes: CodeTests,
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
    rows = _needed_rows(plan, subjects, times, timed, candidates)
    values = plain_hits(batch, codes, ids, rows, plain)
    group_subjects, group_times, counts = _group(subjects[rows], times[rows], values)
    return _Partial(group_subjects, group_times, counts, all_subjects, static_subjects)


def _needed_rows(
    plan: PredicatePlan,
    subjects: np.ndarray,
    times: np.ndarray,
    timed: np.ndarray,
    candidates: np.ndarray,
) -> np.ndarray:
    """The timed rows the counts need: `candidates`, and what the special predicates need.

    `_ANY_EVENT` needs every timestamp; `_RECORD_START` / `_RECORD_END` need each subject's
    first and last timestamp, which lie among its first and last rows of some batch.
    """
    if ANY_EVENT in plan.timed:
        return np.flatnonzero(timed)
    if RECORD_START in plan.timed or RECORD_END in plan.timed:
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


def _check_columns(preds: list[PlainPredicate], names: list[str]) -> None:
    """Every column a predicate tests exists, or an error naming the predicate."""
    for pred in preds:
        wanted = [CODE] + [c for c, _ in pred.other_cols]
        if pred.value_min is not None or pred.value_max is not None:
            wanted.append(VALUE)
        for column in wanted:
            if column not in names:
                raise EhrbenchError(
                    f"predicate `{pred.name}` tests column `{column}`, which the data does not "
                    f"have (columns: {', '.join(names)})."
                )


def count_events(cohort: Cohort, plan: PredicatePlan, source: EventSource) -> CountTable:
    """Apply the demographic filter and count every timed predicate per (subject, time).

    Each batch of rows is reduced to grouped counts; the groups of all batches are then merged
    (a (subject, time) may straddle two batches) and filtered by the demographic criteria.
    """
    plain = [p for n in plan.plain if isinstance(p := cohort.predicates[n], PlainPredicate)]
    statics = [static_predicate(cohort, n) for n in plan.static]
    columns = [SUBJECT, TIME] + ([CODE] if plain or statics else [])
    columns += _value_columns(plain + statics)
    _check_columns(plain + statics, source.names)
    codes = CodeTests(plain + statics)
    parts = [_count_batch(b, plan, plain, statics, codes) for b in source.batches(columns)]
    all_subjects = np.unique(
        np.concatenate([p.all_subjects for p in parts] or [np.zeros(0, np.int64)])
    )
    passers = all_subjects
    for p in statics:
        matched = np.unique(
            np.concatenate(
                [part.static_subjects[p.name] for part in parts] or [np.zeros(0, np.int64)]
            )
        )
        passers = np.intersect1d(passers, matched)
    # Column by column, each batch's copy dropped once joined: the merge holds one extra column.
    subjects = _joined([_take(part, "subjects") for part in parts], np.int64)
    times = _joined([_take(part, "times") for part in parts], np.int64)
    counts = {p.name: _joined([part.counts.pop(p.name) for part in parts], np.int64) for p in plain}
    del parts
    if statics:
        keep = np.isin(subjects, passers)
        subjects, times = subjects[keep], times[keep]
        counts = {name: c[keep] for name, c in counts.items()}
    subjects, times, counts = _group(subjects, times, counts)
    _add_computed_counts(cohort, plan, subjects, counts)
    ordered = {name: counts[name] for name in plan.timed}
    if ANY_EVENT not in plan.timed and ordered:
        nonzero = np.logical_or.reduce([c > 0 for c in ordered.values()])
        subjects, times = subjects[nonzero], times[nonzero]
        ordered = {name: c[nonzero] for name, c in ordered.items()}
    return CountTable(subjects, times, ordered, all_subjects, len(passers))


def _take(part: _Partial, name: str) -> np.ndarray:
    """`part`'s array `name`, which `part` no longer holds."""
    values = getattr(part, name)
    setattr(part, name, values[:0].copy())
    return values


def _is_sorted(subjects: np.ndarray, times: np.ndarray) -> bool:
    same = subjects[1:] == subjects[:-1]
    return bool(np.all((subjects[1:] > subjects[:-1]) | (same & (times[1:] >= times[:-1]))))


def _add_computed_counts(
    cohort: Cohort, plan: PredicatePlan, subjects: np.ndarray, counts: dict[str, np.ndarray]
) -> None:
    """Add derived and special predicates' counts to per-(subject, time) `counts`, in place."""
    first, last = _subject_edges(subjects)
    for name in plan.timed:
        pred = cohort.predicates.get(name)
        if name == ANY_EVENT:
            counts[name] = np.ones(len(subjects), dtype=np.int32)
        elif name == RECORD_START:
            counts[name] = first.astype(np.int32)
        elif name == RECORD_END:
            counts[name] = last.astype(np.int32)
        elif isinstance(pred, DerivedPredicate):
            # A static input has no rows at any timestamp, so it counts 0 there.
            zero = np.zeros(len(subjects), dtype=bool)
            inputs = [counts[n] > 0 if n in counts else zero for n in pred.inputs]
            combine = np.logical_and if pred.op == "and" else np.logical_or
            counts[name] = combine.reduce(inputs).astype(np.int32)
