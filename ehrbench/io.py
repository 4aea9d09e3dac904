"""Atomic file output: every file is written to a temporary name and renamed into place.

An interrupted run therefore never leaves a half-written file that a later run could mistake for a
finished one, and a file the user had is replaced only by a complete new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it onto `target`.

    The temporary file is removed if the block raises, so nothing partial is left behind.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates owner-only files; give the output the mode a plain open() would have.
    os.chmod(tmp, 0o666 & ~_current_umask())
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _current_umask() -> int:
    """The process umask (reading it requires setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_parquet_atomic(frame: pl.DataFrame, target: str | os.PathLike) -> None:
    """Write `frame` to `target` as parquet, atomically."""
    with atomic_path(target) as tmp:
        frame.write_parquet(tmp)


def write_text_atomic(text: str, target: str | os.PathLike) -> None:
    """Write `text` to `target` (UTF-8), atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
