"""The value of each trigger's label, for every label form (spec 5 and 10.2), and its column.

The engine places and counts the label window first (`extract`); this module turns the window's
times and counts into one value per trigger: a bool (`label: PRED`), an int64 count, a float64
duration or statistic (NaN where a value label finds no usable row), or the index of a class in
`ClassesLabel.names`. `label_columns` writes those values into the MEDS label columns.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from ehrbench.cohort.blocks import position
from ehrbench.cohort.counting import ValueRows
from ehrbench.cohort.model import (
    ClassesLabel,
    Cohort,
    CountLabel,
    DurationLabel,
    ValueLabel,
    Window,
)
from ehrbench.meds import LABEL_SCHEMA
from ehrbench.meds.label_kinds import VALUE_COLUMNS


def label_values(
    window: Window,
    edges: tuple[np.ndarray, np.ndarray],
    counts: Mapping[str, np.ndarray],
    subjects: np.ndarray,
    rows: ValueRows | None,
) -> np.ndarray:
    """Per trigger, its label's value from the label window's `edges` (start, end times) and
    `counts` (the window's count of each predicate), `subjects` the triggers' subjects and
    `rows` the value label's rows."""
    start, end = edges
    match window.label_form:
        case None:
            present = counts[window.label] > 0
            return ~present if window.label_negated else present
        case CountLabel(predicate):
            return counts[predicate].astype(np.int64)
        case DurationLabel(unit):
            # Real boundary times, whatever the inclusive flags (spec 10.2).
            return (end - start) / (unit.total_seconds() * 1e6)
        case ValueLabel(_, take):
            assert rows is not None
            inclusive = (window.start_inclusive, window.end_inclusive)
            return window_statistic(rows, take, subjects, edges, inclusive)
        case ClassesLabel(classes, _):
            chosen = np.full(len(start), len(classes), dtype=np.int64)
            for index in reversed(range(len(classes))):
                chosen[counts[classes[index][1]] > 0] = index
            return chosen


def window_statistic(
    rows: ValueRows,
    take: str,
    subjects: np.ndarray,
    edges: tuple[np.ndarray, np.ndarray],
    inclusive: tuple[bool, bool],
) -> np.ndarray:
    """Per trigger, `take` over the values of `rows` in its window (NaN when there are none).

    The earlier edge is governed by `inclusive[0]`, the later by `inclusive[1]`, as for counts.

    >>> rows = ValueRows(np.array([1, 1, 1]), np.array([0, 5, 5]), np.array([2.0, 4.0, 3.0]))
    >>> edges = (np.array([0, 1]), np.array([5, 4]))
    >>> window_statistic(rows, "last", np.array([1, 1]), edges, (True, True)).tolist()
    [3.0, nan]
    """
    lo = np.searchsorted(rows.subjects, subjects, side="left")
    hi = np.searchsorted(rows.subjects, subjects, side="right")
    earlier, later = np.minimum(*edges), np.maximum(*edges)
    first = position(rows.times, lo, hi, earlier, after=not inclusive[0])
    past = position(rows.times, lo, hi, later, after=inclusive[1])
    past = np.maximum(past, first)
    empty = past == first
    values = rows.values.astype(np.float64)
    if take == "first":
        result = values[np.minimum(first, len(values) - 1)] if len(values) else empty * 0.0
    elif take == "last":
        result = values[np.maximum(past - 1, 0)] if len(values) else empty * 0.0
    else:
        reduce = {"min": np.minimum, "max": np.maximum, "mean": np.add}[take]
        # reduceat over [first, past) pairs: a trailing pad makes every index valid.
        padded = np.append(values, 0.0)
        bounds = np.column_stack([first, past]).ravel()
        result = reduce.reduceat(padded, bounds)[::2] if len(bounds) else empty * 0.0
        if take == "mean":
            result = result / np.maximum(past - first, 1)
    return np.where(empty, np.nan, result)


def label_columns(cohort: Cohort, values: np.ndarray | None) -> list[pl.Series | pl.Expr]:
    """The four MEDS label value columns, in schema order, for the kept rows' label `values`:
    the label's own column filled, the others null (all null without a label window)."""
    classes = cohort.label_classes
    if classes is not None and values is not None:
        values = np.array(classes, dtype=object)[values]
    column = cohort.label_column
    return [
        pl.Series(name, values, LABEL_SCHEMA[name])
        if name == column and values is not None
        else pl.lit(None, dtype=LABEL_SCHEMA[name]).alias(name)
        for name in VALUE_COLUMNS
    ]
