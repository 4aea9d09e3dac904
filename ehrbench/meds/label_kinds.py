"""What a label table asks a model to predict, read from which value column it fills.

A MEDS label table fills exactly one of its value columns; that column decides the label kind:

| filled column | kind | target values |
|---|---|---|
| `boolean_value` | binary | bool |
| `integer_value` or `float_value` | regression | float64 |
| `categorical_value` | multiclass | int64 index into `classes` |

A multiclass label's classes come in `class_order` when the cohort gives one (its `classes:`
names, most severe first, then `otherwise`): the classes are then ordered, and the per-threshold
metrics apply. Without an order the classes are the names seen, sorted alphabetically. This is
the one place the kind is decided: models, predictions, metrics and few-shot sampling all take
the `LabelTarget` made here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from ehrbench.errors import EhrbenchError

BINARY = "binary"
REGRESSION = "regression"
MULTICLASS = "multiclass"
LABEL_KINDS = (BINARY, REGRESSION, MULTICLASS)
VALUE_COLUMNS = {
    "boolean_value": BINARY,
    "integer_value": REGRESSION,
    "float_value": REGRESSION,
    "categorical_value": MULTICLASS,
}


@dataclass(frozen=True)
class LabelTarget:
    """The kind of a label table, the column holding it and, for multiclass, its classes.

    `ordered` says the classes follow a given order (most severe first) rather than the
    alphabet.
    """

    kind: str
    column: str
    classes: tuple[str, ...] = ()
    ordered: bool = False

    def as_dict(self) -> dict[str, object]:
        """The target as JSON-ready fields (saved with a fitted model)."""
        return {
            "kind": self.kind,
            "column": self.column,
            "classes": list(self.classes),
            "ordered": self.ordered,
        }

    @classmethod
    def from_dict(cls, record: dict[str, object]) -> LabelTarget:
        """The target written by `as_dict`."""
        return cls(
            str(record["kind"]),
            str(record["column"]),
            tuple(record.get("classes", ())),
            bool(record.get("ordered", False)),
        )


BINARY_TARGET = LabelTarget(BINARY, "boolean_value")


def label_column(labels: pl.DataFrame, source: str) -> str:
    """The one value column `labels` fills (non-null on some row); raise on none or several.

    An empty table with a `boolean_value` column is binary: there is nothing else to tell.

    >>> label_column(pl.DataFrame({"float_value": [1.5, 2.0], "boolean_value": [None, None]}), "t")
    'float_value'
    """
    filled = [
        c for c in VALUE_COLUMNS if c in labels.columns and labels[c].null_count() < labels.height
    ]
    if not filled and labels.height == 0 and "boolean_value" in labels.columns:
        return "boolean_value"
    if len(filled) != 1:
        found = "none of them" if not filled else f"{len(filled)} of them ({filled})"
        raise EhrbenchError(
            f"label table {source} must fill exactly one of the value columns "
            f"{list(VALUE_COLUMNS)} (it decides the label kind), but fills {found}."
        )
    column = filled[0]
    if labels[column].null_count():
        raise EhrbenchError(
            f"label table {source} needs a non-null `{column}` on every row, but "
            f"{labels[column].null_count()} of its {labels.height} row(s) are null."
        )
    return column


def label_target(
    labels: pl.DataFrame, source: str, class_order: Sequence[str] | None = None
) -> LabelTarget:
    """The `LabelTarget` of `labels`; `class_order` orders a multiclass label's classes.

    >>> labels = pl.DataFrame({"categorical_value": ["mild", "severe", "mild"]})
    >>> label_target(labels, "t").classes
    ('mild', 'severe')
    >>> label_target(labels, "t", ["severe", "mild", "normal"]).classes
    ('severe', 'mild', 'normal')
    """
    column = label_column(labels, source)
    kind = VALUE_COLUMNS[column]
    if kind != MULTICLASS:
        if class_order is not None:
            raise EhrbenchError(
                f"label table {source}: a class order is given, but the label is {kind} "
                f"(`{column}`), not multiclass (`categorical_value`)."
            )
        return LabelTarget(kind, column)
    seen = sorted(labels[column].unique().to_list())
    if class_order is None:
        return LabelTarget(kind, column, tuple(seen))
    order = tuple(str(name) for name in class_order)
    twice = sorted({name for name in order if order.count(name) > 1})
    if twice:
        raise EhrbenchError(f"class order {list(order)} names {', '.join(twice)} twice.")
    if len(order) < 2:
        raise EhrbenchError(f"class order {list(order)} must name at least two classes.")
    unknown = [name for name in seen if name not in order]
    if unknown:
        raise EhrbenchError(
            f"label table {source}: `{column}` holds class(es) {unknown} that the class order "
            f"{list(order)} does not list."
        )
    return LabelTarget(kind, column, order, ordered=True)


def parse_class_order(text: str) -> list[str]:
    """A `--class-order` option's value: class names separated by commas, in order.

    >>> parse_class_order("severe, moderate,mild,normal")
    ['severe', 'moderate', 'mild', 'normal']
    """
    return [name.strip() for name in text.split(",")]


def target_values(labels: pl.DataFrame, target: LabelTarget) -> np.ndarray:
    """The label of every row as the models take it: bool, float64, or int64 class index
    (`target` as `label_target` made it from these labels, so the column has no null).

    >>> target = LabelTarget(MULTICLASS, "categorical_value", ("b", "a"), ordered=True)
    >>> target_values(pl.DataFrame({"categorical_value": ["a", "b", "a"]}), target)
    array([1, 0, 1])
    """
    column = labels[target.column]
    if target.kind == BINARY:
        return column.cast(pl.Boolean).to_numpy().astype(bool)
    if target.kind == REGRESSION:
        return column.cast(pl.Float64).to_numpy()
    index = {name: position for position, name in enumerate(target.classes)}
    return np.array([index[value] for value in column.to_list()], dtype=np.int64)


# The meds-evaluation prediction form, extended per kind: the label's own column, then
# `predicted_boolean_value` + `predicted_boolean_probability` (binary), `predicted_float_value`
# (regression), or `predicted_categorical_value` + one `predicted_probability//<CLASS>` column
# per class in class order (multiclass).
PROBABILITY_PREFIX = "predicted_probability//"
PREDICTED_COLUMNS = {
    BINARY: "predicted_boolean_value",
    REGRESSION: "predicted_float_value",
    MULTICLASS: "predicted_categorical_value",
}


def probability_columns(classes: Sequence[str]) -> list[str]:
    """The probability column of each class of a multiclass prediction frame, in class order.

    >>> probability_columns(["severe", "normal"])
    ['predicted_probability//severe', 'predicted_probability//normal']
    """
    return [f"{PROBABILITY_PREFIX}{name}" for name in classes]


def prediction_target(predictions: pl.DataFrame, source: str) -> LabelTarget:
    """The `LabelTarget` of a prediction frame, from its predicted column and label column.

    A multiclass frame's classes are its probability columns in their order; whether that order
    is meaningful the frame cannot say, so the target is unordered.

    >>> frame = pl.DataFrame({"float_value": [1.0], "predicted_float_value": [1.5]})
    >>> prediction_target(frame, "p").kind
    'regression'
    """
    if PREDICTED_COLUMNS[REGRESSION] in predictions.columns:
        kind = REGRESSION
    elif PREDICTED_COLUMNS[MULTICLASS] in predictions.columns:
        kind = MULTICLASS
    else:
        return BINARY_TARGET
    columns = [c for c, k in VALUE_COLUMNS.items() if k == kind and c in predictions.columns]
    if len(columns) != 1:
        raise EhrbenchError(
            f"{source}: a {kind} prediction frame needs exactly one label column of "
            f"{[c for c, k in VALUE_COLUMNS.items() if k == kind]}, found {columns}."
        )
    classes = tuple(
        c.removeprefix(PROBABILITY_PREFIX)
        for c in predictions.columns
        if c.startswith(PROBABILITY_PREFIX)
    )
    if kind == MULTICLASS and len(classes) < 2:
        raise EhrbenchError(
            f"{source}: a multiclass prediction frame needs one `{PROBABILITY_PREFIX}<CLASS>` "
            f"column per class (at least two), found {list(classes)}."
        )
    return LabelTarget(kind, columns[0], classes)
