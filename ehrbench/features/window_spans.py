"""Stage 2 of tabular featurisation: which events fall in which lookback window.

The in-vocabulary timed events of a shard batch are sorted by (subject, code, time) once and cut
into groups of one (subject, code); the sort is stable, so same-time events keep their file
order. For each label row, each code group of its subject with an event at or before the
prediction time and each window (see `ehrbench.features.windows`), two binary searches, one at
the prediction time and one at the window's lower edge, give the group's events inside the
window as a range [begin, end) of the sorted events. The (label row, group) pairs are handled
`PAIR_CHUNK` at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from ehrbench.features.shard_events import GroupedTimes, ShardEvents
from ehrbench.features.windows import Window

# (label row, code) pairs handled at once: bounds the memory of one step to a few hundred MB.
PAIR_CHUNK = 4_000_000


@dataclass
class CodeGroups:
    """In-vocabulary timed events of a shard batch sorted by (subject, code, time), in groups.

    `search` holds the events' times by group; `group` and `value` (NaN where none) are per
    event; `code` (vocabulary index) and `first_time` per group; `subject_start` and
    `subject_end` per subject: its groups are `subject_start .. subject_end - 1`.
    """

    search: GroupedTimes
    group: np.ndarray
    value: np.ndarray
    code: np.ndarray
    first_time: np.ndarray
    subject_start: np.ndarray
    subject_end: np.ndarray

    @classmethod
    def build(cls, events: ShardEvents) -> CodeGroups:
        """Sort and group the in-vocabulary timed events of `events`."""
        subject, code, time, value = _sorted_coded_events(events.timed)
        new_group = np.ones(subject.shape[0], dtype=bool)
        new_group[1:] = (subject[1:] != subject[:-1]) | (code[1:] != code[:-1])
        group = (np.cumsum(new_group) - 1).astype(np.int32)
        del new_group
        n_groups = int(group[-1]) + 1 if group.shape[0] else 0
        search = GroupedTimes(group, time, n_groups, events.distinct_times)
        first = search.starts[:-1]
        everyone = np.arange(events.n_subjects)
        return cls(
            search=search,
            group=group,
            value=value,
            code=code[first],
            first_time=time[first],
            subject_start=np.searchsorted(subject[first], everyone, side="left"),
            subject_end=np.searchsorted(subject[first], everyone, side="right"),
        )


def _sorted_coded_events(timed: pl.DataFrame):
    """(subject position, code index, time, value or NaN) of in-vocabulary events, sorted by
    (subject, code, time)."""
    coded = timed.filter(pl.col("code_idx").is_not_null())
    subject = coded["subject"].to_numpy().astype(np.int32)
    code = coded["code_idx"].to_numpy().astype(np.int32)
    time = coded["time"].to_numpy()
    # The events come sorted by (subject, time), ties in file order, so one stable sort by
    # (subject, code) orders them by (subject, code, time) and keeps the file order of ties.
    order = np.argsort(
        subject.astype(np.int64) * (int(code.max(initial=0)) + 1) + code, kind="stable"
    )
    value = coded["value"].fill_null(np.nan).to_numpy()[order]
    return subject[order], code[order], time[order], value


@dataclass
class WindowSpans:
    """(label row, code group) pairs with at least one event in window number `window`.

    Per pair: `rows` (label row), `code` (vocabulary index), the group's events in the window as
    the range [`begin`, `end`) of the sorted events, and `cut`: True where the window starts
    after the group's first event.
    """

    window: int
    rows: np.ndarray
    code: np.ndarray
    begin: np.ndarray
    end: np.ndarray
    cut: np.ndarray


def window_spans(
    events: ShardEvents, groups: CodeGroups, windows: tuple[Window, ...]
) -> Iterator[WindowSpans]:
    """The spans of every window for the label rows of `events`, a chunk of pairs at a time."""
    search = groups.search
    row_subject, row_t = events.row_subject, events.row_t
    # Query ranks per label row (not per pair): the prediction time, then each window's edge.
    edges = [search.rank(row_t)] + [
        None if w.is_full else search.rank(row_t - w.length_us) for w in windows
    ]
    per_row = groups.subject_end[row_subject] - groups.subject_start[row_subject]
    bounds = np.searchsorted(np.cumsum(per_row), np.arange(PAIR_CHUNK, per_row.sum(), PAIR_CHUNK))
    for chunk in np.split(np.arange(row_t.shape[0]), bounds):
        counts = per_row[chunk]
        pair_row = np.repeat(chunk, counts)
        within = np.arange(pair_row.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
        pair_group = groups.subject_start[row_subject[pair_row]] + within
        seen = groups.first_time[pair_group] <= row_t[pair_row]
        pair_row, pair_group = pair_row[seen], pair_group[seen]
        pair_edges = [None if e is None else e[pair_row] for e in edges]
        yield from _pair_spans(groups, events.row_ids[pair_row], pair_edges, pair_group)


def _pair_spans(groups: CodeGroups, rid, edges, pair_group) -> Iterator[WindowSpans]:
    """Spans of (label row, code group) pairs, each group having an event at or before t.

    `edges[0]` holds the query rank of each pair's prediction time, `edges[1 + w]` that of
    window w's lower edge (None for `full`)."""
    start = groups.search.starts[pair_group]
    hi = groups.search.count_upto_rank(pair_group, edges[0])
    code = groups.code[pair_group]
    for w, edge in enumerate(edges[1:]):
        lo = np.zeros_like(hi) if edge is None else groups.search.count_upto_rank(pair_group, edge)
        inside = hi > lo
        yield WindowSpans(
            window=w,
            rows=rid[inside],
            code=code[inside],
            begin=start[inside] + lo[inside],
            end=start[inside] + hi[inside],
            cut=lo[inside] > 0,
        )
