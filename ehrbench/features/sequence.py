"""Event sequences for sequence models: the last N events at or before each prediction time.

Layout (left-aligned): row i holds its `lengths[i]` most recent events at or before its
prediction time in positions `0 .. lengths[i]-1`, oldest first and the most recent last;
positions from `lengths[i]` on are padding (code 0, value 0, mask False, hours 0). This is the
layout `torch.nn.utils.rnn.pack_padded_sequence` and a transformer's key padding mask expect.

Code indices: 0 = padding, 1 = a code outside the vocabulary, 2.. = `vocabulary[2..]`;
`vocabulary[0]` and `vocabulary[1]` are the names `<pad>` and `<unk>`, so `len(vocabulary)` is the
embedding table size. A value is z-scored with its code's mean and standard deviation over the
fitting rows' history (see `ehrbench.features.vocabulary`); `value_mask` is True exactly where an
in-vocabulary event has a value. Events at the same time keep their file order. Static codes are
a multi-hot vector; age is in years (0 where the subject has no MEDS_BIRTH).

The flow, shard batch by shard batch: the rows' events at or before their prediction times
(`ehrbench.features.shard_events`), then the padded layout above.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ehrbench.features.concepts import featurised_dataset
from ehrbench.features.config import SequenceConfig
from ehrbench.features.reductions import US_PER_HOUR, age_years
from ehrbench.features.rows import fit_mask, fitting_subjects, label_rows, row_frame
from ehrbench.features.shard_events import ShardEvents, read_shard_events, rows_by_shard
from ehrbench.features.storage import write_npz
from ehrbench.features.vocabulary import fit_code_statistics, select_codes, value_moments
from ehrbench.io import write_text_atomic
from ehrbench.meds import MedsDataset

PAD, UNKNOWN = 0, 1
SPECIAL_TOKENS = ("<pad>", "<unk>")
# Label rows gathered at once: bounds the [rows, max_events] index arrays of one step.
ROW_CHUNK = 8192
_ARRAYS = ("codes", "values", "value_mask", "hours_before", "lengths", "static", "age_years")


@dataclass(frozen=True)
class SequenceVocabulary:
    """What the fitting rows taught: codes with their value mean and std, and static codes."""

    config: SequenceConfig
    codes: tuple[str, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]
    static_codes: tuple[str, ...]


@dataclass
class SequenceFeatures:
    """Padded event sequences aligned with the label order (see the module docstring)."""

    codes: np.ndarray  # int32 [n_rows, L]
    values: np.ndarray  # float32 [n_rows, L]
    value_mask: np.ndarray  # bool [n_rows, L]
    hours_before: np.ndarray  # float32 [n_rows, L], >= 0
    lengths: np.ndarray  # int32 [n_rows]
    static: np.ndarray  # float32 [n_rows, n_static]
    age_years: np.ndarray  # float32 [n_rows]
    vocabulary: list[str]
    static_codes: list[str]
    rows: pl.DataFrame  # subject_id, prediction_time

    @property
    def shape(self) -> tuple[int, int]:
        """(label rows, events per row)."""
        return self.codes.shape

    def subset(self, row_indices) -> SequenceFeatures:
        """The rows at `row_indices` (any numpy index), in that order."""
        index = np.asarray(row_indices)
        picked = {name: getattr(self, name)[index] for name in _ARRAYS}
        positions = np.arange(self.rows.height)[index]
        return SequenceFeatures(
            **picked,
            vocabulary=list(self.vocabulary),
            static_codes=list(self.static_codes),
            rows=self.rows[positions],
        )

    def save(self, path: str | Path) -> None:
        """Write `X.npz` + `X.json` given `X.npz`, else sequences.npz/.json in directory `path`."""
        npz_path, json_path = _paths(path)
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        arrays["subject_id"] = self.rows["subject_id"].cast(pl.Int64).to_numpy()
        arrays["prediction_time_us"] = (
            self.rows["prediction_time"].cast(pl.Datetime("us")).cast(pl.Int64).to_numpy()
        )
        write_npz(npz_path, arrays)
        meta = {"vocabulary": self.vocabulary, "static_codes": self.static_codes}
        write_text_atomic(json.dumps(meta, indent=1), json_path)

    @classmethod
    def load(cls, path: str | Path) -> SequenceFeatures:
        """Read what `save` wrote (same path convention)."""
        npz_path, json_path = _paths(path)
        meta = json.loads(Path(json_path).read_text(encoding="utf-8"))
        with np.load(npz_path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in _ARRAYS}
            rows = pl.DataFrame(
                {
                    "subject_id": archive["subject_id"],
                    "prediction_time": archive["prediction_time_us"],
                }
            ).with_columns(pl.col("prediction_time").cast(pl.Datetime("us")))
        return cls(
            **arrays, vocabulary=meta["vocabulary"], static_codes=meta["static_codes"], rows=rows
        )


def _paths(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix == ".npz":
        return path, path.with_suffix(".json")
    return path / "sequences.npz", path / "sequences.json"


def fit_sequences(
    dataset: MedsDataset, labels: pl.DataFrame, fit_rows_mask_or_subjects, config: SequenceConfig
) -> SequenceVocabulary:
    """Fit the code vocabulary, per-code value mean/std and static codes on the fitting rows."""
    rows = label_rows(labels)
    dataset = featurised_dataset(dataset, config)
    stats = fit_code_statistics(dataset, rows, fit_mask(rows, fit_rows_mask_or_subjects))
    timed = value_moments(
        select_codes(stats, static=False, min_count=config.min_count, max_codes=config.max_codes)
    )
    static = select_codes(stats, static=True, min_count=config.min_count, max_codes=None)
    return SequenceVocabulary(
        config=config,
        codes=tuple(timed["code"].to_list()),
        means=tuple(timed["mean"].to_list()),
        stds=tuple(timed["std"].to_list()),
        static_codes=tuple(static["code"].to_list()),
    )


def transform_sequences(
    dataset: MedsDataset, labels: pl.DataFrame, vocabulary: SequenceVocabulary
) -> SequenceFeatures:
    """Build the padded sequences of every label row with a fitted vocabulary (read through the
    dataset's concept map under `vocabulary: concepts`)."""
    rows = label_rows(labels)
    dataset = featurised_dataset(dataset, vocabulary.config)
    n, width = rows.height, vocabulary.config.max_events
    out = SequenceFeatures(
        codes=np.zeros((n, width), np.int32),
        values=np.zeros((n, width), np.float32),
        value_mask=np.zeros((n, width), bool),
        hours_before=np.zeros((n, width), np.float32),
        lengths=np.zeros(n, np.int32),
        static=np.zeros((n, len(vocabulary.static_codes)), np.float32),
        age_years=np.zeros(n, np.float32),
        vocabulary=[*SPECIAL_TOKENS, *vocabulary.codes],
        static_codes=list(vocabulary.static_codes),
        rows=row_frame(labels),
    )
    code_table = pl.DataFrame(
        {
            "code": list(vocabulary.codes),
            "code_idx": np.arange(2, 2 + len(vocabulary.codes), dtype=np.int32),
            "mean": np.asarray(vocabulary.means, dtype=np.float64),
            "std": np.asarray(vocabulary.stds, dtype=np.float64),
        },
        schema={"code": pl.String, "code_idx": pl.Int32, "mean": pl.Float64, "std": pl.Float64},
    )
    for shard, shard_rows in rows_by_shard(dataset, rows, desc="sequence features"):
        _fill_shard(
            read_shard_events(dataset, shard, shard_rows, code_table, vocabulary.static_codes), out
        )
    return out


def build_sequences(
    dataset: MedsDataset,
    labels: pl.DataFrame,
    config: SequenceConfig | None = None,
    fit_split: str | tuple[str, ...] = "train",
) -> SequenceFeatures:
    """Fit on the label rows whose subjects are in `fit_split` and build every row's sequence.

    >>> from ehrbench.synth.examples import example_inputs
    >>> dataset, labels = example_inputs()  # 30 synthetic subjects, two label rows
    >>> sequences = build_sequences(dataset, labels, SequenceConfig(max_events=16))
    >>> sequences.shape, sequences.lengths.tolist()
    ((2, 16), [16, 16])
    """
    config = config or SequenceConfig()
    # Read through the concept map once here; `fit_*` and `transform_*` then take it as it is.
    dataset = featurised_dataset(dataset, config)
    subjects = fitting_subjects(dataset, labels, fit_split)
    vocabulary = fit_sequences(dataset, labels, subjects, config)
    return transform_sequences(dataset, labels, vocabulary)


def _fill_shard(events: ShardEvents, out: SequenceFeatures) -> None:
    """Write the sequences, static codes and ages of the label rows of `events` into `out`."""
    row_ids, row_t = events.row_ids, events.row_t
    out.age_years[row_ids] = np.nan_to_num(age_years(events.birth_us, row_t), nan=0.0)
    pairs = events.static
    out.static[pairs["row"].to_numpy(), pairs["static_idx"].to_numpy().astype(np.int64)] = 1.0
    timed = events.timed.select(
        "time",
        pl.col("code_idx").fill_null(UNKNOWN),
        ((pl.col("value") - pl.col("mean")) / pl.col("std")).alias("z"),
    )
    code = timed["code_idx"].to_numpy()
    z = timed["z"].fill_null(np.nan).to_numpy()
    times = timed["time"].to_numpy()
    if not times.shape[0]:
        return
    width = out.codes.shape[1]
    length = np.minimum(events.history_length, width)
    first = events.history_start + events.history_length - length
    for chunk in np.array_split(np.arange(row_ids.shape[0]), -(-row_ids.shape[0] // ROW_CHUNK)):
        valid = np.arange(width)[None, :] < length[chunk, None]
        index = np.where(valid, first[chunk, None] + np.arange(width)[None, :], 0)
        target = row_ids[chunk]
        has_value = valid & ~np.isnan(z[index])
        out.codes[target] = np.where(valid, code[index], PAD)
        out.values[target] = np.where(has_value, z[index], 0.0)
        out.value_mask[target] = has_value
        hours = (row_t[chunk, None] - times[index]) / US_PER_HOUR
        out.hours_before[target] = np.where(valid, hours, 0.0)
        out.lengths[target] = length[chunk]
