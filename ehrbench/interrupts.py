"""A stop the user asked for (Ctrl-C, SIGTERM), remembered for the rest of the command.

Python raises `KeyboardInterrupt` wherever the signal lands, and a library running there may
turn it into an error of its own (polars, inside its Rust code, has raised a `TypeError`). The
places that record an error and go on (a failed run, a cohort skipped) call
`raise_if_stopping` first, and the command line reports any error after a stop as the
interruption it is, never as a failure kept in the results or a bug.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_STOP = threading.Event()
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop(signum: int, frame: object) -> None:
    """Remember the stop, then unwind like Ctrl-C, so temporary files go (SIGTERM too: a
    scheduler's or `kill`'s stop)."""
    _STOP.set()
    raise KeyboardInterrupt


@contextmanager
def handling() -> Iterator[None]:
    """Handle Ctrl-C and SIGTERM during the block (one command); the handlers before it are
    put back after it, and the stop forgotten. A signal the process was started ignoring
    (`nohup`, `cmd &` in a script) stays ignored; off the main thread, which cannot set
    handlers, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {signum: signal.getsignal(signum) for signum in _SIGNALS}
    _STOP.clear()
    for signum, handler in before.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, _stop)
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        _STOP.clear()


@contextmanager
def ctrl_c_ignored() -> Iterator[None]:
    """Ignore Ctrl-C during the block, so that processes started in it ignore it for good (an
    ignored signal stays ignored in a child); the handler before it is put back after. Off the
    main thread, which cannot set handlers, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def stopping() -> bool:
    """Has the user asked this command to stop?"""
    return _STOP.is_set()


def raise_if_stopping(exc: BaseException) -> None:
    """Raise `KeyboardInterrupt` (from `exc`) when the user has asked to stop: `exc` is then
    most likely the interruption itself, disguised by the library it landed in.

    >>> raise_if_stopping(ValueError("a real failure"))  # no stop asked for: nothing raised
    """
    if stopping():
        raise KeyboardInterrupt from exc
