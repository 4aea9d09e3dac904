"""A stop the user asked for (Ctrl-C, SIGTERM), remembered for the rest of the command.

Python raises `KeyboardInterrupt` wherever the signal lands, and a library running there may
turn it into an error of its own (polars, inside its Rust code, has raised a `TypeError`). The
places that record an error and go on (a failed run, a cohort skipped) call
`raise_if_stopping` first, so that such an error ends the command as the interruption it is,
never as a failure kept in the results.
"""

from __future__ import annotations

import signal
import threading

_STOP = threading.Event()


def _stop(signum: int, frame: object) -> None:
    """Remember the stop, then unwind like Ctrl-C, so temporary files go (SIGTERM too: a
    scheduler's or `kill`'s stop)."""
    _STOP.set()
    raise KeyboardInterrupt


def install() -> None:
    """Handle Ctrl-C and SIGTERM from here on (a command's start: no stop asked for yet)."""
    _STOP.clear()
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)


def raise_if_stopping(exc: BaseException) -> None:
    """Raise `KeyboardInterrupt` (from `exc`) when the user has asked to stop: `exc` is then
    most likely the interruption itself, disguised by the library it landed in.

    >>> raise_if_stopping(ValueError("a real failure"))  # no stop asked for: nothing raised
    """
    if _STOP.is_set():
        raise KeyboardInterrupt from exc
