"""The filters on a trigger itself (spec 10.5 and 10.3): its calendar time and the subject's age.

Both run right after the trigger step, calendar first, each its own attrition step; these
functions give their step names and, for a shard's triggers, which ones pass.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from ehrbench.cohort.counting import Rows
from ehrbench.cohort.model import AgeFilter, TriggerBetween

EPOCH = dt.datetime(1970, 1, 1)
# Spec 10.3: a year is 365.25 days.
YEAR_MICROS = 365.25 * 86400 * 1e6


def between_step(between: TriggerBetween) -> str:
    """The attrition step name of `trigger_between`.

    >>> between_step(TriggerBetween(dt.datetime(2015, 1, 1), None))
    'trigger_between [2015-01-01 00:00:00, inf)'
    """
    start = "-inf" if between.start is None else between.start.isoformat(sep=" ")
    end = "inf" if between.end is None else between.end.isoformat(sep=" ")
    return f"trigger_between [{start}, {end})"


def age_step(age: AgeFilter) -> str:
    """The attrition step name of `age`.

    >>> age_step(AgeFilter(18))
    'age [18, inf] (birth MEDS_BIRTH)'
    """
    low = "-inf" if age.min_years is None else f"{age.min_years:g}"
    high = "inf" if age.max_years is None else f"{age.max_years:g}"
    return f"age [{low}, {high}] (birth {age.birth})"


def in_calendar(between: TriggerBetween, times: np.ndarray) -> np.ndarray:
    """Whether each trigger time (microseconds since the epoch) lies in [start, end)."""
    holds = np.ones(len(times), dtype=bool)
    if between.start is not None:
        holds &= times >= (between.start - EPOCH) // dt.timedelta(microseconds=1)
    if between.end is not None:
        holds &= times < (between.end - EPOCH) // dt.timedelta(microseconds=1)
    return holds


def ages_at(births: Rows, subjects: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Per trigger (its subject and time), age in years; NaN for a subject without a birth.

    `births` are (sorted subjects, each one's first birth time).

    >>> births = (np.array([1]), np.array([0]))
    >>> ages_at(births, np.array([1, 2]), np.array([int(YEAR_MICROS) * 2, 0])).tolist()
    [2.0, nan]
    """
    born, birth_times = births
    if not len(born):
        return np.full(len(times), np.nan)
    index = np.searchsorted(born, subjects)
    clipped = np.minimum(index, len(born) - 1)
    found = (index < len(born)) & (born[clipped] == subjects)
    return np.where(found, (times - birth_times[clipped]) / YEAR_MICROS, np.nan)


def age_holds(age: AgeFilter, ages: np.ndarray) -> np.ndarray:
    """Whether each age lies in [min, max] (a NaN age, no birth row, never does)."""
    holds = ~np.isnan(ages)
    if age.min_years is not None:
        holds &= ages >= age.min_years
    if age.max_years is not None:
        holds &= ages <= age.max_years
    return holds
