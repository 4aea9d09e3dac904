"""Durations accepted in window boundaries: exactly ACES's (pytimeparse's) forms and values."""

from __future__ import annotations

import datetime as dt

import pytest

from ehrbench.durations import format_duration, parse_duration
from ehrbench.errors import EhrbenchError

H = 3600
D = 24 * H

# Expected seconds were computed with pytimeparse 1.1.10, which ACES 0.7.3 calls.
ACCEPTED = [
    ("24h", D),
    ("24 hours", D),
    ("24 HOURS", D),
    ("1 hour", H),
    ("2hrs", 2 * H),
    ("2d", 2 * D),
    ("2 days", 2 * D),
    ("1 day", D),
    ("3 dys", 3 * D),
    ("1w", 7 * D),
    ("2 weeks", 14 * D),
    ("5 wks", 35 * D),
    ("30m", 30 * 60),
    ("30M", 30 * 60),
    ("30 min", 30 * 60),
    ("30 minutes", 30 * 60),
    ("60s", 60),
    ("60 seconds", 60),
    ("1.5h", 1.5 * H),
    ("0.29h", 1044),
    ("1.5s", 1.5),
    ("1d12h", D + 12 * H),
    ("1d 12h", D + 12 * H),
    ("2 days, 5 hours", 2 * D + 5 * H),
    ("2 days/5 hours", 2 * D + 5 * H),
    ("1w2d3h4m5s", 9 * D + 3 * H + 4 * 60 + 5),
    ("1 day, 14:20:16", D + 14 * H + 20 * 60 + 16),
    ("14:20:16", 14 * H + 20 * 60 + 16),
    ("1:14:20:16", D + 14 * H + 20 * 60 + 16),
    ("1:24", 84),
    (":22", 22),
    ("365 days", 365 * D),
    ("0h", 0),
    ("  24h  ", D),
]

REJECTED = [
    ("24", "no unit"),
    ("1.5", "no unit"),
    ("1 month", "months or years"),
    ("3mo", "months or years"),
    ("1y", "months or years"),
    ("2 years", "months or years"),
    ("-2d", "has a sign"),
    ("+2d", "has a sign"),
    ("12h1d", "not a duration"),
    ("1.2.3h", "not a duration"),
    ("two days", "not a duration"),
    ("", "expected a duration"),
    ("1 fortnight", "not a duration"),
]


@pytest.mark.parametrize(("text", "seconds"), ACCEPTED)
def test_accepted_durations(text, seconds):
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(("text", "fragment"), REJECTED)
def test_rejected_durations(text, fragment):
    with pytest.raises(EhrbenchError, match=fragment):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(D, "1d"), (D + 12 * H, "1d12h"), (90, "1m30s"), (0, "0s"), (1.5, "1.5s"), (-H, "1h")],
)
def test_format_duration(seconds, text):
    assert format_duration(dt.timedelta(seconds=seconds)) == text


@pytest.mark.parametrize("text", [t for t, _ in ACCEPTED])
def test_format_round_trips(text):
    delta = parse_duration(text)
    assert parse_duration(format_duration(delta)) == delta


@pytest.mark.parametrize(
    "text", ["99999999999999999999999d", "1000000000d", "107000000d", "100001d", "2400001h"]
)
def test_durations_beyond_the_bound_are_an_error(text):
    with pytest.raises(EhrbenchError, match="longer than the longest duration allowed, 100,000"):
        parse_duration(text)


def test_the_bound_itself_is_accepted():
    assert parse_duration("100000d") == dt.timedelta(days=100_000)


def test_an_absurd_duration_is_refused_at_load_time_with_its_location(tmp_path, capsys):
    from pathlib import Path

    from ehrbench.cli import main

    repo = Path(__file__).resolve().parents[1]
    text = (repo / "cohorts" / "mortality_in_hospital.yaml").read_text()
    cohort = tmp_path / "c.yaml"
    cohort.write_text(text.replace("end: trigger + 24h", "end: trigger + 107000000d"))
    predicates = str(repo / "cohorts" / "predicates" / "synthetic.yaml")
    assert main(["cohort", "check", str(cohort), "--predicates", predicates]) == 2
    err = capsys.readouterr().err
    assert f"In {cohort} at windows.input.end (line" in err and "100,000 days" in err
