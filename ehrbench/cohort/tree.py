"""Render a cohort's window tree as text for `ehrbench cohort check`.

The trigger is the root; each window hangs from what its anchored side refers to (the trigger or
another window). A window line reads `name [start, end]`, with `[`/`]` for an inclusive edge and
`(`/`)` for an exclusive one, followed by its `has` constraints and its label/index roles.
"""

from __future__ import annotations

from ehrbench.cohort.model import (
    Boundary,
    ClassesLabel,
    Cohort,
    Constraint,
    CountLabel,
    DurationLabel,
    LabelForm,
    ValueLabel,
    Window,
)
from ehrbench.durations import format_duration


def render_tree(cohort: Cohort) -> str:
    """The cohort as a readable tree: demographics, trigger, then windows under their anchors."""
    lines = []
    if cohort.demographics:
        lines.append("demographics: " + ", ".join(cohort.demographics))
    lines.append(f"trigger: {cohort.trigger}")
    if cohort.trigger_between is not None:
        between = cohort.trigger_between
        lines.append(f"trigger_between: [{between.start}, {between.end})")
    if cohort.age is not None:
        age = cohort.age
        lines.append(f"age: [{age.min_years}, {age.max_years}] years (birth {age.birth})")
    lines += _subtree(cohort.windows, None, "")
    return "\n".join(lines) + "\n"


def _subtree(windows: tuple[Window, ...], parent: str | None, indent: str) -> list[str]:
    children = [w for w in windows if _anchor(w) == parent]
    lines = []
    for position, window in enumerate(children):
        last = position == len(children) - 1
        lines.append(indent + ("└── " if last else "├── ") + describe_window(window))
        lines += _subtree(windows, window.name, indent + ("    " if last else "│   "))
    return lines


def _anchor(window: Window) -> str | None:
    return getattr(window, window.anchored_side).reference.window


def describe_window(window: Window) -> str:
    """One line for a window: name, bracketed span, constraints and roles."""
    opening = "[" if window.start_inclusive else "("
    closing = "]" if window.end_inclusive else ")"
    start = format_boundary(window.start, window.name, "start")
    end = format_boundary(window.end, window.name, "end")
    text = f"{window.name} {opening}{start}, {end}{closing}"
    if window.has:
        text += "  has " + ", ".join(format_constraint(c) for c in window.has)
    if window.label:
        text += f"  label={'no ' if window.label_negated else ''}{window.label}"
    if window.label_form is not None:
        text += f"  label={format_label_form(window.label_form)}"
    if window.index_timestamp:
        text += f"  index_timestamp={window.index_timestamp} (prediction time)"
    return text


def format_label_form(form: LabelForm) -> str:
    """A label mapping back in config syntax (`{value: k, take: max}`)."""
    match form:
        case CountLabel(predicate):
            return f"{{count: {predicate}}}"
        case DurationLabel(unit):
            return f"{{duration: {format_duration(unit)}}}"
        case ValueLabel(predicate, take):
            return f"{{value: {predicate}, take: {take}}}"
        case ClassesLabel(classes, otherwise):
            pairs = ", ".join(f"[{name}, {pred}]" for name, pred in classes)
            return f"{{classes: [{pairs}], otherwise: {otherwise}}}"


def format_boundary(boundary: Boundary, window: str, side: str) -> str:
    """A boundary back in config syntax, with canonical durations (`trigger + 1d`)."""
    if boundary.was_null:
        return "null (first event)" if side == "start" else "null (last event)"
    reference = boundary.reference
    if reference.is_trigger:
        ref = "trigger"
    elif reference.window == window:
        ref = reference.side
    else:
        ref = f"{reference.window}.{reference.side}"
    if boundary.kind == "next":
        return f"{ref} -> {boundary.predicate}"
    if boundary.kind == "prev":
        return f"{ref} <- {boundary.predicate}"
    if not boundary.offset:
        return ref
    sign = "-" if boundary.offset.total_seconds() < 0 else "+"
    return f"{ref} {sign} {format_duration(boundary.offset)}"


def format_constraint(constraint: Constraint) -> str:
    """`pred (min, max)` with None for an open side, as written in configs."""
    return f"{constraint.predicate} ({constraint.min_count}, {constraint.max_count})"
