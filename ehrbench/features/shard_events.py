"""Stage 1 of featurisation: each shard's events, read once, joined to the label rows they serve.

Label rows are handled a batch of subjects at a time (`rows_by_shard`), so memory stays bounded
whatever the shard size. For a batch, `read_shard_events` reads the shard once, maps codes to
vocabulary indices, sorts the timed events by (subject, time) and tells each label row which of
them it may see: those at or before its prediction time, the MEDS "up to and including" rule.
Every later stage (window spans, reductions, sequences) reads only that range, so an event after
a row's prediction time can never reach that row's features.

Times are int64 microseconds since the epoch. Same-time events keep their file order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ehrbench.errors import EhrbenchError
from ehrbench.logs import progress
from ehrbench.meds import MedsDataset
from ehrbench.meds.validate import reading

BIRTH_CODE = "MEDS_BIRTH"
# Events handled at once: bounds memory (roughly 150 bytes per event at the peak).
BATCH_EVENTS = 300000


def rows_by_shard(
    dataset: MedsDataset, rows: pl.DataFrame, desc: str, batch_events: int | None = None
) -> Iterator[tuple[Path, pl.DataFrame]]:
    """Yield (shard, label rows of a batch of its subjects); raise if a label subject is in no
    shard. A batch holds subjects with at most about `batch_events` events between them, so a
    large shard is read in several passes. A progress bar named `desc` ticks once per shard."""
    batch_events = batch_events or BATCH_EVENTS
    label_subjects = sorted_distinct(rows["subject_id"].to_numpy())
    covered = np.zeros(label_subjects.shape[0], dtype=bool)
    batches: dict[Path, list[np.ndarray]] = {}
    for shard, counts in zip(dataset.shards, _shard_subjects(dataset), strict=True):
        present = counts.filter(pl.col("subject_id").is_in(pl.Series(label_subjects).implode()))
        covered |= np.isin(label_subjects, present["subject_id"].to_numpy())
        batch = present["n_events"].cum_sum().to_numpy() // batch_events
        subjects = present["subject_id"].to_numpy()
        batches[shard] = [subjects[batch == number] for number in sorted_distinct(batch)]
    if not covered.all():
        missing = label_subjects[~covered]
        raise EhrbenchError(
            f"{missing.shape[0]} label subject(s) are not in the dataset at {dataset.root} "
            f"(e.g. subject_id {missing[:5].tolist()}): labels must come from the dataset "
            "being featurised."
        )
    for shard, shard_batches in progress(
        batches.items(), total=len(batches), desc=desc, unit="shard"
    ):
        for subjects in shard_batches:
            yield shard, rows.filter(pl.col("subject_id").is_in(pl.Series(subjects).implode()))


def _shard_subjects(dataset: MedsDataset) -> list[pl.DataFrame]:
    """For each shard, its subjects and their event counts (reads only `subject_id`)."""
    return [
        dataset.collect(
            shard,
            dataset.scan(shard)
            .group_by(pl.col("subject_id").cast(pl.Int64))
            .agg(pl.len().alias("n_events"))
            .sort("subject_id"),
        )
        for shard in dataset.shards
    ]


def scan_events(dataset: MedsDataset, shard: Path, subjects: pl.Series) -> pl.LazyFrame:
    """Events of `subjects` in `shard`, lazily: subject_id, time (int64 us, null if static), code,
    value (float64, NaN turned into null). Rows keep their file order, which breaks ties between
    events at the same time."""
    return (
        dataset.scan(shard)
        .select("subject_id", "time", "code", "numeric_value")
        .filter(pl.col("subject_id").cast(pl.Int64).is_in(subjects.cast(pl.Int64).implode()))
        .select(
            pl.col("subject_id").cast(pl.Int64),
            pl.col("time").cast(pl.Datetime("us")).cast(pl.Int64),
            pl.col("code").cast(pl.String),
            pl.col("numeric_value").cast(pl.Float64).fill_nan(None).alias("value"),
        )
    )


def events_upto(dataset: MedsDataset, shard: Path, rows: pl.DataFrame) -> pl.LazyFrame:
    """The events of the subjects of `rows` (subject_id, t) in `shard` at or before their row's
    time `t`, plus their static (null-time) rows, each joined to its row (lazily), in file
    order per row: an unordered join reordered same-time events now and then."""
    return (
        scan_events(dataset, shard, rows["subject_id"])
        .join(rows.lazy(), on="subject_id", maintain_order="left")
        .filter(pl.col("time").is_null() | (pl.col("time") <= pl.col("t")))
    )


@dataclass
class ShardEvents:
    """A batch of label rows joined to their subjects' events in one shard, codes as indices.

    Per label row of the batch: `row_ids` (its position in the label table), `row_t` (its
    prediction time) and `row_subject` (its subject's position among the batch's `n_subjects`
    sorted subject ids). `timed` holds the subjects' timed events sorted by (subject, time), in
    file order among same-time events: `subject` (position), `time`, `code_idx` (null outside
    the vocabulary), `value`, plus the code table's other columns. Row i may see exactly
    `timed[history_start[i] : history_start[i] + history_length[i]]`, its subject's events at
    or before its prediction time. `static` pairs each row with the static vocabulary index
    (`static_idx`) of its subject's static codes; `birth_us` is each row's subject's earliest
    MEDS_BIRTH time (NaN if none). `distinct_times` holds the sorted distinct times of `timed`.
    """

    row_ids: np.ndarray
    row_t: np.ndarray
    row_subject: np.ndarray
    n_subjects: int
    timed: pl.DataFrame
    history_start: np.ndarray
    history_length: np.ndarray
    static: pl.DataFrame
    birth_us: np.ndarray
    distinct_times: np.ndarray


def read_shard_events(
    dataset: MedsDataset,
    shard: Path,
    rows: pl.DataFrame,
    code_table: pl.DataFrame,
    static_codes: Sequence[str],
) -> ShardEvents:
    """Read the events of the subjects of `rows` (row, subject_id, t) in `shard` once, mapping
    codes through `code_table` (code, code_idx, ...) and the positions in `static_codes`."""
    queries = _coded_events(
        scan_events(dataset, shard, rows["subject_id"]), code_table, static_codes
    )
    with reading(shard):  # a damaged data page names the shard
        timed, static, births = pl.collect_all(queries)
    subjects = sorted_distinct(rows["subject_id"].to_numpy())
    row_subject = np.searchsorted(subjects, rows["subject_id"].to_numpy())
    row_t = rows["t"].to_numpy()
    timed, subject, time = _by_subject_time(
        timed, np.searchsorted(subjects, timed["subject_id"].to_numpy())
    )
    history = GroupedTimes(subject, time, subjects.shape[0])
    return ShardEvents(
        row_ids=rows["row"].to_numpy(),
        row_t=row_t,
        row_subject=row_subject,
        n_subjects=subjects.shape[0],
        timed=timed,
        history_start=history.starts[row_subject],
        history_length=history.count_upto(row_subject, row_t),
        static=rows.join(static, on="subject_id").select("row", "static_idx"),
        birth_us=_birth_times(births, subjects)[row_subject],
        distinct_times=history.distinct,
    )


def _coded_events(
    events: pl.LazyFrame, code_table: pl.DataFrame, static_codes: Sequence[str]
) -> list[pl.LazyFrame]:
    """The timed events with their code table columns, in file order; the distinct (subject_id,
    static_idx) of static rows in the static vocabulary; each subject's earliest MEDS_BIRTH.
    The code strings are dropped as early as possible."""
    static_table = pl.DataFrame(
        {"code": list(static_codes)}, schema={"code": pl.String}
    ).with_row_index("static_idx")
    timed = (
        events.filter(pl.col("time").is_not_null())
        .join(code_table.lazy(), on="code", how="left", maintain_order="left")
        .drop("code")
    )
    static = (
        events.filter(pl.col("time").is_null())
        .join(static_table.lazy(), on="code")
        .select("subject_id", "static_idx")
        .unique()
        .sort("subject_id", "static_idx")
    )
    births = (
        events.filter((pl.col("code") == BIRTH_CODE) & pl.col("time").is_not_null())
        .group_by("subject_id")
        .agg(pl.col("time").min())
    )
    return [timed, static, births]


def _by_subject_time(
    timed: pl.DataFrame, subject: np.ndarray
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """`timed` with subject ids replaced by their positions `subject`, sorted by (subject, time)
    keeping the file order among ties; also returns the sorted subject and time arrays."""
    time = timed["time"].to_numpy()
    if not _sorted_by_subject_time(subject, time):  # MEDS shards usually are: no sort then
        order = np.lexsort((time, subject))  # a stable sort: ties keep their file order
        timed, subject, time = timed[order], subject[order], time[order]
    return timed.drop("subject_id").with_columns(pl.Series("subject", subject)), subject, time


def _sorted_by_subject_time(subject: np.ndarray, time: np.ndarray) -> bool:
    """True when events are already ordered by (subject, time)."""
    same = subject[1:] == subject[:-1]
    return bool(np.all((subject[1:] > subject[:-1]) | (same & (time[1:] >= time[:-1]))))


def _birth_times(births: pl.DataFrame, subjects: np.ndarray) -> np.ndarray:
    """Birth time (us) per subject of `subjects` from a (subject_id, time) table, NaN if none."""
    out = np.full(subjects.shape[0], np.nan)
    out[np.searchsorted(subjects, births["subject_id"].to_numpy())] = (
        births["time"].to_numpy().astype(np.float64)
    )
    return out


@dataclass
class GroupedTimes:
    """Event times sorted by (group, time), answering "how many at or before t in group g".

    `group` holds non-decreasing group ids 0..n_groups-1 and `time` int64 microseconds. Times are
    replaced by their rank among the distinct event times so that (group, rank) packs into one
    sortable int64 key; a query time maps to the number of distinct event times at or before it,
    which preserves every `<=` comparison exactly. `distinct` may be given: any sorted distinct
    times that include every one of `time` rank them just as exactly, and sharing one set saves
    a sort.

    >>> search = GroupedTimes(np.array([0, 0, 1]), np.array([10, 20, 15]), n_groups=2)
    >>> search.count_upto(np.array([0, 0, 1]), np.array([19, 20, 14])).tolist()
    [1, 2, 0]
    """

    group: np.ndarray
    time: np.ndarray
    n_groups: int
    distinct: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.starts = np.searchsorted(self.group, np.arange(self.n_groups + 1), side="left")
        if self.distinct is None:
            self.distinct = sorted_distinct(self.time)
        self._base = np.int64(self.distinct.shape[0] + 1)
        rank = np.searchsorted(self.distinct, self.time, side="left") + 1
        self._keys = self.group.astype(np.int64) * self._base + rank

    def rank(self, time: np.ndarray) -> np.ndarray:
        """The query rank of each time: how many distinct event times are at or before it."""
        return np.searchsorted(self.distinct, time, side="right")

    def count_upto_rank(self, group: np.ndarray, rank: np.ndarray) -> np.ndarray:
        """Number of events of `group[i]` at or before the time whose query rank is `rank[i]`."""
        position = np.searchsorted(self._keys, group.astype(np.int64) * self._base + rank, "right")
        return position - self.starts[group]

    def count_upto(self, group: np.ndarray, time: np.ndarray) -> np.ndarray:
        """Number of events of `group[i]` with time <= `time[i]`, for each query i."""
        return self.count_upto_rank(group, self.rank(time))


def sorted_distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values (sort + dedupe: much faster than hashing for int64 times)."""
    ordered = np.sort(values)
    keep = np.ones(ordered.shape[0], dtype=bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    return ordered[keep]
