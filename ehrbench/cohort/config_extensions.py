"""Load the ehrbench extensions of the cohort language (spec section 10) from raw YAML values.

Each parser reads one extension's value, checks its shape and raises through
`YamlSource.fail` (file, YAML path, line, closest known name) like the rest of the loader.
Predicate names they mention are returned with their YAML path, for the loader to check against
the config's predicates. `extensions_used` names what a loaded cohort uses, for `cohort check`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from ehrbench.cohort.model import (
    TAKES,
    AgeFilter,
    ClassesLabel,
    Cohort,
    CountLabel,
    DurationLabel,
    LabelForm,
    TriggerBetween,
    ValueLabel,
)
from ehrbench.durations import parse_duration
from ehrbench.errors import EhrbenchError
from ehrbench.yaml_source import Keys, YamlSource

LABEL_FORMS = {
    "count": ("count",),
    "duration": ("duration",),
    "value": ("value", "take"),
    "classes": ("classes", "otherwise"),
}
LABEL_FORM_TEXT = (
    "{count: PRED}, {duration: UNIT}, {value: PRED, take: first|last|min|max|mean} or "
    "{classes: [[NAME, PRED], ...], otherwise: NAME}"
)
AGE_KEYS = ("min", "max", "birth")
TRIGGER_BETWEEN_KEYS = ("start", "end")
COHORT_PREDICATE_KEYS = ("cohort", "label")
COHORT_LABELS = ("any", "true", "false")

# A predicate name a parser found, with the YAML path where it is written.
NameAt = tuple[Any, Keys]


def _one_of(value: Any, allowed: tuple[str, ...], key: str, source: YamlSource, keys: Keys):
    """`value` when it is one of `allowed`, else fail at `keys` naming the closest."""
    if value not in allowed:
        source.fail(
            keys,
            f"{key} must be one of {', '.join(allowed)}, got {value!r}",
            near=value,
            known=allowed,
        )
    return value


def _mapping(raw: Any, what: str, source: YamlSource, keys: Keys) -> Mapping:
    if not isinstance(raw, dict):
        source.fail(keys, f"expected {what}, got {raw!r}")
    return raw


def parse_label_form(raw: Any, source: YamlSource, keys: Keys) -> tuple[LabelForm, list[NameAt]]:
    """A `label:` mapping (spec 10.2) and the predicate names it uses, with their YAML paths."""
    raw = _mapping(raw, f"a predicate name or one of {LABEL_FORM_TEXT}", source, keys)
    forms = [key for key in raw if key in LABEL_FORMS]
    if len(forms) != 1:
        found = ", ".join(map(str, raw)) or "nothing"
        odd = next((str(k) for k in raw if k not in LABEL_FORMS), None)
        known = [key for form in LABEL_FORMS.values() for key in form]
        source.fail(
            keys,
            f"a label mapping has exactly one of count, duration, value, classes; found {found} "
            f"(forms: {LABEL_FORM_TEXT})",
            near=odd,
            known=known,
        )
    form = forms[0]
    source.check_keys(raw, LABEL_FORMS[form], keys)
    here = (*keys, form)
    if form == "count":
        return CountLabel(raw["count"]), [(raw["count"], here)]
    if form == "duration":
        return DurationLabel(_unit(raw["duration"], source, here)), []
    if form == "value":
        take = _one_of(raw.get("take"), TAKES, "take", source, (*keys, "take"))
        return ValueLabel(raw["value"], take), [(raw["value"], here)]
    return _classes(raw, source, keys)


def _unit(raw: Any, source: YamlSource, keys: Keys) -> dt.timedelta:
    try:
        unit = parse_duration(raw)
    except EhrbenchError as exc:
        source.fail(keys, f"the duration label's unit: {exc}")
    if not unit:
        source.fail(keys, f"the duration label's unit must be longer than zero, got {raw!r}")
    return unit


def _classes(raw: Mapping, source: YamlSource, keys: Keys) -> tuple[ClassesLabel, list[NameAt]]:
    here = (*keys, "classes")
    pairs = raw["classes"]
    if not isinstance(pairs, list) or len(pairs) < 2:
        source.fail(here, f"expected a list of at least two [NAME, PRED] pairs, got {pairs!r}")
    classes, names = [], []
    for index, pair in enumerate(pairs):
        at = (*here, str(index))
        if not (isinstance(pair, list) and len(pair) == 2 and _is_name(pair[0])):
            source.fail(at, f"expected a [NAME, PRED] pair (NAME a non-empty string), got {pair!r}")
        if pair[0] in [name for name, _ in classes]:
            source.fail(at, f"class {pair[0]!r} is listed twice; class names must be distinct")
        classes.append((pair[0], pair[1]))
        names.append((pair[1], at))
    otherwise = raw.get("otherwise")
    if not _is_name(otherwise):
        source.fail(
            (*keys, "otherwise"),
            f"expected the name of the class for no match (a non-empty string), got {otherwise!r}",
        )
    if otherwise in [name for name, _ in classes]:
        source.fail(
            (*keys, "otherwise"), f"otherwise {otherwise!r} must differ from every listed class"
        )
    return ClassesLabel(tuple(classes), otherwise), names


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def parse_age(raw: Any, source: YamlSource) -> AgeFilter:
    """Top-level `age: {min, max, birth}` (spec 10.3)."""
    raw = _mapping(raw, "a mapping {min: YEARS, max: YEARS, birth: CODE}", source, ("age",))
    source.check_keys(raw, AGE_KEYS, ("age",))
    bounds = {key: _years(raw.get(key), source, ("age", key)) for key in ("min", "max")}
    if bounds["min"] is not None and bounds["max"] is not None and bounds["min"] > bounds["max"]:
        source.fail(("age",), f"min {bounds['min']} is above max {bounds['max']}: no age passes")
    birth = raw.get("birth", "MEDS_BIRTH")
    if not _is_name(birth):
        source.fail(("age", "birth"), f"expected the birth code (a string), got {birth!r}")
    return AgeFilter(bounds["min"], bounds["max"], birth)


def _years(value: Any, source: YamlSource, keys: Keys) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        source.fail(keys, f"expected an age in years (a number) or null, got {value!r}")
    return float(value)


def parse_trigger_between(raw: Any, source: YamlSource) -> TriggerBetween:
    """Top-level `trigger_between: {start, end}` (spec 10.5): ISO dates or datetimes, or null."""
    keys = ("trigger_between",)
    raw = _mapping(raw, 'a mapping {start: "YYYY-MM-DD", end: "YYYY-MM-DD"}', source, keys)
    source.check_keys(raw, TRIGGER_BETWEEN_KEYS, keys)
    start, end = (_instant(raw.get(key), source, (*keys, key)) for key in TRIGGER_BETWEEN_KEYS)
    if start is not None and end is not None and start >= end:
        source.fail(keys, f"start {start} is not before end {end}: no trigger time passes")
    return TriggerBetween(start, end)


def _instant(value: Any, source: YamlSource, keys: Keys) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        value = value.isoformat()
    try:
        instant = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        instant = None
    if instant is None:
        source.fail(
            keys,
            f'expected an ISO date or datetime ("2015-01-01", "2015-01-01T08:00"), got {value!r}',
        )
    if instant.tzinfo is not None:
        source.fail(
            keys, f"expected a time without a time zone (MEDS times are naive), got {value!r}"
        )
    return instant


def parse_cohort_reference(
    name: str, raw: Mapping, source: YamlSource, keys: Keys
) -> tuple[str, str]:
    """The file and label filter of a `{cohort: FILE, label: any|true|false}` predicate."""
    source.check_keys(raw, COHORT_PREDICATE_KEYS, keys)
    path = raw.get("cohort")
    if not _is_name(path):
        source.fail(
            (*keys, "cohort"), f"expected the cohort file of {name!r} (a path), got {path!r}"
        )
    label = raw.get("label", "any")
    label = {True: "true", False: "false"}.get(label, label) if isinstance(label, bool) else label
    return path, _one_of(label, COHORT_LABELS, "label", source, (*keys, "label"))


def extensions_used(cohort: Cohort) -> list[str]:
    """The extensions (spec section 10) a loaded cohort uses, as short phrases, config order.

    >>> from ehrbench.cohort.model import ExactCode, PlainPredicate
    >>> admit = PlainPredicate("admit", ExactCode("ADMIT"))
    >>> extensions_used(Cohort(None, {"admit": admit}, {}, "admit", age=AgeFilter(18)))
    ['age (10.3)']
    """
    used = []
    window = cohort.label_window
    if window is not None and window.label_negated:
        used.append("label_negated (10.1)")
    if cohort.label_form is not None:
        form = type(cohort.label_form).__name__.removesuffix("Label").lower()
        used.append(f"label {{{form}: ...}} (10.2)")
    if cohort.age is not None:
        used.append("age (10.3)")
    used += [f"cohort predicate {name} (10.4)" for name in cohort.nested_cohorts()]
    if cohort.trigger_between is not None:
        used.append("trigger_between (10.5)")
    return used
