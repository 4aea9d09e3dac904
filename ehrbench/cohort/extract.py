"""The extraction engine: a cohort config and MEDS events in, one label row per kept trigger out.

Design. ACES aggregates every window over every row; only the trigger anchors need answers.
Per shard, `counting.count_events` reduces the events to per-(subject, time) counts of the
referenced predicates (polars' streaming engine keeps the rows whose code some predicate
accepts, in file order, and numpy sums them per timestamp), kept only where some count is
non-zero, sorted by (subject, time).
The counts become cumulative sums, and every window edge of every trigger is then a vectorised
search inside the trigger's subject block of that table (`Timeline`):

- a window's count of a predicate is the difference of its cumulative sum at the two edges,
  the search side choosing whether a row exactly at the edge is inside;
- `REF -> PRED` / `REF <- PRED` is a `np.searchsorted` in the sorted rows where PRED is non-zero,
  accepted only if the row found belongs to the same subject.

Semantics are the spec's (`../shared/spec/cohort-language.md`, sections 2 to 6, section 9
where ACES 0.7.3 is not copied, and the extensions of section 10: `trigger_filters` for the
calendar and age, `label_values` for the label forms, `cohort_predicate_rows` for cohorts named
as predicates).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ehrbench.cohort.artifact import Extraction
from ehrbench.cohort.attrition import Attrition, AttritionStep
from ehrbench.cohort.blocks import position
from ehrbench.cohort.config import PREDICATE_KEYS
from ehrbench.cohort.counting import (
    CountTable,
    Rows,
    count_events,
    running_sums,
    subject_edges,
    sum_per_timestamp,
)
from ehrbench.cohort.label_values import label_columns, label_values
from ehrbench.cohort.model import (
    CODE,
    SUBJECT,
    TIME,
    VALUE,
    Boundary,
    Cohort,
    Constraint,
    ValueLabel,
    Window,
    label_predicates,
)
from ehrbench.cohort.planning import PredicatePlan, plan_predicates
from ehrbench.cohort.reader import EventSource
from ehrbench.cohort.shared_counts import SharedReading, TableMaker
from ehrbench.cohort.trigger_filters import age_holds, age_step, ages_at, between_step, in_calendar
from ehrbench.errors import EhrbenchError, did_you_mean
from ehrbench.logs import progress
from ehrbench.meds import LABEL_SCHEMA, MedsDataset, empty_labels
from ehrbench.scheduler import Call, current_executor

Side = tuple[str, str]  # (window name, "start" | "end")
# Per query (trigger), the first and past-the-last count-table rows of its subject (a block),
# or of the rows inside a window (a span).
Block = tuple[np.ndarray, np.ndarray]
Span = tuple[np.ndarray, np.ndarray]


@dataclass
class Evaluation:
    """Every trigger of one event table with its windows placed and counted.

    Triggers are in count-table order (sorted by subject, then time). Times are int64
    microseconds since the epoch. `placed[w]` says whether window `w` (and
    everything it hangs on) could be placed; `failed_step[i]` is the index in `steps` of the
    first step trigger `i` failed (-1: kept). `found[(w, side)]` says whether that boundary's
    own event search succeeded. Times and counts are only meaningful where placed, and the time
    of a side the plan leaves unsearched (`PredicatePlan.unsearched`, always found) not at all:
    it holds its reference's time.
    """

    steps: list[str]
    subject_ids: np.ndarray
    subjects_demographic: int
    trigger_subjects: np.ndarray
    trigger_times: np.ndarray
    times: dict[Side, np.ndarray] = field(default_factory=dict)
    found: dict[Side, np.ndarray] = field(default_factory=dict)
    placed: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    failed_step: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    # Per trigger: age in years at the trigger (NaN without a birth row), when `age` is set;
    # the label's value (see `label_values`), when a window has a label.
    ages: np.ndarray | None = None
    label_values: np.ndarray | None = None

    @property
    def kept(self) -> np.ndarray:
        return self.failed_step < 0


class Timeline:
    """A shard's count table, answering window queries for many anchors at once by search.

    Rows are the count table's (subject, time) rows. A query time is located within its
    subject's block of rows by a vectorised bisection (`position`); counts are differences of
    cumulative sums at two positions; event searches look up the sorted row positions where a
    predicate is non-zero.
    """

    def __init__(self, table: CountTable):
        self.times = table.times
        self._counts = table.counts
        self._starts = np.flatnonzero(subject_edges(table.subjects)[0])
        self._cumulative: dict[str, np.ndarray] = {}
        self._events: dict[str, np.ndarray] = {}

    def blocks(self, rows: np.ndarray) -> Block:
        """For count-table `rows`, the first and past-the-last row of each one's subject."""
        block = np.searchsorted(self._starts, rows, side="right") - 1
        ends = np.append(self._starts[1:], len(self.times))
        return self._starts[block], ends[block]

    def position(self, lo: np.ndarray, hi: np.ndarray, t: np.ndarray, after: bool) -> np.ndarray:
        """Per query, the first row in [lo, hi) whose time is > t (`after`) or >= t, else hi."""
        return position(self.times, lo, hi, t, after)

    def span(
        self,
        block: Block,
        times: tuple[np.ndarray, np.ndarray],
        inclusive: tuple[bool, bool],
    ) -> Span:
        """The first and past-the-last rows between times[0] and times[1], with the given
        edges, in each query's block: what `count` sums over (one search for all names)."""
        first = self.position(*block, times[0], after=not inclusive[0])
        past = self.position(*block, times[1], after=inclusive[1])
        return first, past

    def count(self, name: str, span: Span) -> np.ndarray:
        """Per query, `name`'s count over the rows of its `span` (a difference of running sums
        at the span's two ends, never below 0: an empty span may end before it starts)."""
        if name not in self._cumulative:
            self._cumulative[name] = running_sums(self._counts[name])
        cumulative = self._cumulative[name]
        first, past = span
        return np.maximum(cumulative[past].astype(np.int64) - cumulative[first], 0)

    def _event_rows(self, name: str) -> np.ndarray:
        if name not in self._events:
            self._events[name] = np.flatnonzero(self._counts[name] > 0)
        return self._events[name]

    def next_event(
        self, name: str, block: Block, ref: np.ndarray, inclusive: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """First time at/after (`inclusive`) or after `ref` where `name` > 0; (times, found)."""
        rows = self._event_rows(name)
        if len(rows) == 0:
            return ref.copy(), np.zeros(len(ref), dtype=bool)
        start = self.position(*block, ref, after=not inclusive)
        pos = np.searchsorted(rows, start, side="left")
        clipped = np.minimum(pos, len(rows) - 1)
        found = (pos < len(rows)) & (rows[clipped] < block[1])
        return self.times[rows[clipped]], found

    def prev_event(
        self, name: str, block: Block, ref: np.ndarray, inclusive: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Last time at/before (`inclusive`) or before `ref` where `name` > 0; (times, found)."""
        rows = self._event_rows(name)
        if len(rows) == 0:
            return ref.copy(), np.zeros(len(ref), dtype=bool)
        past = self.position(*block, ref, after=inclusive)
        pos = np.searchsorted(rows, past, side="left") - 1
        clipped = np.maximum(pos, 0)
        found = (pos >= 0) & (rows[clipped] >= block[0])
        return self.times[rows[clipped]], found


def step_names(cohort: Cohort, plan: PredicatePlan) -> list[str]:
    """The attrition steps of `cohort`, in the order extraction applies them."""
    demo = ", ".join(plan.static) if plan.static else "none"
    steps = [f"demographics ({demo})", f"trigger {cohort.trigger}"]
    if cohort.trigger_between is not None:
        steps.append(between_step(cohort.trigger_between))
    if cohort.age is not None:
        steps.append(age_step(cohort.age))
    for window in cohort.windows:
        steps.append(f"window {window.name}: placed")
        steps.extend(f"window {window.name}: has {_constraint_text(c)}" for c in window.has)
    if isinstance(cohort.label_form, ValueLabel):
        steps.append(NO_VALUE_STEP)
    return steps


# The attrition step of a `{value: ...}` label (spec 10.2): triggers with no usable row leave.
NO_VALUE_STEP = "label has no value"


def _constraint_text(c: Constraint) -> str:
    return f"{c.predicate} in ({c.min_count}, {c.max_count})"


def check_columns(cohort: Cohort, source: EventSource) -> None:
    """The one check of an event table against `cohort`: every column the engine reads exists.

    Raises `EhrbenchError` naming the column, the predicate that tests it (where it is written)
    and the event table. The cohorts named by `{cohort: ...}` predicates are checked too.
    """
    for nested in cohort.nested_cohorts().values():
        check_columns(nested.cohort, source)
    for column in (SUBJECT, TIME):
        if column not in source.names:
            raise EhrbenchError(
                f"the event data ({source.where}) has no `{column}` column "
                f"(columns: {', '.join(source.names)})."
            )
    for column, preds in cohort.required_columns().items():
        if column in source.names:
            continue
        pred = preds[0]
        message = (
            f"{pred.origin_of(column)}predicate `{pred.name}` tests column `{column}`, which the "
            f"event data ({source.where}) does not have (columns: {', '.join(source.names)})"
        )
        hint = ""
        if column not in (CODE, VALUE):
            message += f" (and not a predicate key: {', '.join(PREDICATE_KEYS)})"
            hint = did_you_mean(column, (*PREDICATE_KEYS, *source.names))
        raise EhrbenchError(f"{message}; {hint}" if hint else f"{message}.")


def evaluate(
    cohort: Cohort, plan: PredicatePlan, source: EventSource, *, count_all: bool = False
) -> Evaluation:
    """Find and test every trigger in `source`, whose columns `check_columns` has checked.

    `count_all` counts every timed predicate in every window (for audit and explain); otherwise
    only what `has` and `label` need. It needs a plan of every window time (`plan_predicates`'s
    `every_window_time`): audits and explain show them.
    """
    if count_all and plan.unsearched:
        raise ValueError("count_all needs a plan with every window time (every_window_time=True)")
    if not cohort.nested_cohorts():
        return evaluate_table(cohort, plan, count_events(cohort, plan, source), count_all=count_all)
    # The cohorts its `{cohort: ...}` predicates name are counted in the same read.
    reading = SharedReading.of({"": (cohort, plan)})
    table = reading.tables(reading.count(source))
    rows = cohort_predicate_rows(cohort, table)
    return evaluate_table(cohort, plan, table(cohort, plan, rows), count_all=count_all)


def cohort_predicate_rows(cohort: Cohort, table: TableMaker) -> dict[str, Rows]:
    """Per `{cohort: ...}` predicate of `cohort`, the (subject, time) rows where it counts 1:
    the named cohort's label rows on the same events (spec 10.4), evaluated through `table`."""
    rows = {}
    for name, predicate in cohort.nested_cohorts().items():
        inner = predicate.cohort
        plan = plan_predicates(inner)
        ev = evaluate_table(inner, plan, table(inner, plan, cohort_predicate_rows(inner, table)))
        kept = ev.kept
        if predicate.label != "any":
            assert ev.label_values is not None
            kept &= ev.label_values == (predicate.label == "true")
        times = _prediction_times(inner, ev)
        assert times is not None
        subjects, times, _ = sum_per_timestamp((ev.trigger_subjects[kept], times[kept], {}))
        rows[name] = (subjects, times)
    return rows


def evaluate_table(
    cohort: Cohort, plan: PredicatePlan, table: CountTable, *, count_all: bool = False
) -> Evaluation:
    """`evaluate` on a count table already made (`counting.cohort_table`)."""
    rows = np.flatnonzero(table.counts[cohort.trigger] > 0)
    timeline = Timeline(table)
    ev = Evaluation(
        steps=step_names(cohort, plan),
        subject_ids=table.subject_ids,
        subjects_demographic=table.subjects_kept,
        trigger_subjects=table.subjects[rows],
        trigger_times=table.times[rows],
        failed_step=np.full(len(rows), -1, dtype=np.int64),
    )
    step = 2
    if cohort.trigger_between is not None:
        _drop(ev, in_calendar(cohort.trigger_between, ev.trigger_times), step)
        step += 1
    if cohort.age is not None:
        assert table.births is not None
        ev.ages = ages_at(table.births, ev.trigger_subjects, ev.trigger_times)
        _drop(ev, age_holds(cohort.age, ev.ages), step)
        step += 1
    step = _place_windows(cohort, plan, timeline, timeline.blocks(rows), ev, count_all, step)
    window = cohort.label_window
    if window is not None:
        edges = (ev.times[(window.name, "start")], ev.times[(window.name, "end")])
        counts = {name: count for (w, name), count in ev.counts.items() if w == window.name}
        ev.label_values = label_values(window, edges, counts, ev.trigger_subjects, table.values)
        if isinstance(window.label_form, ValueLabel):
            _drop(ev, ~np.isnan(ev.label_values), step)
    return ev


def _drop(ev: Evaluation, holds: np.ndarray, step: int) -> None:
    """Triggers still kept where `holds` is false leave at `step`."""
    ev.failed_step[(ev.failed_step < 0) & ~holds] = step


def _place_windows(
    cohort: Cohort,
    plan: PredicatePlan,
    timeline: Timeline,
    block: Block,
    ev: Evaluation,
    count_all: bool,
    step: int,
) -> int:
    """Place every window for every trigger, count, and record the first failing step.

    `block` holds, per trigger, the first and past-the-last count-table rows of its subject;
    `step` is the index of the first window's step. Returns the index of the step after them.
    """
    valid = ev.kept
    for window in cohort.windows:
        anchored = window.anchored_side
        other = "start" if anchored == "end" else "end"
        placed = np.ones(len(valid), dtype=bool)
        for side in (anchored, other):
            boundary: Boundary = getattr(window, side)
            ref = boundary.reference
            if ref.is_trigger:
                ref_times = ev.trigger_times
            else:
                ref_times = ev.times[(ref.window, ref.side)]
                if ref.window != window.name:
                    placed &= ev.placed[ref.window]
            if (window.name, side) in plan.unsearched:
                # Always placed, and its time is never read (`unread_record_bounds`): the
                # reference's times stand in for it.
                times, found = ref_times, np.ones(len(ref_times), dtype=bool)
            else:
                times, found = _resolve(boundary, window, ref_times, block, timeline)
            ev.times[(window.name, side)] = times
            ev.found[(window.name, side)] = found
            placed &= found
        ev.placed[window.name] = placed
        ev.failed_step[valid & ~placed] = step
        valid &= placed
        step += 1
        names = plan.timed if count_all else _counted_names(window)
        span = _window_span(window, ev, block, timeline) if names else None
        for name in names:
            ev.counts[(window.name, name)] = timeline.count(name, span)
        for constraint in window.has:
            count = ev.counts[(window.name, constraint.predicate)]
            holds = np.ones(len(valid), dtype=bool)
            if constraint.min_count is not None:
                holds &= count >= constraint.min_count
            if constraint.max_count is not None:
                holds &= count <= constraint.max_count
            ev.failed_step[valid & ~holds] = step
            valid &= holds
            step += 1
    return step


def _counted_names(window: Window) -> list[str]:
    names = [c.predicate for c in window.has]
    label = [window.label] if window.label else []
    if window.label_form is not None and not isinstance(window.label_form, ValueLabel):
        label = list(label_predicates(window.label_form))
    names += [name for name in label if name not in names]
    return names


def _resolve(
    boundary: Boundary, window: Window, ref: np.ndarray, block: Block, timeline: Timeline
) -> tuple[np.ndarray, np.ndarray]:
    """A boundary's times from its reference's times, and whether each could be placed."""
    if boundary.kind == "offset":
        offset = boundary.offset // dt.timedelta(microseconds=1)
        return ref + offset, np.ones(len(ref), dtype=bool)
    # Whether REF's own timestamp can be the event: end_inclusive for `->`, start_inclusive
    # for `<-` (spec section 5, following ACES's code rather than its docs). On the side that
    # refers outside the window (`start: trigger -> X`), ACES 0.7.3 never takes REF's own
    # timestamp, whatever the flags (observed with aces-cli on every flag combination).
    own_side = boundary.reference.window == window.name
    if boundary.kind == "next":
        inclusive = own_side and window.end_inclusive
        return timeline.next_event(boundary.predicate, block, ref, inclusive)
    inclusive = own_side and window.start_inclusive
    return timeline.prev_event(boundary.predicate, block, ref, inclusive)


def _window_span(window: Window, ev: Evaluation, block: Block, timeline: Timeline) -> Span:
    """The rows in `window` for every trigger: earlier edge start_inclusive, later end."""
    start = ev.times[(window.name, "start")]
    end = ev.times[(window.name, "end")]
    edges = (np.minimum(start, end), np.maximum(start, end))
    inclusive = (window.start_inclusive, window.end_inclusive)
    return timeline.span(block, edges, inclusive)


def _distinct_subjects(subjects: np.ndarray) -> int:
    """How many subjects a subject-sorted array holds (no hashing)."""
    return int(np.count_nonzero(subject_edges(subjects)[0]))


def shard_attrition(ev: Evaluation) -> Attrition:
    """Attrition of one evaluation: a trigger leaves at its first failed step."""
    failed = ev.failed_step
    rows = [
        AttritionStep(ev.steps[0], len(ev.subject_ids), ev.subjects_demographic, None, None),
        AttritionStep(
            ev.steps[1],
            ev.subjects_demographic,
            _distinct_subjects(ev.trigger_subjects),
            None,
            len(failed),
        ),
    ]
    for index, name in enumerate(ev.steps[2:], start=2):
        before = rows[-1]
        survives = (failed < 0) | (failed > index)
        rows.append(
            AttritionStep(
                name,
                before.subjects_kept,
                _distinct_subjects(ev.trigger_subjects[survives]),
                before.triggers_kept,
                int(survives.sum()),
            )
        )
    return Attrition(tuple(rows))


def _prediction_times(cohort: Cohort, ev: Evaluation) -> np.ndarray | None:
    window = cohort.index_window
    if window is None:
        return None
    return ev.times[(window.name, window.index_timestamp)]


def shard_labels(cohort: Cohort, ev: Evaluation) -> pl.DataFrame:
    """The label rows of one evaluation's kept triggers, in trigger order."""
    kept = ev.kept
    times = _prediction_times(cohort, ev)
    values = None if ev.label_values is None else ev.label_values[kept]
    return pl.DataFrame(
        {
            "subject_id": ev.trigger_subjects[kept],
            "prediction_time": None if times is None else times[kept],
        },
        schema={k: LABEL_SCHEMA[k] for k in ("subject_id", "prediction_time")},
    ).with_columns(label_columns(cohort, values))


def shard_audit(cohort: Cohort, plan: PredicatePlan, ev: Evaluation) -> pl.DataFrame:
    """Per kept trigger: the trigger time, each window's start/end and every predicate's count."""
    kept = ev.kept
    us = pl.Datetime("us")
    columns: dict[str, pl.Series] = {
        "subject_id": pl.Series("subject_id", ev.trigger_subjects[kept], dtype=pl.Int64),
        "trigger": pl.Series("trigger", ev.trigger_times[kept]).cast(us),
    }
    times = _prediction_times(cohort, ev)
    if times is not None:
        columns["prediction_time"] = pl.Series("prediction_time", times[kept]).cast(us)
    if ev.ages is not None:
        columns["age"] = pl.Series("age", ev.ages[kept], dtype=pl.Float64)
    for window in cohort.windows:
        for side in ("start", "end"):
            name = f"{window.name}.{side}"
            columns[name] = pl.Series(name, ev.times[(window.name, side)][kept]).cast(us)
        for pred in plan.timed:
            name = f"{window.name}.{pred}"
            columns[name] = pl.Series(name, ev.counts[(window.name, pred)][kept], dtype=pl.Int64)
    return pl.DataFrame(list(columns.values()))


def _finish(
    cohort: Cohort, labels: pl.DataFrame, attrition: Attrition, audit: pl.DataFrame | None
) -> Extraction:
    """Sort the rows and collect the warnings the spec asks for (returned, never emitted)."""
    messages = []
    demographics = attrition.steps[0]
    if demographics.subjects_in and not demographics.subjects_kept:
        messages.append(
            f"the demographic filter ({demographics.step}) keeps no subject: every entry must "
            "match a null-time row of the same subject, so exclusive entries give an empty cohort."
        )
    if labels.is_empty():
        messages.append("the cohort is empty: no trigger passed every step (see the attrition).")
    if cohort.index_window is None:
        messages.append(
            "no window sets `index_timestamp`, so every prediction_time is null (as in ACES; "
            "MEDS tools reject such a label file); add `index_timestamp: start` or `end` to the "
            "window whose boundary is the prediction time."
        )
    label_window = cohort.label_window
    column = cohort.label_column
    if label_window is not None and labels.height and labels[column].n_unique() == 1:
        what = (
            f"predicate `{label_window.label}`" if label_window.label else f"its label ({column})"
        )
        messages.append(
            f"every label is {labels[column][0]} ({labels.height} rows): check the label "
            f"window `{label_window.name}` and {what}."
        )
    # One stable permutation for labels and audit: ties of prediction_time keep trigger order.
    order = (
        labels.with_row_index("row")
        .sort("subject_id", "prediction_time", maintain_order=True)["row"]
        .to_numpy()
    )
    labels = labels[order]
    if audit is not None:
        audit = audit[order]
    return Extraction(
        labels=labels,
        attrition=attrition,
        audit=audit,
        warnings=tuple(messages),
        prediction_times=cohort.index_window is not None,
    )


def extract_events(
    cohort: Cohort, events: pl.DataFrame | pl.LazyFrame, *, audit: bool = False
) -> Extraction:
    """Extract `cohort` from one in-memory (or lazy) MEDS event table.

    >>> from datetime import datetime
    >>> from ehrbench.cohort.model import ExactCode, PlainPredicate
    >>> admission = PlainPredicate("admission", ExactCode("ADMIT"))
    >>> cohort = Cohort(source=None, predicates={"admission": admission}, demographics={},
    ...                 trigger="admission")
    >>> events = pl.DataFrame({"subject_id": [1, 1, 2], "code": ["ADMIT", "LAB", "LAB"],
    ...                        "time": [datetime(2020, 1, 1)] * 3})
    >>> result = extract_events(cohort, events)
    >>> result.labels["subject_id"].to_list(), result.attrition.final_triggers
    ([1], 1)
    >>> result.warnings[0]  # doctest: +ELLIPSIS
    'no window sets `index_timestamp`, so every prediction_time is null ...'
    """
    plan = plan_predicates(cohort, every_window_time=audit)
    source = EventSource(events)
    check_columns(cohort, source)
    _, piece = extract_shard(cohort, plan, source, audit)
    return _finish(cohort, piece.labels, piece.attrition, piece.audit)


def check_disjoint(seen: np.ndarray, subjects: np.ndarray, shard: Path) -> np.ndarray:
    """Raise if a subject of `shard` was in an earlier shard; return the sorted union of subjects.

    Both arrays hold sorted distinct subjects, so in one sort of the two together a subject in
    both is a pair of equal neighbours.

    >>> check_disjoint(np.array([1, 5]), np.array([2, 3]), Path("1.parquet")).tolist()
    [1, 2, 3, 5]
    """
    both = np.sort(np.concatenate([seen, subjects]), kind="stable")
    repeated = both[1:][both[1:] == both[:-1]]
    if len(repeated):
        raise EhrbenchError(
            f"subject {repeated[0]} of {shard} also appears in an earlier shard "
            f"({len(repeated)} such subject(s)); MEDS keeps all rows of a subject in one shard, "
            "and windows cannot span shards."
        )
    return both


@dataclass
class ShardPiece:
    """One shard's part of a cohort's extraction: its label rows, attrition and audit rows."""

    labels: pl.DataFrame
    attrition: Attrition
    audit: pl.DataFrame | None = None

    @classmethod
    def of(cls, cohort: Cohort, plan: PredicatePlan, ev: Evaluation, *, audit: bool) -> ShardPiece:
        """The piece of one shard's evaluation (the audit only when asked)."""
        return cls(
            shard_labels(cohort, ev),
            shard_attrition(ev),
            shard_audit(cohort, plan, ev) if audit else None,
        )


def extract_shard(
    cohort: Cohort, plan: PredicatePlan, source: EventSource, audit: bool
) -> tuple[np.ndarray, ShardPiece]:
    """One shard's subjects and piece of `cohort`'s extraction, its columns checked already (a
    task: `extract`)."""
    ev = evaluate(cohort, plan, source, count_all=audit)
    return ev.subject_ids, ShardPiece.of(cohort, plan, ev, audit=audit)


class ShardResults:
    """One cohort's per-shard pieces, merged in shard order once every shard is in (with an
    audit when the pieces carry one: they do when it was asked)."""

    def __init__(self, cohort: Cohort, plan: PredicatePlan):
        self.cohort, self.plan = cohort, plan
        self._pieces: list[ShardPiece] = []

    def add(self, piece: ShardPiece) -> None:
        """Keep the next shard's piece."""
        self._pieces.append(piece)

    def extraction(self) -> Extraction:
        """The extraction of every shard added, rows sorted, warnings collected."""
        pieces = self._pieces
        audits = [p.audit for p in pieces if p.audit is not None]
        return _finish(
            self.cohort,
            pl.concat([p.labels for p in pieces]) if pieces else empty_labels(),
            Attrition.combine([p.attrition for p in pieces], step_names(self.cohort, self.plan)),
            pl.concat(audits) if audits else None,
        )


def extract(cohort: Cohort, dataset: MedsDataset, *, audit: bool = False) -> Extraction:
    """Extract `cohort` from a MEDS dataset, shard by shard (memory bounded by one shard), each
    shard a task of the current executor (`ehrbench.scheduler`), merged in shard order.

    Every shard's columns are checked before any is read. A subject's events must all lie in
    one shard (as MEDS requires); this is checked.
    """
    plan = plan_predicates(cohort, every_window_time=audit)
    sources = [EventSource(shard) for shard in dataset.shards]
    for source in sources:
        check_columns(cohort, source)
    results = ShardResults(cohort, plan)
    seen = np.zeros(0, dtype=np.int64)
    calls = (
        Call(extract_shard, (cohort, plan, source, audit), shard)
        for shard, source in zip(dataset.shards, sources, strict=True)
    )
    pieces = zip(dataset.shards, current_executor().ordered_values(calls), strict=True)
    for shard, (subjects, piece) in progress(
        pieces, total=len(dataset.shards), desc="extracting", unit="shard"
    ):
        seen = check_disjoint(seen, subjects, shard)
        results.add(piece)
    return results.extraction()
