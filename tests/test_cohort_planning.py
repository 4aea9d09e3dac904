"""Which window sides bounded by the record's start or end go unsearched (`unread_record_bounds`),
and that such a cohort then counts neither `_RECORD_START` nor `_RECORD_END`."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from ehrbench.cohort.extract import evaluate, extract_events
from ehrbench.cohort.model import (
    RECORD_END,
    RECORD_START,
    TRIGGER,
    Boundary,
    Cohort,
    CohortPredicate,
    Constraint,
    DerivedPredicate,
    DurationLabel,
    ExactCode,
    PlainPredicate,
    Reference,
    Window,
)
from ehrbench.cohort.planning import plan_predicates, unread_record_bounds
from ehrbench.cohort.reader import EventSource

HOUR = dt.timedelta(hours=1)
PREDICATES = {
    "adm": PlainPredicate("adm", ExactCode("ADM")),
    "lab": PlainPredicate("lab", ExactCode("LAB")),
}


def _null_start(name: str, end_offset: dt.timedelta, *, inclusive=True, **roles) -> Window:
    start = Boundary(Reference(name, "end"), "prev", predicate=RECORD_START, was_null=True)
    end = Boundary(TRIGGER, "offset", offset=end_offset)
    return Window(name, start, end, inclusive, True, **roles)


def _null_end(name: str, start_offset: dt.timedelta, *, inclusive=True, **roles) -> Window:
    start = Boundary(TRIGGER, "offset", offset=start_offset)
    end = Boundary(Reference(name, "start"), "next", predicate=RECORD_END, was_null=True)
    return Window(name, start, end, True, inclusive, **roles)


def _cohort(*windows: Window, trigger: str = "adm", predicates=None) -> Cohort:
    predicates = PREDICATES if predicates is None else predicates
    return Cohort(
        source=None, predicates=predicates, demographics={}, trigger=trigger, windows=windows
    )


@pytest.mark.parametrize(
    ("window", "unsearched"),
    [
        (_null_start("w", 24 * HOUR, index_timestamp="end"), True),
        (_null_start("w", 0 * HOUR), True),  # the trigger itself is a timestamp at or before
        (_null_start("w", 0 * HOUR, inclusive=False), False),  # ... but not strictly before
        (_null_start("w", HOUR, inclusive=False), True),
        (_null_start("w", -HOUR), False),  # the record may start after trigger - 1 h
        (_null_start("w", HOUR, index_timestamp="start"), False),  # its time is the index
        (_null_start("w", HOUR, has=(Constraint("lab", 1, None),)), False),  # it counts
        (_null_start("w", HOUR, label="lab"), False),
        (_null_end("w", -HOUR), True),
        (_null_end("w", 0 * HOUR), True),
        (_null_end("w", 0 * HOUR, inclusive=False), False),
        (_null_end("w", HOUR), False),
    ],
)
def test_which_record_bounds_need_no_search(window, unsearched):
    side = "start" if window.start.predicate == RECORD_START else "end"
    cohort = _cohort(window)
    assert unread_record_bounds(cohort) == ({("w", side)} if unsearched else set())
    plan = plan_predicates(cohort)
    record = RECORD_START if side == "start" else RECORD_END
    assert (record in plan.timed) is not unsearched
    assert record in plan_predicates(cohort, every_window_time=True).timed


def test_a_side_another_window_is_measured_from_is_searched():
    input_window = _null_start("input", HOUR)
    after = Window(
        "after",
        Boundary(Reference("input", "start"), "offset"),
        Boundary(Reference("after", "start"), "offset", offset=HOUR),
        True,
        True,
        label="lab",
    )
    assert unread_record_bounds(_cohort(input_window, after)) == set()
    assert unread_record_bounds(_cohort(input_window)) == {("input", "start")}


def test_an_event_bound_other_side_is_searched():
    end = Boundary(TRIGGER, "next", predicate="lab")
    start = Boundary(Reference("w", "end"), "prev", predicate=RECORD_START, was_null=True)
    assert unread_record_bounds(_cohort(Window("w", start, end, True, True))) == set()


def test_a_window_measured_from_another_window_is_searched():
    # `start: null` to `a.end`: a.end is trigger - 10 h + 0, before the trigger, so the record
    # may start after it.
    a = Window(
        "a",
        Boundary(TRIGGER, "offset", offset=-10 * HOUR),
        Boundary(Reference("a", "start"), "offset"),
        True,
        True,
    )
    start = Boundary(Reference("b", "end"), "prev", predicate=RECORD_START, was_null=True)
    b = Window("b", start, Boundary(Reference("a", "end"), "offset"), True, True)
    assert unread_record_bounds(_cohort(a, b)) == set()


def test_a_window_with_any_label_form_is_searched():
    window = _null_start("w", HOUR, label_form=DurationLabel(HOUR))
    assert unread_record_bounds(_cohort(window)) == set()


def _early_admission() -> CohortPredicate:
    """Rows 48 h before each admission: before the record when the admission is the first."""
    pre = Window(
        "pre",
        Boundary(TRIGGER, "offset", offset=-48 * HOUR),
        Boundary(Reference("pre", "start"), "offset", offset=HOUR),
        True,
        True,
        index_timestamp="start",
    )
    return CohortPredicate("early", _cohort(pre))


@pytest.mark.parametrize(
    ("trigger", "unsearched"),
    [("early", False), ("early_and_adm", True), ("early_or_adm", False), ("adm", True)],
)
def test_a_trigger_that_may_lie_outside_the_record_keeps_the_search(trigger, unsearched):
    predicates = {
        **PREDICATES,
        "early": _early_admission(),
        "early_and_adm": DerivedPredicate("early_and_adm", "and", ("early", "adm")),
        "early_or_adm": DerivedPredicate("early_or_adm", "or", ("early", "adm")),
    }
    cohort = _cohort(_null_start("input", 0 * HOUR), trigger=trigger, predicates=predicates)
    assert unread_record_bounds(cohort) == ({("input", "start")} if unsearched else set())


def test_a_cohort_trigger_before_the_record_is_not_placed():
    # The nested cohort's row falls 48 h before the subject's first event: `start: null` up to
    # it finds no record start, so the trigger leaves at "window input: placed".
    predicates = {**PREDICATES, "early": _early_admission()}
    cohort = _cohort(_null_start("input", 0 * HOUR), trigger="early", predicates=predicates)
    events = pl.DataFrame(
        {
            "subject_id": [1, 1],
            "code": ["ADM", "LAB"],
            "time": [dt.datetime(2020, 1, 3), dt.datetime(2020, 1, 4)],
        }
    )
    lean, audited = extract_events(cohort, events), extract_events(cohort, events, audit=True)
    assert lean.labels.height == audited.labels.height == 0
    assert lean.attrition.render() == audited.attrition.render()
    assert "window input: placed" in lean.attrition.render()


def test_counting_every_window_needs_every_window_time():
    cohort = _cohort(_null_start("w", HOUR, index_timestamp="end"))
    events = pl.DataFrame({"subject_id": [1], "code": ["ADM"], "time": [dt.datetime(2020, 1, 1)]})
    with pytest.raises(ValueError, match="every window time"):
        evaluate(cohort, plan_predicates(cohort), EventSource(events), count_all=True)
