"""Property test: random cohorts within the grammar, on random small event tables, give the same
labels from the engine as from the plain-Python reference evaluator. Half the cohorts also use
the extensions of spec section 10 (label forms, age, a cohort predicate, trigger_between).
Several random cohorts counted in one read give each the extraction it has alone."""

from __future__ import annotations

import datetime as dt
import math
from unittest import mock

import polars as pl
from cohort_reference import at, frame, reference_labels
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehrbench.cohort import counting
from ehrbench.cohort.extract import extract_events, extract_shard
from ehrbench.cohort.model import (
    ANY_EVENT,
    RECORD_END,
    RECORD_START,
    TRIGGER,
    AgeFilter,
    AnyCode,
    Boundary,
    ClassesLabel,
    Cohort,
    CohortPredicate,
    Constraint,
    CountLabel,
    DerivedPredicate,
    DurationLabel,
    ExactCode,
    PlainPredicate,
    Reference,
    RegexCode,
    TriggerBetween,
    ValueLabel,
    Window,
)
from ehrbench.cohort.one_pass import extract_shard_many
from ehrbench.cohort.planning import plan_predicates
from ehrbench.cohort.reader import EventSource

CODES = ["A", "A//X", "B", "C"]
BIRTH = "MEDS_BIRTH"
HOUR_IN_YEARS = 1 / (365.25 * 24)
VALUES = [None, 1.0, 1.2, 2.0, 3.0]
# Mostly unbounded, so that random predicates match often enough to keep triggers.
BOUNDS = [None, None, None, 1.0, 1.2, 2.0]


@st.composite
def event_rows(draw):
    out = []
    for sid in range(1, draw(st.integers(1, 4)) + 1):
        if draw(st.booleans()):
            sex = draw(st.sampled_from(["GENDER//M", "GENDER//F"]))
            out.append({"subject_id": sid, "time": None, "code": sex, "numeric_value": None})
        for _ in range(draw(st.integers(0, 2))):
            birth = at(draw(st.integers(0, 6)))
            out.append({"subject_id": sid, "time": birth, "code": BIRTH, "numeric_value": None})
        hours = sorted(draw(st.lists(st.integers(0, 12), min_size=2, max_size=12)))
        for h in hours:
            code = draw(st.sampled_from(CODES))
            value = draw(st.sampled_from(VALUES))
            out.append({"subject_id": sid, "time": at(h), "code": code, "numeric_value": value})
    return out


@st.composite
def plain_predicate(draw, name):
    kind = draw(st.sampled_from(["exact", "regex", "any"]))
    if kind == "exact":
        code = ExactCode(draw(st.sampled_from(CODES)))
    elif kind == "regex":
        code = RegexCode(draw(st.sampled_from(["A", "^A$", "X", "B|C"])))
    else:
        code = AnyCode(tuple(draw(st.lists(st.sampled_from(CODES), min_size=1, max_size=2))))
    return PlainPredicate(
        name,
        code,
        value_min=draw(st.sampled_from(BOUNDS)),
        value_max=draw(st.sampled_from([None, None, None, 1.2, 3.0])),
        value_min_inclusive=draw(st.booleans()),
        value_max_inclusive=draw(st.booleans()),
    )


def hours(n: int) -> dt.timedelta:
    return dt.timedelta(hours=n)


@st.composite
def anchored_boundary(draw, refs, timed):
    ref = draw(st.sampled_from(refs))
    kind = draw(st.sampled_from(["offset", "next", "prev"]))
    if kind == "offset":
        return Boundary(ref, "offset", offset=hours(draw(st.integers(-8, 8))))
    return Boundary(ref, kind, predicate=draw(st.sampled_from(timed)))


@st.composite
def own_boundary(draw, name, anchored, timed):
    """The side referring to the window's own anchored side (`+ Δ`/`->` or `- Δ`/`<-`/null)."""
    own = Reference(name, anchored)
    forward = anchored == "start"
    kind = draw(st.sampled_from(["offset", "event", "null"]))
    if kind == "null":
        pred = RECORD_END if forward else RECORD_START
        return Boundary(own, "next" if forward else "prev", predicate=pred, was_null=True)
    if kind == "event":
        return Boundary(own, "next" if forward else "prev", predicate=draw(st.sampled_from(timed)))
    delta = hours(draw(st.integers(0, 10)))
    return Boundary(own, "offset", offset=delta if forward else -delta)


@st.composite
def constraint(draw, timed):
    lo = draw(st.sampled_from([None, 0, 1, 2]))
    hi = draw(st.sampled_from([None, 0, 1, 2, 3]))
    if lo is None and hi is None:
        hi = 0
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    return Constraint(draw(st.sampled_from(timed)), lo, hi)


@st.composite
def label_form(draw, plains, timed):
    """One of the label mappings of spec 10.2 (the value form reads a plain predicate)."""
    kind = draw(st.sampled_from(["count", "duration", "value", "classes"]))
    if kind == "count":
        return CountLabel(draw(st.sampled_from(timed)))
    if kind == "duration":
        return DurationLabel(hours(draw(st.sampled_from([1, 2, 24]))))
    if kind == "value":
        take = draw(st.sampled_from(["first", "last", "min", "max", "mean"]))
        return ValueLabel(draw(st.sampled_from(plains)), take)
    preds = draw(st.lists(st.sampled_from(timed), min_size=2, max_size=3))
    return ClassesLabel(tuple((f"c{i}", p) for i, p in enumerate(preds)), "other")


@st.composite
def extensions(draw):
    """`age` and `trigger_between` (spec 10.3, 10.5), each present or not."""
    found = {}
    if draw(st.booleans()):
        bounds = [None, 0.0, 2 * HOUR_IN_YEARS, 5 * HOUR_IN_YEARS]
        low, high = draw(st.sampled_from(bounds)), draw(st.sampled_from(bounds))
        if low is not None and high is not None and low > high:
            low, high = high, low
        found["age"] = AgeFilter(low, high, BIRTH)
    if draw(st.booleans()):
        start = draw(st.sampled_from([None, at(2), at(4)]))
        end = draw(st.sampled_from([None, at(6), at(10)]))
        found["trigger_between"] = TriggerBetween(start, end)
    return found


@st.composite
def nested_cohort(draw):
    """A small cohort to name through a `{cohort: ...}` predicate: an index_timestamp, and a
    plain boolean label when it is kept by label true/false."""
    inner = draw(cohorts(extended=False))
    if not inner.windows:
        w = Window("w", Boundary(TRIGGER, "offset"), Boundary(Reference("w", "start"), "offset"),
                   True, True)  # fmt: skip
        inner = Cohort(None, inner.predicates, inner.demographics, inner.trigger, (w,))
    windows = list(inner.windows)
    if inner.index_window is None:
        windows[0] = _replace(windows[0], index_timestamp="end")
    label = "any" if inner.label_window is None else draw(st.sampled_from(["any", "true", "false"]))
    inner = Cohort(None, inner.predicates, inner.demographics, inner.trigger, tuple(windows))
    return CohortPredicate("nested", inner, label)


@st.composite
def cohorts(draw, extended=True):
    plains = {f"p{i}": draw(plain_predicate(f"p{i}")) for i in range(3)}
    derived = DerivedPredicate(
        "d0", draw(st.sampled_from(["and", "or"])), tuple(draw(st.permutations(list(plains)))[:2])
    )
    # A derived predicate may name another derived one.
    nested = DerivedPredicate(
        "d1", draw(st.sampled_from(["and", "or"])), ("d0", draw(st.sampled_from(list(plains))))
    )
    predicates = {**plains, "d0": derived, "d1": nested}
    extend = extended and draw(st.booleans())
    if extend and draw(st.booleans()):
        predicates["nested"] = draw(nested_cohort())
    timed = [*predicates, ANY_EVENT, RECORD_START, RECORD_END]
    demographics = {}
    if draw(st.integers(0, 3)) == 0:
        sex = draw(st.sampled_from(["GENDER//M", "GENDER//F"]))
        demographics["sex"] = PlainPredicate("sex", ExactCode(sex), static=True)
    windows: list[Window] = []
    refs = [TRIGGER]
    for i in range(draw(st.integers(0, 3))):
        name = f"w{i}"
        anchored = draw(st.sampled_from(["start", "end"]))
        outer = draw(anchored_boundary(refs, timed))
        inner = draw(own_boundary(name, anchored, timed))
        start, end = (outer, inner) if anchored == "start" else (inner, outer)
        windows.append(
            Window(
                name,
                start,
                end,
                draw(st.booleans()),
                draw(st.booleans()),
                has=tuple(draw(st.lists(constraint(timed), max_size=1))),
            )
        )
        refs += [Reference(name, "start"), Reference(name, "end")]
    if windows:
        i = draw(st.integers(0, len(windows) - 1))
        if extend and draw(st.booleans()):
            windows[i] = _replace(windows[i], label_form=draw(label_form(list(plains), timed)))
        else:
            windows[i] = _replace(
                windows[i], label=draw(st.sampled_from(timed)), label_negated=draw(st.booleans())
            )
        j = draw(st.integers(0, len(windows) - 1))
        windows[j] = _replace(windows[j], index_timestamp=draw(st.sampled_from(["start", "end"])))
    trigger = draw(st.sampled_from([*predicates, ANY_EVENT, RECORD_START, RECORD_END]))
    found = draw(extensions()) if extend else {}
    return Cohort(None, predicates, demographics, trigger, tuple(windows), **found)


def _replace(window: Window, **changes) -> Window:
    from dataclasses import replace

    return replace(window, **changes)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cohort=cohorts(),
    data=event_rows(),
    shuffle=st.one_of(st.none(), st.randoms()),
    chunk_rows=st.sampled_from([3, 1 << 20]),
)
def test_engine_matches_reference_evaluator(cohort, data, shuffle, chunk_rows):
    # Rows in any order, or in a MEDS shard's order (subject, then time, static rows first:
    # the engine sums such rows without sorting them), streamed in tiny chunks or in one:
    # groups straddling chunks must merge.
    if shuffle is None:
        data.sort(key=lambda r: (r["subject_id"], r["time"] is not None, r["time"] or at(0)))
    else:
        shuffle.shuffle(data)
    with pl.Config(streaming_chunk_size=chunk_rows):
        result = extract_events(cohort, frame(data))
    columns = ["subject_id", "prediction_time", cohort.label_column]
    got = [tuple(r) for r in result.labels.select(columns).iter_rows()]
    assert got == reference_labels(cohort, data)
    assert result.attrition.final_triggers == len(got)


@st.composite
def cohorts_with_input_window(draw):
    """A drawn cohort with, first, an `input` window from the record's start (`start: null`) to
    the trigger plus -2 to 8 h: usually a side left unsearched (`unread_record_bounds`)."""
    cohort = draw(cohorts())
    start = Boundary(Reference("input", "end"), "prev", predicate=RECORD_START, was_null=True)
    end = Boundary(TRIGGER, "offset", offset=hours(draw(st.integers(-2, 8))))
    indexed = any(w.index_timestamp for w in cohort.windows)
    index = None if indexed else draw(st.sampled_from([None, "end"]))
    window = Window("input", start, end, draw(st.booleans()), True, index_timestamp=index)
    return _replace(cohort, windows=(window, *cohort.windows))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cohort=cohorts_with_input_window(), data=event_rows())
def test_unsearched_record_bounds_change_nothing(cohort, data):
    # An audit plans every window's times (`every_window_time`): a side left unsearched
    # otherwise must give the reference evaluator's labels, and the audit's labels and
    # attrition step by step.
    events = frame(data)
    lean, full = extract_events(cohort, events), extract_events(cohort, events, audit=True)
    columns = ["subject_id", "prediction_time", cohort.label_column]
    assert [tuple(r) for r in lean.labels.select(columns).iter_rows()] == reference_labels(
        cohort, data
    )
    assert lean.labels.equals(full.labels)
    assert lean.attrition.render() == full.attrition.render()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=st.lists(cohorts(), min_size=2, max_size=3), data=event_rows())
def test_cohorts_counted_together_give_each_its_own_extraction(drawn, data):
    # The cohorts name p0, p1, ... alike, usually with other definitions: each then counts
    # only some of the shared columns, and takes its table from the rows where its own counts
    # are non-zero, or (the tables here are small) from the whole shared table; both ways.
    source = EventSource(frame(data))
    plans = {f"c{i}": (cohort, plan_predicates(cohort)) for i, cohort in enumerate(drawn)}
    alone = {name: extract_shard(*plans[name], source, False)[1] for name in plans}
    for share in (counting.WHOLE_TABLE_SHARE, math.inf):
        with mock.patch.object(counting, "WHOLE_TABLE_SHARE", share):
            _, together = extract_shard_many(plans, source)
        for name, piece in alone.items():
            assert together[name].labels.equals(piece.labels)
            assert together[name].attrition == piece.attrition
