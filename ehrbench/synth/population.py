"""Subjects, chronic conditions and hospital stays: the entity tables of the synthetic data.

Everything here is one numpy array per attribute, one entry per subject or per stay; the story
that links them is told in `ehrbench.synth.generator`. Times are float days since 1970-01-01.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields

import numpy as np

from ehrbench.synth.vocabulary import CHRONIC_DIAGNOSES

DAYS_PER_YEAR = 365.25
STUDY_START = float((dt.date(2150, 1, 1) - dt.date(1970, 1, 1)).days)
ENROLMENT_YEARS = 4.0  # a subject's record opens at a uniform time in the first 4 study years
FOLLOW_UP_YEARS = (2.0, 8.0)  # length of the record, uniform
ADULT_AGE = 18.0

TRAITS = (
    "bp",
    "lipid",
    "glucose",
    "kidney",
    "heart",
    "smoking",
    "frailty",
    "potassium",
    "sodium",
    "hemoglobin",
    "platelets",
)
T = {name: i for i, name in enumerate(TRAITS)}
CONDITIONS = tuple(CHRONIC_DIAGNOSES)
C = {name: i for i, name in enumerate(CONDITIONS)}


@dataclass(frozen=True)
class Curve:
    """A risk factor that rises linearly with age: intercept + slope*(age-20) + spread*trait.

    The matching condition starts when the curve crosses `threshold` (moved by a personal
    `threshold_sd` noise), so the measured values drift towards the threshold before diagnosis.
    """

    trait: str
    intercept: float
    slope: float
    spread: float
    threshold: float
    threshold_sd: float


RISK_CURVES = {
    "hypertension": Curve("bp", 89.0, 1.1, 12.0, 138.0, 6.0),  # systolic BP, mmHg
    "diabetes": Curve("glucose", 76.0, 0.6, 16.0, 126.0, 6.0),  # fasting glucose, mg/dL
    "hyperlipidemia": Curve("lipid", 150.0, 1.8, 30.0, 240.0, 8.0),  # total cholesterol, mg/dL
}
# A steep rise of a risk factor during the record (weight gain, a metabolic change): the share of
# subjects it happens to is sigmoid(intercept + sum(weight * trait) + AGE_WEIGHT * decades over
# 60); it starts RAMP_YEARS before it carries the curve across the threshold (at a uniform time
# of the record) and goes on for RAMP_OVERSHOOT of that length after.
STEEP_RISES = {
    "hypertension": (-0.8, {"bp": 0.7, "kidney": 0.3, "glucose": 0.3}),
    "diabetes": (-0.5, {"glucose": 0.7, "bp": 0.3, "lipid": 0.4}),
    "hyperlipidemia": (-0.7, {"lipid": 0.7, "glucose": 0.4}),
}
AGE_WEIGHT = 0.15
RAMP_YEARS = (1.5, 3.0)
RAMP_OVERSHOOT = 0.5
CURVE_INDEX = {name: k for k, name in enumerate(RISK_CURVES)}
CKD_CREATININE_RATIO = 1.7  # CKD when creatinine reaches 1.7x the subject's young-adult value
# Onset age = base - sum(weight * trait) + sd * noise, for conditions without a measured curve.
LATENT_ONSETS = {
    "heart_failure": (85.0, {"heart": 10.0, "bp": 4.0}, 5.0),
    "copd": (80.0, {"smoking": 12.0}, 5.0),
}

ADMISSION_RATE = 0.26  # per year, for a 60-year-old with no chronic condition and mean frailty
OUT_OF_HOSPITAL_MORTALITY = 0.006  # per year, same reference subject

# Reasons for admission: (base weight, mean initial severity, mean severity slope per day).
REASONS = {
    "elective_surgery": (0.28, 0.40, -0.15),
    "other": (0.50, 0.65, -0.10),
    "sepsis": (0.09, 1.3, 0.3),
    "pneumonia": (0.09, 1.05, 0.18),
    "mi": (0.04, 1.10, 0.05),
    "heart_failure": (0.01, 1.00, 0.08),
    "aki": (0.03, 0.90, -0.05),
    "gi_bleed": (0.05, 0.95, 0.0),
    "copd_exacerbation": (0.01, 1.00, 0.10),
}
R = {name: i for i, name in enumerate(REASONS)}
DISPOSITION_INDEX = {"HOME": 0, "HOME HEALTH CARE": 1, "SNF": 2, "REHAB": 3, "HOSPICE": 4}
DIED = 5
# Drifts that build up over days 1-3 of a stay and cannot be seen at 24 h: sd of potassium
# (mEq/L), sodium (mEq/L), hemoglobin (g/dL) and log platelets.
LATE_SHIFT_SD = np.array([0.3, 2.5, 0.7, 0.2])
LATE_SHIFT = {"potassium": 0, "sodium": 1, "hemoglobin": 2, "platelets": 3}
ICU_THRESHOLD = 2.1
DISCHARGE_SEVERITY = 0.3


@dataclass(frozen=True)
class Subjects:
    """One entry per subject of a chunk."""

    male: np.ndarray
    birth: np.ndarray
    start: np.ndarray
    end: np.ndarray  # end of the record: the follow-up end or the death, whichever is first
    death: np.ndarray  # death time, inf when the subject outlives the record
    traits: np.ndarray  # (n, len(TRAITS)) standard normal
    onset: np.ndarray  # (n, len(CONDITIONS)) age in years at which each condition starts
    creatinine0: np.ndarray  # young-adult creatinine, mg/dL
    creatinine_slope: np.ndarray  # yearly log-creatinine rise after age 30
    # (n, len(RISK_CURVES)) steep rises: the ages at which each starts and ends, and the yearly
    # rise in between (0: no steep rise), added to the risk-factor curve.
    rise_start: np.ndarray
    rise_end: np.ndarray
    rise_rate: np.ndarray

    def age(self, subject: np.ndarray, time: np.ndarray) -> np.ndarray:
        """Age in years of `subject` (indices) at `time` (days)."""
        return (time - self.birth[subject]) / DAYS_PER_YEAR

    def conditions(self, subject: np.ndarray, time: np.ndarray) -> np.ndarray:
        """(rows, len(CONDITIONS)) bool: which chronic conditions have started by `time`."""
        return self.onset[subject] <= self.age(subject, time)[:, None]

    def curve(self, name: str, subject: np.ndarray, age: np.ndarray) -> np.ndarray:
        """The untreated value of risk-factor curve `name` at `age`, steep rise included."""
        k = CURVE_INDEX[name]
        start = self.rise_start[subject, k]
        rise = self.rise_rate[subject, k] * (np.clip(age, start, self.rise_end[subject, k]) - start)
        return _linear_curve(RISK_CURVES[name], self.traits[subject], age) + rise

    def baseline_creatinine(self, subject: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Creatinine outside any acute illness at `age`, mg/dL."""
        rise = self.creatinine_slope[subject] * np.maximum(age - 30.0, 0.0)
        return self.creatinine0[subject] * np.exp(rise)


@dataclass(frozen=True)
class Stays:
    """One entry per hospital stay, sorted by subject then admission time.

    Times `los`, `icu_start`, `icu_end`, `turn` are days since the admission. Severity is a
    latent illness score: it starts at `severity0`, rises by `rise` per day until `turn`, then
    falls by `recovery` per day.
    """

    subject: np.ndarray
    start: np.ndarray
    age: np.ndarray
    cond: np.ndarray
    reason: np.ndarray
    admission_type: np.ndarray
    severity0: np.ndarray
    rise: np.ndarray
    turn: np.ndarray
    recovery: np.ndarray
    peak: np.ndarray
    los: np.ndarray
    died: np.ndarray
    icu: np.ndarray
    icu_start: np.ndarray
    icu_end: np.ndarray
    disposition: np.ndarray
    kidney_injury: np.ndarray  # creatinine rises by kidney_injury * severity / 2 (relative)
    potassium_offset: np.ndarray
    sodium_offset: np.ndarray
    glucose_mean: np.ndarray
    glucose_cv: np.ndarray
    hemoglobin_offset: np.ndarray
    platelet_drop: np.ndarray  # fraction of platelets lost at severity 3
    late_shift: np.ndarray  # (stays, 4) drifts of potassium, sodium, hemoglobin, log platelets
    readmit: np.ndarray  # whether the next admission is planned within 30 days of discharge

    @property
    def end(self) -> np.ndarray:
        """Discharge (or death) time, days."""
        return self.start + self.los

    def severity(self, stay: np.ndarray, since_admission: np.ndarray) -> np.ndarray:
        """The latent severity of `stay` (indices) at `since_admission` days."""
        turn = self.turn[stay]
        rising = self.severity0[stay] + self.rise[stay] * np.minimum(since_admission, turn)
        falling = self.peak[stay] - self.recovery[stay] * np.maximum(since_admission - turn, 0.0)
        return np.maximum(np.where(since_admission <= turn, rising, falling), 0.0)

    def late_shift_at(self, lab: str, stay: np.ndarray, since: np.ndarray) -> np.ndarray:
        """The late drift of `lab` in `stay`, ramping in linearly from day 1 to day 3."""
        ramp = np.clip((since - 1.0) / 2.0, 0.0, 1.0)
        return self.late_shift[stay, LATE_SHIFT[lab]] * ramp

    def has_reason(self, name: str) -> np.ndarray:
        """Bool per stay: admitted for reason `name` of REASONS."""
        return self.reason == R[name]


def _linear_curve(c: Curve, traits: np.ndarray, age: np.ndarray) -> np.ndarray:
    """A risk-factor curve without any steep rise: intercept + slope*(age-20) + spread*trait."""
    return c.intercept + c.slope * (age - 20.0) + c.spread * traits[:, T[c.trait]]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _categorical(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    """One draw per row from softmax(logits), by the Gumbel-max trick."""
    return np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)


def draw_subjects(rng: np.random.Generator, n: int, age_beta: tuple[float, float]) -> Subjects:
    """Demographics, latent traits and chronic-condition onset ages for `n` subjects; the age at
    the record's start is 18 + 77 * Beta(*age_beta) (each site's own: `ehrbench.synth.sites`)."""
    male = rng.random(n) < 0.48
    age0 = ADULT_AGE + 77.0 * rng.beta(*age_beta, n)
    start = STUDY_START + rng.uniform(0.0, ENROLMENT_YEARS * DAYS_PER_YEAR, n)
    end = start + rng.uniform(*FOLLOW_UP_YEARS, n) * DAYS_PER_YEAR
    traits = rng.standard_normal((n, len(TRAITS)))
    noise = rng.standard_normal((n, len(CONDITIONS)))
    creatinine0 = np.where(male, 0.95, 0.75) * np.exp(0.08 * rng.standard_normal(n))
    slope = 0.006 + 0.005 * traits[:, T["kidney"]]
    slope += 0.003 * traits[:, T["glucose"]] + 0.003 * traits[:, T["bp"]]
    slope = np.maximum(slope, 0.0005)
    onset = np.empty((n, len(CONDITIONS)))
    thresholds = {}
    for name, c in RISK_CURVES.items():
        thresholds[name] = c.threshold + c.threshold_sd * noise[:, C[name]]
        gap = thresholds[name] - c.intercept
        onset[:, C[name]] = 20.0 + (gap - c.spread * traits[:, T[c.trait]]) / c.slope
    ratio = np.log(CKD_CREATININE_RATIO) + 0.1 * noise[:, C["ckd"]]
    onset[:, C["ckd"]] = 30.0 + ratio / slope
    for name, (base, weights, sd) in LATENT_ONSETS.items():
        risk = sum(w * traits[:, T[t]] for t, w in weights.items())
        onset[:, C[name]] = base - risk + sd * noise[:, C[name]]
    onset = np.maximum(onset, ADULT_AGE)
    record_years = (end - start) / DAYS_PER_YEAR
    rises = _steep_rises(rng, traits, thresholds, onset, age0, record_years)
    return Subjects(
        male=male,
        birth=np.floor(start - age0 * DAYS_PER_YEAR),
        start=start,
        end=end,
        death=np.full(n, np.inf),
        traits=traits,
        onset=onset,
        creatinine0=creatinine0,
        creatinine_slope=slope,
        **rises,
    )


def _steep_rises(rng, traits, thresholds, onset, age0, record_years) -> dict[str, np.ndarray]:
    """Draw the steep rises of the risk-factor curves; moves `onset` (in place) to the crossing.

    A rise is drawn for a share of subjects set by STEEP_RISES; it crosses the subject's own
    threshold at a uniform time of the record, and is kept only where the slow curve has not
    crossed it by then. The rate closes the gap to the threshold in RAMP_YEARS.
    """
    n = len(age0)
    shape = (n, len(RISK_CURVES))
    rise_start, rise_end, rise_rate = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for name, (intercept, weights) in STEEP_RISES.items():
        k = CURVE_INDEX[name]
        logit = intercept + sum(w * traits[:, T[t]] for t, w in weights.items())
        logit = logit + AGE_WEIGHT * (age0 - 60.0) / 10.0
        crossing = age0 + rng.random(n) * record_years
        length = rng.uniform(*RAMP_YEARS, n)
        steep = (rng.random(n) < _sigmoid(logit)) & (crossing < onset[:, C[name]])
        gap = thresholds[name] - _linear_curve(RISK_CURVES[name], traits, crossing)
        rise_start[steep, k] = (crossing - length)[steep]
        rise_end[steep, k] = (crossing + RAMP_OVERSHOOT * length)[steep]
        rise_rate[steep, k] = (gap / length)[steep]
        onset[steep, C[name]] = crossing[steep]
    return dict(rise_start=rise_start, rise_end=rise_end, rise_rate=rise_rate)


def _reason_logits(subjects: Subjects, s: np.ndarray, age: np.ndarray, cond: np.ndarray):
    """(rows, len(REASONS)) log-weights of each reason for admission."""
    tr = subjects.traits[s]
    has = {name: cond[:, C[name]].astype(float) for name in CONDITIONS}
    older = (age - 60.0) / 10.0
    logits = np.log([w for w, _, _ in REASONS.values()])[None, :].repeat(len(s), axis=0)
    logits[:, R["sepsis"]] += 0.4 * tr[:, T["frailty"]] + 0.25 * older
    logits[:, R["sepsis"]] += 0.4 * has["diabetes"] + 0.4 * has["ckd"] + 0.3 * has["copd"]
    logits[:, R["pneumonia"]] += 1.0 * has["copd"] + 0.2 * older + 0.2 * tr[:, T["smoking"]]
    logits[:, R["mi"]] += 0.5 * subjects.male[s] + 0.3 * older + 0.3 * tr[:, T["lipid"]]
    logits[:, R["mi"]] += 0.4 * (has["hypertension"] + has["diabetes"] + has["hyperlipidemia"])
    logits[:, R["mi"]] += 0.3 * tr[:, T["smoking"]]
    logits[:, R["heart_failure"]] += 3.0 * has["heart_failure"]
    logits[:, R["aki"]] += 1.2 * has["ckd"] + 0.4 * has["diabetes"]
    logits[:, R["copd_exacerbation"]] += 3.0 * has["copd"]
    logits[:, R["elective_surgery"]] -= 0.3 * tr[:, T["frailty"]]
    return logits


def _draw_stays(rng, subjects: Subjects, s: np.ndarray, start: np.ndarray) -> dict:
    """The course of one hospital stay for each subject index in `s`, admitted at `start`."""
    age = subjects.age(s, start)
    cond = subjects.conditions(s, start)
    burden = cond.sum(axis=1)
    frail = subjects.traits[s, T["frailty"]]
    older = age - 65.0
    reason = _categorical(rng, _reason_logits(subjects, s, age, cond))
    elective = reason == R["elective_surgery"]
    admission_type = np.where(elective, 2, np.where(rng.random(len(s)) < 0.2, 1, 0))
    course = _severity_course(rng, reason, frail, burden, older)
    course |= _icu_death_and_length(rng, course, burden, older, elective)
    course["disposition"] = _disposition(rng, course, burden, older, elective)
    offsets = _lab_offsets(rng, subjects, s, reason, cond, age)
    has = {name: cond[:, C[name]] for name in CONDITIONS}
    readmit_logit = -3.5 + 0.25 * burden + 0.4 * has["heart_failure"] + 0.3 * has["ckd"]
    readmit_logit += 0.5 * course["peak"] + 0.4 * frail + 0.015 * older
    readmit_logit += 0.4 * (course["los"] >= 7)
    readmit_logit += 0.4 * (course["disposition"] == DISPOSITION_INDEX["SNF"])
    readmit_logit += 0.25 * (offsets["hemoglobin_offset"] < -1.0)
    readmit_logit -= 0.12 * offsets["sodium_offset"]
    return dict(
        subject=s,
        start=start,
        age=age,
        cond=cond,
        reason=reason,
        admission_type=admission_type,
        readmit=rng.random(len(s)) < _sigmoid(readmit_logit),
        **course,
        **offsets,
    )


def _severity_course(rng, reason, frail, burden, older) -> dict:
    """Initial severity, daily rise until the turning point, peak and recovery rate."""
    n = len(reason)
    sev_mean = np.array([m for _, m, _ in REASONS.values()])[reason]
    rise_mean = np.array([r for _, _, r in REASONS.values()])[reason]
    severity0 = sev_mean + 0.2 * frail + 0.06 * burden + 0.01 * older
    severity0 = np.maximum(severity0 + 0.3 * rng.standard_normal(n), 0.05)
    slope = rise_mean + 0.08 * frail + 0.006 * older + 0.3 * rng.standard_normal(n)
    rise = np.maximum(slope, 0.0)
    turn = np.where(slope > 0, 0.5 + rng.exponential(1.5, n), 0.0)
    recovery = 0.45 * np.exp(-0.012 * older - 0.12 * frail + 0.3 * rng.standard_normal(n))
    return dict(
        severity0=severity0,
        rise=rise,
        turn=turn,
        recovery=np.maximum(recovery, -slope),
        peak=severity0 + rise * turn,
    )


def _icu_death_and_length(rng, course: dict, burden, older, elective) -> dict:
    """ICU stay, in-hospital death and length of stay, from the severity course."""
    severity0, rise, turn, peak, recovery = (
        course[k] for k in ("severity0", "rise", "turn", "peak", "recovery")
    )
    n = len(severity0)
    icu_threshold = ICU_THRESHOLD + 0.2 * rng.standard_normal(n)
    death_threshold = 3.2 - 0.12 * burden - 0.015 * older + 0.25 * rng.standard_normal(n)
    death_threshold = np.maximum(death_threshold, icu_threshold + 0.3)
    died = peak >= death_threshold
    safe_rise = np.maximum(rise, 1e-9)
    t_death = np.where(
        severity0 >= death_threshold,
        rng.uniform(0.1, 1.0, n),
        (death_threshold - severity0) / safe_rise,
    )
    icu = peak >= icu_threshold
    icu_start = np.where(
        severity0 >= icu_threshold,
        rng.uniform(0.05, 0.3, n),
        (icu_threshold - severity0) / safe_rise,
    )
    icu_end = np.maximum(turn + (peak - icu_threshold + 0.5) / recovery, icu_start + 0.5)
    los = turn + np.maximum(peak - DISCHARGE_SEVERITY, 0.0) / recovery
    los = los + 0.3 + rng.exponential(0.7, n)
    los = np.maximum(los, np.where(icu, icu_end + 0.5, 0.0))
    los = np.maximum(los, np.where(elective, 1.0, 0.2))
    return dict(
        died=died,
        icu=icu & (~died | (icu_start < t_death)),
        icu_start=icu_start,
        icu_end=np.where(died, np.minimum(icu_end, t_death), icu_end),
        los=np.where(died, t_death, los),
    )


def _disposition(rng, course: dict, burden, older, elective) -> np.ndarray:
    """Discharge disposition index: DIED for deaths, else drawn from the stay and the patient."""
    peak, los = course["peak"], course["los"]
    logits = np.zeros((len(peak), len(DISPOSITION_INDEX)))
    logits[:, 1] = -1.0 + 0.03 * older + 0.2 * burden
    logits[:, 2] = -2.6 + 0.05 * older + 0.5 * peak + 0.08 * los
    logits[:, 3] = -2.5 + 0.02 * older + 1.2 * elective
    logits[:, 4] = -6.5 + 0.06 * older + 1.2 * peak + 0.3 * burden
    return np.where(course["died"], DIED, _categorical(rng, logits))


def _lab_offsets(rng, subjects: Subjects, s, reason, cond, age) -> dict:
    """Per-stay lab parameters: kidney injury, persistent offsets, glucose control, drifts."""
    n = len(s)
    older = age - 65.0
    has = {name: cond[:, C[name]] for name in CONDITIONS}
    kidney_injury = 0.3 * has["ckd"] + 0.2 * has["diabetes"] + 0.7 * (reason == R["aki"])
    kidney_injury += 0.25 * (reason == R["sepsis"]) + 0.2 * has["heart_failure"]
    sodium_offset = 2.0 * rng.standard_normal(n) - 2.5 * has["heart_failure"]
    sodium_offset -= 1.2 * ((reason == R["pneumonia"]) | (reason == R["sepsis"]))
    diabetic = has["diabetes"]
    # Non-diabetics run a little above their fasting curve (stress, feeding), so a rising curve
    # before a diabetes diagnosis shows in hospital too.
    glucose_mean = np.where(
        diabetic,
        185.0 + 25.0 * subjects.traits[s, T["glucose"]] - 30.0 * has["ckd"] - 1.0 * older,
        5.0 + np.maximum(subjects.curve("diabetes", s, age), 100.0),
    ) + np.where(diabetic, 35.0, 10.0) * rng.standard_normal(n)
    return dict(
        kidney_injury=np.maximum(kidney_injury + 0.2 * rng.standard_normal(n), 0.0),
        potassium_offset=0.25 * rng.standard_normal(n),
        sodium_offset=sodium_offset,
        glucose_mean=np.maximum(glucose_mean, 80.0),
        glucose_cv=np.where(diabetic, 0.3 + 0.08 * has["ckd"], 0.1),
        hemoglobin_offset=0.5 * rng.standard_normal(n) - 2.8 * (reason == R["gi_bleed"]),
        platelet_drop=np.where(reason == R["sepsis"], 0.55, 0.12) * rng.uniform(0.4, 1.6, n),
        late_shift=rng.standard_normal((n, len(LATE_SHIFT_SD))) * LATE_SHIFT_SD,
    )


def _yearly_rate(subjects: Subjects, base: float, age_coef: float) -> np.ndarray:
    """A per-subject yearly event rate from age, chronic burden and frailty at record start."""
    idx = np.arange(len(subjects.start))
    burden = subjects.conditions(idx, subjects.start).sum(axis=1)
    age = subjects.age(idx, subjects.start)
    frail = subjects.traits[:, T["frailty"]]
    return base * np.exp(age_coef * (age - 60.0) + 0.3 * burden + 0.45 * frail)


def hospital_course(rng: np.random.Generator, subjects: Subjects) -> tuple[Subjects, Stays]:
    """Draw every stay, admission after admission, and the death time of each subject.

    The loop runs over the admission number (vectorised over subjects), so each stay can depend
    on the previous one: a readmission is planned within 30 days of a discharge, a hospice
    discharge brings death within weeks, and a death in hospital ends the record.
    """
    admission_rate = _yearly_rate(subjects, ADMISSION_RATE, 0.025) / DAYS_PER_YEAR
    mortality = np.minimum(_yearly_rate(subjects, OUT_OF_HOSPITAL_MORTALITY, 0.08), 0.5)
    death = subjects.start + rng.exponential(DAYS_PER_YEAR / mortality)
    next_start = subjects.start + rng.exponential(1.0 / admission_rate)
    batches = []
    while True:
        s = np.flatnonzero(next_start < np.minimum(subjects.end, death))
        if s.size == 0:
            break
        stay = _draw_stays(rng, subjects, s, next_start[s])
        discharge = stay["start"] + stay["los"]
        subject_death = death[s]
        # A death drawn inside a stay is moved just after its discharge: out-of-hospital deaths
        # stay unpredictable from the stay, in-hospital deaths come from the severity course.
        subject_death = np.where(
            subject_death < discharge,
            discharge + rng.exponential(20.0, s.size),
            subject_death,
        )
        hospice = stay["disposition"] == DISPOSITION_INDEX["HOSPICE"]
        soon = discharge + rng.exponential(12.0, s.size)
        subject_death = np.where(hospice, np.minimum(subject_death, soon), subject_death)
        death[s] = np.where(stay["died"], discharge, subject_death)
        gap = np.where(
            stay["readmit"],
            rng.uniform(1.0, 30.0, s.size),
            30.0 + rng.exponential(1.0 / admission_rate[s]),
        )
        next_start[s] = discharge + gap
        batches.append(stay)
    stays = _concat_stays(batches)
    observed_death = np.where(death <= subjects.end, death, np.inf)
    end = np.minimum(subjects.end, observed_death)
    return Subjects(**{**_as_dict(subjects), "end": end, "death": observed_death}), stays


def _as_dict(obj) -> dict:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _concat_stays(batches: list[dict]) -> Stays:
    names = [f.name for f in fields(Stays)]
    if not batches:
        empty = {name: np.zeros(0) for name in names}
        empty["cond"] = np.zeros((0, len(CONDITIONS)), dtype=bool)
        for name in ("subject", "reason", "admission_type", "disposition"):
            empty[name] = np.zeros(0, dtype=np.int64)
        for name in ("died", "icu", "readmit"):
            empty[name] = np.zeros(0, dtype=bool)
        empty["late_shift"] = np.zeros((0, len(LATE_SHIFT_SD)))
        return Stays(**empty)
    columns = {name: np.concatenate([b[name] for b in batches]) for name in names}
    order = np.lexsort((columns["start"], columns["subject"]))
    return Stays(**{name: col[order] for name, col in columns.items()})
