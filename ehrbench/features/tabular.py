"""Windowed tabular features: one sparse row per label row, leak-free by construction.

For each label row and each code of the vocabulary, over each lookback window (see
`ehrbench.features.windows`: `Xd` is `(prediction_time - X, prediction_time]`, `full` the whole
history), the features are the code count and, for codes that carry values in the fitting data,
the value count, sum, sum of squares, min, max and last value. Plus `static/<code>` (1 when the
subject has that null-time row), `age/years` at the prediction time (from MEDS_BIRTH) and
`time_since_last_event/hours` (to the latest timed event at or before the prediction time). A
feature with no event behind it is absent (0 in the sparse matrix); so is a time since the last
event of exactly 0 hours.

How it stays fast with many label rows per subject: events are sorted by (subject, code, time)
once per shard, each (subject, code) group gets running sums, running min/max and the last value
so far, and each (label row, code) pair reads its window from two binary searches, one at the
prediction time and one at the window's lower edge. Only a min or max over a window that does not
start at the group's first event scans the window's values. Events at the same time keep their
file order, which decides the "last" value among them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from ehrbench.features.events import (
    US_PER_HOUR,
    GroupedTimes,
    ShardEvents,
    age_years,
    birth_times,
    fit_mask,
    fitting_subjects,
    label_rows,
    read_shard_events,
    row_frame,
    rows_by_shard,
    sorted_by_subject_time,
    sorted_distinct,
    subject_index,
)
from ehrbench.features.storage import save_csr
from ehrbench.features.vocabulary import fit_code_statistics, select_codes
from ehrbench.features.windows import parse_windows
from ehrbench.io import write_parquet_atomic, write_text_atomic
from ehrbench.meds import MedsDataset

VALUE_AGGS = ("value/count", "value/sum", "value/sum_sq", "value/min", "value/max", "value/last")
PREFIX_FEATURES = ("age/years", "time_since_last_event/hours")
# (label row, code) pairs handled at once: bounds the memory of one step to a few hundred MB.
PAIR_CHUNK = 4_000_000


@dataclass(frozen=True)
class TabularConfig:
    """Settings of the tabular featuriser."""

    windows: tuple[str, ...] = ("1d", "7d", "30d", "365d", "full")
    min_count: int = 10
    max_codes: int | None = None

    def __post_init__(self) -> None:
        parse_windows(self.windows)


@dataclass(frozen=True)
class TabularVocabulary:
    """What `fit_tabular` learnt: the codes kept, which of them carry values, the windows."""

    config: TabularConfig
    codes: tuple[str, ...]
    value_codes: tuple[bool, ...]
    static_codes: tuple[str, ...]

    def feature_names(self) -> list[str]:
        """Column names, in matrix order: static, age, time since last event, then per window."""
        names = [f"static/{code}" for code in self.static_codes] + list(PREFIX_FEATURES)
        for window in self.config.windows:
            for code, has_value in zip(self.codes, self.value_codes, strict=True):
                names.append(f"{code}/count/{window}")
                if has_value:
                    names.extend(f"{code}/{agg}/{window}" for agg in VALUE_AGGS)
        return names

    def to_json(self) -> str:
        """Serialise to JSON (stable key order)."""
        payload = {
            "config": asdict(self.config),
            "codes": list(self.codes),
            "value_codes": list(self.value_codes),
            "static_codes": list(self.static_codes),
        }
        return json.dumps(payload, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TabularVocabulary:
        """Inverse of `to_json`."""
        payload = json.loads(text)
        config = payload["config"]
        config["windows"] = tuple(config["windows"])
        return cls(
            config=TabularConfig(**config),
            codes=tuple(payload["codes"]),
            value_codes=tuple(payload["value_codes"]),
            static_codes=tuple(payload["static_codes"]),
        )


@dataclass
class TabularFeatures:
    """A CSR float32 matrix with one row per label row (label order) and named columns."""

    matrix: sp.csr_matrix
    rows: pl.DataFrame
    feature_names: list[str]
    vocabulary: TabularVocabulary | None = field(default=None, repr=False)

    def save(self, directory: str | Path) -> None:
        """Write features.npz, rows.parquet, feature_names.parquet and vocabulary.json."""
        directory = Path(directory)
        save_csr(directory / "features.npz", self.matrix)
        write_parquet_atomic(self.rows, directory / "rows.parquet")
        names = pl.DataFrame({"feature": self.feature_names}, schema={"feature": pl.String})
        write_parquet_atomic(names, directory / "feature_names.parquet")
        if self.vocabulary is not None:
            write_text_atomic(self.vocabulary.to_json(), directory / "vocabulary.json")

    @classmethod
    def load(cls, directory: str | Path) -> TabularFeatures:
        """Read what `save` wrote."""
        directory = Path(directory)
        vocabulary_path = directory / "vocabulary.json"
        vocabulary = None
        if vocabulary_path.exists():
            vocabulary = TabularVocabulary.from_json(vocabulary_path.read_text(encoding="utf-8"))
        return cls(
            matrix=sp.load_npz(directory / "features.npz").tocsr(),
            rows=pl.read_parquet(directory / "rows.parquet"),
            feature_names=pl.read_parquet(directory / "feature_names.parquet")["feature"].to_list(),
            vocabulary=vocabulary,
        )


def fit_tabular(
    dataset: MedsDataset,
    labels: pl.DataFrame,
    fit_rows_mask_or_subjects,
    config: TabularConfig,
) -> TabularVocabulary:
    """Fit the code vocabulary on the fitting rows' history only.

    `fit_rows_mask_or_subjects` is a boolean mask over label rows or a collection of subject
    ids whose label rows fit. A code is kept when it occurs at least `config.min_count` times in
    that history (static codes: null-time rows), capped to the `config.max_codes` most frequent.
    """
    rows = label_rows(labels)
    stats = fit_code_statistics(dataset, rows, fit_mask(rows, fit_rows_mask_or_subjects))
    timed = select_codes(
        stats, static=False, min_count=config.min_count, max_codes=config.max_codes
    )
    static = select_codes(
        stats, static=True, min_count=config.min_count, max_codes=config.max_codes
    )
    return TabularVocabulary(
        config=config,
        codes=tuple(timed["code"].to_list()),
        value_codes=tuple((timed["value_count"] > 0).to_list()),
        static_codes=tuple(static["code"].to_list()),
    )


def transform_tabular(
    dataset: MedsDataset, labels: pl.DataFrame, vocabulary: TabularVocabulary
) -> TabularFeatures:
    """Compute the features of every label row with a fitted vocabulary, shard by shard."""
    rows = label_rows(labels)
    layout = _Layout(vocabulary)
    blocks, block_rows = [], []
    for shard, shard_rows in rows_by_shard(dataset, rows):
        subjects = shard_rows["subject_id"]
        events = read_shard_events(dataset, shard, subjects, layout.codes, layout.static_codes)
        del subjects
        row_ids, cols, vals = _shard_entries(events, shard_rows, layout)
        del events
        # Each batch becomes a small CSR block over its own rows; the blocks are stacked and the
        # rows put back in label order at the end, so no global triplet list is ever held.
        local_rows = np.sort(shard_rows["row"].to_numpy())
        local = np.searchsorted(local_rows, row_ids)
        shape = (local_rows.shape[0], layout.n_features)
        blocks.append(sp.csr_matrix((vals, (local, cols)), shape=shape, dtype=np.float32))
        block_rows.append(local_rows)
    matrix = sp.vstack(blocks, format="csr")
    del blocks
    matrix = matrix[np.argsort(np.concatenate(block_rows))]
    matrix.sort_indices()
    return TabularFeatures(
        matrix=matrix,
        rows=row_frame(labels),
        feature_names=vocabulary.feature_names(),
        vocabulary=vocabulary,
    )


def build_tabular(
    dataset: MedsDataset,
    labels: pl.DataFrame,
    config: TabularConfig | None = None,
    fit_split: str | tuple[str, ...] = "train",
) -> TabularFeatures:
    """Fit on the label rows whose subjects are in `fit_split` (e.g. `train` or `train,tuning`)
    and transform every label row."""
    config = config or TabularConfig()
    subjects = fitting_subjects(dataset, labels, fit_split)
    vocabulary = fit_tabular(dataset, labels, subjects, config)
    return transform_tabular(dataset, labels, vocabulary)


class _Layout:
    """Column positions: static codes, the prefix features, then one block per window."""

    def __init__(self, vocabulary: TabularVocabulary) -> None:
        self.windows = parse_windows(vocabulary.config.windows)
        self.static_codes = pl.DataFrame(
            {"code": list(vocabulary.static_codes)}, schema={"code": pl.String}
        ).with_row_index("static_idx")
        has_value = np.asarray(vocabulary.value_codes, dtype=bool)
        width = 1 + len(VALUE_AGGS) * has_value.astype(np.int64)
        self.offset = np.concatenate([[0], np.cumsum(width)[:-1]]).astype(np.int64)
        self.has_value = has_value
        self.codes = pl.DataFrame(
            {"code": list(vocabulary.codes)}, schema={"code": pl.String}
        ).with_row_index("code_idx")
        self.age_col = len(vocabulary.static_codes)
        self.since_col = self.age_col + 1
        self.first_window_col = self.since_col + 1
        self.block = int(width.sum())
        self.n_features = self.first_window_col + self.block * len(self.windows)

    def column(self, window: int, code_idx: np.ndarray, agg: int) -> np.ndarray:
        """Column of aggregate `agg` (0 = code count, 1.. = VALUE_AGGS) of codes in a window."""
        return self.first_window_col + window * self.block + self.offset[code_idx] + agg


class _Entries:
    """Accumulates (row, column, value) triplets."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []

    def add(self, rows: np.ndarray, cols: np.ndarray | int, vals: np.ndarray) -> None:
        """Keep the nonzero entries, compactly (int32 indices, float32 values)."""
        vals = np.asarray(vals, dtype=np.float32)
        nonzero = vals != 0
        self.rows.append(rows[nonzero].astype(np.int32))
        self.cols.append(np.broadcast_to(np.asarray(cols), rows.shape)[nonzero].astype(np.int32))
        self.vals.append(vals[nonzero])

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The accumulated (rows, cols, vals)."""
        if not self.rows:
            return np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.float32)
        return np.concatenate(self.rows), np.concatenate(self.cols), np.concatenate(self.vals)


def _shard_entries(events: ShardEvents, rows: pl.DataFrame, layout: _Layout):
    """All nonzero (global row, column, value) entries for the label rows of one shard."""
    subjects = sorted_distinct(rows["subject_id"].to_numpy())
    row_ids = rows["row"].to_numpy()
    row_subject = subject_index(subjects, rows["subject_id"].to_numpy())
    row_t = rows["t"].to_numpy()
    out = _Entries()
    static = rows.select("row", "subject_id").join(events.static, on="subject_id")
    out.add(static["row"].to_numpy(), static["static_idx"].to_numpy(), np.ones(static.height))
    age = age_years(birth_times(events.births, subjects)[row_subject], row_t)
    known = ~np.isnan(age)
    out.add(row_ids[known], layout.age_col, age[known])
    _since_last_entries(events.timed, subjects, row_ids, row_subject, row_t, layout, out)
    _window_entries(events.timed, subjects, row_ids, row_subject, row_t, layout, out)
    return out.arrays()


def _since_last_entries(timed, subjects, row_ids, row_subject, row_t, layout, out) -> None:
    subject = subject_index(subjects, timed["subject_id"].to_numpy())
    times = timed["time"].to_numpy()
    if not sorted_by_subject_time(subject, times):
        order = np.lexsort((times, subject))
        subject, times = subject[order], times[order]
    search = GroupedTimes(subject, times, subjects.shape[0])
    n = search.count_upto(row_subject, row_t)
    seen = n > 0
    last = times[search.starts[row_subject[seen]] + n[seen] - 1]
    out.add(row_ids[seen], layout.since_col, (row_t[seen] - last) / US_PER_HOUR)


@dataclass
class _Groups:
    """In-vocabulary timed events of a shard sorted by (subject, code, time), in numpy.

    Each (subject, code) group gets, at every event, its running value count, sum, sum of
    squares, min and max so far, and the last value so far. Running figures restart per group,
    so no other group's events (nor later ones) can change a group's figures, even by rounding.
    """

    search: GroupedTimes
    code: np.ndarray  # per group: vocabulary index
    first_time: np.ndarray  # per group: time of its first event
    subject_start: np.ndarray  # per subject: its first group
    subject_end: np.ndarray  # per subject: one past its last group
    running: dict[str, np.ndarray]  # per event: the running statistics
    min_source: np.ndarray  # per event: value or +inf, plus one +inf sentinel at the end
    max_source: np.ndarray  # per event: value or -inf, plus one -inf sentinel at the end

    @classmethod
    def build(cls, timed: pl.DataFrame, subjects: np.ndarray) -> _Groups:
        subject, code, time, value = _sorted_coded_events(timed, subjects)
        new_group = np.ones(subject.shape[0], dtype=bool)
        new_group[1:] = (subject[1:] != subject[:-1]) | (code[1:] != code[:-1])
        group = (np.cumsum(new_group) - 1).astype(np.int32)
        del new_group
        n_groups = int(group[-1]) + 1 if group.shape[0] else 0
        search = GroupedTimes(group, time, n_groups)
        first = search.starts[:-1]
        everyone = np.arange(subjects.shape[0])
        valued = ~np.isnan(value)
        narrow = value.astype(np.float32)  # min, max and last of float32 MEDS values are exact
        return cls(
            search=search,
            code=code[first],
            first_time=time[first],
            subject_start=np.searchsorted(subject[first], everyone, side="left"),
            subject_end=np.searchsorted(subject[first], everyone, side="right"),
            running=_running_statistics(group, value, valued, first),
            min_source=np.append(np.where(valued, narrow, np.float32(np.inf)), np.inf),
            max_source=np.append(np.where(valued, narrow, np.float32(-np.inf)), -np.inf),
        )


def _sorted_coded_events(timed: pl.DataFrame, subjects: np.ndarray):
    """(subject position, code index, time, value or NaN) of in-vocabulary events, sorted by
    (subject, code, time); the sort is stable, so same-time events keep their file order."""
    coded = timed.filter(pl.col("code_idx").is_not_null())
    subject = subject_index(subjects, coded["subject_id"].to_numpy()).astype(np.int32)
    code = coded["code_idx"].to_numpy().astype(np.int32)
    time = coded["time"].to_numpy()
    if sorted_by_subject_time(subject, time):  # the usual MEDS shard order: one cheap sort
        order = np.argsort(
            subject.astype(np.int64) * (int(code.max(initial=0)) + 1) + code, kind="stable"
        )
    else:
        order = np.lexsort((time, code, subject))
    value = coded["value"].fill_null(np.nan).to_numpy()[order]
    return subject[order], code[order], time[order], value


def _running_statistics(group, value, valued, first) -> dict[str, np.ndarray]:
    """Per event, the running figures of its group up to and including it."""
    total = np.cumsum(valued, dtype=np.int32)
    count = total - np.repeat(total[first] - valued[first], np.diff(np.append(first, len(total))))
    column = pl.col("value")
    frame = pl.DataFrame(
        [pl.Series("g", group), pl.Series("value", value, nan_to_null=True)]
    ).select(
        column.fill_null(0.0).cum_sum().over("g").alias("v_sum"),
        (column**2).fill_null(0.0).cum_sum().over("g").alias("v_sum_sq"),
        column.fill_null(np.inf).cum_min().over("g").cast(pl.Float32).alias("v_min"),
        column.fill_null(-np.inf).cum_max().over("g").cast(pl.Float32).alias("v_max"),
    )
    # Index of the latest valued event so far; read only where the window holds a value, so
    # it is then always inside the group.
    latest = np.maximum.accumulate(np.where(valued, np.arange(value.shape[0]), 0))
    running = {name: frame[name].to_numpy() for name in frame.columns}
    return running | {"v_count": count, "v_last": value[latest].astype(np.float32)}


def _window_entries(timed, subjects, row_ids, row_subject, row_t, layout, out) -> None:
    groups = _Groups.build(timed, subjects)
    search = groups.search
    # Query ranks per label row (not per pair): the prediction time, then each window's edge.
    edges = [search.rank(row_t)] + [
        None if w.is_full else search.rank(row_t - w.length_us) for w in layout.windows
    ]
    per_row = groups.subject_end[row_subject] - groups.subject_start[row_subject]
    bounds = np.searchsorted(np.cumsum(per_row), np.arange(PAIR_CHUNK, per_row.sum(), PAIR_CHUNK))
    for chunk in np.split(np.arange(row_ids.shape[0]), bounds):
        counts = per_row[chunk]
        pair_row = np.repeat(chunk, counts)
        within = np.arange(pair_row.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
        pair_group = groups.subject_start[row_subject[pair_row]] + within
        seen = groups.first_time[pair_group] <= row_t[pair_row]
        pair_row, pair_group = pair_row[seen], pair_group[seen]
        pair_edges = [None if e is None else e[pair_row] for e in edges]
        _pair_entries(groups, row_ids[pair_row], pair_edges, pair_group, layout, out)


def _pair_entries(groups: _Groups, rid, edges, pair_group, layout: _Layout, out: _Entries) -> None:
    """Entries of (label row, code group) pairs, each group having an event at or before t.

    `edges[0]` holds the query rank of each pair's prediction time, `edges[1 + w]` that of
    window w's lower edge (None for `full`)."""
    start = groups.search.starts[pair_group]
    hi = groups.search.count_upto_rank(pair_group, edges[0])
    code = groups.code[pair_group]
    has_value = layout.has_value[code]
    for w, edge in enumerate(edges[1:]):
        lo = np.zeros_like(hi) if edge is None else groups.search.count_upto_rank(pair_group, edge)
        n = hi - lo
        inside = n > 0
        out.add(rid[inside], layout.column(w, code[inside], 0), n[inside])
        valued = inside & has_value
        _value_entries(
            groups,
            rid[valued],
            start[valued] + lo[valued],
            start[valued] + hi[valued],
            lo[valued] > 0,
            layout.column(w, code[valued], 0),
            out,
        )


def _value_entries(groups: _Groups, rid, begin, end, cut, base_col, out: _Entries) -> None:
    """Value aggregates over events [begin, end) of a group; `cut` marks windows not starting
    at the group's first event (their running figures are differences or scans)."""
    run = groups.running
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
        v_min[scan] = _reduce_windows(np.minimum, groups.min_source, begin[scan], end[scan])
        v_max[scan] = _reduce_windows(np.maximum, groups.max_source, begin[scan], end[scan])
    aggregates = (count, window_sum("v_sum"), window_sum("v_sum_sq"), v_min, v_max)
    aggregates += (run["v_last"][last],)
    for agg, values in enumerate(aggregates, start=1):
        out.add(rid[has], base_col[has] + agg, values[has])


def _reduce_windows(ufunc, source: np.ndarray, begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """`ufunc` over source[begin[i]:end[i]] for each i (source ends with a neutral sentinel)."""
    edges = np.empty(2 * begin.shape[0], dtype=np.int64)
    edges[0::2] = begin
    edges[1::2] = end
    return ufunc.reduceat(source, edges)[0::2]
