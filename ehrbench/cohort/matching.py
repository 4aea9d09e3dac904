"""Does an event row match a plain predicate: code, value and column tests.

Tests are polars expressions, so regex semantics are polars' (as in ACES). `any_code_test` picks
the rows whose code any predicate accepts, in one pass; `row_match` tests each predicate on them.
Null never matches.
"""

from __future__ import annotations

import polars as pl

from ehrbench.cohort.model import CODE, VALUE, AnyCode, ExactCode, PlainPredicate, RegexCode


def _literal_for(value: object, dtype: pl.DataType) -> pl.Expr:
    """`value` as a literal of the column's type, so a YAML 5 compares equal to a string "5"."""
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return pl.lit(str(value).lower() if isinstance(value, bool) else str(value))
    return pl.lit(value).cast(dtype, strict=False)


def code_test(pred: PlainPredicate) -> pl.Expr:
    """A boolean expression on the `code` column: exact, unanchored regex search, or any-of."""
    code = pl.col(CODE).cast(pl.String)
    match pred.code:
        case ExactCode(value):
            test = code == pl.lit(value)
        case RegexCode(pattern):
            test = code.str.contains(pattern)
        case AnyCode(values):
            test = code.is_in(list(values))
    return test.fill_null(False)


def row_test(pred: PlainPredicate, schema: pl.Schema) -> pl.Expr | None:
    """The non-code part of `pred` (value bounds, column equalities), or None when there is none.

    Null never passes: a null numeric_value fails any bound, a null column fails an equality.
    The columns must be in `schema` (an extraction checks them once, before reading).
    """
    tests = []
    if pred.value_min is not None or pred.value_max is not None:
        # float32 on both sides: the MEDS type of numeric_value (spec section 2).
        value = pl.col(VALUE).cast(pl.Float32)
        if pred.value_min is not None:
            bound = pl.lit(pred.value_min, dtype=pl.Float32)
            tests.append(value >= bound if pred.value_min_inclusive else value > bound)
        if pred.value_max is not None:
            bound = pl.lit(pred.value_max, dtype=pl.Float32)
            tests.append(value <= bound if pred.value_max_inclusive else value < bound)
    for column, expected in pred.other_cols:
        tests.append(pl.col(column) == _literal_for(expected, schema[column]))
    return pl.all_horizontal(tests).fill_null(False) if tests else None


def row_match(pred: PlainPredicate, schema: pl.Schema) -> pl.Expr:
    """A boolean expression: does a row match the plain predicate `pred`? Null never matches."""
    rest = row_test(pred, schema)
    return code_test(pred) if rest is None else code_test(pred) & rest


def any_code_test(preds: list[PlainPredicate]) -> pl.Expr:
    """A boolean expression: does a row's code pass the code test of any of `preds`?

    One hash lookup for every exact code and one search for every pattern (an alternation), so
    the cost per row barely grows with the number of predicates; a filter on it keeps the few
    rows on which each predicate's own test (`row_match`) is then run.

    >>> preds = [PlainPredicate("a", RegexCode("^ADMIT")), PlainPredicate("l", ExactCode("LAB"))]
    >>> codes = pl.DataFrame({"code": ["ADMIT//ER", "LAB", "RX", None]})
    >>> codes.select(any_code_test(preds))["code"].to_list()
    [True, True, False, False]
    """
    exact, patterns = {}, {}
    for pred in preds:
        match pred.code:
            case ExactCode(value):
                exact[value] = None
            case AnyCode(values):
                exact.update(dict.fromkeys(values))
            case RegexCode(pattern):
                patterns[f"(?:{pattern})"] = None
    code = pl.col(CODE).cast(pl.String)
    tests = [code.is_in(list(exact))] if exact else []
    tests += [code.str.contains("|".join(patterns))] if patterns else []
    return pl.any_horizontal(tests).fill_null(False) if tests else pl.lit(False)
