"""Lookback windows for tabular features.

A window named `Xd` (any duration: `1d`, `12h`, `1d12h`, `30m`, `2w`, `1 day, 14:20:16`) covers
the half-open interval `(prediction_time - X, prediction_time]`: an event exactly at the
prediction time counts, an event exactly one window length before it does not. `full` covers the
whole history up to and including the prediction time. Durations are spelled as in the cohort
language (one parser, `ehrbench.durations`): months and years are not units; `365d` is a year.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ehrbench.durations import parse_duration
from ehrbench.errors import EhrbenchError

FULL = "full"


@dataclass(frozen=True)
class Window:
    """A named lookback window; `length_us` is None for `full` (the whole history)."""

    name: str
    length_us: int | None

    @property
    def is_full(self) -> bool:
        """True for the whole-history window."""
        return self.length_us is None


def parse_duration_us(text: str) -> int:
    """A positive duration (`24h`, `1d12h`, `30 minutes`, `1 day, 14:20:16`) in microseconds.

    The spellings are the cohort language's (`ehrbench.durations`). Raises ValueError with a
    short reason when `text` is not a positive duration.

    >>> parse_duration_us("1d12h") == 36 * 3600 * 1_000_000
    True
    """
    try:
        delta = parse_duration(text)
    except EhrbenchError as exc:
        raise ValueError(str(exc)) from None
    if delta <= dt.timedelta(0):
        raise ValueError("a window must be a positive duration")
    return delta // dt.timedelta(microseconds=1)


def parse_window(text: str) -> Window:
    """Parse one window name (`full` or a duration); raise EhrbenchError if it is not one."""
    name = text.strip()
    if name.lower() == FULL:
        return Window(FULL, None)
    try:
        return Window(name, parse_duration_us(name))
    except ValueError as exc:
        raise EhrbenchError(
            f"window {text!r} is not a lookback window ({exc}): expected `full` or a duration "
            "such as `1d`, `12h`, `30d`, `1d12h` or `2w` (units s, m = minutes, h, d, w)."
        ) from exc


def parse_windows(names: tuple[str, ...] | list[str]) -> tuple[Window, ...]:
    """Parse window names, rejecting an empty list and duplicates.

    >>> parse_windows("30d")
    Traceback (most recent call last):
    ehrbench.errors.EhrbenchError: windows must be a list of names, e.g. [1d, full]; got '30d'.
    """
    if isinstance(names, str) or not all(isinstance(name, str) for name in names):
        raise EhrbenchError(f"windows must be a list of names, e.g. [1d, full]; got {names!r}.")
    windows = tuple(parse_window(name) for name in names)
    if not windows:
        raise EhrbenchError("the list of windows is empty: give at least one, e.g. `1d,30d,full`.")
    seen = [w.name for w in windows]
    if len(set(seen)) != len(seen):
        raise EhrbenchError(f"the list of windows {seen} names a window twice.")
    return windows
