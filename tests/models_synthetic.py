"""Small learnable feature sets for the model tests, shaped like ehrbench.features outputs.

The dataclasses mirror the contracts of `TabularFeatures` and `SequenceFeatures` so the model
tests do not depend on the feature builders.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import scipy.sparse as sp


@dataclass(frozen=True)
class TabularFeatures:
    matrix: sp.csr_matrix
    rows: pl.DataFrame
    feature_names: list[str]


@dataclass(frozen=True)
class SequenceFeatures:
    codes: np.ndarray
    values: np.ndarray
    value_mask: np.ndarray
    hours_before: np.ndarray
    lengths: np.ndarray
    static: np.ndarray
    age_years: np.ndarray
    vocabulary: list[str]
    static_codes: list[str]
    rows: pl.DataFrame

    def subset(self, row_indices: np.ndarray) -> SequenceFeatures:
        idx = np.asarray(row_indices, dtype=np.int64)
        arrays = {
            f.name: getattr(self, f.name)[idx]
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), np.ndarray)
        }
        return dataclasses.replace(self, rows=self.rows[idx], **arrays)


def label_rows(n: int, first_subject: int = 1) -> pl.DataFrame:
    """(subject_id, prediction_time) for `n` subjects, one row each."""
    start = datetime(2020, 1, 1)
    return pl.DataFrame(
        {
            "subject_id": np.arange(first_subject, first_subject + n, dtype=np.int64),
            "prediction_time": [start + timedelta(hours=int(i)) for i in range(n)],
        }
    ).with_columns(pl.col("prediction_time").cast(pl.Datetime("us")))


def tabular(n: int, seed: int, n_features: int = 40) -> tuple[TabularFeatures, np.ndarray]:
    """Sparse count features; the label depends on features 0, 1 and 2."""
    rng = np.random.default_rng(seed)
    dense = rng.poisson(0.6, size=(n, n_features)).astype(np.float32)
    dense[rng.random((n, n_features)) < 0.5] = 0.0
    logit = 1.8 * dense[:, 0] - 1.8 * dense[:, 1] + 1.2 * (dense[:, 2] > 0) - 0.5
    y = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    names = [f"code{j}" for j in range(n_features)]
    return TabularFeatures(sp.csr_matrix(dense), label_rows(n), names), y


def sequence(
    n: int, seed: int, length: int = 24, vocab: int = 20
) -> tuple[SequenceFeatures, np.ndarray]:
    """Events newest last, right-padded; the label depends on code 5 and the value of code 3."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, length + 1, size=n).astype(np.int32)
    codes = rng.integers(2, vocab + 2, size=(n, length)).astype(np.int32)
    values = rng.normal(size=(n, length)).astype(np.float32)
    value_mask = codes == 3
    hours = np.sort(rng.exponential(200.0, size=(n, length)).astype(np.float32), axis=1)[:, ::-1]
    padding = np.arange(length)[None, :] >= lengths[:, None]
    codes[padding] = 0
    values[padding | ~value_mask] = 0.0
    value_mask[padding] = False
    hours[padding] = 0.0
    has_5 = (codes == 5).any(axis=1)
    high_3 = (values * value_mask).max(axis=1) > 1.0
    static = np.zeros((n, 2), dtype=np.float32)
    static[np.arange(n), rng.integers(0, 2, size=n)] = 1.0
    age = rng.uniform(20, 90, size=n).astype(np.float32)
    logit = 4.0 * has_5 + 2.0 * high_3 + 0.03 * (age - 55) - 2.5
    y = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    features = SequenceFeatures(
        codes=codes,
        values=values,
        value_mask=value_mask,
        hours_before=np.ascontiguousarray(hours),
        lengths=lengths,
        static=static,
        age_years=age,
        vocabulary=["<pad>", "<unk>"] + [f"code{j}" for j in range(vocab)],
        static_codes=["GENDER//F", "GENDER//M"],
        rows=label_rows(n),
    )
    return features, y


def one_per_class(y: np.ndarray) -> np.ndarray:
    """Indices of the first positive and the first negative row: a k=1 set."""
    return np.array([np.flatnonzero(y)[0], np.flatnonzero(~y)[0]])
