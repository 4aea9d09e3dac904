"""Typed, immutable objects for a loaded cohort config.

The loader (`ehrbench.cohort.config`) builds these from YAML after every load-time check has
passed; the extraction engine reads only these. See `../shared/spec/cohort-language.md` (shipped
in the README) for the semantics each field carries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# Predicates every config may name without defining them.
ANY_EVENT = "_ANY_EVENT"
RECORD_START = "_RECORD_START"
RECORD_END = "_RECORD_END"
SPECIAL_PREDICATES = (ANY_EVENT, RECORD_START, RECORD_END)

# The MEDS event columns the engine reads: always the first two, the others as predicates test.
SUBJECT = "subject_id"
TIME = "time"
CODE = "code"
VALUE = "numeric_value"


@dataclass(frozen=True)
class ExactCode:
    """`code: "X"`: the row's code equals the string."""

    value: str


@dataclass(frozen=True)
class RegexCode:
    """`code: {regex: ...}`: an unanchored regex search over the row's code."""

    pattern: str


@dataclass(frozen=True)
class AnyCode:
    """`code: {any: [...]}`: the row's code is one of the strings."""

    values: tuple[str, ...]


CodeMatch = ExactCode | RegexCode | AnyCode


@dataclass(frozen=True)
class PlainPredicate:
    """A test on one MEDS row; its count at a timestamp is the number of matching rows."""

    name: str
    code: CodeMatch
    value_min: float | None = None
    value_max: float | None = None
    value_min_inclusive: bool = False
    value_max_inclusive: bool = False
    # Equality tests on other data columns, as (column, value) pairs in config order.
    other_cols: tuple[tuple[str, object], ...] = ()
    # True for `static: true` and for every `patient_demographics` entry: tests null-time rows.
    static: bool = False
    # Where the definition was written, for messages about the data: the predicate's own place
    # and, in `other_cols` order, each column test's ("In F at predicates.x (line 3): ").
    origin: str = field(default="", compare=False, repr=False)
    column_origins: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def columns(self) -> tuple[str, ...]:
        """The data columns this predicate tests: `code`, `numeric_value` if bounded, others."""
        bounded = self.value_min is not None or self.value_max is not None
        return (CODE, *([VALUE] if bounded else []), *(c for c, _ in self.other_cols))

    def origin_of(self, column: str) -> str:
        """Where the test of `column` was written (the predicate's place for code and bounds)."""
        names = [c for c, _ in self.other_cols]
        if column in names and len(self.column_origins) == len(names):
            return self.column_origins[names.index(column)]
        return self.origin


@dataclass(frozen=True)
class DerivedPredicate:
    """`expr: and(a, b, ...)` or `or(...)`: 1 at a timestamp where the combination holds."""

    name: str
    op: Literal["and", "or"]
    inputs: tuple[str, ...]


Predicate = PlainPredicate | DerivedPredicate


@dataclass(frozen=True)
class Reference:
    """What a boundary is measured from: the trigger, or a boundary of a window.

    `window` is None for the trigger. `side` is "start" or "end" of `window`; a bare `start` or
    `end` inside a window definition is resolved to that window's own name.
    """

    window: str | None
    side: Literal["start", "end"] | None = None

    @property
    def is_trigger(self) -> bool:
        return self.window is None


TRIGGER = Reference(window=None)


@dataclass(frozen=True)
class Boundary:
    """One side of a window: a reference moved by a duration, or to the next/previous event.

    kind "offset": `REF`, `REF + Δ`, `REF - Δ` (`offset` signed; zero for a bare reference).
    kind "next":   `REF -> PRED` (first timestamp at or after REF where PRED's count > 0).
    kind "prev":   `REF <- PRED` (last timestamp at or before REF where PRED's count > 0).
    A `null` start is stored as kind "prev" to `_RECORD_START` from the window's own end, and a
    `null` end as kind "next" to `_RECORD_END` from its own start (the spec's definition);
    `was_null` remembers the original spelling for messages and the window tree.
    """

    reference: Reference
    kind: Literal["offset", "next", "prev"]
    offset: dt.timedelta = dt.timedelta(0)
    predicate: str | None = None
    was_null: bool = False


@dataclass(frozen=True)
class Constraint:
    """`has: {PRED: "(min, max)"}`: the window's count of PRED lies in [min, max] (None = open)."""

    predicate: str
    min_count: int | None
    max_count: int | None


@dataclass(frozen=True)
class Window:
    """A named window: two boundaries, their inclusivity, constraints and optional roles."""

    name: str
    start: Boundary
    end: Boundary
    start_inclusive: bool
    end_inclusive: bool
    has: tuple[Constraint, ...] = ()
    # `label: PRED`: the label is PRED's count in this window (at most one window has one).
    label: str | None = None
    # ehrbench extension `label_negated: true`: the label is true when that count is 0 (ACES has
    # no negation, so "no discharge within 7 days" cannot be written otherwise).
    label_negated: bool = False
    index_timestamp: Literal["start", "end"] | None = None

    @property
    def anchored_side(self) -> Literal["start", "end"]:
        """The side that refers outside this window (to the trigger or another window)."""
        return "end" if self.start.reference.window == self.name else "start"


def direct_references(trigger: str, windows: Iterable[Window]) -> list[str]:
    """Predicate names named by the trigger and the windows (bounds, has, label), in order."""
    names = [trigger]
    for window in windows:
        names += [b.predicate for b in (window.start, window.end) if b.predicate]
        names += [c.predicate for c in window.has]
        if window.label:
            names.append(window.label)
    return names


def used_names(
    trigger: str, windows: Iterable[Window], predicates: Mapping[str, Predicate]
) -> set[str]:
    """Predicates a cohort uses: those named by trigger and windows, and their inputs."""
    names = set(direct_references(trigger, windows))
    pending = list(names)
    while pending:
        predicate = predicates.get(pending.pop())
        if isinstance(predicate, DerivedPredicate):
            pending += [n for n in predicate.inputs if n not in names]
            names |= set(predicate.inputs)
    return names


@dataclass(frozen=True)
class Cohort:
    """A fully checked cohort config, ready for extraction.

    `windows` is in dependency order: every window comes after the windows it refers to.
    `predicates` holds only the predicates the cohort uses (the trigger, window bounds, `has`,
    labels, and the inputs of derived ones), in config order, as ACES evaluates only those.
    `demographics` holds the `patient_demographics` entries (all static plain predicates).
    """

    source: Path | None
    predicates: dict[str, Predicate]
    demographics: dict[str, PlainPredicate]
    trigger: str
    windows: tuple[Window, ...] = ()
    description: str | None = field(default=None, compare=False)
    # Load-time warnings (e.g. no index_timestamp), for commands to print; the loader never
    # emits them through the `warnings` module.
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def label_window(self) -> Window | None:
        return next((w for w in self.windows if w.label), None)

    @property
    def index_window(self) -> Window | None:
        return next((w for w in self.windows if w.index_timestamp), None)

    def required_columns(self) -> dict[str, list[PlainPredicate]]:
        """Each data column the used predicates test, with those predicates, in config order.

        `subject_id` and `time`, which every extraction reads, are not listed.
        """
        used = used_names(self.trigger, self.windows, self.predicates)
        plain = [p for p in self.predicates.values() if isinstance(p, PlainPredicate)]
        required: dict[str, list[PlainPredicate]] = {}
        for pred in [p for p in plain if p.name in used] + list(self.demographics.values()):
            for column in pred.columns():
                required.setdefault(column, []).append(pred)
        return required
