"""The generative story holds statistically on a moderate synthetic population."""

from __future__ import annotations

import polars as pl
import pytest

from ehrbench.synth import generate_events
from ehrbench.synth.summary import admissions, prevalences
from ehrbench.synth.vocabulary import CODES, diagnosis_code, lab_code

N_SUBJECTS = 1500


@pytest.fixture(scope="module")
def events() -> pl.DataFrame:
    return generate_events(N_SUBJECTS, 11)


@pytest.fixture(scope="module")
def stays(events) -> pl.DataFrame:
    return admissions(events)


def _subjects_with(events: pl.DataFrame, code: str) -> pl.Series:
    return events.filter(pl.col("code") == code)["subject_id"].unique()


def _mean_value(events: pl.DataFrame, code: str, subjects: pl.Series, inside: bool) -> float:
    rows = events.filter(pl.col("code") == code)
    member = pl.col("subject_id").is_in(subjects.implode())
    return rows.filter(member if inside else ~member)["numeric_value"].mean()


def _with_discharge_code(events, stays, code) -> pl.DataFrame:
    flagged = events.filter(pl.col("code") == code).select(
        "subject_id", pl.col("time").alias("discharge"), pl.lit(True).alias("flag")
    )
    return stays.join(flagged.unique(), on=["subject_id", "discharge"], how="left").with_columns(
        pl.col("flag").fill_null(False)
    )


def test_every_code_of_the_vocabulary_appears(events):
    assert set(events["code"].unique()) == set(CODES)


def test_ckd_raises_potassium_and_creatinine(events):
    ckd = _subjects_with(events, diagnosis_code("ckd"))
    for lab, margin in (("potassium", 0.2), ("creatinine", 0.3)):
        with_ckd = _mean_value(events, lab_code(lab), ckd, inside=True)
        without = _mean_value(events, lab_code(lab), ckd, inside=False)
        assert with_ckd > without + margin, (lab, with_ckd, without)


def test_diabetes_drives_glucose(events, stays):
    diabetic = _subjects_with(events, diagnosis_code("diabetes"))
    with_dm = _mean_value(events, lab_code("glucose"), diabetic, inside=True)
    without = _mean_value(events, lab_code("glucose"), diabetic, inside=False)
    assert with_dm > without + 30
    hypo = stays.filter(pl.col("hypoglycemia").is_not_null()).with_columns(
        dm=pl.col("subject_id").is_in(diabetic.implode())
    )
    rates = hypo.group_by("dm").agg(pl.col("hypoglycemia").mean()).sort("dm")["hypoglycemia"]
    assert rates[1] > 3 * rates[0]


def test_lab_values_are_in_realistic_ranges(events):
    medians = {
        "creatinine": (0.6, 1.3),
        "potassium": (3.8, 4.8),
        "sodium": (136, 143),
        "glucose": (85, 150),
        "hemoglobin": (10.5, 14.5),
        "platelets": (170, 280),
        "wbc": (6, 11),
        "heart_rate": (70, 95),
        "spo2": (93, 99),
    }
    for lab, (low, high) in medians.items():
        median = events.filter(pl.col("code") == lab_code(lab))["numeric_value"].median()
        assert low <= median <= high, (lab, median)
    sodium = events.filter(pl.col("code") == lab_code("sodium"))["numeric_value"]
    assert 0.02 < (sodium <= 135).mean() < 0.3


def test_sepsis_raises_mortality_wbc_and_lactate_and_lowers_platelets(events, stays):
    flagged = _with_discharge_code(events, stays, diagnosis_code("sepsis"))
    rates = flagged.group_by("flag").agg(pl.col("died").mean()).sort("flag")["died"]
    assert rates[1] > 2 * rates[0]
    sepsis_subjects = flagged.filter("flag")["subject_id"].unique()
    platelets_low = flagged.filter(pl.col("thrombocytopenia").is_not_null())
    low = platelets_low.group_by("flag").agg(pl.col("thrombocytopenia").mean()).sort("flag")
    assert low["thrombocytopenia"][1] > 2 * low["thrombocytopenia"][0]
    assert _mean_value(events, lab_code("lactate"), sepsis_subjects, True) > _mean_value(
        events, lab_code("lactate"), sepsis_subjects, False
    )


def test_mortality_rises_with_age_and_icu(events, stays):
    birth = events.filter(pl.col("code") == "MEDS_BIRTH").select(
        "subject_id", pl.col("time").alias("birth")
    )
    aged = stays.join(birth, on="subject_id").with_columns(
        age=(pl.col("admit") - pl.col("birth")).dt.total_days() / 365.25
    )
    old = aged.filter(pl.col("age") >= 75)["died"].mean()
    young = aged.filter(pl.col("age") < 50)["died"].mean()
    assert old > 1.5 * young
    icu = stays.group_by("icu").agg(pl.col("died").mean()).sort("icu")["died"]
    assert icu[1] > 3 * icu[0]


def test_heart_failure_raises_readmission(events, stays):
    hf = _subjects_with(events, diagnosis_code("heart_failure"))
    live = stays.filter(pl.col("readmit_30d").is_not_null()).with_columns(
        hf=pl.col("subject_id").is_in(hf.implode())
    )
    rates = live.group_by("hf").agg(pl.col("readmit_30d").mean()).sort("hf")["readmit_30d"]
    assert rates[1] > 1.3 * rates[0]


def test_outcome_prevalences_are_moderate(stays):
    ranges = {
        "in_hospital_mortality": (0.03, 0.15),
        "icu_transfer_after_24h": (0.03, 0.2),
        "long_stay_7d": (0.08, 0.3),
        "readmission_30d": (0.08, 0.25),
        "hyperkalemia": (0.02, 0.12),
        "hyponatremia": (0.1, 0.4),
        "hypoglycemia": (0.02, 0.15),
        "thrombocytopenia": (0.08, 0.3),
        "anemia": (0.25, 0.6),
    }
    found = prevalences(stays)
    for name, (low, high) in ranges.items():
        assert low <= found[name][0] <= high, (name, found[name])


def test_death_in_hospital_matches_the_discharge_and_ends_the_record(events, stays):
    deaths = events.filter(pl.col("code") == "MEDS_DEATH").select(
        "subject_id", pl.col("time").alias("death")
    )
    died = stays.filter("died").select("subject_id", pl.col("discharge").alias("death"))
    assert died.join(deaths, on=["subject_id", "death"], how="anti").height == 0
    after = events.join(deaths, on="subject_id").filter(pl.col("time") > pl.col("death"))
    assert after.height == 0
    assert stays["discharge"].null_count() == 0
    assert (stays["discharge"] >= stays["admit"]).all()
    overlapping = stays.sort("subject_id", "admit").with_columns(
        nxt=pl.col("admit").shift(-1).over("subject_id")
    )
    assert overlapping.filter(pl.col("nxt") < pl.col("discharge")).height == 0


YEAR = pl.duration(days=365)
# Chronic condition -> (the risk factor announcing it, least rise over the two years before a
# new diagnosis, least excess over the never-diagnosed). Age alone adds 2-5 units in 2.5 years.
RISK_FACTORS = {
    "hypertension": ("systolic_bp", 5.0, 8.0),
    "diabetes": ("glucose", 10.0, 8.0),
    "hyperlipidemia": ("cholesterol", 12.0, 20.0),
}


def _first_diagnosis(events: pl.DataFrame, condition: str) -> pl.DataFrame:
    return (
        events.filter(pl.col("code") == diagnosis_code(condition))
        .group_by("subject_id")
        .agg(dx=pl.col("time").min())
    )


@pytest.mark.parametrize("condition", RISK_FACTORS)
def test_a_rising_risk_factor_precedes_a_new_diagnosis(events, condition):
    """Diagnoses made 3+ years into the record follow values that climbed towards them."""
    lab, least_rise, least_excess = RISK_FACTORS[condition]
    first_dx = _first_diagnosis(events, condition)
    first_seen = (
        events.filter(pl.col("time").is_not_null() & (pl.col("code") != "MEDS_BIRTH"))
        .group_by("subject_id")
        .agg(start=pl.col("time").min())
    )
    incident = first_dx.join(first_seen, on="subject_id").filter(
        pl.col("dx") > pl.col("start") + 3 * YEAR
    )
    values = events.filter(pl.col("code") == lab_code(lab))
    before = values.join(incident, on="subject_id").filter(pl.col("time") < pl.col("dx"))
    last_year = before.filter(pl.col("time") >= pl.col("dx") - YEAR)
    early = before.filter(pl.col("time") < pl.col("dx") - 2 * YEAR)
    paired = (
        last_year.group_by("subject_id")
        .agg(late=pl.col("numeric_value").mean())
        .join(
            early.group_by("subject_id").agg(early=pl.col("numeric_value").mean()), on="subject_id"
        )
    )
    never = values.filter(~pl.col("subject_id").is_in(first_dx["subject_id"].implode()))
    assert paired.height >= 30, paired.height
    rise = (paired["late"] - paired["early"]).mean()
    assert rise > least_rise, rise
    assert last_year["numeric_value"].mean() > never["numeric_value"].mean() + least_excess


def _one_year_incidence(events: pl.DataFrame, stays: pl.DataFrame, condition: str) -> float:
    """The share of live discharges of undiagnosed subjects followed by the diagnosis within
    365 days, counted the way the new-diagnosis cohorts count it."""
    live = stays.filter(pl.col("disposition") != "DIED").select("subject_id", "discharge")
    rows = live.join(_first_diagnosis(events, condition), on="subject_id", how="left").filter(
        pl.col("dx").is_null() | (pl.col("dx") > pl.col("discharge"))
    )
    new = (pl.col("dx") <= pl.col("discharge") + YEAR).fill_null(False)
    assert rows.height >= 300
    return float(rows.select(new.mean()).item())


@pytest.mark.parametrize("condition", RISK_FACTORS)
def test_new_diagnoses_within_a_year_of_a_discharge_are_frequent(events, stays, condition):
    """Enough positives for few-shot runs: roughly 6-12% of the undiagnosed, not 1-3%."""
    assert 0.045 <= _one_year_incidence(events, stays, condition) <= 0.14
