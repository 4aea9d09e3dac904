"""Per-admission outcomes read back from MEDS events, to check and report the synthetic data.

The outcomes are computed from the events alone, the way a cohort would see them, so they check
the generator rather than restate it: in-hospital death, ICU admission (and transfer after the
first 24 h), a stay of 7 days or more, readmission within 30 days of a live discharge, and the
abnormal labs measured after the first 24 h of the stay.
"""

from __future__ import annotations

import polars as pl

from ehrbench.synth.vocabulary import lab_code

DAY = pl.duration(days=1)
# Abnormal lab outcomes: name -> (lab, comparison, threshold); thresholds as EHRSHOT uses them.
ABNORMAL_LABS = {
    "hyperkalemia": ("potassium", ">", 5.5),
    "hyponatremia": ("sodium", "<=", 135.0),
    "hypoglycemia": ("glucose", "<=", 70.0),
    "thrombocytopenia": ("platelets", "<", 150.0),
    "anemia": ("hemoglobin", "<", 12.0),
}


def admissions(events: pl.DataFrame) -> pl.DataFrame:
    """One row per admission: subject_id, admit, discharge, disposition and outcome flags."""
    starts = _ranked(events, "HOSPITAL_ADMISSION//").rename({"time": "admit"})
    ends = _ranked(events, "HOSPITAL_DISCHARGE//").rename({"time": "discharge", "code": "dis"})
    stays = starts.join(ends, on=["subject_id", "rank"], how="left").with_columns(
        admission_type=pl.col("code").str.split("//").list.get(1),
        disposition=pl.col("dis").str.split("//").list.get(1),
        los_days=(pl.col("discharge") - pl.col("admit")).dt.total_minutes() / 1440.0,
    )
    stays = stays.sort("subject_id", "admit").with_columns(
        next_admit=pl.col("admit").shift(-1).over("subject_id")
    )
    icu = _within_stays(stays, events.filter(pl.col("code").str.starts_with("ICU_ADMISSION//")))
    icu = icu.group_by("subject_id", "admit").agg(icu=pl.len() > 0, first_icu=pl.col("time").min())
    stays = stays.join(icu, on=["subject_id", "admit"], how="left").with_columns(
        pl.col("icu").fill_null(False),
        died=pl.col("disposition") == "DIED",
        long_stay=pl.col("los_days") >= 7.0,
        icu_after_24h=pl.col("first_icu") > pl.col("admit") + DAY,
        readmit_30d=pl.when(pl.col("disposition") != "DIED").then(
            (pl.col("next_admit") - pl.col("discharge") <= pl.duration(days=30)).fill_null(False)
        ),
    )
    for name, (lab, op, threshold) in ABNORMAL_LABS.items():
        stays = stays.join(
            _abnormal_after_24h(stays, events, name, lab, op, threshold),
            on=["subject_id", "admit"],
            how="left",
        )
    return stays.drop("rank", "code", "dis", "next_admit", "first_icu")


def _ranked(events: pl.DataFrame, prefix: str) -> pl.DataFrame:
    rows = events.filter(pl.col("code").str.starts_with(prefix)).select(
        "subject_id", "time", "code"
    )
    return rows.sort("subject_id", "time").with_columns(
        rank=pl.int_range(pl.len()).over("subject_id")
    )


def _within_stays(stays: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """`rows` joined to the stay they fall in (admit <= time <= discharge)."""
    rows = rows.sort("subject_id", "time")
    spans = stays.select("subject_id", "admit", "discharge").sort("subject_id", "admit")
    joined = rows.join_asof(
        spans,
        left_on="time",
        right_on="admit",
        by="subject_id",
        strategy="backward",
        check_sortedness=False,  # sorted by (subject_id, time); polars cannot check with `by`
    )
    return joined.filter(pl.col("time") <= pl.col("discharge"))


def _abnormal_after_24h(stays, events, name, lab, op, threshold) -> pl.DataFrame:
    """Per stay: null when the lab was not measured after 24 h, else whether it was abnormal."""
    rows = events.filter(pl.col("code") == lab_code(lab)).select(
        "subject_id", "time", "numeric_value"
    )
    rows = _within_stays(stays, rows).filter(pl.col("time") > pl.col("admit") + DAY)
    value = pl.col("numeric_value")
    abnormal = {">": value > threshold, "<": value < threshold, "<=": value <= threshold}[op]
    return rows.group_by("subject_id", "admit").agg(abnormal.any().alias(name))


def prevalences(stays: pl.DataFrame) -> dict[str, tuple[float, int]]:
    """Each outcome's prevalence and the number of admissions it is defined on.

    Mortality, ICU and long stay count every admission still in hospital at 24 h; readmission
    counts live discharges; abnormal labs count stays with the lab measured after 24 h.
    """
    at_24h = stays.filter(pl.col("los_days") > 1.0)
    no_icu_yet = at_24h.filter(~pl.col("icu") | pl.col("icu_after_24h"))
    table = {
        "in_hospital_mortality": at_24h["died"],
        "icu_transfer_after_24h": no_icu_yet["icu"],
        "long_stay_7d": at_24h["long_stay"],
        "readmission_30d": stays["readmit_30d"].drop_nulls(),
    }
    table |= {name: stays[name].drop_nulls() for name in ABNORMAL_LABS}
    return {name: (float(col.mean() or 0.0), col.len()) for name, col in table.items()}
