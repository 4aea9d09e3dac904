"""Frozen representations: one embedding per label row, computed by an outside model.

A representation file is a parquet with `subject_id` (int64), `prediction_time`
(timestamp[us]) and `embedding` (a fixed-size list of float32; a variable-size list of floats
is read too when every row has the same length), one row per label row of a cohort. This is
how EHRSHOT tests a foundation model (CLMBR, MOTOR): the model embeds each label row once, and
few-shot heads (logistic regression, LightGBM, random forest) are trained on the embeddings.

`read_representation` checks the file and aligns its rows to the label rows; it refuses, naming
the file and the first offending row, wrong columns or types, ragged lengths, nulls, NaN and
infinities, and rows that do not match the label rows one to one. The result is read by the
tabular models through `matrix`, kept dense: an embedding is dense already.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ehrbench.alignment import KEY, match_label_rows
from ehrbench.errors import EhrbenchError
from ehrbench.features.config import RepresentationConfig
from ehrbench.features.rows import row_frame
from ehrbench.features.storage import write_npz
from ehrbench.io import write_parquet_atomic

COLUMNS = (*KEY, "embedding")
# The kind of model that can be a head: it reads `features.matrix`.
HEAD_KIND = "tabular"


@dataclass
class RepresentationFeatures:
    """A dense float32 matrix with one embedding per label row (label order)."""

    matrix: np.ndarray
    rows: pl.DataFrame

    @property
    def shape(self) -> tuple[int, int]:
        """(label rows, embedding size)."""
        return self.matrix.shape

    def save(self, directory: str | Path) -> None:
        """Write embeddings.npz and rows.parquet."""
        directory = Path(directory)
        write_npz(directory / "embeddings.npz", {"matrix": self.matrix})
        write_parquet_atomic(self.rows, directory / "rows.parquet")

    @classmethod
    def load(cls, directory: str | Path) -> RepresentationFeatures:
        """Read what `save` wrote."""
        directory = Path(directory)
        with np.load(directory / "embeddings.npz") as arrays:
            matrix = arrays["matrix"]
        return cls(matrix=matrix, rows=pl.read_parquet(directory / "rows.parquet"))


def _read(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise EhrbenchError(f"representation file {path} does not exist or is not a file.")
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises several kinds for a file that is not parquet
        raise EhrbenchError(
            f"representation file {path} is not a readable parquet file ({exc})."
        ) from exc
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise EhrbenchError(
            f"representation file {path}: missing column(s) {missing}; expected `subject_id` "
            "(int64), `prediction_time` (timestamp[us]) and `embedding` (fixed-size list of "
            f"float32); its columns are {frame.columns}."
        )
    return frame


def _embedding_values(frame: pl.DataFrame, source: str) -> tuple[pl.Series, int]:
    """The embeddings flattened row by row, and their common length."""
    column = frame["embedding"]
    dtype = column.dtype
    if not isinstance(dtype, pl.Array | pl.List) or not dtype.inner.is_numeric():
        raise EhrbenchError(
            f"{source}: column `embedding` is {dtype}, expected a fixed-size list of float32."
        )
    nulls = column.is_null()
    if nulls.any():
        raise EhrbenchError(
            f"{source}: {int(nulls.sum())} row(s) have a null `embedding`; the first is row "
            f"{int(nulls.arg_true()[0])} (rows count from 0)."
        )
    lengths = column.arr.len() if isinstance(dtype, pl.Array) else column.list.len()
    ragged = lengths != lengths[0]
    if ragged.any():
        first = int(ragged.arg_true()[0])
        raise EhrbenchError(
            f"{source}: embeddings differ in length: row 0 has {lengths[0]} values but row "
            f"{first} has {lengths[first]} ({int(ragged.sum())} row(s) differ; rows count from "
            "0). Every embedding needs the same length."
        )
    if lengths[0] == 0:
        raise EhrbenchError(f"{source}: the embeddings are empty (length 0).")
    values = column.arr.explode() if isinstance(dtype, pl.Array) else column.list.explode()
    return values, int(lengths[0])


def _matrix(frame: pl.DataFrame, source: str) -> np.ndarray:
    """The embeddings as a float32 [rows, size] matrix; refuses null, NaN and infinite values."""
    values, size = _embedding_values(frame, source)
    matrix = values.cast(pl.Float32).to_numpy().reshape(frame.height, size)
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise EhrbenchError(
            f"{source}: {int(bad.sum())} embedding(s) hold NaN, infinite or null values (or "
            f"values too large for float32); the first is row {row} (rows count from 0)."
        )
    return np.ascontiguousarray(matrix, dtype=np.float32)


def read_representation(path: str | Path, labels: pl.DataFrame) -> RepresentationFeatures:
    """The embeddings of `path` for every row of `labels`, in label order.

    Raises `EhrbenchError` naming the file and the first offending row when the file is not
    one valid embedding per label row.

    >>> import tempfile
    >>> from datetime import datetime
    >>> labels = pl.DataFrame({"subject_id": [1, 2], "prediction_time": [datetime(2020, 1, 1)] * 2})
    >>> embeddings = labels.reverse().with_columns(
    ...     pl.Series("embedding", [[2.0, 0.5], [1.0, 0.5]], dtype=pl.Array(pl.Float32, 2)))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     embeddings.write_parquet(f"{folder}/clmbr.parquet")
    ...     features = read_representation(f"{folder}/clmbr.parquet", labels)
    >>> features.matrix.tolist(), features.shape
    ([[1.0, 0.5], [2.0, 0.5]], (2, 2))
    """
    path = Path(path)
    source = f"representation file {path}"
    frame = _read(path)
    order = match_label_rows(frame, labels, source, "embedding")
    matrix = _matrix(frame, source)
    return RepresentationFeatures(matrix=matrix[order], rows=row_frame(labels))


def build_representation(
    dataset: Any, labels: pl.DataFrame, config: RepresentationConfig, fit_split: Any = "train"
) -> RepresentationFeatures:
    """The `representation` kind's builder: read `config.file` for `labels`.

    A frozen representation was fitted elsewhere, so `dataset` and `fit_split` are not used.
    """
    if config.file is None:
        raise EhrbenchError("representation features need a file (`file=PATH`).")
    return read_representation(config.file, labels)


def check_head(model: str, model_kind: str, where: str) -> None:
    """Raise `EhrbenchError` unless a model of kind `model_kind` can be a head on embeddings."""
    if model_kind != HEAD_KIND:
        raise EhrbenchError(
            f"{where}: `{model}` reads {model_kind} features, so it cannot be trained on a "
            f"frozen representation; a head must be a model that reads {HEAD_KIND} features "
            "(logreg, lightgbm, random_forest)."
        )
