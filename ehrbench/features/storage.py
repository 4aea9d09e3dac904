"""Deterministic, atomic `.npz` files.

`numpy.savez` stamps each archive member with the current time, so two runs on the same inputs
would give different bytes; here every member gets a fixed timestamp. The files stay ordinary
`.npz` archives: `numpy.load` and `scipy.sparse.load_npz` read them.

Members are deflated at level 1, not zlib's default 6: compressing was about a quarter of
tabular featurisation time at level 6, and level 1 writes the 100,000-subject feature matrix
three times faster for a file a quarter larger; what numpy reads back is the same
(benchmarks/results/storage.md).

A member can also be written piece by piece (`ArrayPieces`), so an array too large to hold is
never whole in memory; the file's bytes are the same as for the whole array, as the compressor
is fed the same blocks.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import scipy.sparse as sp

from ehrbench.io import atomic_path

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_DEFLATE_LEVEL = 1
# `numpy.lib.format.write_array` writes an array to a stream that is not a file (a zip member) in
# blocks of this many bytes; pieces are written in the same blocks.
_WRITE_BLOCK_BYTES = 16 * 1024**2


@dataclass(frozen=True)
class ArrayPieces:
    """A one-dimensional array given piece by piece: its dtype, its length, and a function
    yielding its pieces in order (1-D arrays whose lengths add up to `length`)."""

    dtype: np.dtype
    length: int
    pieces: Callable[[], Iterable[np.ndarray]]

    def checked(self) -> Iterator[np.ndarray]:
        """The pieces as contiguous arrays of `dtype`; raises ValueError once their lengths
        cannot add up to `length`."""
        given = 0
        for piece in self.pieces():
            piece = np.ascontiguousarray(piece, dtype=self.dtype)
            given += piece.shape[0]
            if given > self.length:
                break
            yield piece
        if given != self.length:
            raise ValueError(f"pieces of {given} items given for an array of {self.length}")

    def whole(self) -> np.ndarray:
        """The array, each piece copied into it as it comes (pieces are never all held)."""
        array = np.empty(self.length, dtype=self.dtype)
        start = 0
        for piece in self.checked():
            array[start : start + piece.shape[0]] = piece
            start += piece.shape[0]
        return array


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray | ArrayPieces]) -> None:
    """Write `arrays` as a compressed `.npz` at `path`, atomically and byte-reproducibly.

    >>> import tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = Path(folder.name) / "a.npz"
    >>> write_npz(path, {"x": np.arange(3)})
    >>> first = path.read_bytes()
    >>> write_npz(path, {"x": np.arange(3)})
    >>> path.read_bytes() == first, np.load(path)["x"].tolist()
    (True, [0, 1, 2])
    >>> folder.cleanup()
    """
    with (
        atomic_path(path) as tmp,
        zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            # `ZipFile.open` takes the level from the ZipInfo only, where Python 3.11 (the
            # version pyproject pins) names it `_compresslevel`.
            info._compresslevel = _DEFLATE_LEVEL
            with archive.open(info, "w", force_zip64=True) as member:
                _write_member(member, arrays[name])


def _write_member(member: BinaryIO, array: np.ndarray | ArrayPieces) -> None:
    """One `.npy` member: a whole array, or `ArrayPieces` as `write_array` would write the whole
    array: its header, then its items in blocks of `_WRITE_BLOCK_BYTES`, whatever the pieces'
    lengths, so the compressor is fed exactly the same calls (with any deflate library)."""
    if not isinstance(array, ArrayPieces):
        np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
        return
    dtype = np.dtype(array.dtype)
    header = {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": (int(array.length),),
    }
    np.lib.format.write_array_header_1_0(member, header)
    for block in _in_blocks(array.checked(), max(_WRITE_BLOCK_BYTES // dtype.itemsize, 1)):
        member.write(block)


def _in_blocks(pieces: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """The items of `pieces`, in order, in arrays of `size` items (the last one shorter).

    >>> [block.tolist() for block in _in_blocks([np.arange(3), np.arange(4)], 2)]
    [[0, 1], [2, 0], [1, 2], [3]]
    """
    held, count = [], 0
    for piece in pieces:
        while piece.shape[0]:
            taken = piece[: size - count]
            held.append(taken)
            count += taken.shape[0]
            piece = piece[taken.shape[0] :]
            if count == size:
                yield np.concatenate(held)
                held, count = [], 0
    if held:
        yield np.concatenate(held)


def save_csr(path: str | Path, matrix: sp.csr_matrix) -> None:
    """Save a CSR matrix in the layout of `scipy.sparse.save_npz` (readable by `load_npz`)."""
    write_csr(path, matrix.shape, matrix.data, matrix.indices, matrix.indptr)


def write_csr(
    path: str | Path,
    shape: tuple[int, int],
    data: np.ndarray | ArrayPieces,
    indices: np.ndarray | ArrayPieces,
    indptr: np.ndarray,
) -> None:
    """Save a CSR matrix given by its arrays (`data` and `indices` possibly in pieces) in the
    layout of `scipy.sparse.save_npz`."""
    members = {"format": np.array("csr"), "shape": np.array(shape), "indptr": indptr}
    write_npz(path, {**members, "data": data, "indices": indices})
