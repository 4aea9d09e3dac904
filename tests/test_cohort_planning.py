"""Which window sides bounded by the record's start or end go unsearched (`unread_record_bounds`),
and that such a cohort then counts neither `_RECORD_START` nor `_RECORD_END`."""

from __future__ import annotations

import datetime as dt

import pytest

from ehrbench.cohort.model import (
    RECORD_END,
    RECORD_START,
    TRIGGER,
    Boundary,
    Cohort,
    Constraint,
    ExactCode,
    PlainPredicate,
    Reference,
    Window,
)
from ehrbench.cohort.planning import plan_predicates, unread_record_bounds

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


def _cohort(*windows: Window) -> Cohort:
    return Cohort(
        source=None, predicates=PREDICATES, demographics={}, trigger="adm", windows=windows
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
