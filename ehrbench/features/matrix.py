"""Stage 4 of tabular featurisation: the sparse matrix, one row per label row.

Columns follow the training-only vocabulary: `static/<code>` per static code, `age/years`,
`time_since_last_event/hours`, then one block per window holding, per code, its count and, for
codes that carry values, the `VALUE_AGGS`. Each shard batch becomes a small CSR block over its
own rows (float32, zeros left out), parked in a temporary file; at the end the label-order
matrix is gathered from that file a piece of rows at a time, into one matrix or straight into
its `.npz` file, so neither a global list of entries nor a second copy of the matrix is ever
held (and, written straight to its file, not even one).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import scipy.sparse as sp

from ehrbench.features.reductions import VALUE_AGGS, SubjectFeatures, WindowAggregates
from ehrbench.features.storage import ArrayPieces, write_csr

# Entries gathered at a time from the spill file: 16 MiB of values or columns, and 32 MiB of
# int64 positions to gather them by. The rows of a piece are whole, so a piece can be longer by
# one row.
PIECE_ENTRIES = 1 << 22


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
    matrix is gathered from it in pieces of rows (blocks' rows interleave in label order), either
    into one matrix (`matrix`) or straight into a `.npz` file (`write`), which never holds the
    matrix whole. Use it as a context manager: leaving it removes that file."""

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
        self._blocks.append(_Block(rows, np.diff(block.indptr), self._spill.tell() // 4))
        block.indices.astype(np.int32, copy=False).tofile(self._spill)
        block.data.tofile(self._spill)

    def matrix(self) -> sp.csr_matrix:
        """The blocks' rows in label order (a row id is its label position), column indices
        sorted."""
        entries = self._entries()
        data, indices = entries.arrays()
        matrix = (data.whole(), indices.whole(), entries.indptr)
        return sp.csr_matrix(matrix, shape=self._shape(entries))

    def write(self, path: str | Path) -> tuple[int, int]:
        """Save the label-order matrix at `path` as `save_csr` would (the same bytes), a piece
        of rows at a time; its shape."""
        entries = self._entries()
        shape = self._shape(entries)
        write_csr(path, shape, *entries.arrays(), entries.indptr)
        return shape

    def _shape(self, entries: _LabelOrder) -> tuple[int, int]:
        return entries.indptr.shape[0] - 1, self.layout.n_features

    def _entries(self) -> _LabelOrder:
        """Where each label row's entries lie in the spill file, with the matrix's `indptr`."""
        self._spill.flush()
        n_rows = sum(block.rows.shape[0] for block in self._blocks)
        lengths = np.zeros(n_rows, dtype=np.int64)
        first = np.zeros(n_rows, dtype=np.int64)
        block_sizes = np.zeros(n_rows, dtype=np.int64)
        for block in self._blocks:
            lengths[block.rows] = block.lengths
            first[block.rows] = block.offset + np.cumsum(block.lengths) - block.lengths
            block_sizes[block.rows] = block.lengths.sum()
        index_dtype = sp.get_index_dtype(maxval=max(int(lengths.sum()), self.layout.n_features))
        indptr = np.zeros(n_rows + 1, dtype=index_dtype)
        np.cumsum(lengths, out=indptr[1:])
        return _LabelOrder(self._spill, indptr, first, block_sizes)


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
    """One shard batch's CSR block: its label rows (sorted), their entry counts, and where (in
    4-byte words) its entries' columns (int32), then their values (float32), row by row, start
    in the spill file."""

    rows: np.ndarray
    lengths: np.ndarray
    offset: int


@dataclass
class _LabelOrder:
    """The spill file read in label order: per label row, the word where its columns start
    (`first`) and how far after them its values lie (`block_sizes`: its block's entry count).

    `arrays` gives the matrix's arrays in pieces of whole rows of about
    `PIECE_ENTRIES` entries, each gathered through a memory map of the file made for that piece
    alone and dropped after it, so that only the pages one piece reads are ever resident."""

    spill: BinaryIO
    indptr: np.ndarray
    first: np.ndarray
    block_sizes: np.ndarray

    @property
    def count(self) -> int:
        return int(self.indptr[-1])

    def arrays(self) -> tuple[ArrayPieces, ArrayPieces]:
        """The matrix's values (float32) and column indices (the index dtype), in pieces."""
        data = ArrayPieces(np.float32, self.count, lambda: self._pieces(values=True))
        indices = ArrayPieces(self.indptr.dtype, self.count, lambda: self._pieces(values=False))
        return data, indices

    def _pieces(self, values: bool) -> Iterator[np.ndarray]:
        """The values' (float32) or the columns' (int32) words, a piece of whole rows each."""
        bounds = np.searchsorted(self.indptr, np.arange(0, self.count, PIECE_ENTRIES), "right")
        cuts = np.unique(np.concatenate([bounds - 1, [len(self.first)]]))
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            lengths = np.diff(self.indptr[lo : hi + 1]).astype(np.int64)
            start = self.first[lo:hi] + (self.block_sizes[lo:hi] if values else 0)
            # Entry i of the piece, in row r, is word start[r] + (i - entries before row r).
            positions = np.repeat(start - (np.cumsum(lengths) - lengths), lengths)
            positions += np.arange(positions.shape[0])
            words = np.memmap(self.spill, dtype=np.int32, mode="r")
            gathered = np.asarray(words[positions])
            del words  # unmapped before the next piece maps the file again
            yield gathered.view(np.float32) if values else gathered


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
