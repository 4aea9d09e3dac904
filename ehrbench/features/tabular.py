"""Windowed tabular features: one sparse row per label row, leak-free by construction.

For each label row and each code of the vocabulary, over each lookback window (see
`ehrbench.features.windows`: `Xd` is `(prediction_time - X, prediction_time]`, `full` the whole
history), the features are the code count and, for codes that carry values in the fitting data,
the value count, sum, sum of squares, min, max and last value. Plus `static/<code>` (1 when the
subject has that null-time row), `age/years` at the prediction time (from MEDS_BIRTH) and
`time_since_last_event/hours` (to the latest timed event at or before the prediction time). A
feature with no event behind it is absent (0 in the sparse matrix); so is a time since the last
event of exactly 0 hours.

The flow, shard batch by shard batch (each batch a task of the current executor,
`ehrbench.scheduler`, its block merged in order): the rows' events (`shard_events`), which of
them fall in which window (`window_spans`), their reductions to feature values (`reductions`)
and the sparse matrix (`matrix`). Events at the same time keep their file order, which decides
the "last" value among them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from ehrbench.features.concepts import featurised_dataset
from ehrbench.features.config import TabularConfig, config_record
from ehrbench.features.matrix import Layout, MatrixBuilder, shard_block
from ehrbench.features.reductions import VALUE_AGGS, subject_features, window_aggregates
from ehrbench.features.rows import fit_mask, fitting_subjects, label_rows, row_frame
from ehrbench.features.shard_events import read_shard_events, rows_by_shard
from ehrbench.features.storage import save_csr
from ehrbench.features.vocabulary import fit_code_statistics, select_codes
from ehrbench.features.window_spans import CodeGroups, window_spans
from ehrbench.features.windows import Window, parse_windows
from ehrbench.io import write_parquet_atomic, write_text_atomic
from ehrbench.meds import MedsDataset
from ehrbench.scheduler import Call, current_executor

PREFIX_FEATURES = ("age/years", "time_since_last_event/hours")


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
            "config": config_record(self.config),
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

    @property
    def shape(self) -> tuple[int, int]:
        """(label rows, features)."""
        return self.matrix.shape

    def save(self, directory: str | Path) -> None:
        """Write features.npz, rows.parquet, feature_names.parquet and vocabulary.json."""
        save_csr(Path(directory) / "features.npz", self.matrix)
        _save_tables(directory, self.rows, self.feature_names, self.vocabulary)

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


def stored_shape(directory: str | Path) -> tuple[int, int]:
    """The shape of the matrix that `TabularFeatures.save` (or `write_tabular`) wrote in
    `directory`, read from its file's small `shape` member alone."""
    with np.load(Path(directory) / "features.npz") as archive:
        rows, columns = (int(n) for n in archive["shape"])
    return rows, columns


def _save_tables(
    directory: str | Path,
    rows: pl.DataFrame,
    feature_names: list[str],
    vocabulary: TabularVocabulary | None,
) -> None:
    """Write what `TabularFeatures.save` writes beside the matrix."""
    directory = Path(directory)
    write_parquet_atomic(rows, directory / "rows.parquet")
    names = pl.DataFrame({"feature": feature_names}, schema={"feature": pl.String})
    write_parquet_atomic(names, directory / "feature_names.parquet")
    if vocabulary is not None:
        write_text_atomic(vocabulary.to_json(), directory / "vocabulary.json")


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
    Under `config.vocabulary == "concepts"` the codes are the dataset's concepts
    (`ehrbench.features.concepts`).
    """
    rows = label_rows(labels)
    dataset = featurised_dataset(dataset, config)
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
    """Compute the features of every label row with a fitted vocabulary, shard by shard.

    The dataset need not be the one the vocabulary was fitted on: under `vocabulary: concepts`
    another dataset's rows get the same columns through that dataset's concept map."""
    with _feature_blocks(dataset, labels, vocabulary) as builder:
        matrix = builder.matrix()
    return TabularFeatures(
        matrix=matrix,
        rows=row_frame(labels),
        feature_names=vocabulary.feature_names(),
        vocabulary=vocabulary,
    )


@contextmanager
def _feature_blocks(
    dataset: MedsDataset, labels: pl.DataFrame, vocabulary: TabularVocabulary
) -> Iterator[MatrixBuilder]:
    """A matrix builder holding every label row's block, shard batch by shard batch (each a
    task of the current executor, merged in order)."""
    dataset = featurised_dataset(dataset, vocabulary.config)
    layout = Layout(
        len(vocabulary.static_codes), vocabulary.value_codes, len(vocabulary.config.windows)
    )
    executor = current_executor()
    columns = executor.hold(_BlockColumns.of(vocabulary, layout))
    calls = (
        Call(_tabular_block, (dataset, shard, shard_rows, columns), shard)
        for shard, shard_rows in rows_by_shard(dataset, label_rows(labels), desc="tabular features")
    )
    with MatrixBuilder(layout) as builder:
        for block_rows, block in executor.ordered_values(calls):
            builder.add(block_rows, block)
        yield builder


@dataclass(frozen=True)
class _BlockColumns:
    """What every shard batch maps its events through, built once per `transform_tabular`
    (the vocabulary's code table, static codes, parsed windows and value flags, the layout)."""

    code_table: pl.DataFrame
    static_codes: tuple[str, ...]
    windows: tuple[Window, ...]
    value_codes: np.ndarray
    layout: Layout

    @classmethod
    def of(cls, vocabulary: TabularVocabulary, layout: Layout) -> _BlockColumns:
        """The columns of `vocabulary` laid out as `layout`."""
        code_table = pl.DataFrame(
            {"code": list(vocabulary.codes)}, schema={"code": pl.String}
        ).with_row_index("code_idx")
        return cls(
            code_table=code_table,
            static_codes=vocabulary.static_codes,
            windows=parse_windows(vocabulary.config.windows),
            value_codes=np.asarray(vocabulary.value_codes, dtype=bool),
            layout=layout,
        )


def _tabular_block(
    dataset: MedsDataset, shard: Path, shard_rows: pl.DataFrame, columns: _BlockColumns
) -> tuple[np.ndarray, sp.csr_matrix]:
    """One shard batch's rows and CSR block (a task of `transform_tabular`)."""
    events = read_shard_events(dataset, shard, shard_rows, columns.code_table, columns.static_codes)
    groups = CodeGroups.build(events)
    spans = window_spans(events, groups, columns.windows)
    aggregates = window_aggregates(groups, spans, columns.value_codes)
    return shard_block(columns.layout, events.row_ids, subject_features(events), aggregates)


def build_tabular(
    dataset: MedsDataset,
    labels: pl.DataFrame,
    config: TabularConfig | None = None,
    fit_split: str | tuple[str, ...] = "train",
) -> TabularFeatures:
    """Fit on the label rows whose subjects are in `fit_split` (e.g. `train` or `train,tuning`)
    and transform every label row.

    >>> from ehrbench.synth.examples import example_inputs
    >>> dataset, labels = example_inputs()  # 30 synthetic subjects, two label rows
    >>> features = build_tabular(dataset, labels, TabularConfig(windows=("30d", "full")))
    >>> features.shape
    (2, 288)
    >>> features.feature_names[:3]
    ['age/years', 'time_since_last_event/hours', 'LAB//220045//bpm/count/30d']
    >>> round(float(features.matrix[0, 0]), 1)  # the first row's age in years
    53.4
    """
    dataset, vocabulary = _fitted(dataset, labels, config or TabularConfig(), fit_split)
    return transform_tabular(dataset, labels, vocabulary)


def write_tabular(
    dataset: MedsDataset,
    labels: pl.DataFrame,
    config: TabularConfig | None,
    fit_split: str | tuple[str, ...],
    directory: str | Path,
) -> tuple[int, int]:
    """`build_tabular(...).save(directory)`, the same files, without ever holding the matrix
    whole (it goes from the shard batches' blocks to `features.npz` a piece of rows at a
    time); the matrix's shape."""
    dataset, vocabulary = _fitted(dataset, labels, config or TabularConfig(), fit_split)
    with _feature_blocks(dataset, labels, vocabulary) as builder:
        shape = builder.write(Path(directory) / "features.npz")
    _save_tables(directory, row_frame(labels), vocabulary.feature_names(), vocabulary)
    return shape


def _fitted(
    dataset: MedsDataset, labels: pl.DataFrame, config: TabularConfig, fit_split
) -> tuple[MedsDataset, TabularVocabulary]:
    """The dataset read through the config's concept map (once: `fit_*` and `transform_*` then
    take it as it is) and the vocabulary fitted on `fit_split`'s label rows."""
    dataset = featurised_dataset(dataset, config)
    subjects = fitting_subjects(dataset, labels, fit_split)
    return dataset, fit_tabular(dataset, labels, subjects, config)
