"""Typed, immutable objects for a loaded cohort config.

The loader (`ehrbench.cohort.config`) builds these from YAML after every load-time check has
passed; the extraction engine reads only these. See `../shared/spec/cohort-language.md` (shipped
in the README) for the semantics each field carries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
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


@dataclass(frozen=True)
class CohortPredicate:
    """`{cohort: FILE, label: any|true|false}`: 1 at each (subject, prediction_time) of the
    named cohort's label rows (spec 10.4); `label` true/false keeps rows with that boolean_value.
    """

    name: str
    cohort: Cohort
    label: Literal["any", "true", "false"] = "any"


Predicate = PlainPredicate | DerivedPredicate | CohortPredicate


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
class CountLabel:
    """`label: {count: PRED}`: the window's count of PRED, as `integer_value`."""

    predicate: str


@dataclass(frozen=True)
class DurationLabel:
    """`label: {duration: UNIT}`: (window end - window start) / UNIT, as `float_value`."""

    unit: dt.timedelta


TAKES = ("first", "last", "min", "max", "mean")


@dataclass(frozen=True)
class ValueLabel:
    """`label: {value: PRED, take: ...}`: a statistic of PRED's non-null numeric_value in the
    window, as `float_value`; a trigger with no such row is dropped."""

    predicate: str
    take: Literal["first", "last", "min", "max", "mean"]


@dataclass(frozen=True)
class ClassesLabel:
    """`label: {classes: [[NAME, PRED], ...], otherwise: NAME}`: the NAME of the first pair whose
    PRED has count > 0 in the window, else `otherwise`, as `categorical_value`."""

    classes: tuple[tuple[str, str], ...]
    otherwise: str

    @property
    def names(self) -> tuple[str, ...]:
        """Every value the label can take: the class NAMEs in listed order, then `otherwise`."""
        return (*(name for name, _ in self.classes), self.otherwise)


# The label forms of spec 10.2 other than the plain `label: PRED`.
LabelForm = CountLabel | DurationLabel | ValueLabel | ClassesLabel


def label_predicates(form: LabelForm | None) -> tuple[str, ...]:
    """The predicates a label form counts or reads, in config order."""
    match form:
        case CountLabel(predicate) | ValueLabel(predicate, _):
            return (predicate,)
        case ClassesLabel(classes, _):
            return tuple(dict.fromkeys(pred for _, pred in classes))
    return ()


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
    # The other label forms of spec 10.2 (`label: {count: ...}` and so on), with `label` None.
    label_form: LabelForm | None = None

    @property
    def has_label(self) -> bool:
        """Whether this is the label window (plain `label: PRED` or another form)."""
        return self.label is not None or self.label_form is not None

    @property
    def anchored_side(self) -> Literal["start", "end"]:
        """The side that refers outside this window (to the trigger or another window)."""
        return "end" if self.start.reference.window == self.name else "start"


def direct_references(
    trigger: str, windows: Iterable[Window], unsearched: Collection[tuple[str, str]] = ()
) -> list[str]:
    """Predicate names named by the trigger and the windows (bounds, has, label), in order;
    not the predicate of a bound in `unsearched` ((window, side) pairs placed without search)."""
    names = [trigger]
    for window in windows:
        bounds = {"start": window.start, "end": window.end}
        names += [
            b.predicate
            for side, b in bounds.items()
            if b.predicate and (window.name, side) not in unsearched
        ]
        names += [c.predicate for c in window.has]
        if window.label:
            names.append(window.label)
        names += label_predicates(window.label_form)
    return names


def label_column(form: LabelForm | None) -> str:
    """The MEDS label column a label form fills (spec 10.2); `boolean_value` for `label: PRED`."""
    match form:
        case CountLabel():
            return "integer_value"
        case DurationLabel() | ValueLabel():
            return "float_value"
        case ClassesLabel():
            return "categorical_value"
    return "boolean_value"


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
class AgeFilter:
    """Top-level `age: {min, max, birth}` (spec 10.3): age in years at the trigger, bounds
    inclusive, from the subject's first row with code `birth`."""

    min_years: float | None = None
    max_years: float | None = None
    birth: str = "MEDS_BIRTH"


@dataclass(frozen=True)
class TriggerBetween:
    """Top-level `trigger_between: {start, end}` (spec 10.5): trigger time in [start, end)."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None


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
    age: AgeFilter | None = None
    trigger_between: TriggerBetween | None = None

    @property
    def label_window(self) -> Window | None:
        return next((w for w in self.windows if w.has_label), None)

    @property
    def label_form(self) -> LabelForm | None:
        """The label window's mapping label (spec 10.2); None for `label: PRED` or no label."""
        window = self.label_window
        return window.label_form if window else None

    @property
    def label_column(self) -> str:
        """The MEDS label column this cohort's labels fill: `boolean_value` (ACES's plain label),
        `integer_value` (`{count: ...}`), `float_value` (`{duration: ...}`, `{value: ...}`) or
        `categorical_value` (`{classes: ...}`)."""
        return label_column(self.label_form)

    @property
    def label_classes(self) -> tuple[str, ...] | None:
        """For a `{classes: ...}` label, its class NAMEs in listed order then `otherwise`."""
        form = self.label_form
        return form.names if isinstance(form, ClassesLabel) else None

    def named_cohort_files(self) -> list[Path]:
        """The files of the cohorts this one names, and of those they name, in config order."""
        files = []
        for predicate in self.nested_cohorts().values():
            nested = predicate.cohort
            files += [*([nested.source] if nested.source else []), *nested.named_cohort_files()]
        return files

    def nested_cohorts(self) -> dict[str, CohortPredicate]:
        """The used `{cohort: ...}` predicates, by name, in config order."""
        used = used_names(self.trigger, self.windows, self.predicates)
        return {
            n: p for n, p in self.predicates.items() if n in used and isinstance(p, CohortPredicate)
        }

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
        if isinstance(self.label_form, ValueLabel):
            # A value label reads numeric_value of its predicate's rows.
            valued = self.predicates[self.label_form.predicate]
            assert isinstance(valued, PlainPredicate)
            if valued not in required.get(VALUE, []):
                required.setdefault(VALUE, []).append(valued)
        return required
