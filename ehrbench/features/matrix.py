"""Stage 4 of tabular featurisation: the sparse matrix, one row per label row.

Columns follow the training-only vocabulary: `static/<code>` per static code, `age/years`,
`time_since_last_event/hours`, then one block per window holding, per code, its count and, for
codes that carry values, the `VALUE_AGGS`. Each shard batch becomes a small CSR block over its
own rows (float32, zeros left out), parked in a temporary file; at the end each block is read
back into its rows of the label-order matrix, so neither a global list of entries nor a second
copy of the matrix is ever held.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import scipy.sparse as sp

from ehrbench.features.reductions import VALUE_AGGS, SubjectFeatures, WindowAggregates


class Layout:
    """Column positions: static codes, the age and time-since columns, then one block per window.

    >>> layout = Layout(n_static=1, value_codes=[True, False], n_windows=2)
    >>> layout.n_features, layout.column(1, np.array([1]), 0).tolist()
    (19, [18])
    """

    def __init__(self, n_static: int, value_codes: Sequence[bool], n_windows: int) -> None:
        has_value = np.asarray(value_codes, dtype=bool)
        width = 1 + len(VALUE_AGGS) * has_value.astype(np.int64)
        self.offset = np.concatenate([[0], np.cumsum(width)[:-1]]).astype(np.int64)
        self.age_col = n_static
        self.since_col = self.age_col + 1
        self.first_window_col = self.since_col + 1
        self.block = int(width.sum())
        self.n_features = self.first_window_col + self.block * n_windows

    def column(self, window: int, code_idx: np.ndarray, agg: int) -> np.ndarray:
        """Column of aggregate `agg` (0 = code count, 1.. = VALUE_AGGS) of codes in a window."""
        return self.first_window_col + window * self.block + self.offset[code_idx] + agg


class MatrixBuilder:
    """Collects one CSR block per shard batch and puts their rows in label order.

    The blocks' entries wait in an unnamed temporary file rather than in memory: the label-order
    matrix is filled row by row from blocks whose rows interleave, so it becomes resident long
    before the last block is placed, and blocks held in memory would double the peak. Use it as
    a context manager: leaving it removes that file."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._blocks: list[_Block] = []
        self._spill: BinaryIO | None = None

    def __enter__(self) -> MatrixBuilder:
        self._spill = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__)
        return self

    def __exit__(self, *exc_info) -> None:
        self._spill.close()

    def add(self, rows: np.ndarray, block: sp.csr_matrix) -> None:
        """Add one shard batch's block (`shard_block`) of the label rows `rows` (sorted)."""
        self._blocks.append(_Block(rows, np.diff(block.indptr), self._spill.tell()))
        block.indices.astype(np.int32, copy=False).tofile(self._spill)
        block.data.tofile(self._spill)

    def matrix(self) -> sp.csr_matrix:
        """The blocks' rows in label order (a row id is its label position), column indices
        sorted. The blocks are read back one at a time into their rows."""
        n_rows = sum(block.rows.shape[0] for block in self._blocks)
        lengths = np.zeros(n_rows, dtype=np.int64)
        for block in self._blocks:
            lengths[block.rows] = block.lengths
        index_dtype = sp.get_index_dtype(maxval=max(int(lengths.sum()), self.layout.n_features))
        indptr = np.zeros(n_rows + 1, dtype=index_dtype)
        np.cumsum(lengths, out=indptr[1:])
        data = np.empty(int(indptr[-1]), dtype=np.float32)
        indices = np.empty(int(indptr[-1]), dtype=index_dtype)
        for block in self._blocks:
            block_indices, block_data = block.read(self._spill)
            shift = indptr[block.rows].astype(np.int64) - (np.cumsum(block.lengths) - block.lengths)
            target = np.repeat(shift, block.lengths) + np.arange(block_data.shape[0])
            data[target] = block_data
            indices[target] = block_indices
        self._blocks.clear()
        return sp.csr_matrix((data, indices, indptr), shape=(n_rows, self.layout.n_features))


def shard_block(
    layout: Layout,
    row_ids: np.ndarray,
    subject: SubjectFeatures,
    windows: Iterable[WindowAggregates],
) -> tuple[np.ndarray, sp.csr_matrix]:
    """The CSR block of the label rows `row_ids` (one shard batch) from their reductions: the
    rows sorted, and one block row per row, column indices sorted."""
    out = _Entries()
    out.add(subject.static_rows, subject.static_idx, np.ones(subject.static_rows.shape[0]))
    out.add(subject.age_rows, layout.age_col, subject.age)
    out.add(subject.since_rows, layout.since_col, subject.since_hours)
    for window in windows:
        out.add(window.rows, layout.column(window.window, window.code, 0), window.count)
        base = layout.column(window.window, window.value_code, 0)
        for agg, values in enumerate(window.values, start=1):
            out.add(window.value_rows, base + agg, values)
    rows, cols, vals = out.arrays()
    local_rows = np.sort(row_ids)
    shape = (local_rows.shape[0], layout.n_features)
    local = np.searchsorted(local_rows, rows)
    block = sp.csr_matrix((vals, (local, cols)), shape=shape, dtype=np.float32)
    block.sort_indices()  # summing duplicates sorted them already: this only makes sure
    return local_rows, block


@dataclass
class _Block:
    """One shard batch's CSR block: its label rows (sorted), their entry counts, and where its
    entries' columns (int32) then values (float32), row by row, start in the spill file."""

    rows: np.ndarray
    lengths: np.ndarray
    offset: int

    def read(self, spill: BinaryIO) -> tuple[np.ndarray, np.ndarray]:
        """The block's (columns, values) from `spill`."""
        count = int(self.lengths.sum())
        spill.seek(self.offset)
        return np.fromfile(spill, np.int32, count), np.fromfile(spill, np.float32, count)


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
