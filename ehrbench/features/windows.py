"""Lookback windows for tabular features.

A window named `Xd` (any duration: `1d`, `12h`, `1d12h`, `30m`, `2w`, `1 day, 14:20:16`) covers
the half-open interval `(prediction_time - X, prediction_time]`: an event exactly at the
prediction time counts, an event exactly one window length before it does not. `full` covers the
whole history up to and including the prediction time. Months and years are not units, as in the
cohort language; `365d` is a year.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ehrbench.errors import EhrbenchError

FULL = "full"
_US_PER_UNIT = {
    "s": 1_000_000,
    "m": 60 * 1_000_000,
    "h": 3600 * 1_000_000,
    "d": 86400 * 1_000_000,
    "w": 7 * 86400 * 1_000_000,
}
_UNIT_ALIASES = {
    "s": "s",
    "sec": "s",
    "secs": "s",
    "second": "s",
    "seconds": "s",
    "m": "m",
    "min": "m",
    "mins": "m",
    "minute": "m",
    "minutes": "m",
    "h": "h",
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
    "d": "d",
    "day": "d",
    "days": "d",
    "w": "w",
    "wk": "w",
    "week": "w",
    "weeks": "w",
}
_TERM = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_CLOCK = re.compile(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")


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
    """Parse a duration such as `24h`, `1d12h`, `30 minutes` or `1 day, 14:20:16` into microseconds.

    Raises ValueError with a short reason when `text` is not a positive duration.
    """
    rest = text.strip().lower()
    total = 0.0
    clock = _CLOCK.search(rest)
    if clock:
        hours, minutes, seconds = clock.groups()
        total += (int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1_000_000
        rest = rest[: clock.start()] + rest[clock.end() :]
    position = 0
    rest = rest.replace(",", " ")
    for match in _TERM.finditer(rest):
        if rest[position : match.start()].strip():
            raise ValueError(f"unexpected text {rest[position : match.start()].strip()!r}")
        unit = _UNIT_ALIASES.get(match.group(2))
        if unit is None:
            raise ValueError(f"unknown unit {match.group(2)!r}")
        total += float(match.group(1)) * _US_PER_UNIT[unit]
        position = match.end()
    if rest[position:].strip():
        raise ValueError(f"unexpected text {rest[position:].strip()!r}")
    if total <= 0:
        raise ValueError("a window must be a positive duration")
    return round(total)


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
    """Parse window names, rejecting an empty list and duplicates."""
    windows = tuple(parse_window(name) for name in names)
    if not windows:
        raise EhrbenchError("the list of windows is empty: give at least one, e.g. `1d,30d,full`.")
    seen = [w.name for w in windows]
    if len(set(seen)) != len(seen):
        raise EhrbenchError(f"the list of windows {seen} names a window twice.")
    return windows
