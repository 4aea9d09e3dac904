"""Atomic file output: every file is written to a temporary name and renamed into place.

An interrupted run therefore never leaves a half-written file that a later run could mistake for a
finished one, and a file the user had is replaced only by a complete new one. Several files that
belong together are written as one unit with a manifest that readers check (`file_set`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pickle
import re
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl

from ehrbench.errors import EhrbenchError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it onto `target`.

    The temporary file is removed if the block raises, so nothing partial is left behind.
    """
    target = Path(target)
    with naming(target), _temporary(target) as tmp:
        yield tmp
        os.replace(tmp, target)


def _current_umask() -> int:
    """The process umask (reading it requires setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_parquet_atomic(frame: pl.DataFrame, target: str | os.PathLike) -> None:
    """Write `frame` to `target` as parquet, atomically."""
    with atomic_path(target) as tmp:
        write_parquet(frame, tmp)


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    """`frame.write_parquet(path)`, a write the file system refuses (a full disk) raised as the
    `OSError` it is (polars reports it as a `ComputeError` ending in "(os error N)"), which the
    enclosing write (`atomic_path`, `file_set`) names."""
    try:
        frame.write_parquet(path)
    except pl.exceptions.ComputeError as exc:
        refused = re.search(r"\(os error (\d+)\)", str(exc))
        if refused is None:
            raise
        code = int(refused.group(1))
        raise OSError(code, os.strerror(code)) from exc


def write_text_atomic(text: str, target: str | os.PathLike) -> None:
    """Write `text` to `target` (UTF-8), atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def file_set(targets: Iterable[Path], manifest: Path) -> Iterator[dict[Path, Path]]:
    """Write several files as one unit; yield a temporary path for each target.

    When the block ends, the old manifest is removed, every file renamed into place and the new
    manifest (each file's path from the manifest's folder, and its SHA-256) written last,
    atomically. A kill at any point leaves the old set with its manifest, or files whose manifest
    is missing or does not match them, which `check_file_set` reports: never a mixed old and new
    set that passes for a complete one.
    """
    with naming(manifest.parent), contextlib.ExitStack() as stack:
        temporary = {target: stack.enter_context(_temporary(target)) for target in targets}
        yield temporary
        manifest.unlink(missing_ok=True)
        for target, tmp in temporary.items():
            os.replace(tmp, target)
        # Paths from the manifest's folder: a file written elsewhere (an audit in another
        # folder, perhaps of the same name) keeps an entry of its own.
        digests = {
            os.path.relpath(target, manifest.parent): _sha256(target) for target in temporary
        }
        write_text_atomic(json.dumps({"files": digests}, indent=2, sort_keys=True) + "\n", manifest)


def check_file_set(manifest: Path) -> None:
    """Raise `EhrbenchError` unless the files `manifest` lists are the ones written with it."""
    if not manifest.is_file():
        raise EhrbenchError(
            f"{manifest} is missing: the files beside it were not all written by one command "
            "(an interrupted --overwrite?). Write them again."
        )
    for name, digest in _listed(manifest).items():
        path = manifest.parent / name
        if not path.is_file() or _sha256(path) != digest:
            raise EhrbenchError(
                f"{path} is not the file {manifest} was written with: the set was mixed by an "
                "interrupted write or an edit. Write it again."
            )


def check_listed(manifest: Path, path: Path) -> None:
    """Raise `EhrbenchError` when `manifest` lists `path` with another content: the file was
    replaced or edited after its set was written. The set's other files are not needed."""
    listed = _listed(manifest)
    name = os.path.relpath(path, manifest.parent)
    if name in listed and _sha256(path) != listed[name]:
        raise EhrbenchError(
            f"{path} is not the file {manifest} was written with (an interrupted --overwrite, or "
            "an edit): extract it again; a file edited on purpose needs a name of its own, or "
            "that manifest removed."
        )


def _listed(manifest: Path) -> dict[str, str]:
    """The files `manifest` lists, by path from its folder, with their SHA-256."""
    try:
        listed = json.loads(manifest.read_text(encoding="utf-8"))["files"]
        if not isinstance(listed, dict):
            raise TypeError("`files` is not an object")
    except (ValueError, KeyError, TypeError):
        raise EhrbenchError(
            f"{manifest} is not a manifest ehrbench wrote (a JSON object with `files`): the set "
            "beside it cannot be checked. Write it again."
        ) from None
    return listed


@contextlib.contextmanager
def _temporary(target: Path) -> Iterator[Path]:
    """A temporary path beside `target`, removed unless it was renamed away."""
    with folder_made(target.parent):
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            # mkstemp creates owner-only files; give the output the mode a plain open() would have.
            os.chmod(tmp, 0o666 & ~_current_umask())
            yield tmp
        finally:
            tmp.unlink(missing_ok=True)


# What a refused write raises: a full disk, an exhausted quota, a file over the size limit.
_REFUSED_WRITES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Inside the block, a refused write that names no file (a full disk under an open file
    object, or polars') is raised naming `path`, what the block writes, so the user is told
    where."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno not in _REFUSED_WRITES:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


@contextlib.contextmanager
def folder_made(folder: Path) -> Iterator[Path]:
    """`folder`, made (with its missing parents) for the block; the folders made are removed
    again when the block leaves them empty, so a write that failed or was interrupted, perhaps
    on another file of its set, leaves no empty folders behind."""
    made = [path for path in (folder, *folder.parents) if not path.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
    finally:
        for path in made:  # innermost first; a folder that holds anything stays
            with contextlib.suppress(OSError):
                path.rmdir()


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def remove_stale_temporaries(folder: Path) -> int:
    """Remove the temporary files and folders (`.NAME.XXXX.tmp`) a killed writer left in `folder`.

    Only safe while no other process writes there: call it holding the folder's lock
    (`ehrbench.output_paths.exclusive_folder`). Returns how many were removed.
    """
    stale = list(folder.rglob(".*.tmp"))
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return len(stale)


# What reading a damaged or hand-edited file raises: bad JSON or keys, a broken archive, deflate
# stream or pickle, a table polars cannot decode. Every reader of ehrbench's own files turns
# these into one error naming the file.
DAMAGED_FILE_ERRORS = (
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    EOFError,
    RuntimeError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    zlib.error,
    pl.exceptions.PolarsError,
)


@contextlib.contextmanager
def reading_saved(path: Path, what: str) -> Iterator[None]:
    """Read `path`, a file ehrbench wrote (`what`: "a saved model"), inside this block.

    A damaged or edited file then gives one clear error naming it, not a decoder's exception.
    """
    try:
        yield
    except DAMAGED_FILE_ERRORS as exc:
        raise EhrbenchError(
            f"{path} is not {what} ehrbench can read ({type(exc).__name__}: {exc}): it was "
            "damaged or edited. Write it again."
        ) from None
