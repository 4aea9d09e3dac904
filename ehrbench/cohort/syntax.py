"""The small string grammars inside a cohort config: boundaries, `has` ranges, `expr`.

Each parser checks only its own string and raises `EhrbenchError` with a message that has no file
location; `ehrbench.cohort.config` adds the file, YAML path and line, and checks the names the
strings mention against the rest of the config. Nothing here is ever evaluated as code.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Literal

from ehrbench.cohort.model import RECORD_END, RECORD_START, TRIGGER, Boundary, Reference
from ehrbench.durations import parse_duration
from ehrbench.errors import EhrbenchError, did_you_mean

NAME = re.compile(r"\w+")
# `->`/`<-` are tried before `-` so that `start -> x` is not read as `start - (> x)`.
_BOUNDARY = re.compile(r"\s*(?P<ref>[\w.]+)\s*(?:(?P<op>->|<-|\+|-)\s*(?P<arg>.*?))?\s*")
_REFERENCE = re.compile(r"(?P<window>\w+)\.(?P<side>\w+)")
_NULL_WORDS = ("None", "null", "NULL", "Null")
BOUNDARY_FORMS = "REF, REF + Δ, REF - Δ, REF -> PRED, REF <- PRED or null"
REFERENCE_FORMS = "trigger, start, end, WINDOW.start or WINDOW.end"


def is_null_boundary(value: object) -> bool:
    """True for a YAML null and for the strings ACES documents as null (`None`, `null`)."""
    return value is None or (isinstance(value, str) and value.strip() in _NULL_WORDS)


def parse_boundary(
    text: str | None,
    *,
    window: str,
    side: Literal["start", "end"],
    window_names: Collection[str] = (),
) -> Boundary:
    """Parse one `start`/`end` value of window `window` into a `Boundary`.

    `start`/`end` (and `window.start`/`window.end`) resolve to this window's own sides. A null
    start is `end <- _RECORD_START` and a null end `start -> _RECORD_END`, as the spec defines.
    `window_names` only improves the message for a bare window name. Whether the referenced
    window exists, and which side may refer to which, is checked by the loader.
    """
    if is_null_boundary(text):
        if side == "start":
            return Boundary(Reference(window, "end"), "prev", predicate=RECORD_START, was_null=True)
        return Boundary(Reference(window, "start"), "next", predicate=RECORD_END, was_null=True)
    if not isinstance(text, str):
        raise EhrbenchError(f"expected a string of the form {BOUNDARY_FORMS}, got {text!r}")
    match = _BOUNDARY.fullmatch(text)
    if not match:
        raise EhrbenchError(f"{text!r} is not a boundary; expected {BOUNDARY_FORMS}")
    reference = parse_reference(match["ref"], window=window, window_names=window_names)
    op, arg = match["op"], match["arg"]
    if op is None:
        return Boundary(reference, "offset")
    if op in ("->", "<-"):
        if not NAME.fullmatch(arg or ""):
            raise EhrbenchError(
                f"{text!r}: after {op!r} comes one predicate name (letters, digits, _), got {arg!r}"
            )
        return Boundary(reference, "next" if op == "->" else "prev", predicate=arg)
    if "+" in arg or "->" in arg or "<-" in arg or arg.lstrip().startswith("-"):
        raise EhrbenchError(
            f"{text!r} has more than one operator; a boundary is REF, then one of + Δ, - Δ, "
            "-> PRED, <- PRED"
        )
    offset = parse_duration(arg)
    return Boundary(reference, "offset", offset=-offset if op == "-" else offset)


def parse_reference(text: str, *, window: str, window_names: Collection[str] = ()) -> Reference:
    """Parse REF: `trigger`, `start`, `end`, `WINDOW.start` or `WINDOW.end`."""
    if text == "trigger":
        return TRIGGER
    if text in ("start", "end"):
        return Reference(window, text)
    dotted = _REFERENCE.fullmatch(text)
    if dotted:
        if dotted["side"] not in ("start", "end"):
            raise EhrbenchError(
                f"{text!r}: a window reference ends in .start or .end, "
                f"e.g. {dotted['window']}.start or {dotted['window']}.end"
            )
        return Reference(dotted["window"], dotted["side"])
    if text in window_names:
        hint = f"did you mean {text}.start or {text}.end?"
    elif close := did_you_mean(text, ["trigger", "start", "end"]):
        hint = close
    else:
        hint = (
            "a bare predicate name is not a reference; to stop at the next or previous "
            f"{text} event write `start -> {text}` or `end <- {text}`"
        )
    raise EhrbenchError(f"{text!r} is not a reference: expected {REFERENCE_FORMS}; {hint}")


_RANGE_SIDE = re.compile(r"\s*(?:None|[+-]?\d+)?\s*")


def parse_has_range(text: object) -> tuple[int | None, int | None]:
    """Parse a `has` value such as `"(5, None)"`, `"(None, 0)"`, `"(5,)"` or `"(,10)"`.

    Both bounds are inclusive counts; `None` or an empty side is unbounded. As in ACES, the
    parentheses may be left out or unbalanced (`"1, 2"`, `"(1, 2"`). A bare number,
    `(None, None)` or min > max is an error; a negative bound is accepted, as in ACES (the
    loader warns about it).
    """
    example = 'a string "(min, max)" such as "(1, None)", "(None, 0)" or "(2, 5)"'
    if isinstance(text, bool) or not isinstance(text, str):
        raise EhrbenchError(f"expected {example}, got {text!r} (quote it in YAML)")
    # Like ACES, strip any parentheses at either end, so "(1, 2", "1, 2)" and "1, 2" are accepted.
    sides = text.strip().strip("()").split(",")
    if len(sides) != 2 or not all(_RANGE_SIDE.fullmatch(s) for s in sides):
        raise EhrbenchError(f"{text!r} is not a count range; expected {example}")
    low, high = (None if s.strip() in ("", "None") else int(s) for s in sides)
    if low is None and high is None:
        raise EhrbenchError(f"{text!r} bounds nothing; drop the constraint or give a min or max")
    if low is not None and high is not None and low > high:
        raise EhrbenchError(f"{text!r} has min {low} > max {high}, which no count satisfies")
    return low, high


_EXPR = re.compile(r"\s*(?P<op>\w+)\s*\((?P<args>.*)\)\s*", re.DOTALL)


def parse_expr(text: object) -> tuple[Literal["and", "or"], tuple[str, ...]]:
    """Parse a derived predicate's `expr`: `and(a, b, ...)` or `or(a, b, ...)`, not nested."""
    example = "and(a, b, ...) or or(a, b, ...) with at least two predicate names"
    if not isinstance(text, str):
        raise EhrbenchError(f"expected a string {example}, got {text!r}")
    match = _EXPR.fullmatch(text)
    if not match:
        raise EhrbenchError(f"{text!r} is not an expression; expected {example}")
    op = match["op"]
    if op not in ("and", "or"):
        hint = " (there is no `not`)" if op.lower() == "not" else ""
        raise EhrbenchError(f"{text!r}: unknown operator {op!r}{hint}; expected {example}")
    args = match["args"]
    if "(" in args or ")" in args:
        raise EhrbenchError(
            f"{text!r} nests expressions; define the inner one as its own derived predicate "
            "and name it here"
        )
    names = tuple(a.strip() for a in args.split(","))
    bad = [n for n in names if not NAME.fullmatch(n)]
    if bad:
        raise EhrbenchError(f"{text!r}: {bad[0]!r} is not a predicate name; expected {example}")
    if len(names) < 2:
        raise EhrbenchError(f"{text!r} names only one predicate; expected {example}")
    return op, names
