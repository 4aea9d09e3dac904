"""Load a cohort config (ACES task-configuration YAML) into checked, immutable `Cohort` objects.

`load_cohort` reads the cohort file and an optional predicates file in OmegaConf's YAML dialect
(`ehrbench.yaml_source`, which also sets the size limits), applies the predicates file's
entries over same-named ones, and runs every load-time check of
`../shared/spec/cohort-language.md`. Each problem raises `EhrbenchError` naming the file, the YAML
path (`windows.gap.has.admission`), the line, what was expected and, for a misspelt name, the
closest known one. Load-time warnings are returned in `Cohort.warnings`, never emitted through the
`warnings` module.

Choices where ACES gives no answer (it crashes or ignores the case), all errors here:
`start_inclusive`/`end_inclusive` have no default (es-aces 0.7.3's `WindowConfig` dataclass
declares both without defaults, so omitting one is a TypeError there); a static predicate may
not be the trigger, an event bound (`-> PRED`) or an input of a derived predicate; special
predicates may not appear inside `expr` (ACES rejects them as undefined) nor be redefined; a name
may not be both a predicate and a demographic. Every defined predicate is checked, but, as in
ACES, only those the cohort uses are kept. An omitted `start`/`end` is `null`, as ACES's docs say.
Accepted as ACES does, with a warning: bounds that leave no value, negative `has` bounds.
"""

from __future__ import annotations

import graphlib
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from omegaconf import MISSING

from ehrbench.cohort.config_extensions import (
    parse_age,
    parse_cohort_reference,
    parse_label_form,
    parse_trigger_between,
)
from ehrbench.cohort.model import (
    SPECIAL_PREDICATES,
    AnyCode,
    Boundary,
    CodeMatch,
    Cohort,
    CohortPredicate,
    Constraint,
    DerivedPredicate,
    ExactCode,
    PlainPredicate,
    Predicate,
    RegexCode,
    ValueLabel,
    Window,
    used_names,
)
from ehrbench.cohort.syntax import (
    NAME,
    parse_boundary,
    parse_expr,
    parse_has_range,
)
from ehrbench.durations import parse_duration
from ehrbench.errors import EhrbenchError, did_you_mean
from ehrbench.yaml_source import Keys, YamlSource, read_yaml

__all__ = ["load_cohort", "parse_boundary", "parse_duration"]

TOP_LEVEL_KEYS = (
    "predicates",
    "trigger",
    "windows",
    "patient_demographics",
    "metadata",
    "description",
    "age",
    "trigger_between",
)
PREDICATES_FILE_KEYS = ("predicates", "patient_demographics", "metadata", "description")
PREDICATE_KEYS = (
    "code",
    "value_min",
    "value_max",
    "value_min_inclusive",
    "value_max_inclusive",
    "static",
    "expr",
    "other_cols",
)
WINDOW_KEYS = (
    "start",
    "end",
    "start_inclusive",
    "end_inclusive",
    "has",
    "label",
    "label_negated",
    "index_timestamp",
)


def _hint(name: str | None, known: Collection[str]) -> str:
    """`; did you mean 'x'?` to end a message, or ""."""
    hint = did_you_mean(name, known)
    return f"; {hint}" if hint else ""


@dataclass(frozen=True)
class _Entry:
    """A raw predicate entry and where it came from (cohort or predicates file)."""

    raw: Any
    source: YamlSource
    keys: Keys


def load_cohort(path: str | Path, predicates_path: str | Path | None = None) -> Cohort:
    """Load and check a cohort config; return the typed `Cohort`.

    `predicates_path`: a predicates-only file (keys `predicates`, `patient_demographics`) whose
    entries replace same-named ones of the cohort and fill its `???` placeholders.
    `Cohort.predicates` keeps only the predicates the cohort uses (trigger, windows, and the
    inputs of those), as ACES evaluates only those; every defined predicate is still checked.
    The columns its predicates test are checked against the data when it is extracted.
    Raises `EhrbenchError` for any problem; warnings are in `Cohort.warnings`.

    >>> from importlib.resources import files
    >>> cohort = load_cohort(
    ...     files("ehrbench").parent / "cohorts" / "mortality_in_hospital.yaml",
    ...     files("ehrbench").parent / "cohorts" / "predicates" / "synthetic.yaml",
    ... )
    >>> cohort.trigger, [window.name for window in cohort.windows]
    ('admission', ['input', 'gap', 'target'])
    """
    return _load(Path(path), predicates_path, ())


def _load(path: Path, predicates_path: str | Path | None, naming: tuple[Path, ...]) -> Cohort:
    """`load_cohort`, inside the cohort files `naming` (outermost first) that name this one."""
    config, source = _read_cohort_file(path, "cohort")
    source.check_keys(config, TOP_LEVEL_KEYS, ())
    sections = _predicate_sections(config, source, predicates_path)
    if "trigger" not in config:
        source.fail((), "missing the required top-level key 'trigger' (a predicate name)")
    predicates = _parse_predicates(sections["predicates"])
    demographics = _parse_demographics(sections["patient_demographics"], predicates)
    _check_derived(predicates, demographics, sections["predicates"])
    trigger = _parse_trigger(config.get("trigger"), predicates, demographics, source)
    windows = _parse_windows(config.get("windows"), predicates, demographics, source)
    # As in ACES, only the predicates the cohort uses are kept (a predicates file may hold many).
    used = used_names(trigger, windows, predicates)
    # A `{cohort: ...}` predicate's file is loaded only when used: a predicates file may define
    # one that the cohorts it serves, the named cohort among them, do not use.
    nesting = _Nesting(predicates_path, (*naming, path.resolve()))
    predicates = {
        name: _load_nested(p, nesting) if isinstance(p, _CohortReference) else p
        for name, p in predicates.items()
        if name in used
    }
    entries = {**sections["predicates"], **sections["patient_demographics"]}
    warnings = []
    for name, predicate in {**predicates, **demographics}.items():
        if isinstance(predicate, PlainPredicate):
            warnings += _column_warnings(name, entries[name])
    warnings += _window_warnings(windows, source)
    description = config.get("description")
    return Cohort(
        source=path,
        predicates=predicates,
        demographics=demographics,
        trigger=trigger,
        windows=windows,
        description=description if isinstance(description, str) else None,
        warnings=tuple(warnings),
        age=None if config.get("age") is None else parse_age(config["age"], source),
        trigger_between=(
            None
            if config.get("trigger_between") is None
            else parse_trigger_between(config["trigger_between"], source)
        ),
    )


@dataclass(frozen=True)
class _Nesting:
    """What loading a `{cohort: FILE}` predicate needs: the predicates file, and the cohort
    files being loaded (outermost first, resolved), to find a loop."""

    predicates_path: str | Path | None
    loading: tuple[Path, ...]


def _predicate_sections(
    config: Mapping, source: YamlSource, predicates_path: str | Path | None
) -> dict[str, dict[str, _Entry]]:
    """`predicates` and `patient_demographics` entries, the predicates file's replacing ours."""
    overrides: Mapping = {}
    extra_source = None
    if predicates_path is not None:
        overrides, extra_source = _read_cohort_file(Path(predicates_path), "predicates")
        extra_source.check_keys(overrides, PREDICATES_FILE_KEYS, ())
    elif "predicates" not in config:
        source.fail((), "missing the required top-level key 'predicates' (a mapping of names)")
    sections = {}
    for section in ("predicates", "patient_demographics"):
        entries = _section_entries(config, section, source)
        if extra_source is not None:
            entries.update(_section_entries(overrides, section, extra_source))
        sections[section] = entries
    return sections


# --- reading files ----------------------------------------------------------------------------


def _read_cohort_file(path: Path, kind: str) -> tuple[dict[str, Any], YamlSource]:
    """The top-level mapping of a cohort or predicates file (empty for an empty file)."""
    config, source = read_yaml(path, kind)
    if config is None:
        return {}, source
    if not isinstance(config, dict):
        source.fail((), f"the {kind} file must be a YAML mapping of top-level keys")
    return config, source


def _section_entries(config: Mapping, section: str, source: YamlSource) -> dict[str, _Entry]:
    """The `predicates` or `patient_demographics` entries of one file, in file order."""
    raw = config.get(section)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        source.fail(
            (section,), f"expected a mapping from predicate names to definitions, got {raw!r}"
        )
    entries = {}
    for name, value in raw.items():
        name = str(name)
        if not NAME.fullmatch(name):
            source.fail((section, name), f"bad predicate name {name!r}: use letters, digits and _")
        if name in SPECIAL_PREDICATES:
            source.fail(
                (section, name), f"{name!r} is a built-in predicate and cannot be redefined"
            )
        entries[name] = _Entry(value, source, (section, name))
    return entries


# --- predicates -------------------------------------------------------------------------------


def _parse_predicates(entries: dict[str, _Entry]) -> dict[str, Predicate | _CohortReference]:
    predicates: dict[str, Predicate | _CohortReference] = {}
    for name, entry in entries.items():
        _check_filled(name, entry)
        if "expr" in entry.raw:
            predicates[name] = _parse_derived(name, entry)
        elif "cohort" in entry.raw:
            relative, label = parse_cohort_reference(name, entry.raw, entry.source, entry.keys)
            path = entry.source.path.parent / relative
            if not path.is_file():
                problem = "is a folder, not a cohort file" if path.is_dir() else "does not exist"
                entry.source.fail(
                    (*entry.keys, "cohort"), f"the cohort file {path} of {name!r} {problem}"
                )
            predicates[name] = _CohortReference(name, entry, path, label)
        else:
            predicates[name] = _parse_plain(name, entry, False)
    return predicates


@dataclass(frozen=True)
class _CohortReference:
    """A `{cohort: FILE, label: ...}` predicate (spec 10.4) before its file is loaded; `path`
    is FILE relative to the file that names it."""

    name: str
    entry: _Entry
    path: Path
    label: str


def _load_nested(reference: _CohortReference, nesting: _Nesting) -> CohortPredicate:
    """Load the cohort a `{cohort: ...}` predicate names and check it can be named."""
    source, keys = reference.entry.source, reference.entry.keys
    path = reference.path
    if path.resolve() in nesting.loading:
        loop = [*nesting.loading[nesting.loading.index(path.resolve()) :], path.resolve()]
        source.fail(
            (*keys, "cohort"),
            "cohorts name each other in a loop: " + " -> ".join(p.name for p in loop),
        )
    cohort = _load(path, nesting.predicates_path, nesting.loading)
    if cohort.index_window is None:
        source.fail(
            (*keys, "cohort"),
            f"the cohort {path} has no index_timestamp, so its rows have no time to count at",
        )
    label_window = cohort.label_window
    if reference.label != "any" and (label_window is None or label_window.label is None):
        source.fail(
            (*keys, "label"),
            f"label {reference.label} needs the cohort {path} to have a boolean label "
            "(label: PRED); use label: any",
        )
    return CohortPredicate(name=reference.name, cohort=cohort, label=reference.label)


def _parse_demographics(
    entries: dict[str, _Entry], predicates: Mapping[str, Predicate]
) -> dict[str, PlainPredicate]:
    demographics = {}
    for name, entry in entries.items():
        _check_filled(name, entry)
        if name in predicates:
            entry.source.fail(
                entry.keys, f"{name!r} is defined both under predicates and patient_demographics"
            )
        if "expr" in entry.raw:
            entry.source.fail(
                (*entry.keys, "expr"), "patient_demographics entries are plain predicates (code)"
            )
        if entry.raw.get("static", True) is not True:
            entry.source.fail((*entry.keys, "static"), "patient_demographics entries are static")
        demographics[name] = _parse_plain(name, entry, True)
    return demographics


def _check_filled(name: str, entry: _Entry) -> None:
    """Every `???` placeholder must have been filled by the predicates file."""
    fill = "give a predicates file (--predicates) that defines it"
    if entry.raw == MISSING:
        entry.source.fail(entry.keys, f"predicate {name!r} is an unfilled ??? placeholder; {fill}")
    if not isinstance(entry.raw, dict):
        entry.source.fail(
            entry.keys,
            f"predicate {name!r} must be a mapping such as {{code: ...}} or {{expr: ...}}, "
            f"got {entry.raw!r}",
        )
    for key, value in entry.raw.items():
        if value == MISSING:
            entry.source.fail(
                (*entry.keys, str(key)),
                f"{key} of predicate {name!r} is an unfilled ??? placeholder; {fill}",
            )


def _parse_derived(name: str, entry: _Entry) -> DerivedPredicate:
    for key, value in entry.raw.items():
        if key == "static" and value is False:
            continue
        if key != "expr":
            entry.source.fail(
                (*entry.keys, str(key)),
                f"derived predicate {name!r} takes only expr (and/or of other predicates), "
                f"not {key!r}",
            )
    try:
        op, inputs = parse_expr(entry.raw["expr"])
    except EhrbenchError as exc:
        entry.source.fail((*entry.keys, "expr"), str(exc))
    return DerivedPredicate(name=name, op=op, inputs=inputs)


def _parse_plain(name: str, entry: _Entry, static: bool) -> PlainPredicate:
    raw, source, keys = entry.raw, entry.source, entry.keys
    if raw.get("code") is None:
        source.fail(
            keys,
            f"plain predicate {name!r} has no code (a predicate with only value or column tests "
            'would match nothing in ACES); add code: "...", {regex: ...} or {any: [...]}',
        )
    code = _parse_code(raw["code"], source, (*keys, "code"))
    bounds = {key: _number(raw, key, source, keys) for key in ("value_min", "value_max")}
    flags = {
        key: _flag(raw, key, source, keys, default=False)
        for key in ("value_min_inclusive", "value_max_inclusive", "static")
    }
    columns = _other_columns(name, entry)
    return PlainPredicate(
        name=name,
        code=code,
        value_min=bounds["value_min"],
        value_max=bounds["value_max"],
        value_min_inclusive=flags["value_min_inclusive"],
        value_max_inclusive=flags["value_max_inclusive"],
        other_cols=tuple((column, value) for column, value, _ in columns),
        static=static or flags["static"],
        origin=source.locate(keys),
        column_origins=tuple(source.locate(column_keys) for _, _, column_keys in columns),
    )


def _parse_code(code: Any, source: YamlSource, keys: Keys) -> CodeMatch:
    forms = 'a string, {regex: "..."} or {any: ["...", ...]}'
    if isinstance(code, str):
        if not code:
            source.fail(keys, f"code is empty; expected {forms}")
        return ExactCode(code)
    if not isinstance(code, dict):
        quote = " (quote codes that look like numbers)" if isinstance(code, int | float) else ""
        source.fail(keys, f"expected {forms}, got {code!r}{quote}")
    if len(code) != 1 or next(iter(code)) not in ("regex", "any"):
        found = ", ".join(map(str, code)) or "nothing"
        odd = next((str(k) for k in code if k not in ("regex", "any")), None)
        source.fail(
            keys,
            f"a code mapping has exactly one key, regex or any; found {found}",
            near=odd,
            known=("regex", "any"),
        )
    if "regex" in code:
        return RegexCode(_regex(code["regex"], source, (*keys, "regex")))
    values = code["any"]
    if not isinstance(values, list) or not values:
        source.fail((*keys, "any"), f"expected a non-empty list of code strings, got {values!r}")
    for index, value in enumerate(values):
        if not isinstance(value, str) or not value:
            source.fail((*keys, "any", str(index)), f"expected a code string, got {value!r}")
    return AnyCode(tuple(values))


def parse_code(code: Any, source: YamlSource, keys: Keys) -> CodeMatch:
    """A `code:` value (a string, `{regex: ...}` or `{any: [...]}`) as a code match, with the
    errors of a predicates file; concept maps (`ehrbench.features.concepts`) write codes so too."""
    return _parse_code(code, source, keys)


def _regex(pattern: Any, source: YamlSource, keys: Keys) -> str:
    if not isinstance(pattern, str) or not pattern:
        source.fail(keys, f"expected a non-empty regular expression string, got {pattern!r}")
    try:
        # The engine (like ACES) matches with polars, whose regex dialect differs from `re`.
        pl.select(pl.lit("").str.contains(pattern))
    except pl.exceptions.PolarsError as exc:
        detail = " ".join(str(exc).split("This error occurred")[0].split())
        source.fail(keys, f"invalid regular expression {pattern!r}: {detail}")
    return pattern


def _number(raw: Mapping, key: str, source: YamlSource, keys: Keys) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        source.fail((*keys, key), f"{key} must be a finite number, got {value!r}")
    return float(value)


def _flag(raw: Mapping, key: str, source: YamlSource, keys: Keys, *, default: bool) -> bool:
    value = raw.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        source.fail((*keys, key), f"{key} must be true or false, got {value!r}")
    return value


def _other_columns(name: str, entry: _Entry) -> list[tuple[str, Any, Keys]]:
    """Equality tests on data columns: extra keys, then `other_cols` entries."""
    raw, source, keys = entry.raw, entry.source, entry.keys
    pairs = [(str(k), v, (*keys, str(k))) for k, v in raw.items() if k not in PREDICATE_KEYS]
    other = raw.get("other_cols")
    if other is not None:
        if not isinstance(other, dict):
            source.fail(
                (*keys, "other_cols"), f"expected a mapping {{column: value}}, got {other!r}"
            )
        pairs += [(str(k), v, (*keys, "other_cols", str(k))) for k, v in other.items()]
    seen = set()
    for column, value, column_keys in pairs:
        if column in seen:
            source.fail(column_keys, f"predicate {name!r} tests column {column!r} twice")
        seen.add(column)
        if value is None or isinstance(value, dict | list):
            source.fail(
                column_keys,
                f"column test {column!r} of predicate {name!r} needs one value to compare "
                f"with (a string or number), got {value!r}",
            )
    return pairs


def _column_warnings(name: str, entry: _Entry) -> list[str]:
    """Warn on column tests named like predicate keys (`value_mim`), and on empty bounds.

    A column test is read as an equality test on a data column; the data is checked when the
    cohort is extracted. ACES accepts value bounds that leave no value, so those only warn.
    """
    warnings = []
    for column, _value, keys in _other_columns(name, entry):
        if _hint(column, PREDICATE_KEYS):
            warnings.append(
                entry.source.locate(keys) + f"{column!r} is read as an equality test on a data "
                f"column{_hint(column, PREDICATE_KEYS)}"
            )
    low, high = entry.raw.get("value_min"), entry.raw.get("value_max")
    both_inclusive = entry.raw.get("value_min_inclusive") and entry.raw.get("value_max_inclusive")
    if (
        low is not None
        and high is not None
        and (low > high or (low == high and not both_inclusive))
    ):
        warnings.append(
            entry.source.locate(entry.keys)
            + f"value_min {low} and value_max {high} leave no value: {name!r} matches nothing"
        )
    return warnings


def _window_warnings(windows: tuple[Window, ...], source: YamlSource) -> list[str]:
    """No windows, no index_timestamp, or has bounds below zero (ACES accepts all three)."""
    warnings = []
    if not windows:
        warnings.append("the cohort has no windows: every trigger event becomes a label row")
    elif not any(w.index_timestamp for w in windows):
        warnings.append(
            "no window has index_timestamp, so prediction_time is null on every row; add "
            "`index_timestamp: end` to the window whose end is the prediction time"
        )
    for window in windows:
        for c in window.has:
            if (c.min_count or 0) < 0 or (c.max_count or 0) < 0:
                meaning = "never holds" if (c.max_count or 0) < 0 else "is the same as None"
                warnings.append(
                    source.locate(("windows", window.name, "has", c.predicate))
                    + f"a negative count bound {meaning}"
                )
    return warnings


def _check_derived(
    predicates: Mapping[str, Predicate],
    demographics: Mapping[str, PlainPredicate],
    entries: Mapping[str, _Entry],
) -> None:
    """Inputs of derived predicates exist, are not static or special, and form no cycle."""
    for name, predicate in predicates.items():
        if not isinstance(predicate, DerivedPredicate):
            continue
        entry = entries[name]
        keys = (*entry.keys, "expr")
        for used in predicate.inputs:
            if used in SPECIAL_PREDICATES:
                entry.source.fail(keys, f"{used} cannot be combined in an expr")
            if used in demographics or getattr(predicates.get(used), "static", False):
                entry.source.fail(
                    keys, f"{used!r} is static (tests rows without time) and cannot be combined"
                )
            if used not in predicates:
                entry.source.fail(
                    keys, f"unknown predicate {used!r} in expr", near=used, known=predicates
                )
    cycle = _find_cycle(
        {n: p.inputs for n, p in predicates.items() if isinstance(p, DerivedPredicate)}
    )
    if cycle:
        entry = entries[cycle[0]]
        entry.source.fail(
            (*entry.keys, "expr"), f"derived predicates form a cycle: {' -> '.join(cycle)}"
        )


def _find_cycle(uses: Mapping[str, Collection[str]]) -> list[str] | None:
    """A cycle in a dependency graph (each name to the names it uses) as a closed path, or None.

    The path starts at the cycle's name defined first and follows each name to one it uses.

    >>> _find_cycle({"c": ["a"], "b": ["a"], "a": ["b"]})
    ['b', 'a', 'b']
    """
    try:
        graphlib.TopologicalSorter(uses).prepare()
    except graphlib.CycleError as exc:
        # graphlib walks from users to what they use backwards: turn it round.
        names = list(reversed(exc.args[1]))[:-1]
        order = list(uses)
        first = min(range(len(names)), key=lambda i: order.index(names[i]))
        names = names[first:] + names[:first]
        return [*names, names[0]]
    return None


# --- trigger and windows ----------------------------------------------------------------------


def _usable(
    name: Any,
    role: str,
    predicates: Mapping[str, Predicate],
    demographics: Mapping[str, PlainPredicate],
    source: YamlSource,
    keys: Keys,
) -> str:
    """Check that `name` names a predicate usable over time (not static) and return it."""
    if not isinstance(name, str) or not name:
        source.fail(keys, f"expected a predicate name for {role}, got {name!r}")
    if name in demographics or getattr(predicates.get(name), "static", False):
        source.fail(
            keys,
            f"{name!r} is a static predicate (it tests rows without time, for the demographic "
            f"filter) and cannot be used as {role}",
        )
    if name not in predicates and name not in SPECIAL_PREDICATES:
        known = (*predicates, *SPECIAL_PREDICATES)
        source.fail(keys, f"unknown predicate {name!r} used as {role}", near=name, known=known)
    return name


def _parse_trigger(raw, predicates, demographics, source: YamlSource) -> str:
    if raw == MISSING:
        source.fail(("trigger",), "trigger is an unfilled ??? placeholder")
    return _usable(raw, "the trigger", predicates, demographics, source, ("trigger",))


def _parse_windows(raw, predicates, demographics, source: YamlSource) -> tuple[Window, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        source.fail(("windows",), f"expected a mapping from window names to windows, got {raw!r}")
    names = [str(n) for n in raw]
    windows = {}
    for name, spec in raw.items():
        name = str(name)
        keys = ("windows", name)
        if not NAME.fullmatch(name):
            source.fail(keys, f"bad window name {name!r}: use letters, digits and _")
        windows[name] = _parse_window(name, spec, names, predicates, demographics, source)
    _check_roles(windows, source)
    return _dependency_order(windows, source)


def _parse_window(name, spec, names, predicates, demographics, source: YamlSource) -> Window:
    keys = ("windows", name)
    if not isinstance(spec, dict):
        source.fail(keys, f"window {name!r} must be a mapping with start, end, ..., got {spec!r}")
    source.check_keys(spec, WINDOW_KEYS, keys)
    for key, value in spec.items():
        if value == MISSING:
            source.fail(
                (*keys, str(key)),
                "unfilled ??? placeholder; only predicates can be filled by a predicates file",
            )
    start = _boundary(name, "start", spec, names, source)
    end = _boundary(name, "end", spec, names, source)
    _check_sides(name, start, end, spec, source)
    for side, boundary in (("start", start), ("end", end)):
        if boundary.predicate and not boundary.was_null:
            _usable(
                boundary.predicate,
                f"the event bounding {name}.{side}",
                predicates,
                demographics,
                source,
                (*keys, side),
            )
    label, form = _label(spec.get("label"), predicates, demographics, source, (*keys, "label"))
    negated = spec.get("label_negated", False)
    if not isinstance(negated, bool):
        source.fail(
            (*keys, "label_negated"), f"label_negated must be true or false, got {negated!r}"
        )
    if negated and form is not None:
        source.fail(
            (*keys, "label_negated"),
            "label_negated applies only to the plain form `label: PRED`, not to a label mapping",
        )
    if negated and label is None:
        source.fail((*keys, "label_negated"), "label_negated needs a `label` on the same window")
    index = spec.get("index_timestamp")
    if index is not None and index not in ("start", "end"):
        source.fail((*keys, "index_timestamp"), f"expected start or end, got {index!r}")
    return Window(
        name=name,
        start=start,
        end=end,
        start_inclusive=_inclusive(spec, "start_inclusive", source, keys),
        end_inclusive=_inclusive(spec, "end_inclusive", source, keys),
        has=_constraints(spec.get("has"), predicates, demographics, source, (*keys, "has")),
        label=label,
        label_negated=negated,
        index_timestamp=index,
        label_form=form,
    )


def _label(raw, predicates, demographics, source: YamlSource, keys: Keys):
    """A window's `label`: (PRED, None) for the plain form, (None, form) for a mapping."""
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        return _usable(raw, "a label", predicates, demographics, source, keys), None
    form, names = parse_label_form(raw, source, keys)
    for name, here in names:
        _usable(name, "a label", predicates, demographics, source, here)
    valued = predicates.get(form.predicate) if isinstance(form, ValueLabel) else None
    if isinstance(form, ValueLabel) and not isinstance(valued, PlainPredicate):
        source.fail(
            (*keys, "value"),
            f"a value label reads numeric_value of matching rows, so {form.predicate!r} must be "
            "a plain predicate (code ...), not a derived, special or cohort one",
        )
    return None, form


def _boundary(name: str, side: str, spec: Mapping, names, source: YamlSource) -> Boundary:
    try:
        return parse_boundary(spec.get(side), window=name, side=side, window_names=names)
    except EhrbenchError as exc:
        source.fail(("windows", name, side), str(exc))


def _check_sides(name: str, start: Boundary, end: Boundary, spec: Mapping, source) -> None:
    """Exactly one side refers to the other, in the direction that keeps start before end."""
    keys = ("windows", name)
    if start.was_null and end.was_null:
        source.fail(keys, "start and end are both null: a window needs one side anchored")
    for side, boundary in (("start", start), ("end", end)):
        if boundary.reference.window == name and boundary.reference.side == side:
            source.fail((*keys, side), f"{side} refers to itself ({spec.get(side)!r})")
    start_on_end = start.reference.window == name
    end_on_start = end.reference.window == name
    both = "start and end refer to each other"
    if start_on_end and end_on_start:
        source.fail(keys, f"{both}; one side must refer to trigger or another window's boundary")
    if not start_on_end and not end_on_start:
        source.fail(
            keys,
            "neither side refers to the other side of the window; exactly one must "
            "(e.g. end: start + 24h, or start: end - 24h, or start: end <- PRED)",
        )
    if end_on_start and (end.kind == "prev" or end.offset.total_seconds() < 0):
        source.fail(
            (*keys, "end"),
            f"end refers to start, so it must move forward: start + Δ or start -> PRED, "
            f"got {spec.get('end')!r}",
        )
    if start_on_end and (start.kind == "next" or start.offset.total_seconds() > 0):
        source.fail(
            (*keys, "start"),
            f"start refers to end, so it must move backward: end - Δ or end <- PRED, "
            f"got {spec.get('start')!r}",
        )


def _inclusive(spec: Mapping, key: str, source: YamlSource, keys: Keys) -> bool:
    if key not in spec:
        source.fail(
            keys,
            f"missing {key}: every window states start_inclusive and end_inclusive "
            "(true or false); ACES has no default for them either",
        )
    value = spec[key]
    if not isinstance(value, bool):
        source.fail((*keys, key), f"{key} must be true or false, got {value!r}")
    return value


def _constraints(raw, predicates, demographics, source: YamlSource, keys: Keys):
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        source.fail(keys, f'expected a mapping {{predicate: "(min, max)"}}, got {raw!r}')
    constraints = []
    for name, text in raw.items():
        name = str(name)
        here = (*keys, name)
        split = isinstance(text, str) and text.lstrip().startswith("(") and "," not in text
        if split or not NAME.fullmatch(name):
            # `{pred: (5, None)}` in YAML flow style splits at the comma into two entries.
            source.fail(
                here,
                f"{name!r}: {text!r} is not a predicate name with a count range; inside {{...}} "
                'quote the range, e.g. {pred: "(5, None)"}',
            )
        _usable(name, "a has constraint", predicates, demographics, source, here)
        try:
            low, high = parse_has_range(text)
        except EhrbenchError as exc:
            source.fail(here, str(exc))
        constraints.append(Constraint(predicate=name, min_count=low, max_count=high))
    return tuple(constraints)


def _check_roles(windows: Mapping[str, Window], source: YamlSource) -> None:
    roles = {
        "label": [w.name for w in windows.values() if w.has_label],
        "index_timestamp": [w.name for w in windows.values() if w.index_timestamp],
    }
    for role, holders in roles.items():
        if len(holders) > 1:
            source.fail(
                ("windows", holders[1], role),
                f"only one window may have {role}; found it on {', '.join(holders)}",
            )


def _dependency_order(windows: Mapping[str, Window], source: YamlSource) -> tuple[Window, ...]:
    """Windows sorted so each comes after the window its anchored side refers to."""
    parents = {}
    for window in windows.values():
        side = window.anchored_side
        reference = getattr(window, side).reference
        if reference.window is not None and reference.window not in windows:
            source.fail(
                ("windows", window.name, side),
                f"refers to undefined window {reference.window!r}",
                near=reference.window,
                known=windows,
            )
        parents[window.name] = reference.window
    cycle = _find_cycle({n: [p] for n, p in parents.items() if p is not None})
    if cycle:
        source.fail(
            ("windows", cycle[0]), f"windows refer to each other in a loop: {' -> '.join(cycle)}"
        )
    ordered: list[Window] = []
    placed: set[str | None] = {None}
    while len(ordered) < len(windows):
        for window in windows.values():
            if window.name not in placed and parents[window.name] in placed:
                ordered.append(window)
                placed.add(window.name)
    return tuple(ordered)
