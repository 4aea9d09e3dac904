"""Deterministic, atomic `.npz` files.

`numpy.savez` stamps each archive member with the current time, so two runs on the same inputs
would give different bytes; here every member gets a fixed timestamp. The files stay ordinary
`.npz` archives: `numpy.load` and `scipy.sparse.load_npz` read them.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ehrbench.io import atomic_path

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` as a compressed `.npz` at `path`, atomically and byte-reproducibly."""
    with (
        atomic_path(path) as tmp,
        zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arrays[name]), allow_pickle=False)


def save_csr(path: str | Path, matrix: sp.csr_matrix) -> None:
    """Save a CSR matrix in the layout of `scipy.sparse.save_npz` (readable by `load_npz`)."""
    write_npz(
        path,
        {
            "format": np.array("csr"),
            "shape": np.array(matrix.shape),
            "data": matrix.data,
            "indices": matrix.indices,
            "indptr": matrix.indptr,
        },
    )
