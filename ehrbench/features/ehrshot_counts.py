"""EHRSHOT's count features: lifetime counts of every code and its ancestors, plus age.

One sparse row per label row: column 0 is the age, then one column per code of the vocabulary
(sorted by code string) holding how many events of that code, or of a code it is an ancestor
of, the subject has at or before the prediction time (inclusive). As in EHRSHOT (FEMR's
`CountFeaturizer` with ontology expansion and `AgeFeaturizer`):

- only events without a numeric value count (a lab result with a value counts nowhere);
- every counted event also counts once for each ancestor of its code (`code_ancestors`);
- age is the whole days from MEDS_BIRTH to the prediction time over 365, z-scored.

Where ehrbench deviates, deliberately:

- Ancestors: EHRSHOT takes them from the Athena (OMOP) ontology; ehrbench has no outside
  ontology, so an ICD code's ancestors are its own prefixes down to the 3-character category
  (`code_ancestors`), an approximation of that hierarchy. Other codes have no ancestor.
- No leak: the vocabulary comes from the train rows' history (EHRSHOT takes every code of every
  labelled patient's whole timeline), and the age mean and sample standard deviation from the
  train rows (EHRSHOT: all label rows). A code never seen by a training row has a zero column on
  every training row, which logistic regression and LightGBM ignore, so those models fit the
  same; only the column count differs (random forest's `sqrt` feature draws see it).
- Static (null-time) MEDS rows without a value count as events before every prediction time,
  as FEMR's demographic events at birth do. A row whose subject has no MEDS_BIRTH gets age 0
  (the training mean).
"""

from __future__ import annotations

import logging

import numpy as np
import polars as pl
import scipy.sparse as sp

from ehrbench.features.config import EhrshotCountsConfig
from ehrbench.features.rows import fit_mask, fitting_subjects, label_rows, row_frame
from ehrbench.features.shard_events import BIRTH_CODE, events_upto, rows_by_shard
from ehrbench.features.tabular import TabularFeatures
from ehrbench.features.vocabulary import fit_code_statistics
from ehrbench.meds import MedsDataset

AGE_FEATURE = "age/z_score"
ICD_CATEGORY_LENGTH = 3
US_PER_DAY = 86400 * 1_000_000
logger = logging.getLogger(__name__)


def code_ancestors(code: str) -> tuple[str, ...]:
    """The code itself then its ancestors: for an ICD code, its prefixes down to the category.

    An ICD code is one with a `//`-separated part starting with `ICD` before its last part; the
    last part is the ICD code, shortened one character at a time down to 3 characters (a dot
    left at the end is dropped).

    >>> code_ancestors("DIAGNOSIS//ICD//10//E119")
    ('DIAGNOSIS//ICD//10//E119', 'DIAGNOSIS//ICD//10//E11')
    >>> code_ancestors("DIAGNOSIS//ICD10CM//E11.95")
    ('DIAGNOSIS//ICD10CM//E11.95', 'DIAGNOSIS//ICD10CM//E11.9', 'DIAGNOSIS//ICD10CM//E11')
    >>> code_ancestors("LAB//50912//mg/dL")
    ('LAB//50912//mg/dL',)
    """
    head, _, icd = code.rpartition("//")
    if not head or not any(part.upper().startswith("ICD") for part in head.split("//")):
        return (code,)
    prefixes = [icd[:n].rstrip(".") for n in range(len(icd), ICD_CATEGORY_LENGTH - 1, -1)]
    return (code, *(f"{head}//{p}" for p in dict.fromkeys(prefixes) if p != icd))


def ancestor_table(codes: list[str]) -> pl.DataFrame:
    """(code, ancestor) pairs of `codes`, each code paired with itself too."""
    pairs = [(code, ancestor) for code in codes for ancestor in code_ancestors(code)]
    return pl.DataFrame(pairs, schema={"code": pl.String, "ancestor": pl.String}, orient="row")


def fit_counts_vocabulary(
    dataset: MedsDataset, rows: pl.DataFrame, mask: np.ndarray
) -> tuple[str, ...]:
    """The sorted codes with a value-less event in the fitting rows' history, with ancestors."""
    stats = fit_code_statistics(dataset, rows, mask)
    counted = stats.filter(pl.col("count") > pl.col("value_count"))["code"].unique().to_list()
    return tuple(sorted(ancestor_table(counted)["ancestor"].unique().to_list()))


def _code_columns(codes: tuple[str, ...]) -> pl.DataFrame:
    """(code, column) pairs: each code of `codes` with its own column and its ancestors'
    (columns from 1, in `codes` order)."""
    code_index = pl.DataFrame({"code": list(codes)}, schema={"code": pl.String}).with_columns(
        pl.int_range(1, len(codes) + 1, dtype=pl.Int64).alias("column")
    )
    return (
        ancestor_table(list(codes))
        .join(code_index.rename({"code": "ancestor"}), on="ancestor")
        .select("code", "column")
    )


def _batch_counts(events: pl.LazyFrame, code_columns: pl.DataFrame) -> pl.LazyFrame:
    """(row, column, count) of one batch: value-less events counted for each ancestor."""
    codes = events.filter(pl.col("value").is_null()).select("row", "code")
    return (
        codes.join(code_columns.lazy(), on="code")
        .group_by("row", "column")
        .agg(pl.len().alias("count"))
    )


def _batch_ages(events: pl.LazyFrame) -> pl.LazyFrame:
    """(row, age) of one batch: whole days from the first MEDS_BIRTH over 365."""
    return (
        events.filter((pl.col("code") == BIRTH_CODE) & pl.col("time").is_not_null())
        .group_by("row")
        .agg(((pl.col("t").first() - pl.col("time").min()) // US_PER_DAY / 365).alias("age"))
    )


def count_features(
    dataset: MedsDataset, rows: pl.DataFrame, codes: tuple[str, ...]
) -> tuple[pl.DataFrame, np.ndarray]:
    """The (row, column, count) entries of `codes` (columns from 1) and each row's raw age (NaN
    when unknown). Events after a row's prediction time never reach it (`events_upto`)."""
    code_columns = _code_columns(codes)  # once: the same for every batch
    counts, ages = [], np.full(rows.height, np.nan)
    for shard, shard_rows in rows_by_shard(dataset, rows, desc="EHRSHOT count features"):
        events = events_upto(dataset, shard, shard_rows)
        batch_counts, batch_ages = pl.collect_all(
            [_batch_counts(events, code_columns), _batch_ages(events)]
        )
        counts.append(batch_counts)
        ages[batch_ages["row"].to_numpy()] = batch_ages["age"].to_numpy()
    schema = {"row": pl.Int64, "column": pl.Int64, "count": pl.UInt32}
    return pl.concat([c.cast(schema) for c in counts]), ages


def age_statistics(ages: np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation of the known ages; a std of 1 when undefined or 0.

    >>> age_statistics(np.array([20.0, 40.0, np.nan]))
    (30.0, 14.142135623730951)
    """
    known = ages[~np.isnan(ages)]
    mean = float(known.mean()) if known.size else 0.0
    std = float(known.std(ddof=1)) if known.size > 1 else 0.0
    return mean, std if std > 0 else 1.0


def build_ehrshot_counts(
    dataset: MedsDataset,
    labels: pl.DataFrame,
    config: EhrshotCountsConfig | None = None,
    fit_split: str | tuple[str, ...] = "train",
) -> TabularFeatures:
    """Fit the vocabulary and age statistics on the `fit_split` rows; featurise every label row.

    >>> from ehrbench.synth.examples import example_inputs
    >>> dataset, labels = example_inputs()  # 30 synthetic subjects, two label rows
    >>> features = build_ehrshot_counts(dataset, labels)
    >>> features.feature_names[0], features.matrix.shape[0]
    ('age/z_score', 2)
    """
    rows = label_rows(labels)
    mask = fit_mask(rows, fitting_subjects(dataset, labels, fit_split))
    codes = fit_counts_vocabulary(dataset, rows, mask)
    counts, ages = count_features(dataset, rows, codes)
    mean, std = age_statistics(ages[mask])
    logger.info("EHRSHOT counts: %d codes; age mean %.2f, sd %.2f", len(codes), mean, std)
    known = np.flatnonzero(~np.isnan(ages))
    row_ids = np.concatenate([known, counts["row"].to_numpy()])
    columns = np.concatenate([np.zeros(known.size, np.int64), counts["column"].to_numpy()])
    values = np.concatenate([(ages[known] - mean) / std, counts["count"].to_numpy()])
    matrix = sp.csr_matrix(
        (values.astype(np.float32), (row_ids, columns)), shape=(rows.height, len(codes) + 1)
    )
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return TabularFeatures(
        matrix=matrix,
        rows=row_frame(labels),
        feature_names=[AGE_FEATURE, *(f"{code}/count/lifetime" for code in codes)],
    )
