"""Metrics by sex and by age band at prediction time.

Sex comes from the static codes `GENDER//F` and `GENDER//M`; age from `MEDS_BIRTH`. A subject
with neither (or both) sex codes, or no birth event, falls in the level `unknown`. Age bands are
given by their lower bounds: (18, 45, 65, 80) gives `<18`, `18-44`, `45-64`, `65-79`, `80+`,
with age in completed calendar years at the row's `prediction_time` (the birthday counts).

Intervals use the run's shared resamples restricted to the subgroup's rows, so a subgroup's
size varies across resamples exactly as it would in a fresh held-out set. Metrics that need both
classes (AUROC, AUPRC) are NaN, with a NaN interval, in a subgroup that has only one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from ehrbench.errors import EhrbenchError
from ehrbench.meds.label_kinds import BINARY_TARGET, LabelTarget
from ehrbench.metrics.bootstrap import CI_LEVEL, METRIC_TABLE_SCHEMA, Resamples
from ehrbench.metrics.scores import N_BINS
from ehrbench.metrics.tables import score_table

DEFAULT_AGE_BANDS = (18, 45, 65, 80)
UNKNOWN = "unknown"
SEX_CODES = {"GENDER//F": "F", "GENDER//M": "M"}
DEMOGRAPHICS_SCHEMA: dict[str, pl.DataType] = {
    "subject_id": pl.Int64(),
    "sex": pl.String(),
    "birth_datetime": pl.Datetime("us"),
}


def demographics_from_events(events: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """One row per subject with `sex` ("F", "M" or null) and `birth_datetime` (or null).

    `events` is a MEDS event table (subject_id, time, code, ...); only the `GENDER//F|M` and
    `MEDS_BIRTH` rows are read.
    """
    events = events.lazy()
    sex = (
        events.filter(pl.col("code").is_in(list(SEX_CODES)))
        .group_by("subject_id")
        .agg(pl.col("code").unique().alias("codes"))
        .select(
            "subject_id",
            pl.when(pl.col("codes").list.len() == 1)
            .then(pl.col("codes").list.first().replace_strict(SEX_CODES, default=None))
            .alias("sex"),
        )
    )
    birth = (
        events.filter(pl.col("code") == "MEDS_BIRTH")
        .group_by("subject_id")
        .agg(pl.col("time").min().alias("birth_datetime"))
    )
    subjects = events.select("subject_id").unique()
    return (
        subjects.join(sex, on="subject_id", how="left")
        .join(birth, on="subject_id", how="left")
        .select(pl.col(name).cast(dtype) for name, dtype in DEMOGRAPHICS_SCHEMA.items())
        .sort("subject_id")
        .collect()
    )


def age_band_labels(bounds: Sequence[int] = DEFAULT_AGE_BANDS) -> list[str]:
    """Labels of the bands defined by ascending lower `bounds`, youngest first."""
    bounds = _checked_bounds(bounds)
    inner = [f"{lo}-{hi - 1}" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    return [f"<{bounds[0]}", *inner, f"{bounds[-1]}+"]


def _checked_bounds(bounds: Sequence[int]) -> list[int]:
    values = list(bounds)
    ok = values and all(isinstance(v, int) and v > 0 for v in values)
    if not ok or any(b <= a for a, b in zip(values[:-1], values[1:], strict=True)):
        raise EhrbenchError(
            f"subgroups: age_bands must be strictly ascending positive whole years such as "
            f"[18, 45, 65, 80], got {values}."
        )
    return values


def _completed_years(birth: str, at: str) -> pl.Expr:
    """Whole calendar years from `birth` to `at` (a birthday counts from its date on)."""
    before_birthday = (pl.col(at).dt.month() * 100 + pl.col(at).dt.day()) < (
        pl.col(birth).dt.month() * 100 + pl.col(birth).dt.day()
    )
    years = pl.col(at).dt.year() - pl.col(birth).dt.year() - before_birthday.cast(pl.Int32)
    return years.alias("age")


def assign_subgroups(
    predictions: pl.DataFrame,
    demographics: pl.DataFrame,
    age_bands: Sequence[int] = DEFAULT_AGE_BANDS,
) -> pl.DataFrame:
    """`predictions` with two added columns, `sex` and `age_band` (never null: `unknown`)."""
    missing = [c for c in DEMOGRAPHICS_SCHEMA if c not in demographics.columns]
    if missing:
        raise EhrbenchError(
            f"subgroups: the demographics frame lacks column(s) {missing}; expected "
            f"{list(DEMOGRAPHICS_SCHEMA)} (see demographics_from_events)."
        )
    labels = age_band_labels(age_bands)
    demo = demographics.select(
        pl.col(name).cast(dtype) for name, dtype in DEMOGRAPHICS_SCHEMA.items()
    ).unique("subject_id", keep="first", maintain_order=True)
    rows = predictions.join(demo, on="subject_id", how="left")
    age = rows.select(_completed_years("birth_datetime", "prediction_time"))["age"]
    band_index = np.searchsorted(np.asarray(age_bands), age.fill_null(-1).to_numpy(), "right")
    bands = pl.Series("age_band", np.asarray(labels)[band_index]).set(age.is_null(), UNKNOWN)
    return rows.drop("birth_datetime").with_columns(
        pl.col("sex").fill_null(UNKNOWN), bands.alias("age_band")
    )


def subgroup_metrics(
    predictions: pl.DataFrame,
    demographics: pl.DataFrame,
    resamples: Resamples,
    age_bands: Sequence[int] = DEFAULT_AGE_BANDS,
    n_bins: int = N_BINS,
    level: float = CI_LEVEL,
    target: LabelTarget = BINARY_TARGET,
) -> pl.DataFrame:
    """Metric rows (group, level, metric, value, ci_low, ci_high, n_boot) per sex and age band.

    `predictions` is a prediction frame of `target`'s label kind (binary: subject_id,
    prediction_time, boolean_value and predicted_boolean_probability); only the levels present
    in it are reported.
    """
    rows = assign_subgroups(predictions, demographics, age_bands)
    order = {"sex": ["F", "M", UNKNOWN], "age_band": [*age_band_labels(age_bands), UNKNOWN]}
    tables = []
    for group, levels in order.items():
        parts = rows.partition_by(group, maintain_order=True, as_dict=True)  # one pass
        for name in (lv for lv in levels if (lv,) in parts):
            table = score_table(parts[(name,)], resamples, target, n_bins, level)
            tables.append(
                table.select(pl.lit(group).alias("group"), pl.lit(name).alias("level"), pl.all())
            )
    return pl.concat(tables) if tables else pl.DataFrame(schema=METRIC_TABLE_SCHEMA)
