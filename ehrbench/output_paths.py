"""Where a command may write, checked before any work is done.

Every writer follows the same rules, so that a long computation never ends in a failed write and
nothing a user had is lost:

- an output path must be writable: not empty, not a folder where a file goes (or a file where a
  folder goes), no file among its parent folders, a writable nearest existing folder, a name the
  file system can encode (`check_writable`);
- an output never lies inside a MEDS dataset's `data/` or `metadata/` folder, whether or not the
  command reads that dataset (a file added there changes or breaks it: `check_writable`);
- an output is never an input, nor inside an input folder, and two outputs of one command are
  never the same file (`check_not_inputs`, `check_distinct`);
- an existing output is replaced only when the user asked for it (`refuse_existing`);
- one command at a time writes into a folder that commands resume into (`exclusive_folder`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from ehrbench.errors import EhrbenchError
from ehrbench.io import folder_made


def check_writable(path: str | os.PathLike, option: str, *, folder: bool = False) -> Path:
    """Return `path` if a `option` output (a file, or a folder with `folder`) can be written there.

    >>> check_writable("/tmp/labels.parquet", "--out")
    PosixPath('/tmp/labels.parquet')
    >>> check_writable("", "--out")
    Traceback (most recent call last):
    ehrbench.errors.EhrbenchError: --out is empty: expected a path to write to.
    """
    text = os.fspath(path)
    if not text.strip():
        raise EhrbenchError(f"{option} is empty: expected a path to write to.")
    _check_encodable(text, option)
    target = Path(text)
    if not folder and (target.name in ("", ".", "..") or target.is_dir()):
        raise EhrbenchError(f"{option} {text} is a folder: expected the path of a file to write.")
    if folder and target.exists() and not target.is_dir():
        raise EhrbenchError(f"{option} {text} is a file: expected a folder to write into.")
    existing = _nearest_existing(target.absolute().parent)
    if not existing.is_dir():
        raise EhrbenchError(
            f"{option} {text} cannot be written: {existing} is a file, not a folder."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise EhrbenchError(
            f"{option} {text} cannot be written: the folder {existing} is not writable."
        )
    _check_outside_datasets(target, option, text)
    return target


def _check_outside_datasets(target: Path, option: str, text: str) -> None:
    """Refuse a path inside the `data/` or `metadata/` folder of a MEDS dataset (a folder that
    holds both), so no command adds to a dataset, even one it does not read."""
    path = target.resolve()
    for root in path.parents:
        part = path.relative_to(root).parts[0]
        if part in ("data", "metadata") and all((root / n).is_dir() for n in ("data", "metadata")):
            raise EhrbenchError(
                f"{option} {text} is inside the dataset's {part} folder ({root / part}): an "
                "output never adds to a MEDS dataset; choose a path outside it."
            )


def check_not_inputs(outputs: Mapping[str, Path], inputs: Mapping[str, Path]) -> None:
    """Refuse an output that is an input file or lies inside an input folder.

    `outputs` and `inputs` map what each path is (`--out`, `the dataset`) to the path.
    """
    for option, output in outputs.items():
        resolved = output.resolve()
        for what, source in inputs.items():
            inside = source.is_dir() and resolved.is_relative_to(source.resolve())
            if resolved == source.resolve() or inside:
                raise EhrbenchError(
                    f"{option} {output} is {'inside ' if inside else ''}{what} ({source}): an "
                    "output never replaces or adds to an input; choose a path outside it."
                )


def dataset_inputs(root: str | os.PathLike) -> dict[str, Path]:
    """The parts of a MEDS dataset folder that outputs stay out of: its shards and metadata.

    Other files may sit beside them (label tables, for instance), as MEDS tools allow.
    """
    root = Path(root)
    return {
        "the dataset's data folder": root / "data",
        "the dataset's metadata folder": root / "metadata",
    }


def check_distinct(outputs: Mapping[str, Path]) -> None:
    """Refuse two outputs of one command that are the same file (one would overwrite the other),
    or one inside the other (a file cannot also be the folder of another output)."""
    seen: dict[Path, str] = {}
    for option, path in outputs.items():
        resolved = path.resolve()
        if resolved in seen:
            raise EhrbenchError(
                f"{option} and {seen[resolved]} are the same file ({path}): each output needs "
                "its own path."
            )
        for other, other_option in seen.items():
            if resolved.is_relative_to(other) or other.is_relative_to(resolved):
                inner, outer = (option, resolved), (other_option, other)
                if other.is_relative_to(resolved):
                    inner, outer = outer, inner
                raise EhrbenchError(
                    f"{inner[0]} {inner[1]} lies inside {outer[0]} {outer[1]}: each output is a "
                    "file of its own, never the folder of another."
                )
        seen[resolved] = option


def refuse_existing(paths: Iterable[str | os.PathLike], remedy: str) -> None:
    """The one "nothing you have is overwritten" rule of every writer.

    Raise `EhrbenchError` when any of `paths` exists as a file or as a folder that is not empty
    (an empty folder holds nothing to lose). `remedy` ends the message: what the user can do, e.g.
    "choose another --out, or pass --overwrite to replace them".

    >>> refuse_existing(["/no/such/file"], "choose another --out")
    """
    taken = [str(p) for p in map(Path, paths) if p.exists() and not _empty_folder(p)]
    if taken:
        raise EhrbenchError(
            f"{', '.join(taken)} already exist(s) and would be overwritten: refusing to replace "
            f"{'it' if len(taken) == 1 else 'them'}; {remedy}."
        )


@contextlib.contextmanager
def exclusive_folder(folder: Path, command: str) -> Iterator[None]:
    """Hold the lock of `folder` while the block runs; refuse if another process holds it.

    The lock is an advisory `flock` on `folder/.lock`, released by the operating system when the
    process ends however it ends, so a killed run never leaves a stale lock. The file says who
    holds it, for the message a second process gets. A block that ends with nothing written
    leaves no trace: the folders this call created are removed again if they hold only the lock.
    """
    with folder_made(folder), _held_lock(folder, command):
        try:
            yield
        finally:
            _remove_if_only_lock(folder)


@contextlib.contextmanager
def _held_lock(folder: Path, command: str) -> Iterator[None]:
    with open(folder / ".lock", "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise EhrbenchError(
                f"{folder} is in use by {holder}: two runs into one folder would compute "
                "everything twice. Wait for it to finish (a rerun then resumes), or choose "
                "another output folder."
            ) from None
        handle.seek(0)
        handle.truncate()
        started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        who = {"command": command, "pid": os.getpid(), "host": socket.gethostname()}
        handle.write(f"{json.dumps({**who, 'since': started})}\n")
        handle.flush()
        yield


def _remove_if_only_lock(folder: Path) -> None:
    """Remove the lock of `folder` when it is all the folder holds (a command that failed before
    writing anything), so that `folder_made` can remove the folder too."""
    if folder.is_dir() and [p.name for p in folder.iterdir()] == [".lock"]:
        (folder / ".lock").unlink()


def _empty_folder(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _nearest_existing(folder: Path) -> Path:
    """`folder` or its closest ancestor that exists (as a file or a folder)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _check_encodable(text: str, option: str) -> None:
    """Refuse a path the file system cannot name (undecodable bytes from the command line)."""
    try:
        os.fsencode(text).decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise EhrbenchError(
            f"{option} {text!r} holds bytes that are not valid UTF-8: choose a plain path."
        ) from None
