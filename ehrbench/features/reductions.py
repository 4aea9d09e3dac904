"""Stage 3 of tabular featurisation: reduce each label row's events to feature values.

Over each window span (see `ehrbench.features.window_spans`): the code count and, for codes that
carry values, the value count, sum, sum of squares, min, max and last value (`VALUE_AGGS`).
Outside the windows: the subject's static codes, the age at the prediction time (from
MEDS_BIRTH, in 365.25-day years) and the hours since the latest timed event at or before it.

Each (subject, code) group gets running figures at every event (count, sum, sum of squares, min,
max, last value so far), restarting per group, so no other group's events (nor later ones) can
change a group's figures, even by rounding. A window's sums are then one difference of running
figures; only a min or max over a window that does not start at the group's first event scans
the window's values.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ehrbench.features.shard_events import ShardEvents
from ehrbench.features.window_spans import CodeGroups, WindowSpans

VALUE_AGGS = ("value/count", "value/sum", "value/sum_sq", "value/min", "value/max", "value/last")
US_PER_HOUR = 3600 * 1_000_000
US_PER_YEAR = 365.25 * 86400 * 1_000_000


def age_years(birth_us: np.ndarray, t_us: np.ndarray) -> np.ndarray:
    """Age in years (365.25-day years) at `t_us`, NaN where the birth time is unknown.

    >>> age_years(np.array([0.0, np.nan]), np.array([US_PER_YEAR, 0])).tolist()
    [1.0, nan]
    """
    return (t_us.astype(np.float64) - birth_us) / US_PER_YEAR


@dataclass
class SubjectFeatures:
    """Features of label rows outside the windows, each as (label rows, values) arrays.

    `static_rows` and `static_idx` pair a row with a static code it has (value 1); `age_rows`
    and `age` the rows whose subject has a birth time; `since_rows` and `since_hours` the rows
    with a timed event at or before their prediction time.
    """

    static_rows: np.ndarray
    static_idx: np.ndarray
    age_rows: np.ndarray
    age: np.ndarray
    since_rows: np.ndarray
    since_hours: np.ndarray


def subject_features(events: ShardEvents) -> SubjectFeatures:
    """Static codes, age and time since the last event of the label rows of `events`."""
    age = age_years(events.birth_us, events.row_t)
    known = ~np.isnan(age)
    seen = events.history_length > 0
    last = events.history_start[seen] + events.history_length[seen] - 1
    last_time = events.timed["time"].to_numpy()[last]
    return SubjectFeatures(
        static_rows=events.static["row"].to_numpy(),
        static_idx=events.static["static_idx"].to_numpy(),
        age_rows=events.row_ids[known],
        age=age[known],
        since_rows=events.row_ids[seen],
        since_hours=(events.row_t[seen] - last_time) / US_PER_HOUR,
    )


@dataclass
class WindowAggregates:
    """The reductions of one `WindowSpans` (window number `window`).

    `rows`, `code`, `count`: every pair's label row, code and code count. `value_rows`,
    `value_code`, `values`: for pairs whose code carries values and whose window holds one, the
    value aggregates in `VALUE_AGGS` order.
    """

    window: int
    rows: np.ndarray
    code: np.ndarray
    count: np.ndarray
    value_rows: np.ndarray
    value_code: np.ndarray
    values: tuple[np.ndarray, ...]


def window_aggregates(
    groups: CodeGroups, spans: Iterable[WindowSpans], value_codes: np.ndarray
) -> Iterator[WindowAggregates]:
    """Reduce each of `spans`; `value_codes[c]` says whether code c carries values."""
    running = _Running.build(groups)
    for span in spans:
        valued = value_codes[span.code]
        rows, code = span.rows[valued], span.code[valued]
        has, values = running.aggregates(span.begin[valued], span.end[valued], span.cut[valued])
        yield WindowAggregates(
            window=span.window,
            rows=span.rows,
            code=span.code,
            count=span.end - span.begin,
            value_rows=rows[has],
            value_code=code[has],
            values=tuple(value[has] for value in values),
        )


@dataclass
class _Running:
    """Per event of `CodeGroups`, the running figures of its group up to and including it.

    `min_source` and `max_source` hold each event's value (or +inf / -inf) and one neutral
    sentinel at the end, for the min and max scans."""

    figures: dict[str, np.ndarray]
    min_source: np.ndarray
    max_source: np.ndarray

    @classmethod
    def build(cls, groups: CodeGroups) -> _Running:
        value = groups.value
        valued = ~np.isnan(value)
        narrow = value.astype(np.float32)  # min, max and last of float32 MEDS values are exact
        return cls(
            figures=_running_figures(value, valued, groups.search.starts[:-1]),
            min_source=np.append(np.where(valued, narrow, np.float32(np.inf)), np.inf),
            max_source=np.append(np.where(valued, narrow, np.float32(-np.inf)), -np.inf),
        )

    def aggregates(self, begin, end, cut) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Value aggregates over events [begin, end) of a group; `cut` marks windows not
        starting at the group's first event (their figures are differences or scans). Returns
        (whether the window holds a value, the aggregates in VALUE_AGGS order)."""
        run = self.figures
        last = end - 1
        before = np.where(cut, begin - 1, last)

        def window_sum(name: str) -> np.ndarray:
            return run[name][last] - np.where(cut, run[name][before], 0)

        count = window_sum("v_count")
        has = count > 0
        v_min = run["v_min"][last].copy()
        v_max = run["v_max"][last].copy()
        scan = cut & has
        if scan.any():
            v_min[scan] = _reduce_windows(np.minimum, self.min_source, begin[scan], end[scan])
            v_max[scan] = _reduce_windows(np.maximum, self.max_source, begin[scan], end[scan])
        sums = (count, window_sum("v_sum"), window_sum("v_sum_sq"))
        return has, (*sums, v_min, v_max, run["v_last"][last])


def _running_figures(value, valued, first) -> dict[str, np.ndarray]:
    """Per event, the running figures of its group up to and including it (groups are runs of
    events starting at `first`)."""
    total = np.cumsum(valued, dtype=np.int32)
    count = total - np.repeat(total[first] - valued[first], np.diff(np.append(first, len(total))))
    # Sums start from +0.0, as a loop over the group would: `+ 0.0` turns a leading -0.0 into it.
    summed = np.where(valued, value, 0.0) + 0.0
    # Overflow to inf (and inf - inf) give what a loop gives, silently, as polars did here.
    with np.errstate(over="ignore", invalid="ignore"):
        running = {
            "v_sum": _accumulate_in_groups(np.add, summed, first, 0.0),
            "v_sum_sq": _accumulate_in_groups(np.add, summed * summed, first, 0.0),
            "v_min": _accumulate_in_groups(
                np.minimum, np.where(valued, value, np.inf), first, np.inf
            ).astype(np.float32),
            "v_max": _accumulate_in_groups(
                np.maximum, np.where(valued, value, -np.inf), first, -np.inf
            ).astype(np.float32),
        }
    # Index of the latest valued event so far; read only where the window holds a value, so
    # it is then always inside the group.
    latest = np.maximum.accumulate(np.where(valued, np.arange(value.shape[0]), 0))
    return running | {"v_count": count, "v_last": value[latest].astype(np.float32)}


def _accumulate_in_groups(
    ufunc: np.ufunc, values: np.ndarray, starts: np.ndarray, neutral: float
) -> np.ndarray:
    """`ufunc.accumulate` within each group of `values` (runs starting at `starts`), event after
    event in each group as a loop would go, so sums come out bit for bit as that loop's.

    Groups of similar length are padded (with `neutral`) into the rows of one 2-D array, at most
    twice their length, and accumulated along the rows: a few numpy calls per power of two of
    the group lengths rather than one per group.

    >>> _accumulate_in_groups(np.add, np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 1]), 0.0)
    array([1., 2., 5., 9.])
    """
    lengths = np.diff(np.append(starts, values.shape[0]))
    # The least power of two >= each length: 2 ** (bits of length - 1), exact for integers.
    widths = np.left_shift(1, np.frexp(lengths - 1)[1].astype(np.int64))
    out = np.empty_like(values)
    for width in np.unique(widths):
        members = np.flatnonzero(widths == width)
        columns = np.arange(width)
        inside = columns < lengths[members][:, None]
        source = (starts[members][:, None] + columns)[inside]
        grid = np.full((members.shape[0], width), neutral, dtype=values.dtype)
        grid[inside] = values[source]
        out[source] = ufunc.accumulate(grid, axis=1)[inside]
    return out


def _reduce_windows(ufunc, source: np.ndarray, begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """`ufunc` over source[begin[i]:end[i]] for each i (source ends with a neutral sentinel)."""
    edges = np.empty(2 * begin.shape[0], dtype=np.int64)
    edges[0::2] = begin
    edges[1::2] = end
    return ufunc.reduceat(source, edges)[0::2]
