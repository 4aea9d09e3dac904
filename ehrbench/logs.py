"""Messages and progress bars, the same in every command.

Messages go through the standard `logging` module under the `ehrbench` logger (modules use
`logging.getLogger(__name__)`); the command line sets the level with `--quiet` (warnings and
errors only) or `--verbose` (details too). Long work shows a `tqdm` progress bar on stderr, which
`--quiet` turns off; stdout stays for results.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
ROOT = "ehrbench"


class _Format(logging.Formatter):
    """`message` for information, `warning: message` and `error: message` above it."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {text}"
        return text


def configure(verbosity: int = 0) -> None:
    """Send the `ehrbench` logger's messages to stderr: -1 quiet, 0 normal, 1 verbose."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger(ROOT)
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def progress(items: Iterable[T], *, total: int | None = None, desc: str, unit: str) -> tqdm:
    """`items` wrapped in a progress bar on stderr (done / total, rate, time left).

    The bar is hidden when messages are quieted (`--quiet`) or not shown at all.
    """
    shown = logging.getLogger(ROOT).isEnabledFor(logging.INFO)
    return tqdm(items, total=total, desc=desc, unit=unit, file=sys.stderr, disable=not shown)
