"""Explain a cohort on one subject: every trigger, every window, and why each row was kept.

Cohort authors debug a definition one patient at a time; this prints what the engine saw for a
subject (the same `evaluate` the extraction uses, so the story and the labels cannot disagree).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from ehrbench.cohort.extract import Evaluation, check_columns, evaluate
from ehrbench.cohort.matching import row_match
from ehrbench.cohort.model import SUBJECT, TIME, Boundary, Cohort, Window
from ehrbench.cohort.planning import PredicatePlan, plan_predicates, static_predicate
from ehrbench.cohort.reader import EventSource
from ehrbench.cohort.tree import format_boundary
from ehrbench.errors import EhrbenchError
from ehrbench.meds import MedsDataset

EPOCH = dt.datetime(1970, 1, 1)


def subject_events(dataset: MedsDataset, subject_id: int) -> pl.DataFrame:
    """All event rows of one subject, from whichever shard holds them."""
    parts = [
        dataset.collect(shard, dataset.scan(shard).filter(pl.col(SUBJECT) == subject_id))
        for shard in dataset.shards
    ]
    parts = [part for part in parts if part.height]
    if not parts:
        raise EhrbenchError(
            f"subject_id {subject_id} has no rows in the dataset at {dataset.root} "
            f"({len(dataset.shards)} shard(s)); check the id."
        )
    return pl.concat(parts, how="diagonal_relaxed")


def explain(cohort: Cohort, dataset: MedsDataset, subject_id: int) -> str:
    """A readable account of how `cohort` treats subject `subject_id` of `dataset`."""
    return explain_events(cohort, subject_events(dataset, subject_id), subject_id)


def explain_events(cohort: Cohort, events: pl.DataFrame, subject_id: int) -> str:
    """`explain` on an in-memory event table already restricted to one subject."""
    plan = plan_predicates(cohort, every_window_time=True)
    source = EventSource(events)
    check_columns(cohort, source)
    timed = events.filter(pl.col(TIME).is_not_null())
    lines = [
        f"subject {subject_id}: {events.height} rows, "
        f"{timed[TIME].n_unique()} distinct timestamps, "
        f"{events.height - timed.height} static rows"
    ]
    demographics = _demographic_lines(cohort, plan, events)
    lines += demographics
    if any("FAILED" in line for line in demographics):
        lines.append("dropped by the demographic filter: no trigger is considered.")
        return "\n".join(lines) + "\n"
    ev = evaluate(cohort, plan, source, count_all=True)
    count = len(ev.trigger_times)
    lines.append(f"trigger `{cohort.trigger}`: {count} trigger(s)")
    for i in range(count):
        lines += _trigger_lines(cohort, ev, i)
    kept = int(ev.kept.sum())
    lines.append(f"{kept} of {count} trigger(s) kept, giving {kept} label row(s).")
    return "\n".join(lines) + "\n"


def _demographic_lines(cohort: Cohort, plan: PredicatePlan, events: pl.DataFrame) -> list[str]:
    static_rows = events.filter(pl.col(TIME).is_null())
    lines = []
    for name in plan.static:
        pred = static_predicate(cohort, name)
        matched = static_rows.select(row_match(pred, events.schema).any()).item()
        verdict = "ok" if matched else "FAILED: no null-time row matches it"
        lines.append(f"demographic `{name}`: {verdict}")
    return lines


def _time_text(micros: int) -> str:
    return str(EPOCH + dt.timedelta(microseconds=int(micros)))


def _trigger_lines(cohort: Cohort, ev: Evaluation, i: int) -> list[str]:
    failed = int(ev.failed_step[i])
    header = f"- trigger at {_time_text(ev.trigger_times[i])}: "
    if failed < 0:
        header += "KEPT"
        index_window = cohort.index_window
        if index_window is not None:
            when = ev.times[(index_window.name, index_window.index_timestamp)][i]
            header += f", prediction_time {_time_text(when)}"
        if ev.label_values is not None:
            header += f", label {_label_text(cohort, ev.label_values[i])}"
    else:
        header += f"DROPPED at step `{ev.steps[failed]}`"
    if ev.ages is not None:
        header += f" (age {ev.ages[i]:.2f})" if not np.isnan(ev.ages[i]) else " (no birth row)"
    lines = [header]
    for window in cohort.windows:
        lines += ["    " + line for line in _window_lines(window, ev, i)]
    return lines


def _label_text(cohort: Cohort, value) -> str:
    """One trigger's label value as its MEDS column holds it (a class by its name)."""
    classes = cohort.label_classes
    if classes is not None:
        return repr(classes[int(value)])
    if cohort.label_column == "float_value":
        return "no value" if np.isnan(value) else f"{np.float32(value)}"
    return str(value.item() if isinstance(value, np.generic) else value)


def _window_lines(window: Window, ev: Evaluation, i: int) -> list[str]:
    if not ev.placed[window.name][i]:
        return [f"{window.name}: not placed ({_placement_failure(window, ev, i)})"]
    start = _time_text(ev.times[(window.name, "start")][i])
    end = _time_text(ev.times[(window.name, "end")][i])
    opening = "[" if window.start_inclusive else "("
    closing = "]" if window.end_inclusive else ")"
    counts = ", ".join(
        f"{pred}={int(count[i])}" for (win, pred), count in ev.counts.items() if win == window.name
    )
    lines = [f"{window.name} {opening}{start}, {end}{closing}: {counts}"]
    for c in window.has:
        n = int(ev.counts[(window.name, c.predicate)][i])
        ok = (c.min_count is None or n >= c.min_count) and (c.max_count is None or n <= c.max_count)
        verdict = "ok" if ok else "FAILED"
        lines.append(f"  has {c.predicate} in ({c.min_count}, {c.max_count}): {n} {verdict}")
    return lines


def _placement_failure(window: Window, ev: Evaluation, i: int) -> str:
    """Which side of `window` could not be placed for trigger `i`, and why."""
    for side in (window.anchored_side, "start" if window.anchored_side == "end" else "end"):
        boundary: Boundary = getattr(window, side)
        ref = boundary.reference
        if ref.window is not None and ref.window != window.name and not ev.placed[ref.window][i]:
            return f"it hangs on window `{ref.window}`, which was not placed"
        if not ev.found[(window.name, side)][i]:
            return _search_failure(window, side, boundary, ev, i)
    return "unknown"


def _search_failure(window: Window, side: str, boundary: Boundary, ev: Evaluation, i: int) -> str:
    ref = boundary.reference
    ref_times = ev.trigger_times if ref.is_trigger else ev.times[(ref.window, ref.side)]
    when = _time_text(np.asarray(ref_times)[i])
    text = format_boundary(boundary, window.name, side)
    own_side = ref.window == window.name
    if boundary.kind == "next":
        own = "at or after" if own_side and window.end_inclusive else "strictly after"
        where = f"no `{boundary.predicate}` event {own} {when}"
    else:
        own = "at or before" if own_side and window.start_inclusive else "strictly before"
        where = f"no `{boundary.predicate}` event {own} {when}"
    return f"{side}: {text}: {where}"
