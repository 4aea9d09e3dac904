"""The label rows to featurise and the rows that fit the vocabulary: where featurisation starts.

A label table becomes the (row, subject_id, t) table every later stage works on: `row` is the
position in the label table, `t` the prediction time in int64 microseconds since the epoch. The
fitting rows are the label rows whose subjects are in the fitting split(s); only their history
teaches a vocabulary or a statistic.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl

from ehrbench.errors import EhrbenchError
from ehrbench.meds import MedsDataset


def label_rows(labels: pl.DataFrame) -> pl.DataFrame:
    """The (row, subject_id, t) table of a label table: `row` is the label order, `t` in us.

    Raises EhrbenchError for an empty table, missing columns or a null key.
    """
    for name in ("subject_id", "prediction_time"):
        if name not in labels.columns:
            raise EhrbenchError(
                f"the label table has no `{name}` column: featurisation needs `subject_id` and "
                "`prediction_time` (MEDS label schema)."
            )
    if labels.height == 0:
        raise EhrbenchError(
            "the label table is empty: there are no (subject_id, prediction_time) rows to "
            "featurise. Check the cohort that produced it."
        )
    rows = labels.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("row"),
        pl.col("subject_id").cast(pl.Int64),
        pl.col("prediction_time").cast(pl.Datetime("us")).cast(pl.Int64).alias("t"),
    )
    if rows["subject_id"].null_count() or rows["t"].null_count():
        raise EhrbenchError(
            "the label table has null `subject_id` or `prediction_time` values: every label row "
            "needs both."
        )
    return rows


def row_frame(labels: pl.DataFrame) -> pl.DataFrame:
    """The (subject_id, prediction_time) index of a label table, in label order."""
    return labels.select(
        pl.col("subject_id").cast(pl.Int64),
        pl.col("prediction_time").cast(pl.Datetime("us")),
    )


def normalise_splits(fit_split: str | Iterable[str]) -> tuple[str, ...]:
    """Turn `train`, `train,tuning` or `["train", "tuning"]` into a sorted tuple of names.

    >>> normalise_splits("tuning, train")
    ('train', 'tuning')
    """
    names = fit_split.split(",") if isinstance(fit_split, str) else list(fit_split)
    cleaned = tuple(sorted({name.strip() for name in names if name.strip()}))
    if not cleaned:
        raise EhrbenchError("the fitting split is empty: name one, e.g. `train`.")
    return cleaned


def fitting_subjects(
    dataset: MedsDataset, labels: pl.DataFrame, fit_split: str | Iterable[str]
) -> np.ndarray:
    """The sorted subject ids of the named split(s) of `dataset`.

    Raises EhrbenchError when no label row's subject is among them: the vocabulary and
    statistics would be fitted on nothing.
    """
    splits = normalise_splits(fit_split)
    table = dataset.subject_splits()
    chosen = table.filter(pl.col("split").is_in(list(splits)))["subject_id"].cast(pl.Int64)
    subjects = np.unique(chosen.to_numpy())
    if not np.isin(label_rows(labels)["subject_id"].to_numpy(), subjects).any():
        raise EhrbenchError(
            f"no label row's subject is in the fitting split(s) {list(splits)} of "
            "metadata/subject_splits.parquet: the vocabulary and statistics would be fitted on "
            "nothing. Choose another `--fit-on` split or check the labels' subjects."
        )
    return subjects


def fit_mask(
    rows: pl.DataFrame, fit_rows_mask_or_subjects: np.ndarray | pl.Series | Iterable[int]
) -> np.ndarray:
    """A boolean mask over label rows: either given as one, or rows whose subject is listed."""
    given = fit_rows_mask_or_subjects
    if isinstance(given, pl.Series):
        array = given.to_numpy()
    elif isinstance(given, np.ndarray):
        array = given
    else:
        array = np.asarray(list(given))
    if array.dtype == bool:
        if array.shape != (rows.height,):
            raise EhrbenchError(
                f"the fitting row mask has {array.shape[0]} entries but the label table has "
                f"{rows.height} rows: give one boolean per label row."
            )
        mask = array
    else:
        mask = np.isin(rows["subject_id"].to_numpy(), array.astype(np.int64))
    if not mask.any():
        raise EhrbenchError(
            "no label row falls in the fitting split: the vocabulary and statistics would be "
            "fitted on nothing. Check `--fit-on` against metadata/subject_splits.parquet and "
            "the label table's subjects."
        )
    return mask
