"""Matching a file's rows one to one to the label rows, by (subject_id, prediction_time).

A representation file and an outside prediction file each hold one row per label row, written
by another tool. A silent inner join would score or train on whatever happened to match, so
`match_label_rows` refuses every mismatch instead: a key of the wrong type or null, a repeated
key, a label row the file lacks, a file row no label row has. Each error names the file, how
many rows are affected and the first of them.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ehrbench.errors import EhrbenchError

KEY = ("subject_id", "prediction_time")


def _keys(frame: pl.DataFrame, source: str, what: str) -> pl.DataFrame:
    """The (subject_id int64, prediction_time datetime[us]) columns of `frame`, checked."""
    for name, check, expected in (
        ("subject_id", lambda t: t.is_integer(), "an integer (int64)"),
        ("prediction_time", lambda t: isinstance(t, pl.Datetime), "a timestamp (timestamp[us])"),
    ):
        if name not in frame.columns:
            raise EhrbenchError(
                f"{source}: no `{name}` column; a {what} file needs `subject_id` (int64) and "
                f"`prediction_time` (timestamp[us]); its columns are {frame.columns}."
            )
        if not check(frame.schema[name]):
            raise EhrbenchError(
                f"{source}: column `{name}` is {frame.schema[name]}, expected {expected}."
            )
        nulls = frame[name].is_null()
        if nulls.any():
            raise EhrbenchError(
                f"{source}: {int(nulls.sum())} row(s) have a null `{name}`; the first is row "
                f"{int(nulls.arg_true()[0])} (rows count from 0)."
            )
    return frame.select(
        pl.col("subject_id").cast(pl.Int64), pl.col("prediction_time").cast(pl.Datetime("us"))
    )


def _describe(keys: pl.DataFrame, row: int) -> str:
    subject, time = keys.row(row)
    return f"row {row} (subject_id {subject}, prediction_time {time})"


def match_label_rows(
    frame: pl.DataFrame, labels: pl.DataFrame, source: str, what: str
) -> np.ndarray:
    """For each label row, in label order, the index of `frame`'s row with the same key.

    `frame` must hold exactly one row per distinct (subject_id, prediction_time) of `labels`;
    `what` names its rows in messages ("embedding", "prediction"). Raises `EhrbenchError`
    naming `source`, the count and the first offending row otherwise.

    >>> from datetime import datetime
    >>> labels = pl.DataFrame({"subject_id": [1, 2], "prediction_time": [datetime(2020, 1, 1)] * 2})
    >>> match_label_rows(labels.reverse(), labels, "f.parquet", "embedding").tolist()
    [1, 0]
    >>> match_label_rows(labels.head(1), labels, "f.parquet", "embedding")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ehrbench.errors.EhrbenchError: f.parquet: 1 of 2 label row(s) have no embedding row; ...
    """
    mine = _keys(frame, source, what)
    wanted = _keys(labels, "the label table", "label")
    repeated = ~mine.select(pl.struct(*KEY).is_first_distinct()).to_series()
    if repeated.any():
        raise EhrbenchError(
            f"{source}: {int(repeated.sum())} {what} row(s) repeat the (subject_id, "
            "prediction_time) of an earlier row; the first is "
            f"{_describe(mine, int(repeated.arg_true()[0]))} (rows count from 0). Expected one "
            f"{what} row per label row."
        )
    joined = wanted.with_row_index("_label").join(
        mine.with_row_index("_file"), on=list(KEY), how="left", maintain_order="left"
    )
    missing = joined["_file"].is_null()
    if missing.any():
        raise EhrbenchError(
            f"{source}: {int(missing.sum())} of {labels.height} label row(s) have no {what} row; "
            f"the first is label {_describe(wanted, int(missing.arg_true()[0]))} (rows count "
            f"from 0). Expected one {what} row per label row."
        )
    extra = ~pl.Series(np.arange(mine.height)).is_in(joined["_file"].cast(pl.Int64).implode())
    if extra.any():
        raise EhrbenchError(
            f"{source}: {int(extra.sum())} {what} row(s) match no label row; the first is "
            f"{_describe(mine, int(extra.arg_true()[0]))} (rows count from 0). Expected one "
            f"{what} row per label row, and no other."
        )
    return joined["_file"].to_numpy().astype(np.int64)
