"""Deterministic, atomic `.npz` files.

`numpy.savez` stamps each archive member with the current time, so two runs on the same inputs
would give different bytes; here every member gets a fixed timestamp. The files stay ordinary
`.npz` archives: `numpy.load` and `scipy.sparse.load_npz` read them.

Members are deflated at level 1, not zlib's default 6: compressing was about a quarter of
tabular featurisation time at level 6, and level 1 writes the 100,000-subject feature matrix
three times faster for a file a quarter larger; what numpy reads back is the same
(benchmarks/results/storage.md).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ehrbench.io import atomic_path

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_DEFLATE_LEVEL = 1


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
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
