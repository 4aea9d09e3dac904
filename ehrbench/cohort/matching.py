"""Does an event row match a plain predicate: code, value and column tests.

Tests are polars expressions, so regex semantics are polars' (as in ACES). `CodeTests` runs each
predicate's code test once per distinct code string and answers per row by lookup; `plain_hits`
adds the value and column tests on the rows that need them. Null never matches.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

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


class CodeTests:
    """Each predicate's code test, evaluated once per distinct code string.

    Parquet gives each row group its own code dictionary; the tests run (through polars, so
    regex semantics are polars') only on codes not seen before. Each row is mapped to the id
    of its code among the codes seen so far (-1 for a null code), and a predicate's test of
    any set of rows is then one gather from its per-code results.
    """

    def __init__(self, preds: list[PlainPredicate]):
        self.preds = preds
        self._position: dict[str, int] = {}
        # Per predicate, its result for every code seen so far, then a final False that the
        # id -1 (a null code) picks.
        self._known: dict[str, np.ndarray] = {p.name: np.zeros(1, bool) for p in preds}
        self._last: tuple[pa.Array, np.ndarray] | None = None

    def _learn(self, codes: list[str | None]) -> None:
        new = [c for c in dict.fromkeys(codes) if c is not None and c not in self._position]
        if not new:
            return
        tests = pl.DataFrame({CODE: new}, schema={CODE: pl.String}).select(
            code_test(p).alias(p.name) for p in self.preds
        )
        for code in new:
            self._position[code] = len(self._position)
        for p in self.preds:
            known = self._known[p.name]
            self._known[p.name] = np.concatenate([known[:-1], tests[p.name].to_numpy(), [False]])

    def _dictionary_ids(self, dictionary: pa.Array) -> np.ndarray:
        """Per dictionary entry its code's id, plus a final -1 for null indices."""
        # Consecutive batches of one row group carry equal dictionaries: answer once.
        if self._last is not None and self._last[0].equals(dictionary):
            return self._last[1]
        codes = dictionary.to_pylist()
        self._learn(codes)
        ids = np.array([self._position.get(c, -1) for c in codes] + [-1], dtype=np.int64)
        self._last = (dictionary, ids)
        return ids

    def ids(self, codes: pa.ChunkedArray) -> np.ndarray:
        """Per row, the id of its code (-1 for a null code)."""
        parts = []
        for chunk in codes.chunks:
            if not pa.types.is_dictionary(chunk.type):
                chunk = pc.dictionary_encode(chunk)
            indices = chunk.indices
            if indices.null_count:
                indices = pc.fill_null(indices, len(chunk.dictionary))
            parts.append(self._dictionary_ids(chunk.dictionary)[indices.to_numpy()])
        return joined(parts, np.int64)

    def test(self, name: str, ids: np.ndarray) -> np.ndarray:
        """Per id, whether its code passes predicate `name`'s code test."""
        return self._known[name][ids]

    def any_test(self, names: list[str], ids: np.ndarray) -> np.ndarray:
        """Per id, whether its code passes the code test of any of `names`."""
        known = np.zeros(len(self._position) + 1, dtype=bool)
        for name in names:
            known |= self._known[name]
        return known[ids]


def joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    """The parts end to end, without a copy when there is just one."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def value_columns(preds: list[PlainPredicate]) -> list[str]:
    """The non-code columns the predicates test."""
    return sorted({column for p in preds for column in p.columns() if column != CODE})


def plain_hits(
    batch: pa.Table,
    codes: CodeTests,
    ids: np.ndarray,
    rows: np.ndarray,
    preds: list[PlainPredicate],
) -> dict[str, np.ndarray]:
    """Per row of `batch` listed in `rows`, whether it matches each of `preds` (numpy bools).

    `ids` are the batch's per-row code ids from `codes`; only the listed rows are tested.
    """
    row_ids = ids[rows]
    hits = {p.name: codes.test(p.name, row_ids) for p in preds}
    columns = value_columns(preds)
    if not columns:
        return hits
    others = pl.from_arrow(batch.select(columns).take(rows))
    assert isinstance(others, pl.DataFrame)
    rests = {p.name: rest for p in preds if (rest := row_test(p, others.schema)) is not None}
    if rests:
        passed = others.select(rest.alias(name) for name, rest in rests.items())
        for name in rests:
            hits[name] &= passed[name].to_numpy()
    return hits
