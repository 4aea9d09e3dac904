"""Turning subjects and stays into MEDS event rows, vectorised (no loop over subjects or events).

Rows are collected in an `EventBuffer` as (subject index, minute, code index, value) arrays and
sorted once per chunk: by subject, then time (static rows first), then code order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ehrbench.synth import vocabulary as vocab
from ehrbench.synth.measurements import (
    BASIC_PANEL,
    BLOOD_COUNT,
    VITAL_SIGNS,
    inpatient_state,
    lab_values,
    outpatient_state,
    vital_values,
)
from ehrbench.synth.population import CONDITIONS, DAYS_PER_YEAR, R, Stays, Subjects, T

MINUTES_PER_DAY = 1440
HOUR = 1.0 / 24.0
LAB_STEP = 0.25  # days between scheduled blood draws (kept every draw in ICU and on day 1)
MISSING_LAB = 0.03  # chance that one test of a drawn panel is not resulted
OUTPATIENT_VISITS = (1.5, 0.8)  # visits per year: base + per chronic condition at record start
OUTPATIENT_LABS = 0.6  # chance that a clinic visit has a basic panel and blood count
OUTPATIENT_CHOLESTEROL = 0.5
INPATIENT_CHOLESTEROL = 0.3  # chance of a lipid panel with the first draw of a stay (MI: always)
DIAGNOSIS_VISIT_DAYS = 30.0  # mean delay from a chronic condition's onset to the visit finding it
# Bits of the packed sort key: subject index | minute offset | code index.
CODE_BITS = 8
MINUTE_BITS = 35
SUBJECT_BITS = 63 - CODE_BITS - MINUTE_BITS
MAX_CHUNK_SUBJECTS = 1 << SUBJECT_BITS

# Lab-derived discharge diagnoses: (lab, extreme, comparison, threshold). Coders record an
# abnormality only when it is marked, hence thresholds beyond the task cut-offs.
LAB_DIAGNOSES = {
    "hyperkalemia": ("potassium", "max", ">", 5.5),
    "hyponatremia": ("sodium", "min", "<", 132.0),
    "hypoglycemia": ("glucose", "min", "<=", 70.0),
    "thrombocytopenia": ("platelets", "min", "<", 100.0),
    "anemia": ("hemoglobin", "min", "<", 10.0),
}
ICU_UNIT_BY_REASON = {"mi": 2, "heart_failure": 2, "elective_surgery": 1}  # else MICU (0)


def code_index(code: str) -> int:
    """The index of `code` in the vocabulary."""
    return vocab.CODE_INDEX[code]


def _indices(codes) -> np.ndarray:
    return np.array([code_index(c) for c in codes], dtype=np.int16)


@dataclass(frozen=True)
class EventArrays:
    """Sorted event rows of a chunk; `minute` is None-free: static rows are flagged instead."""

    subject: np.ndarray  # int64 local subject index
    minute: np.ndarray  # int64 minutes since 1970 (undefined where static)
    static: np.ndarray  # bool
    code: np.ndarray  # int16 vocabulary index
    value: np.ndarray  # float32, NaN where the row has no numeric value


class EventBuffer:
    """Collects event rows as arrays; `build` sorts them once."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, ...]] = []

    def add(self, subject, time, code, value=None) -> None:
        """Add rows: `time` in days (None for static rows), `code` an index or index array."""
        n = len(subject)
        if n == 0:
            return
        static = time is None
        minute = np.zeros(n, np.int64) if static else np.floor(time * MINUTES_PER_DAY)
        self._parts.append(
            (
                np.asarray(subject, np.int64),
                np.asarray(minute, np.int64),
                np.full(n, static),
                np.broadcast_to(np.asarray(code, np.int16), (n,)),
                np.full(n, np.nan, np.float32) if value is None else np.asarray(value, np.float32),
            )
        )

    def build(self) -> EventArrays:
        """All rows sorted by subject, time (static first), code; ties kept in insertion order."""
        columns = zip(*self._parts, strict=True)
        subject, minute, static, code, value = (np.concatenate(c) for c in columns)
        timed = minute[~static]
        base = timed.min() - 1 if timed.size else 0
        offset = np.where(static, 0, minute - base)
        if subject.max() >= MAX_CHUNK_SUBJECTS or offset.max() >= (1 << MINUTE_BITS):
            raise ValueError("chunk too large for the packed sort key")
        key = (subject << (MINUTE_BITS + CODE_BITS)) | (offset << CODE_BITS) | code
        order = np.argsort(key, kind="stable")
        return EventArrays(
            subject=subject[order],
            minute=minute[order],
            static=static[order],
            code=code[order],
            value=value[order],
        )


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For group sizes `counts`: each item's group and its rank within the group."""
    counts = np.maximum(counts, 0).astype(np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    firsts = np.cumsum(counts) - counts
    return owner, np.arange(owner.size) - firsts[owner]


def _grid(first: np.ndarray, until: np.ndarray, step: float):
    """Regular times first, first+step, ... up to `until`, per item: (item, rank, time)."""
    counts = np.where(until >= first, np.floor((until - first) / step) + 1, 0)
    owner, rank = _expand(counts)
    return owner, rank, first[owner] + rank * step


def life_events(subjects: Subjects, buf: EventBuffer) -> None:
    """Birth, sex (static) and observed death."""
    n = len(subjects.start)
    idx = np.arange(n)
    buf.add(idx, subjects.birth, code_index(vocab.BIRTH))
    sex = np.where(subjects.male, code_index("GENDER//M"), code_index("GENDER//F"))
    buf.add(idx, None, sex)
    dead = np.isfinite(subjects.death)
    buf.add(idx[dead], subjects.death[dead], code_index(vocab.DEATH))


def stay_events(rng, subjects: Subjects, stays: Stays, buf: EventBuffer) -> None:
    """Every row of every hospital stay."""
    types = _indices(f"HOSPITAL_ADMISSION//{t}" for t in vocab.ADMISSION_TYPES)
    buf.add(stays.subject, stays.start, types[stays.admission_type])
    _icu_transfers(stays, buf)
    extremes = _stay_labs(rng, subjects, stays, buf)
    _stay_vitals(rng, subjects, stays, buf)
    ventilated = _procedures(rng, stays, buf)
    shock = _medications(rng, stays, buf)
    _discharge_diagnoses(rng, subjects, stays, extremes, ventilated, shock, buf)
    dispositions = _indices(f"HOSPITAL_DISCHARGE//{d}" for d in vocab.DISPOSITIONS)
    buf.add(stays.subject, stays.end, dispositions[stays.disposition])


def _icu_unit(stays: Stays) -> np.ndarray:
    unit = np.zeros(len(stays.subject), np.int64)
    for reason, u in ICU_UNIT_BY_REASON.items():
        unit[stays.reason == R[reason]] = u
    return unit


def _icu_transfers(stays: Stays, buf: EventBuffer) -> None:
    icu = np.flatnonzero(stays.icu)
    unit = _icu_unit(stays)[icu]
    admit = _indices(f"ICU_ADMISSION//{u}" for u in vocab.ICU_UNITS)
    leave = _indices(f"ICU_DISCHARGE//{u}" for u in vocab.ICU_UNITS)
    start = stays.start[icu]
    buf.add(stays.subject[icu], start + stays.icu_start[icu], admit[unit])
    end = np.minimum(stays.icu_end[icu], stays.los[icu])
    buf.add(stays.subject[icu], start + end, leave[unit])


def _in_icu(stays: Stays, stay: np.ndarray, since: np.ndarray) -> np.ndarray:
    return stays.icu[stay] & (since >= stays.icu_start[stay]) & (since <= stays.icu_end[stay])


def _stay_labs(rng, subjects: Subjects, stays: Stays, buf: EventBuffer) -> dict:
    """Blood draws every 6 h in ICU and on day 1, every 12 h on the ward (glucose every 6 h
    for diabetics); returns each stay's extreme values for the discharge diagnoses."""
    n = len(stays.subject)
    first = rng.uniform(0.02, 0.1, n)
    stay, rank, since = _grid(first, stays.los, LAB_STEP)
    since = np.clip(since + rng.uniform(-0.02, 0.02, since.size), 0.0, stays.los[stay])
    in_icu = _in_icu(stays, stay, since)
    diabetic = stays.cond[stay, CONDITIONS.index("diabetes")]
    basic = in_icu | (since < 1.0) | (rank % 2 == 0)
    keep = basic | diabetic
    stay, rank, since, in_icu, basic = (
        stay[keep],
        rank[keep],
        since[keep],
        in_icu[keep],
        basic[keep],
    )
    state = inpatient_state(stays, stay, since)
    values = lab_values(rng, subjects, stays, state)
    time = stays.start[stay] + since
    subject = stays.subject[stay]
    twice_daily = rank % 2 == 0
    sick = stays.has_reason("sepsis")[stay] | in_icu | (state.severity > 1.5)
    masks = {name: basic for name in BASIC_PANEL}
    masks["glucose"] = np.ones(len(stay), dtype=bool)
    masks |= {name: twice_daily for name in BLOOD_COUNT}
    masks["lactate"] = (twice_daily & sick) | ((rank == 0) & (rng.random(len(stay)) < 0.3))
    lipids = stays.has_reason("mi")[stay] | (rng.random(len(stay)) < INPATIENT_CHOLESTEROL)
    masks["cholesterol"] = (rank == 0) & lipids
    extremes = {}
    for name, mask in masks.items():
        mask = mask & (rng.random(len(stay)) >= MISSING_LAB)
        buf.add(subject[mask], time[mask], code_index(vocab.lab_code(name)), values[name][mask])
        extremes[name] = _extreme_per_stay(stay[mask], values[name][mask], n)
    return extremes


def _extreme_per_stay(stay: np.ndarray, value: np.ndarray, n: int) -> dict[str, np.ndarray]:
    high = np.full(n, -np.inf)
    low = np.full(n, np.inf)
    np.maximum.at(high, stay, value)
    np.minimum.at(low, stay, value)
    return {"max": high, "min": low}


def _stay_vitals(rng, subjects: Subjects, stays: Stays, buf: EventBuffer) -> None:
    """Vital signs hourly in ICU, every 2 h on day 1, every 4 h on the ward."""
    first = rng.uniform(0.0, 0.04, len(stays.subject))
    stay, rank, since = _grid(first, stays.los, HOUR)
    keep = _in_icu(stays, stay, since) | (rank % 4 == 0) | ((since < 1.0) & (rank % 2 == 0))
    stay, rank, since = stay[keep], rank[keep], since[keep]
    values = vital_values(rng, subjects, stays, inpatient_state(stays, stay, since))
    time = stays.start[stay] + since
    subject = stays.subject[stay]
    for name in VITAL_SIGNS:
        mask = rank % 4 == 0 if name == "temperature" else slice(None)
        buf.add(subject[mask], time[mask], code_index(vocab.lab_code(name)), values[name][mask])


def _medication_plan(rng, stays: Stays) -> dict[str, tuple[np.ndarray, int]]:
    """Which stays get each scheduled medication, and the doses per day."""
    n = len(stays.subject)
    has = {name: stays.cond[:, i] for i, name in enumerate(CONDITIONS)}
    infection = stays.has_reason("sepsis") | stays.has_reason("pneumonia")
    return {
        "Heparin": (~stays.has_reason("gi_bleed") & (rng.random(n) < 0.85), 3),
        "Insulin": (has["diabetes"], 4),
        "Metoprolol Tartrate": (
            has["hypertension"] | has["heart_failure"] | stays.has_reason("mi"),
            2,
        ),
        "Lisinopril": (has["hypertension"] & (stays.kidney_injury < 0.5), 1),
        "Furosemide": (has["heart_failure"] | stays.has_reason("heart_failure"), 2),
        "Atorvastatin": (has["hyperlipidemia"] | stays.has_reason("mi"), 1),
        "Vancomycin": (infection, 2),
        "Piperacillin-Tazobactam": (infection & (rng.random(n) < 0.7), 3),
        "Acetaminophen": (rng.random(n) < 0.6, 3),
    }


def _medications(rng, stays: Stays, buf: EventBuffer) -> np.ndarray:
    """Scheduled doses through each stay, and vasopressors while in shock in ICU.

    Returns per stay whether a vasopressor was given (septic shock when septic)."""
    for name, (mask, per_day) in _medication_plan(rng, stays).items():
        idx = np.flatnonzero(mask)
        first = rng.uniform(0.05, 0.3, idx.size)
        owner, _, since = _grid(first, stays.los[idx], 1.0 / per_day)
        stay = idx[owner]
        buf.add(
            stays.subject[stay], stays.start[stay] + since, code_index(vocab.medication_code(name))
        )
    icu = np.flatnonzero(stays.icu)
    owner, _, since = _grid(stays.icu_start[icu] + 0.02, stays.icu_end[icu], 2.0 * HOUR)
    stay = icu[owner]
    shocked = stays.severity(stay, since) >= 2.4
    stay, since = stay[shocked], since[shocked]
    norepinephrine = code_index(vocab.medication_code("Norepinephrine"))
    buf.add(stays.subject[stay], stays.start[stay] + since, norepinephrine)
    given = np.zeros(len(stays.subject), dtype=bool)
    given[stay] = True
    return given


def _procedures(rng, stays: Stays, buf: EventBuffer) -> np.ndarray:
    """Lines, imaging, ventilation and dialysis; returns per stay whether ventilated."""
    n = len(stays.subject)
    los = stays.los
    lung = stays.has_reason("pneumonia") | stays.has_reason("copd_exacerbation")
    chest = lung | stays.has_reason("sepsis") | stays.has_reason("heart_failure") | stays.icu
    cardiac = stays.has_reason("mi") | stays.has_reason("heart_failure")
    emergency = stays.admission_type == 0
    ventilated = stays.icu & (lung | (stays.peak >= 2.8)) & (rng.random(n) < 0.7)
    dialysis = (stays.kidney_injury * stays.peak >= 2.0) & (los > 2.0)
    early = rng.uniform(0.05, 0.5, n)
    icu_in = stays.icu_start + 0.05
    icu_out = np.maximum(np.minimum(stays.icu_end, los) - 0.05, icu_in)
    plan = {
        "peripheral_line": (np.ones(n, bool), np.full(n, 0.03), np.maximum(los - 0.05, 0.03)),
        "chest_xray": (chest, early, early + 0.01),
        "ekg": (cardiac | (emergency & (rng.random(n) < 0.5)), early / 2, early / 2 + 0.007),
        "arterial_line": (stays.icu & (rng.random(n) < 0.7), icu_in, icu_out),
        "ventilation": (ventilated, icu_in + 0.05, np.maximum(icu_out - 0.2, icu_in + 0.05)),
        "hemodialysis": (dialysis, np.full(n, 1.5), np.full(n, 1.5 + 4 * HOUR)),
    }
    for name, (mask, begin, end) in plan.items():
        idx = np.flatnonzero(mask & (end <= los))
        subject, start = stays.subject[idx], stays.start[idx]
        buf.add(subject, start + begin[idx], code_index(vocab.procedure_code(name, "START")))
        buf.add(subject, start + end[idx], code_index(vocab.procedure_code(name, "END")))
    return ventilated


def _discharge_diagnoses(rng, subjects, stays, extremes, ventilated, shock, buf) -> None:
    """Chronic and acute diagnoses, stamped at the discharge time as in MIMIC-IV MEDS."""
    n = len(stays.subject)
    chronic = subjects.conditions(stays.subject, stays.end)
    for i, name in enumerate(CONDITIONS):
        idx = np.flatnonzero(chronic[:, i])
        buf.add(stays.subject[idx], stays.end[idx], code_index(vocab.diagnosis_code(name)))
    mi = stays.has_reason("mi")
    nstemi = rng.random(n) < 0.7
    acute = {
        "sepsis": stays.has_reason("sepsis"),
        "septic_shock": stays.has_reason("sepsis") & shock,
        "pneumonia": stays.has_reason("pneumonia"),
        "nstemi": mi & nstemi,
        "ami": mi & ~nstemi,
        "aki": stays.kidney_injury * stays.peak >= 1.0,
        "gi_bleed": stays.has_reason("gi_bleed"),
        "copd_exacerbation": stays.has_reason("copd_exacerbation"),
        "resp_failure": ventilated,
        "post_procedure": stays.has_reason("elective_surgery"),
    }
    compare = {">": np.greater, "<": np.less, "<=": np.less_equal}
    for name, (lab, extreme, op, threshold) in LAB_DIAGNOSES.items():
        acute[name] = compare[op](extremes[lab][extreme], threshold)
    for name, mask in acute.items():
        idx = np.flatnonzero(mask)
        buf.add(stays.subject[idx], stays.end[idx], code_index(vocab.diagnosis_code(name)))


def _inside_stays(subject: np.ndarray, time: np.ndarray, stays: Stays) -> np.ndarray:
    """Bool per (subject, time): the time falls within one of the subject's stays."""
    if stays.subject.size == 0:  # a small shard can have no hospital stay at all
        return np.zeros(subject.shape, dtype=bool)
    span = 1 << 20  # days; larger than any time, so keys of different subjects never overlap
    starts = stays.subject * float(span) + stays.start
    keys = subject * float(span) + time
    i = np.searchsorted(starts, keys, side="right") - 1
    valid = i >= 0
    i = np.maximum(i, 0)
    return valid & (stays.subject[i] == subject) & (time <= stays.end[i])


def _diagnosis_visits(rng, subjects: Subjects) -> tuple[np.ndarray, np.ndarray]:
    """(subject, day) of the visit that follows each chronic condition starting in the record."""
    onset = subjects.birth[:, None] + subjects.onset * DAYS_PER_YEAR
    inside = (onset > subjects.start[:, None]) & (onset < subjects.end[:, None])
    subject, condition = np.nonzero(inside)
    delay = rng.exponential(DIAGNOSIS_VISIT_DAYS, subject.size)
    return subject, onset[subject, condition] + delay


def outpatient_events(rng, subjects: Subjects, stays: Stays, buf: EventBuffer) -> None:
    """Clinic visits: one at the record's start, a Poisson number through the record, and one
    within weeks of each chronic condition's onset."""
    n = len(subjects.start)
    idx = np.arange(n)
    base, per_condition = OUTPATIENT_VISITS
    burden = subjects.conditions(idx, subjects.start).sum(axis=1)
    years = (subjects.end - subjects.start) / DAYS_PER_YEAR
    extra = rng.poisson((base + per_condition * burden) * years)
    routine = np.repeat(idx, extra)
    diagnosed, diagnosis_day = _diagnosis_visits(rng, subjects)
    subject = np.concatenate([idx, routine, diagnosed])
    day = np.concatenate(
        [
            subjects.start,
            subjects.start[routine]
            + rng.random(routine.size) * (subjects.end - subjects.start)[routine],
            diagnosis_day,
        ]
    )
    time = np.floor(day) + rng.uniform(8.0, 17.0, day.size) * HOUR
    keep = (time >= subjects.start[subject]) & (time <= subjects.end[subject])
    keep &= ~_inside_stays(subject, time, stays)
    subject, time = subject[keep], time[keep]
    rows = len(subject)
    buf.add(subject, time, code_index(vocab.OUTPATIENT_VISIT))
    state = outpatient_state(subjects, subject, time)
    for name, values in vital_values(rng, subjects, stays, state).items():
        buf.add(subject, time, code_index(vocab.lab_code(name)), values)
    labs = lab_values(rng, subjects, stays, state)
    drawn = rng.random(rows) < OUTPATIENT_LABS
    for name in BASIC_PANEL + BLOOD_COUNT:
        mask = drawn & (rng.random(rows) >= MISSING_LAB)
        buf.add(subject[mask], time[mask], code_index(vocab.lab_code(name)), labs[name][mask])
    mask = rng.random(rows) < OUTPATIENT_CHOLESTEROL
    buf.add(
        subject[mask],
        time[mask],
        code_index(vocab.lab_code("cholesterol")),
        labs["cholesterol"][mask],
    )
    for i, name in enumerate(CONDITIONS):
        mask = state.cond[:, i]
        buf.add(subject[mask], time[mask], code_index(vocab.diagnosis_code(name)))
    _clinic_medications(subjects, state, buf, time)


def _clinic_medications(subjects: Subjects, state, buf: EventBuffer, time: np.ndarray) -> None:
    """Chronic medications recorded at clinic visits, following the diagnoses."""
    tr = subjects.traits[state.subject]
    plan = {
        "Lisinopril": state.has("hypertension"),
        "Metformin": state.has("diabetes"),
        "Insulin": state.has("diabetes") & (tr[:, T["glucose"]] > 1.0),
        "Atorvastatin": state.has("hyperlipidemia"),
        "Furosemide": state.has("heart_failure"),
        "Metoprolol Tartrate": state.has("heart_failure")
        | (state.has("hypertension") & (tr[:, T["bp"]] > 0.8)),
    }
    for name, mask in plan.items():
        buf.add(state.subject[mask], time[mask], code_index(vocab.medication_code(name)))
