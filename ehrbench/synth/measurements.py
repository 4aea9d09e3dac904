"""Lab and vital-sign values of the synthetic data, as functions of the patient's state.

A `State` holds, per measurement, everything a value depends on: the subject's traits, age and
chronic conditions, and during a stay the latent severity and the stay's own offsets. The same
functions serve outpatient visits (severity 0, no stay offsets) and hospital stays, so a
subject's values in hospital continue their values in clinic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ehrbench.synth.population import C, Stays, Subjects, T

# Decimals each value is rounded to, as a lab system reports it.
DECIMALS = {
    "creatinine": 1,
    "potassium": 1,
    "sodium": 0,
    "glucose": 0,
    "bicarbonate": 0,
    "bun": 0,
    "chloride": 0,
    "anion_gap": 0,
    "calcium": 1,
    "magnesium": 1,
    "phosphate": 1,
    "hematocrit": 1,
    "hemoglobin": 1,
    "platelets": 0,
    "wbc": 1,
    "lactate": 1,
    "cholesterol": 0,
    "heart_rate": 0,
    "systolic_bp": 0,
    "resp_rate": 0,
    "spo2": 0,
    "temperature": 1,
}
BASIC_PANEL = (
    "creatinine",
    "potassium",
    "sodium",
    "chloride",
    "bicarbonate",
    "anion_gap",
    "bun",
    "glucose",
    "calcium",
    "magnesium",
    "phosphate",
)
BLOOD_COUNT = ("hemoglobin", "hematocrit", "platelets", "wbc")
VITAL_SIGNS = ("heart_rate", "systolic_bp", "resp_rate", "spo2", "temperature")
HTN_TREATMENT_SBP = 8.0  # mmHg lowered by antihypertensives once hypertension is diagnosed
DIABETES_TREATMENT_GLUCOSE = 15.0  # mg/dL lowered by metformin
STATIN_CHOLESTEROL = 45.0  # mg/dL lowered by atorvastatin


@dataclass(frozen=True)
class State:
    """Per-measurement inputs of the value functions (one entry per measurement time)."""

    subject: np.ndarray
    age: np.ndarray
    cond: np.ndarray  # (rows, len(CONDITIONS)) bool
    severity: np.ndarray
    since_admission: np.ndarray  # days; 0 outside hospital
    stay: np.ndarray | None  # stay indices, None outside hospital

    def has(self, condition: str) -> np.ndarray:
        """Bool per row: the chronic condition has started."""
        return self.cond[:, C[condition]]


def outpatient_state(subjects: Subjects, subject: np.ndarray, time: np.ndarray) -> State:
    """The state of `subject` at clinic-visit `time`."""
    zeros = np.zeros(len(subject))
    return State(
        subject=subject,
        age=subjects.age(subject, time),
        cond=subjects.conditions(subject, time),
        severity=zeros,
        since_admission=zeros,
        stay=None,
    )


def inpatient_state(stays: Stays, stay: np.ndarray, since_admission: np.ndarray) -> State:
    """The state during `stay` (indices) at `since_admission` days into it."""
    return State(
        subject=stays.subject[stay],
        age=stays.age[stay] + since_admission / 365.25,
        cond=stays.cond[stay],
        severity=stays.severity(stay, since_admission),
        since_admission=since_admission,
        stay=stay,
    )


def _noise(rng: np.random.Generator, state: State, sd: float) -> np.ndarray:
    return sd * rng.standard_normal(len(state.subject))


def _stay_value(stays: Stays, state: State, name: str, default: float = 0.0) -> np.ndarray:
    """An attribute of the current stay per row, or `default` outside hospital."""
    if state.stay is None:
        return np.full(len(state.subject), default)
    return getattr(stays, name)[state.stay]


def _late(stays: Stays, state: State, lab: str) -> np.ndarray:
    """The stay's late drift of `lab` at each row, 0 outside hospital."""
    if state.stay is None:
        return np.zeros(len(state.subject))
    return stays.late_shift_at(lab, state.stay, state.since_admission)


def _reason(stays: Stays, state: State, *names: str) -> np.ndarray:
    """Bool per row: the current stay was admitted for one of `names`."""
    if state.stay is None:
        return np.zeros(len(state.subject), dtype=bool)
    return np.logical_or.reduce([stays.has_reason(n)[state.stay] for n in names])


def lab_values(rng, subjects: Subjects, stays: Stays, state: State) -> dict[str, np.ndarray]:
    """Every lab value at each row of `state`, rounded as reported."""
    s = state.severity
    tr = subjects.traits[state.subject]
    sepsis = _reason(stays, state, "sepsis")
    lung = _reason(stays, state, "pneumonia", "copd_exacerbation")
    ill = np.maximum(s - 1.0, 0.0)
    v: dict[str, np.ndarray] = {}

    base_cr = subjects.baseline_creatinine(state.subject, state.age)
    injury = 1.0 + _stay_value(stays, state, "kidney_injury") * s / 2.0
    v["creatinine"] = base_cr * injury * np.exp(_noise(rng, state, 0.05))
    v["potassium"] = (
        4.0
        + 0.15 * tr[:, T["potassium"]]
        + 0.4 * state.has("ckd")
        + 0.5 * np.log(v["creatinine"])
        + 0.2 * state.has("hypertension")  # ACE inhibitors retain potassium
        - 0.25 * state.has("heart_failure")  # loop diuretics waste it
        + _stay_value(stays, state, "potassium_offset")
        + 0.1 * s
        + _late(stays, state, "potassium")
        + _noise(rng, state, 0.22)
    )
    v["sodium"] = (
        141.0
        + 1.3 * tr[:, T["sodium"]]
        + _stay_value(stays, state, "sodium_offset")
        - 0.6 * s
        + _late(stays, state, "sodium")
        + _noise(rng, state, 1.5)
    )
    v["glucose"] = _glucose(rng, subjects, stays, state)
    v["bicarbonate"] = (
        25.0
        - 1.5 * state.has("ckd")
        + 2.0 * state.has("copd")
        - 1.0 * ill * (1.0 + sepsis)
        + _noise(rng, state, 1.8)
    )
    v["bun"] = np.maximum(
        7.0
        + 11.0 * v["creatinine"]
        + 6.0 * state.has("heart_failure")
        + 4.0 * _reason(stays, state, "gi_bleed")
        + _noise(rng, state, 3.0),
        3.0,
    )
    v["hemoglobin"] = (
        np.where(subjects.male[state.subject], 14.8, 13.2)
        + 0.8 * tr[:, T["hemoglobin"]]
        - 1.6 * state.has("ckd")
        - 0.02 * np.maximum(state.age - 50.0, 0.0)
        + _stay_value(stays, state, "hemoglobin_offset")
        - 0.25 * s
        - 0.18 * np.minimum(state.since_admission, 5.0)  # phlebotomy and fluids
        + _late(stays, state, "hemoglobin")
        + _noise(rng, state, 0.3)
    )
    v["hematocrit"] = 3.0 * v["hemoglobin"] + _noise(rng, state, 1.0)
    drop = _stay_value(stays, state, "platelet_drop") * np.minimum(s, 3.0) / 3.0
    v["platelets"] = (
        240.0
        * np.exp(0.25 * tr[:, T["platelets"]] + _late(stays, state, "platelets"))
        * np.exp(_noise(rng, state, 0.07))
        * (1.0 - 0.1 * (state.age > 75))
        * (1.0 - drop)
    )
    v["wbc"] = (7.0 + sepsis * (3.0 + 3.0 * s) + lung * (2.0 + 2.0 * s) + 1.2 * s) * np.exp(
        _noise(rng, state, 0.12)
    )
    v["lactate"] = (1.0 + 0.9 * ill * (1.0 + sepsis)) * np.exp(_noise(rng, state, 0.2))
    v["chloride"] = (
        v["sodium"]
        - 37.0
        - 0.6 * (v["bicarbonate"] - 25.0)
        - 0.8 * (v["lactate"] - 1.0)
        + _noise(rng, state, 1.5)
    )
    v["anion_gap"] = v["sodium"] - v["chloride"] - v["bicarbonate"]
    v["calcium"] = 9.3 - 0.3 * state.has("ckd") - 0.15 * s + _noise(rng, state, 0.35)
    v["magnesium"] = (
        2.0 + 0.15 * state.has("ckd") - 0.1 * state.has("heart_failure") + _noise(rng, state, 0.18)
    )
    v["phosphate"] = (
        3.5 + 0.9 * state.has("ckd") + 0.3 * np.log(v["creatinine"]) + _noise(rng, state, 0.5)
    )
    cholesterol = subjects.curve("hyperlipidemia", state.subject, state.age)
    v["cholesterol"] = (
        cholesterol - STATIN_CHOLESTEROL * state.has("hyperlipidemia") + _noise(rng, state, 12.0)
    )
    return _rounded(v)


def vital_values(rng, subjects: Subjects, stays: Stays, state: State) -> dict[str, np.ndarray]:
    """Every vital sign at each row of `state`, rounded as charted."""
    s = state.severity
    sepsis = _reason(stays, state, "sepsis")
    lung = _reason(stays, state, "pneumonia", "copd_exacerbation")
    fever = sepsis * (0.6 + 0.6 * s) + lung * (0.5 + 0.4 * s)
    v: dict[str, np.ndarray] = {}
    v["heart_rate"] = 76.0 + 10.0 * s + 8.0 * sepsis + 4.0 * fever + _noise(rng, state, 7.0)
    v["systolic_bp"] = (
        subjects.curve("hypertension", state.subject, state.age)
        - HTN_TREATMENT_SBP * state.has("hypertension")
        - 14.0 * np.maximum(s - 1.5, 0.0)
        + _noise(rng, state, 9.0)
    )
    v["resp_rate"] = 15.0 + 2.2 * s + 2.0 * lung + 1.5 * state.has("copd") + _noise(rng, state, 2)
    v["spo2"] = np.minimum(
        97.5 - 1.1 * s - 2.0 * state.has("copd") - 2.0 * lung + _noise(rng, state, 1.2), 100.0
    )
    v["temperature"] = 98.2 + fever + _noise(rng, state, 0.45)
    return _rounded(v)


def _rounded(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.round(v, DECIMALS[name]).astype(np.float32) for name, v in values.items()}


def _glucose(rng, subjects: Subjects, stays: Stays, state: State) -> np.ndarray:
    """Blood glucose: a fasting curve in clinic; in hospital a per-stay mean and variability.

    Diabetic inpatients get insulin; their glucose swings widely around a stay mean that is
    lower with CKD and old age, so hypoglycemia clusters in stays whose first values run low.
    """
    fasting = subjects.curve("diabetes", state.subject, state.age)
    clinic = fasting - DIABETES_TREATMENT_GLUCOSE * state.has("diabetes") + _noise(rng, state, 10)
    if state.stay is None:
        return np.maximum(clinic, 40.0)
    mean = stays.glucose_mean[state.stay] * (1.0 + 0.08 * state.severity)
    cv = stays.glucose_cv[state.stay]
    return np.maximum(mean * np.exp(cv * rng.standard_normal(len(mean)) - cv**2 / 2), 25.0)
