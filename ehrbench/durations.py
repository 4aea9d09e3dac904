"""Durations, the one parser: cohort window boundaries (`trigger + 24h`) and feature lookback
windows (`30d`) are read by `parse_duration`, so both accept exactly the same spellings.

The accepted forms are exactly those ACES 0.7.3 accepts, since ACES hands the text after `+`/`-`
to pytimeparse: a number and a unit per part, parts in the order weeks, days, hours, minutes,
seconds, optionally separated by `,` or `/` (`24h`, `24 hours`, `1d12h`, `1.5h`, `2 days, 5 hours`);
clock forms `MM:SS`, `[Nd] H:MM:SS` (`1 day, 14:20:16`), `D:HH:MM:SS` and `:SS`. Units are
case-insensitive (so `30M` is thirty minutes, as in ACES). Months and years are not units, and a
bare number has no unit: both are errors. Fractional values are truncated to whole seconds unless
the seconds part itself is fractional, which reproduces pytimeparse's arithmetic and therefore
ACES's window edges to the microsecond.

A duration is at most `MAX_DURATION`, 100,000 days (about 274 years). Timestamps are stored as
datetime64[us], whose range is about 292,000 years either side of 1970, and a MEDS record's times
lie within a few centuries of today: any such time plus or minus 274 years stays far inside that
range, so window arithmetic can never overflow, while the longest windows real cohort definitions
use (decades of history) stay far below the bound. Beyond it, `1000000000d` or `107000000d` would
overflow (or reach past year 9999 in Python's datetime) only once the data is read.
"""

from __future__ import annotations

import datetime as dt
import math
import re

from ehrbench.errors import EhrbenchError

_NUM = r"(?:\d+\.?\d*|\.\d+)"
_UNITS = {
    "weeks": r"w|wks?|weeks?",
    "days": r"d|dys?|days?",
    "hours": r"h|hrs?|hours?",
    "mins": r"m|mins?|minutes?",
    "secs": r"s|secs?|seconds?",
}
_SECONDS_PER = {"weeks": 604800, "days": 86400, "hours": 3600, "mins": 60, "secs": 1}


def _part(name: str, separator: bool) -> str:
    sep = r"\s*(?:[,/]\s*)?" if separator else ""
    return rf"(?:(?P<{name}>{_NUM})\s*(?:{_UNITS[name]}){sep})?"


_WEEKS_DAYS = _part("weeks", True) + r"\s*" + _part("days", True) + r"\s*"
_CLOCK_SECS = r"(?P<secs>\d{2}(?:\.\d+)?)"
_FORMS = [
    r"\s*".join(_part(n, n != "secs") for n in _SECONDS_PER),
    rf"(?P<mins>\d{{1,2}}):{_CLOCK_SECS}",
    rf"{_WEEKS_DAYS}(?P<hours>\d+):(?P<mins>\d{{2}}):{_CLOCK_SECS}",
    rf"(?P<days>\d+)[:-](?P<hours>\d{{2}}):(?P<mins>\d{{2}}):{_CLOCK_SECS}",
    rf":{_CLOCK_SECS}",
]
_COMPILED = [re.compile(rf"\s*{form}\s*", re.IGNORECASE) for form in _FORMS]
_CALENDAR_UNIT = re.compile(r"\d\s*(?:mo|mos|mon|mons|mth|mths|months?|y|yrs?|years?)\b", re.I)

EXAMPLES = "24h, 24 hours, 2d, 1w, 30m (minutes), 60s, 1.5h, 1d12h or '1 day, 14:20:16'"
MAX_DURATION = dt.timedelta(days=100_000)


def parse_duration(text: str) -> dt.timedelta:
    """Parse a duration such as `24h`, `2 days`, `1d12h` or `1 day, 14:20:16`.

    Raises `EhrbenchError` (without a file location; the config loader adds it) for anything
    else: a bare number, a sign, months or years, an unknown unit, or a duration longer than
    `MAX_DURATION`.

    >>> parse_duration("1d12h")
    datetime.timedelta(days=1, seconds=43200)
    >>> parse_duration("1000000000d")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ehrbench.errors.EhrbenchError: '1000000000d' is longer than the longest duration allowed, ...
    """
    if not isinstance(text, str) or not text.strip():
        raise EhrbenchError(f"expected a duration such as {EXAMPLES}, got {text!r}")
    for pattern in _COMPILED:
        match = pattern.fullmatch(text)
        if match and match.group(0).strip():
            seconds = _seconds(match.groupdict())
            if seconds is not None:
                return _bounded(text, seconds)
    raise EhrbenchError(_explain(text))


def _bounded(text: str, seconds: float) -> dt.timedelta:
    """`seconds` as a timedelta, or the error for a duration beyond `MAX_DURATION`."""
    if not seconds <= MAX_DURATION.total_seconds():
        raise EhrbenchError(
            f"{text!r} is longer than the longest duration allowed, "
            f"{MAX_DURATION.days:,} days (about 274 years)"
        )
    return dt.timedelta(seconds=seconds)


def _seconds(parts: dict[str, str | None]) -> float | None:
    """Total seconds of the matched parts, with pytimeparse's integer/float rules."""
    present = {k: v for k, v in parts.items() if v is not None}
    try:
        if all(v.isdigit() for v in present.values()):
            return sum(_SECONDS_PER[k] * int(v) for k, v in present.items())
        secs = present.get("secs")
        if secs is None or secs.isdigit():
            # Non-second parts are summed as floats and truncated, as pytimeparse does.
            others = sum(_SECONDS_PER[k] * float(v) for k, v in present.items() if k != "secs")
            return int(others) + int(secs or 0)
        return sum(_SECONDS_PER[k] * float(v) for k, v in present.items())
    except ValueError:
        return None
    except OverflowError:  # a float part too large to truncate: longer than any bound
        return math.inf


def _explain(text: str) -> str:
    stripped = text.strip()
    if _CALENDAR_UNIT.search(stripped):
        return (
            f"{text!r} uses months or years, which are not duration units (their length varies); "
            "write days instead, e.g. 30d or 365d"
        )
    if stripped[:1] in "+-":
        return (
            f"{text!r} has a sign: a duration is unsigned, the sign goes before it "
            "(`trigger - 24h`, not `trigger + -24h`)"
        )
    if re.fullmatch(_NUM, stripped):
        return f"{text!r} has no unit; write e.g. {stripped}h or {stripped}d"
    return f"{text!r} is not a duration; expected one such as {EXAMPLES}"


def format_duration(delta: dt.timedelta) -> str:
    """Canonical short form of an unsigned duration, e.g. `2d`, `1d12h`, `30m`, `0s`."""
    total_us = abs(delta) // dt.timedelta(microseconds=1)
    seconds, micros = divmod(total_us, 1_000_000)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    if seconds or micros or not parts:
        parts.append(f"{seconds}.{micros:06d}".rstrip("0").rstrip(".") + "s")
    return "".join(parts)
