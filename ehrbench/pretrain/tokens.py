"""Event streams as tokens: the train-only vocabulary, value bins and time features.

Each timed event becomes one token: its code's index (codes seen at least `min_count` times in
train-split subjects' events; any other code is UNK), a value bin (0 without a numeric value or
without train quantiles for its code, else 1..`value_bins` by the code's train-split quantiles),
the hours since the subject's previous event, and the age in years (from the subject's earliest
`MEDS_BIRTH` event; 0 without one). Every stream starts with a BOS token, so a row without
events still has a position to embed. Static (untimed) events are not tokens.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import polars as pl

from ehrbench.features.shard_events import BIRTH_CODE, events_upto, scan_events
from ehrbench.io import reading_saved, write_text_atomic
from ehrbench.meds import MedsDataset
from ehrbench.meds.validate import reading

VOCABULARY_FILE = "vocabulary.json"
PAD, UNK, BOS = 0, 1, 2
SPECIAL = ("<pad>", "<unk>", "<bos>")
MICROSECONDS_PER_HOUR = 3_600_000_000
HOURS_PER_YEAR = 24 * 365.25
# Token index arrays: numpy arrays or torch tensors (the arithmetic is the same).
Tokens = TypeVar("Tokens")


@dataclass(frozen=True)
class Vocabulary:
    """Token index per code (after the special tokens) and per-code value bin edges."""

    codes: tuple[str, ...]
    value_edges: dict[str, list[float]]
    value_bins: int

    @property
    def size(self) -> int:
        """How many code tokens there are, the special ones included."""
        return len(SPECIAL) + len(self.codes)

    def save(self, folder: Path) -> None:
        """Write `folder/vocabulary.json`."""
        record = {
            "codes": list(self.codes),
            "value_edges": self.value_edges,
            "value_bins": self.value_bins,
        }
        write_text_atomic(json.dumps(record, indent=1) + "\n", folder / VOCABULARY_FILE)

    @classmethod
    def load(cls, folder: Path) -> Vocabulary:
        """Read what `save` wrote."""
        path = folder / VOCABULARY_FILE
        with reading_saved(path, "a pretrained model's vocabulary"):
            record = json.loads(path.read_text(encoding="utf-8"))
            return cls(tuple(record["codes"]), record["value_edges"], int(record["value_bins"]))


def read_events(
    dataset: MedsDataset,
    subjects: pl.Series,
    until: pl.DataFrame | None = None,
    shards: Sequence[Path] | None = None,
) -> pl.DataFrame:
    """The timed events of `subjects` (subject_id, time in us, code, value), sorted by subject
    and time, same-time events in file order. With `until` (subject_id, t), which must name the
    same subjects, only each subject's events at or before its `t` are read. `shards` reads only
    those of the dataset's shards (default: all)."""
    parts = []
    for shard in dataset.shards if shards is None else shards:
        # In file order among same-time events (`events_upto` keeps it), so a window starting
        # inside such a group reads the same tokens from run to run.
        query = (
            scan_events(dataset, shard, subjects)
            if until is None
            else events_upto(dataset, shard, until)
        )
        query = query.filter(pl.col("time").is_not_null())
        with reading(shard):
            parts.append(query.select("subject_id", "time", "code", "value").collect())
    return pl.concat(parts).sort("subject_id", "time", maintain_order=True)


def build_vocabulary(events: pl.DataFrame, min_count: int, value_bins: int) -> Vocabulary:
    """The codes of `events` seen at least `min_count` times (most frequent first, ties by
    name) and, per such code with numeric values, its quantile edges into `value_bins` bins.

    >>> events = pl.DataFrame({"code": ["A", "A", "B", "A"], "value": [1.0, 3.0, None, 2.0]})
    >>> vocabulary = build_vocabulary(events, min_count=2, value_bins=2)
    >>> vocabulary.codes, vocabulary.value_edges
    (('A',), {'A': [2.0]})
    """
    counts = (
        events.group_by("code")
        .agg(pl.len().alias("n"))
        .filter(pl.col("n") >= min_count)
        .sort(["n", "code"], descending=[True, False])
    )
    codes = tuple(counts["code"].to_list())
    quantiles = np.linspace(0, 1, value_bins + 1)[1:-1].tolist()
    valued = (
        events.filter(pl.col("code").is_in(pl.Series(codes, dtype=pl.String).implode()))
        .drop_nulls("value")
        .group_by("code")
        .agg([pl.col("value").quantile(q, interpolation="linear").alias(str(q)) for q in quantiles])
        .sort("code")
    )
    edges = {row[0]: [float(v) for v in row[1:]] for row in valued.iter_rows()}
    return Vocabulary(codes, edges, value_bins)


@dataclass(frozen=True)
class TokenStreams:
    """Every subject's tokens, BOS first, concatenated: subject `subjects[i]` owns
    `[starts[i], starts[i + 1])`. Per token: `code`, `value_bin`, `hours` (since the previous
    event), `age` (years) and `time` (us; the BOS token takes its first event's time)."""

    subjects: np.ndarray
    starts: np.ndarray
    code: np.ndarray
    value_bin: np.ndarray
    hours: np.ndarray
    age: np.ndarray
    time: np.ndarray


def tokenise(events: pl.DataFrame, vocabulary: Vocabulary) -> TokenStreams:
    """The token streams of `events` (as `read_events` returns them)."""
    index = pl.DataFrame(
        {"code": list(vocabulary.codes)}, schema={"code": pl.String}
    ).with_row_index("token", offset=len(SPECIAL))
    coded = events.join(index, on="code", how="left", maintain_order="left")
    births = (
        events.filter(pl.col("code") == BIRTH_CODE).group_by("subject_id").agg(birth=pl.min("time"))
    )
    coded = coded.join(births, on="subject_id", how="left", maintain_order="left")
    subjects, first = np.unique(coded["subject_id"].to_numpy(), return_index=True)
    time = coded["time"].to_numpy()
    previous = np.concatenate([time[:1], time[:-1]])
    previous[first] = time[first]
    hours = (time - previous) / MICROSECONDS_PER_HOUR
    birth = coded["birth"].to_numpy().astype(np.float64)
    # An event before the birth event (or without one) gets age 0: a birth after a row's
    # prediction time must not reach it through the ages of earlier events.
    with np.errstate(invalid="ignore"):
        born = time >= birth
    age = np.where(born, (time - np.nan_to_num(birth)) / MICROSECONDS_PER_HOUR / HOURS_PER_YEAR, 0)
    token = coded["token"].fill_null(UNK).to_numpy().astype(np.int64)
    value_bin = _value_bins(coded, token, vocabulary)
    # One BOS before each subject's first event: np.insert shifts the later positions.
    starts = np.append(first + np.arange(first.size), time.size + first.size)
    return TokenStreams(
        subjects=subjects.astype(np.int64),
        starts=starts,
        code=np.insert(token, first, BOS),
        value_bin=np.insert(value_bin, first, 0),
        hours=np.insert(hours, first, 0.0).astype(np.float32),
        age=np.insert(age, first, 0.0).astype(np.float32),
        time=np.insert(time, first, time[first]),
    )


def _value_bins(coded: pl.DataFrame, token: np.ndarray, vocabulary: Vocabulary) -> np.ndarray:
    """Each event's value bin: 0 without a value or edges for its code, else 1..value_bins."""
    bins = np.zeros(coded.height, dtype=np.int64)
    has_value = coded["value"].is_not_null().to_numpy()
    values = coded["value"].fill_null(0.0).to_numpy()
    for position, code in enumerate(vocabulary.codes, start=len(SPECIAL)):
        edges = vocabulary.value_edges.get(code)
        if edges is None:
            continue
        rows = has_value & (token == position)
        bins[rows] = np.searchsorted(np.asarray(edges), values[rows], side="right") + 1
    return bins


def n_target_classes(vocabulary: Vocabulary, predict_values: bool) -> int:
    """How many classes the next-token head scores (see `target_classes`)."""
    return vocabulary.size * (vocabulary.value_bins + 1 if predict_values else 1)


def target_classes(
    code: Tokens, value_bin: Tokens, value_bins: int, predict_values: bool
) -> Tokens:
    """The class of each token as a prediction target: its code alone, or with
    `predict_values` its (code, value bin) pair, `code * (value_bins + 1) + value_bin`.
    PAD (code 0, bin 0) stays class 0 either way, so the loss can ignore it.

    Predicting the value bin is what makes the states carry a subject's measured levels: on
    data where measurements follow a fixed schedule (vitals every few hours, panels of labs
    drawn together) the next code alone is nearly certain from the schedule, and a network
    trained on it learns the schedule, not the patient.

    >>> target_classes(np.array([0, 3, 4]), np.array([0, 2, 0]), 5, True).tolist()
    [0, 20, 24]
    >>> target_classes(np.array([0, 3, 4]), np.array([0, 2, 0]), 5, False).tolist()
    [0, 3, 4]
    """
    return code * (value_bins + 1) + value_bin if predict_values else code


def gather(streams: TokenStreams, starts: np.ndarray, ends: np.ndarray) -> dict[str, np.ndarray]:
    """The tokens `[starts[i], ends[i])` as row i of padded [n, longest] arrays (PAD after).

    >>> streams = TokenStreams(np.array([7]), np.array([0, 3]), np.array([2, 5, 6]),
    ...     np.zeros(3, int), np.zeros(3, np.float32), np.zeros(3, np.float32), np.zeros(3, int))
    >>> gather(streams, np.array([0, 1]), np.array([3, 2]))["code"].tolist()
    [[2, 5, 6], [5, 0, 0]]
    """
    width = int((ends - starts).max(initial=1))
    index = starts[:, None] + np.arange(width)[None, :]
    valid = index < ends[:, None]
    index = np.where(valid, index, 0)
    return {
        name: np.where(valid, getattr(streams, name)[index], 0)
        for name in ("code", "value_bin", "hours", "age")
    }
