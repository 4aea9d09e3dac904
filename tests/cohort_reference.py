"""A slow, obviously-correct cohort evaluator in plain Python, for tests only.

Written straight from `../shared/spec/cohort-language.md` sections 2 to 6 (with section 9's
ehrbench behaviour) and the extensions of section 10: loops over subjects, timestamps and rows,
no cleverness. Input rows are dicts with `subject_id`, `time` (datetime or None), `code`,
`numeric_value` and any other columns, in file order; output is a list of (subject_id,
prediction_time, label) tuples, the label as its MEDS column holds it (`boolean_value` for
`label: PRED`, an int for a count, a float32 for a duration or value, a class name).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict

import numpy as np
import polars as pl

from ehrbench.cohort.model import (
    ANY_EVENT,
    RECORD_END,
    RECORD_START,
    TRIGGER,
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
    ValueLabel,
    Window,
)


def row_matches(pred: PlainPredicate, row: dict) -> bool:
    """Does one row match a plain predicate (code, float32 bounds, other columns)?"""
    code = row.get("code")
    if code is None:
        return False
    if isinstance(pred.code, ExactCode) and code != pred.code.value:
        return False
    if isinstance(pred.code, RegexCode) and re.search(pred.code.pattern, code) is None:
        return False
    if isinstance(pred.code, AnyCode) and code not in pred.code.values:
        return False
    value = row.get("numeric_value")
    if pred.value_min is not None or pred.value_max is not None:
        if value is None:
            return False
        value = np.float32(value)
    if pred.value_min is not None:
        bound = np.float32(pred.value_min)
        if not (value >= bound if pred.value_min_inclusive else value > bound):
            return False
    if pred.value_max is not None:
        bound = np.float32(pred.value_max)
        if not (value <= bound if pred.value_max_inclusive else value < bound):
            return False
    return all(row.get(col) == val for col, val in pred.other_cols)


class Subject:
    """One subject's rows with the spec's counting rules.

    `nested` maps each `{cohort: ...}` predicate to the (subject, time) pairs where it counts 1;
    their times join the event timestamps a window sums over (spec 10.4).
    """

    def __init__(self, cohort: Cohort, rows: list[dict], nested: dict | None = None):
        self.cohort = cohort
        self.rows = rows
        self.nested = nested or {}
        self.static_rows = [r for r in rows if r["time"] is None]
        self.by_time: dict = defaultdict(list)
        for r in rows:
            if r["time"] is not None:
                self.by_time[r["time"]].append(r)
        self.event_times = sorted(self.by_time)
        sid = rows[0]["subject_id"] if rows else None
        extra = {t for pairs in self.nested.values() for s, t in pairs if s == sid}
        self.sid = sid
        self.times = sorted(set(self.event_times) | extra)

    def count_at(self, name: str, t) -> int:
        """The count of predicate `name` at timestamp `t` (section 2, Counting)."""
        if name == ANY_EVENT:
            return 1 if t in self.by_time else 0
        if name == RECORD_START:
            return 1 if self.event_times and t == self.event_times[0] else 0
        if name == RECORD_END:
            return 1 if self.event_times and t == self.event_times[-1] else 0
        if name in self.nested:
            return 1 if (self.sid, t) in self.nested[name] else 0
        pred = self.cohort.predicates.get(name) or self.cohort.demographics[name]
        if isinstance(pred, DerivedPredicate):
            held = [self.count_at(child, t) > 0 for child in pred.inputs]
            return int(all(held) if pred.op == "and" else any(held))
        if pred.static:
            return 0
        return sum(1 for r in self.by_time.get(t, []) if row_matches(pred, r))

    def passes_static(self, pred: PlainPredicate) -> bool:
        return any(row_matches(pred, r) for r in self.static_rows)

    def window_count(self, name, start, end, start_inclusive, end_inclusive) -> int:
        """Sum of counts over timestamps in the window (earlier edge uses start_inclusive)."""
        lo, hi = min(start, end), max(start, end)
        total = 0
        for t in self.times:
            after_lo = t >= lo if start_inclusive else t > lo
            before_hi = t <= hi if end_inclusive else t < hi
            if after_lo and before_hi:
                total += self.count_at(name, t)
        return total

    def window_values(self, name, start, end, start_inclusive, end_inclusive) -> list:
        """float32 numeric_values of `name`'s matching rows in the window, time then file order."""
        lo, hi = min(start, end), max(start, end)
        pred = self.cohort.predicates[name]
        found = []
        for r in self.rows:
            t = r["time"]
            if t is None or r.get("numeric_value") is None or not row_matches(pred, r):
                continue
            after_lo = t >= lo if start_inclusive else t > lo
            before_hi = t <= hi if end_inclusive else t < hi
            if after_lo and before_hi:
                found.append((t, np.float32(r["numeric_value"])))
        return [v for _, v in sorted(found, key=lambda item: item[0])]

    def age_at(self, birth_code, t):
        """Age in years at `t` from the first row with `birth_code`, or None without one."""
        births = [r["time"] for r in self.rows if r["time"] is not None and r["code"] == birth_code]
        if not births:
            return None
        return (t - min(births)) / dt.timedelta(days=365.25)

    def next_event(self, name, ref, inclusive):
        for t in self.times:
            if (t >= ref if inclusive else t > ref) and self.count_at(name, t) > 0:
                return t
        return None

    def prev_event(self, name, ref, inclusive):
        for t in reversed(self.times):
            if (t <= ref if inclusive else t < ref) and self.count_at(name, t) > 0:
                return t
        return None


def static_names(cohort: Cohort) -> list[str]:
    """Demographic entries plus every static predicate referenced from trigger or windows."""
    names = list(cohort.demographics)
    seen = set()

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        pred = cohort.predicates.get(name)
        if isinstance(pred, DerivedPredicate):
            for child in pred.inputs:
                visit(child)
        elif isinstance(pred, PlainPredicate) and pred.static and name not in names:
            names.append(name)

    visit(cohort.trigger)
    for w in cohort.windows:
        for b in (w.start, w.end):
            if b.predicate:
                visit(b.predicate)
        for c in w.has:
            visit(c.predicate)
        if w.label:
            visit(w.label)
    return names


def label_value(subject: Subject, w, start, end):
    """The label of the label window `w` placed on [start, end], or None: no usable value."""

    def count(name):
        return subject.window_count(name, start, end, w.start_inclusive, w.end_inclusive)

    form = w.label_form
    if form is None:
        return (count(w.label) == 0) if w.label_negated else (count(w.label) > 0)
    if isinstance(form, CountLabel):
        return count(form.predicate)
    if isinstance(form, DurationLabel):
        return float(np.float32((end - start) / form.unit))
    if isinstance(form, ClassesLabel):
        return next((n for n, p in form.classes if count(p) > 0), form.otherwise)
    assert isinstance(form, ValueLabel)
    values = subject.window_values(form.predicate, start, end, w.start_inclusive, w.end_inclusive)
    if not values:
        return None
    pick = {"first": values[0], "last": values[-1], "min": min(values), "max": max(values)}
    mean = 0.0
    for v in values:
        mean += float(v)
    pick["mean"] = mean / len(values)
    return float(np.float32(pick[form.take]))


def passes_trigger_filters(cohort: Cohort, subject: Subject, t) -> bool:
    """`trigger_between` (spec 10.5) and `age` (spec 10.3) for a trigger at `t`."""
    between = cohort.trigger_between
    if between is not None and between.start is not None and t < between.start:
        return False
    if between is not None and between.end is not None and t >= between.end:
        return False
    if cohort.age is not None:
        age = subject.age_at(cohort.age.birth, t)
        if age is None:
            return False
        if (cohort.age.min_years is not None and age < cohort.age.min_years) or (
            cohort.age.max_years is not None and age > cohort.age.max_years
        ):
            return False
    return True


def nested_pairs(cohort: Cohort, rows: list[dict]) -> dict:
    """Per `{cohort: ...}` predicate, its (subject, time) pairs: the named cohort's label rows."""
    pairs = {}
    for name, pred in cohort.predicates.items():
        if isinstance(pred, CohortPredicate):
            kept = reference_labels(pred.cohort, rows)
            if pred.label != "any":
                kept = [r for r in kept if r[2] == (pred.label == "true")]
            pairs[name] = {(sid, t) for sid, t, _ in kept}
    return pairs


def place(subject: Subject, window, boundary, ref_time):
    """A boundary's time given its reference's time, or None when no event is found."""
    if boundary.kind == "offset":
        return ref_time + boundary.offset
    # REF's own timestamp may be the event only on the side referring to the window's other
    # side (end_inclusive for `->`, start_inclusive for `<-`); an event-bound side referring
    # outside the window always looks strictly after / before REF (as ACES 0.7.3 does).
    own_side = boundary.reference.window == window.name
    if boundary.kind == "next":
        return subject.next_event(boundary.predicate, ref_time, own_side and window.end_inclusive)
    return subject.prev_event(boundary.predicate, ref_time, own_side and window.start_inclusive)


def evaluate_trigger(cohort: Cohort, subject: Subject, trigger_time):
    """(kept, boundaries, counts) for one trigger."""
    times = {}
    for w in cohort.windows:
        anchored = w.anchored_side
        other = "start" if anchored == "end" else "end"
        for side in (anchored, other):
            b = getattr(w, side)
            if b.reference.is_trigger:
                ref_time = trigger_time
            else:
                ref_time = times.get((b.reference.window, b.reference.side))
            if ref_time is None:
                return False, times
            t = place(subject, w, b, ref_time)
            if t is None:
                return False, times
            times[(w.name, side)] = t
        start, end = times[(w.name, "start")], times[(w.name, "end")]
        for c in w.has:
            n = subject.window_count(c.predicate, start, end, w.start_inclusive, w.end_inclusive)
            if c.min_count is not None and n < c.min_count:
                return False, times
            if c.max_count is not None and n > c.max_count:
                return False, times
    return True, times


def reference_labels(cohort: Cohort, rows: list[dict]) -> list[tuple]:
    """All label rows, sorted by (subject_id, prediction_time) with trigger order kept on ties."""
    by_subject: dict = defaultdict(list)
    for r in rows:
        by_subject[r["subject_id"]].append(r)
    statics = static_names(cohort)
    nested = nested_pairs(cohort, rows)
    out = []
    for sid in sorted(by_subject):
        subject = Subject(cohort, by_subject[sid], nested)
        preds = [cohort.demographics.get(n) or cohort.predicates[n] for n in statics]
        if not all(subject.passes_static(p) for p in preds):
            continue
        for t in subject.times:
            if subject.count_at(cohort.trigger, t) < 1:
                continue
            if not passes_trigger_filters(cohort, subject, t):
                continue
            kept, times = evaluate_trigger(cohort, subject, t)
            if not kept:
                continue
            iw, lw = cohort.index_window, cohort.label_window
            prediction_time = times[(iw.name, iw.index_timestamp)] if iw else None
            label = None
            if lw is not None:
                start, end = times[(lw.name, "start")], times[(lw.name, "end")]
                label = label_value(subject, lw, start, end)
                if label is None:
                    continue
            out.append((sid, prediction_time, label))
    # Stable sort: ties of prediction_time keep trigger order (None sorts first).
    return sorted(out, key=lambda r: (r[0], r[1] is not None, r[1] or 0))


# ---- Small builders shared by the cohort extraction tests ----------------------------------

T0 = dt.datetime(2020, 1, 1)
UNITS = {"h": dt.timedelta(hours=1), "d": dt.timedelta(days=1), "m": dt.timedelta(minutes=1)}
BOUNDARY = re.compile(
    r"(?P<ref>[\w.]+)\s*(?:(?P<sign>[+-])\s*(?P<n>\d+)(?P<unit>[hdm])|(?P<arrow>->|<-)\s*(?P<pred>\w+))?"
)


def at(hours: float | None) -> dt.datetime | None:
    """The timestamp `hours` after T0 (None stays None: a static row)."""
    return None if hours is None else T0 + dt.timedelta(hours=hours)


def rows(*specs) -> list[dict]:
    """Rows from (subject, hours, code[, value[, {extra columns}]]) tuples."""
    out = []
    for spec in specs:
        sid, hours, code, *rest = spec
        row = {"subject_id": sid, "time": at(hours), "code": code}
        row["numeric_value"] = rest[0] if rest else None
        if len(rest) > 1:
            row.update(rest[1])
        out.append(row)
    return out


def frame(row_dicts: list[dict]) -> pl.DataFrame:
    """A MEDS event frame (numeric_value float32, time datetime[us]) from row dicts."""
    columns = {k: [r.get(k) for r in row_dicts] for r in row_dicts for k in r}
    schema = {
        "subject_id": pl.Int64,
        "time": pl.Datetime("us"),
        "code": pl.String,
        "numeric_value": pl.Float32,
    }
    return pl.DataFrame(columns, schema_overrides={k: v for k, v in schema.items() if k in columns})


def boundary(text: str, window: str, side: str) -> Boundary:
    """Parse a boundary in the spec's grammar (units h, d, m only), as the loader would."""
    if text == "null":
        if side == "start":
            return Boundary(Reference(window, "end"), "prev", predicate=RECORD_START, was_null=True)
        return Boundary(Reference(window, "start"), "next", predicate=RECORD_END, was_null=True)
    m = BOUNDARY.fullmatch(text.strip())
    assert m, text
    ref_text = m["ref"]
    if ref_text == "trigger":
        ref = TRIGGER
    elif ref_text in ("start", "end"):
        ref = Reference(window, ref_text)
    else:
        ref = Reference(*ref_text.split("."))
    if m["arrow"]:
        return Boundary(ref, "next" if m["arrow"] == "->" else "prev", predicate=m["pred"])
    offset = dt.timedelta(0)
    if m["sign"]:
        offset = int(m["n"]) * UNITS[m["unit"]] * (1 if m["sign"] == "+" else -1)
    return Boundary(ref, "offset", offset=offset)


def window(
    name, start, end, si=True, ei=True, has=None, label=None, index=None, label_form=None
) -> Window:
    """A window from boundary strings; `has` maps predicate -> (min, max)."""
    constraints = tuple(Constraint(p, lo, hi) for p, (lo, hi) in (has or {}).items())
    return Window(
        name,
        boundary(start, name, "start"),
        boundary(end, name, "end"),
        si,
        ei,
        has=constraints,
        label=label,
        index_timestamp=index,
        label_form=label_form,
    )


def plain(name, code, **kwargs) -> PlainPredicate:
    """A plain predicate; `code` a string (exact), ("regex", p) or a tuple/list (any-of)."""
    if isinstance(code, str):
        match = ExactCode(code)
    elif code[0] == "regex":
        match = RegexCode(code[1])
    else:
        match = AnyCode(tuple(code))
    return PlainPredicate(name, match, **kwargs)


def cohort(predicates, trigger, windows=(), demographics=(), **extensions) -> Cohort:
    """A Cohort from lists of predicates / windows (windows in dependency order); `extensions`
    are `age` and `trigger_between`."""
    preds = {p.name: p for p in predicates}
    demo = {p.name: p for p in demographics}
    return Cohort(None, preds, demo, trigger, tuple(windows), **extensions)
