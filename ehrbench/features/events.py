"""Shared plumbing for featurisation: label rows, fitting rows, shard reading, time searches.

Times are handled as int64 microseconds since the epoch. Every search answers "how many events
of this group happen at or before this time", the MEDS "up to and including" rule, so an event
after a row's prediction time can never reach that row's features.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ehrbench.errors import EhrbenchError
from ehrbench.meds import MedsDataset

BIRTH_CODE = "MEDS_BIRTH"
US_PER_HOUR = 3600 * 1_000_000
US_PER_YEAR = 365.25 * 86400 * 1_000_000
# Events handled at once: bounds memory (roughly 150 bytes per event at the peak).
BATCH_EVENTS = 300000


def label_rows(labels: pl.DataFrame) -> pl.DataFrame:
    """The (row, subject_id, t) table of a label table: `row` is the label order, `t` in us.

    Raises EhrbenchError for an empty table, missing columns or a null key.
    """
    for name in ("subject_id", "prediction_time"):
        if name not in labels.columns:
            raise EhrbenchError(
                f"the label table has no `{name}` column: featurisation needs `subject_id` and "
                "`prediction_time` (MEDS label schema)."
            )
    if labels.height == 0:
        raise EhrbenchError(
            "the label table is empty: there are no (subject_id, prediction_time) rows to "
            "featurise. Check the cohort that produced it."
        )
    rows = labels.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("row"),
        pl.col("subject_id").cast(pl.Int64),
        pl.col("prediction_time").cast(pl.Datetime("us")).cast(pl.Int64).alias("t"),
    )
    if rows["subject_id"].null_count() or rows["t"].null_count():
        raise EhrbenchError(
            "the label table has null `subject_id` or `prediction_time` values: every label row "
            "needs both."
        )
    return rows


def row_frame(labels: pl.DataFrame) -> pl.DataFrame:
    """The (subject_id, prediction_time) index of a label table, in label order."""
    return labels.select(
        pl.col("subject_id").cast(pl.Int64),
        pl.col("prediction_time").cast(pl.Datetime("us")),
    )


def normalise_splits(fit_split: str | Iterable[str]) -> tuple[str, ...]:
    """Turn `train`, `train,tuning` or `["train", "tuning"]` into a sorted tuple of names."""
    names = fit_split.split(",") if isinstance(fit_split, str) else list(fit_split)
    cleaned = tuple(sorted({name.strip() for name in names if name.strip()}))
    if not cleaned:
        raise EhrbenchError("the fitting split is empty: name one, e.g. `train`.")
    return cleaned


def fitting_subjects(
    dataset: MedsDataset, labels: pl.DataFrame, fit_split: str | Iterable[str]
) -> np.ndarray:
    """The sorted subject ids of the named split(s) of `dataset`.

    Raises EhrbenchError when no label row's subject is among them: the vocabulary and
    statistics would be fitted on nothing.
    """
    splits = normalise_splits(fit_split)
    table = dataset.subject_splits()
    chosen = table.filter(pl.col("split").is_in(list(splits)))["subject_id"].cast(pl.Int64)
    subjects = sorted_distinct(chosen.to_numpy())
    if not np.isin(label_rows(labels)["subject_id"].to_numpy(), subjects).any():
        raise EhrbenchError(
            f"no label row's subject is in the fitting split(s) {list(splits)} of "
            "metadata/subject_splits.parquet: the vocabulary and statistics would be fitted on "
            "nothing. Choose another `--fit-on` split or check the labels' subjects."
        )
    return subjects


def fit_mask(
    rows: pl.DataFrame, fit_rows_mask_or_subjects: np.ndarray | pl.Series | Iterable[int]
) -> np.ndarray:
    """A boolean mask over label rows: either given as one, or rows whose subject is listed."""
    given = fit_rows_mask_or_subjects
    if isinstance(given, pl.Series):
        array = given.to_numpy()
    elif isinstance(given, np.ndarray):
        array = given
    else:
        array = np.asarray(list(given))
    if array.dtype == bool:
        if array.shape != (rows.height,):
            raise EhrbenchError(
                f"the fitting row mask has {array.shape[0]} entries but the label table has "
                f"{rows.height} rows: give one boolean per label row."
            )
        mask = array
    else:
        mask = np.isin(rows["subject_id"].to_numpy(), array.astype(np.int64))
    if not mask.any():
        raise EhrbenchError(
            "no label row falls in the fitting split: the vocabulary and statistics would be "
            "fitted on nothing. Check `--fit-on` against metadata/subject_splits.parquet and "
            "the label table's subjects."
        )
    return mask


def shard_subjects(dataset: MedsDataset) -> list[pl.DataFrame]:
    """For each shard, its subjects and their event counts (reads only `subject_id`)."""
    return [
        dataset.scan(shard)
        .group_by(pl.col("subject_id").cast(pl.Int64))
        .agg(pl.len().alias("n_events"))
        .sort("subject_id")
        .collect()
        for shard in dataset.shards
    ]


def rows_by_shard(
    dataset: MedsDataset, rows: pl.DataFrame, batch_events: int | None = None
) -> Iterator[tuple[Path, pl.DataFrame]]:
    """Yield (shard, label rows of a batch of its subjects); raise if a label subject is in no
    shard. A batch holds subjects with at most about `batch_events` events between them, so a
    large shard is read in several passes and memory stays bounded whatever the shard size."""
    batch_events = batch_events or BATCH_EVENTS
    label_subjects = sorted_distinct(rows["subject_id"].to_numpy())
    covered = np.zeros(label_subjects.shape[0], dtype=bool)
    batches = []
    for shard, counts in zip(dataset.shards, shard_subjects(dataset), strict=True):
        present = counts.filter(pl.col("subject_id").is_in(pl.Series(label_subjects).implode()))
        covered |= np.isin(label_subjects, present["subject_id"].to_numpy())
        batch = present["n_events"].cum_sum().to_numpy() // batch_events
        for number in sorted_distinct(batch):
            batches.append((shard, present["subject_id"].to_numpy()[batch == number]))
    if not covered.all():
        missing = label_subjects[~covered]
        raise EhrbenchError(
            f"{missing.shape[0]} label subject(s) are not in the dataset at {dataset.root} "
            f"(e.g. subject_id {missing[:5].tolist()}): labels must come from the dataset "
            "being featurised."
        )
    for shard, subjects in batches:
        yield shard, rows.filter(pl.col("subject_id").is_in(pl.Series(subjects).implode()))


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


@dataclass
class ShardEvents:
    """One shard's events for a set of subjects, with codes already replaced by indices.

    `timed`: subject_id, time, code_idx (null outside the timed vocabulary), value, plus any
    extra per-code columns of the code table, in file order. `static`: distinct (subject_id,
    static_idx) for static rows whose code is in the static vocabulary. `births`: subject_id and
    the earliest MEDS_BIRTH time.
    """

    timed: pl.DataFrame
    static: pl.DataFrame
    births: pl.DataFrame


def read_shard_events(
    dataset: MedsDataset,
    shard: Path,
    subjects: pl.Series,
    code_table: pl.DataFrame,
    static_table: pl.DataFrame,
) -> ShardEvents:
    """Read a shard once, mapping codes through `code_table` (code, code_idx, ...) and
    `static_table` (code, static_idx); the code strings are dropped as early as possible."""
    events = scan_events(dataset, shard, subjects)
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
    return ShardEvents(*pl.collect_all([timed, static, births]))


@dataclass
class GroupedTimes:
    """Event times sorted by (group, time), answering "how many at or before t in group g".

    `group` holds non-decreasing group ids 0..n_groups-1 and `time` int64 microseconds. Times are
    replaced by their rank among the distinct event times so that (group, rank) packs into one
    sortable int64 key; a query time maps to the number of distinct event times at or before it,
    which preserves every `<=` comparison exactly.
    """

    group: np.ndarray
    time: np.ndarray
    n_groups: int

    def __post_init__(self) -> None:
        self.starts = np.searchsorted(self.group, np.arange(self.n_groups + 1), side="left")
        self._distinct = sorted_distinct(self.time)
        self._base = np.int64(self._distinct.shape[0] + 1)
        rank = np.searchsorted(self._distinct, self.time, side="left") + 1
        self._keys = self.group.astype(np.int64) * self._base + rank

    def rank(self, time: np.ndarray) -> np.ndarray:
        """The query rank of each time: how many distinct event times are at or before it."""
        return np.searchsorted(self._distinct, time, side="right")

    def count_upto_rank(self, group: np.ndarray, rank: np.ndarray) -> np.ndarray:
        """Number of events of `group[i]` at or before the time whose query rank is `rank[i]`."""
        position = np.searchsorted(self._keys, group.astype(np.int64) * self._base + rank, "right")
        return position - self.starts[group]

    def count_upto(self, group: np.ndarray, time: np.ndarray) -> np.ndarray:
        """Number of events of `group[i]` with time <= `time[i]`, for each query i."""
        return self.count_upto_rank(group, self.rank(time))


def sorted_by_subject_time(subject: np.ndarray, time: np.ndarray) -> bool:
    """True when events are already ordered by (subject, time), as MEDS shards usually are."""
    same = subject[1:] == subject[:-1]
    return bool(np.all((subject[1:] > subject[:-1]) | (same & (time[1:] >= time[:-1]))))


def sorted_distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values (sort + dedupe: much faster than hashing for int64 times)."""
    ordered = np.sort(values)
    keep = np.ones(ordered.shape[0], dtype=bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    return ordered[keep]


def subject_index(subjects: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Positions of `ids` in the sorted array `subjects` (all ids must be present)."""
    return np.searchsorted(subjects, ids)


def birth_times(births: pl.DataFrame, subjects: np.ndarray) -> np.ndarray:
    """Birth time (us) per subject of `subjects` from a (subject_id, time) table, NaN if none."""
    out = np.full(subjects.shape[0], np.nan)
    ids = births["subject_id"].to_numpy()
    out[subject_index(subjects, ids)] = births["time"].to_numpy().astype(np.float64)
    return out


def age_years(birth_us: np.ndarray, t_us: np.ndarray) -> np.ndarray:
    """Age in years (365.25-day years) at `t_us`, NaN where the birth time is unknown."""
    return (t_us.astype(np.float64) - birth_us) / US_PER_YEAR
