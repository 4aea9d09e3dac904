"""The synthetic hospital system: a generative story, vectorised over subjects.

The generative story
====================

**Subjects.** Each subject is an adult (18-95, mean about 60) whose record opens at a random time
in 2150-2154 (shifted dates, as in MIMIC-IV) and runs 2-8 years, or until death. Sex is 48% male.
Each subject carries latent standard-normal traits: blood pressure, lipids, glucose, kidney,
heart, smoking, frailty, and personal set points for potassium, sodium, hemoglobin and platelets.

**Chronic conditions** start at an onset age determined by the traits:
- hypertension, diabetes, hyperlipidemia: a risk-factor curve (systolic BP, fasting glucose,
  total cholesterol) rises slowly and linearly with age from a level set by the trait; the
  condition starts when the curve crosses a threshold (138 mmHg, 126 mg/dL, 240 mg/dL, with
  personal noise). On top of it, each subject has a chance of about a third (more with a high
  trait of their own, related traits - BP, kidney and glucose for hypertension; glucose, BP and
  lipids for diabetes; lipids and glucose for hyperlipidemia - and slightly with age) of a
  **steep rise** (weight gain, a metabolic change) that carries the curve across the threshold
  at a uniform time of the record. It counts only where the slow curve has not crossed by then
  (13-32% of subjects have one); it starts 1.5-3 years before the crossing, climbing a median
  6 mmHg, 10 mg/dL or 12 mg/dL a year, and goes on for half as long after it. These new
  diagnoses within the record (about 7-8% of undiagnosed subjects within a year of a discharge)
  are announced by BP, glucose or cholesterol values that climb towards the threshold at the
  visits and stays before them, and by the related traits and conditions, hardly by age and
  sex. The measured values follow the curve; after diagnosis treatment lowers them;
- CKD: creatinine rises exponentially after 30 at a rate set by the kidney, glucose and BP
  traits; CKD starts when it reaches 1.7x the young-adult value;
- heart failure (heart and BP traits) and COPD (smoking) start at a latent onset age.
A condition is coded at every clinic visit and discharge after its onset.

**Clinic visits** occur 1.5 + 0.8 per chronic condition times a year (one at the record's start),
plus one within weeks (mean 30 days) of each condition starting during the record, never during
a stay: vitals, often a basic panel and blood count, every other visit cholesterol, the chronic
diagnoses and their medications (lisinopril, metformin, insulin, atorvastatin, furosemide,
metoprolol).

**Hospital admissions** arrive at a yearly rate rising with age, chronic burden and frailty. Each
has a reason (sepsis, pneumonia, MI, heart failure, AKI, GI bleed, COPD exacerbation, elective
surgery, other; weights depend on the conditions present) and a latent **severity** course: it
starts at a reason-specific level raised by frailty, burden and age, rises linearly (sepsis and
pneumonia mostly rise) until a turning point, then falls at a recovery rate that is slower in the
old and frail. All values measured in hospital move with severity, so the first 24 h of labs and
vitals show both the level and the trend.
- **ICU**: when severity crosses about 2.1 (at admission: direct ICU admission; later: a transfer
  that the rising trend announces). Unit: CCU for cardiac reasons, SICU after surgery, else MICU.
- **In-hospital death**: when severity crosses a personal threshold (about 3.2, lower with age and
  chronic burden). The discharge is then `HOSPITAL_DISCHARGE//DIED` with `MEDS_DEATH` at the
  same minute.
- **Length of stay**: until severity falls back to 0.3, plus administrative delay, so a high or
  still-rising severity at 24 h and slow recovery (age, frailty) mean a long stay.
- **Disposition** among survivors: home, home health care (age, burden), skilled nursing
  (age, severity, length of stay), rehab (elective surgery), hospice (old and very ill; death
  follows within weeks).
- **Readmission within 30 days** of a live discharge is likelier with chronic burden (heart
  failure, CKD), a severe stay, frailty, age, a long stay, discharge to skilled nursing, low
  sodium and a large hemoglobin drop; otherwise the next admission comes after 30 days at the
  subject's admission rate.
- **Out-of-hospital death** arrives at a yearly hazard rising with age, burden and frailty.

**Labs in hospital** (draws every 6 h on day 1 and in ICU, every 12 h on the ward; glucose every
6 h for diabetics), with MIMIC-IV units:
- creatinine = age-dependent baseline x (1 + kidney injury x severity / 2); kidney injury is
  larger with CKD, diabetes, heart failure, sepsis and admissions for AKI (N179 when the peak
  creatinine reaches 1.5x baseline);
- potassium 4.0 mEq/L, higher with CKD, creatinine and ACE inhibitors, lower with diuretics, plus
  a per-stay offset that persists: hyperkalemia (> 5.5) after 24 h mostly follows a high first
  day in CKD;
- sodium 141, lower with heart failure, pneumonia/sepsis and severity, with a per-stay offset:
  hyponatremia (<= 135) after 24 h follows a low first day;
- glucose: non-diabetics 5 mg/dL above their fasting curve (at least 105; stress raises it),
  so a rise before a diabetes diagnosis shows in hospital too; diabetics on insulin swing widely
  around a stay mean that is lower with CKD and age: hypoglycemia (<= 70) clusters there;
- hemoglobin 13.2 (F) / 14.8 (M), lower with CKD and age, GI bleeds, severity and each day in
  hospital: anemia (< 12) after 24 h follows the first values and CKD;
- platelets 240 K/uL, falling with severity, strongly in sepsis: thrombocytopenia (< 150);
- WBC rises with sepsis and pneumonia, lactate with severity (twice with sepsis), bicarbonate
  falls with severity and CKD, BUN follows creatinine; chloride, anion gap, calcium, magnesium,
  phosphate and hematocrit complete the panels; cholesterol (the subject's curve) is drawn
  with the first labs of every MI stay and of 30% of the others;
- potassium, sodium, hemoglobin and platelets also drift by a per-stay amount that builds up
  over days 1-3 and cannot be seen at 24 h, so the lab outcomes are predictable, not certain.
Vitals (hourly in ICU, 2-hourly on day 1, 4-hourly on the ward): heart rate, systolic BP (the
subject's BP curve, lowered in shock), respiratory rate, SpO2 and temperature move with severity
and infection.

**Medications and procedures** follow the conditions and the stay: heparin, insulin
(diabetics), metoprolol, lisinopril, furosemide, atorvastatin, vancomycin and
piperacillin-tazobactam (infections), acetaminophen, norepinephrine in shock; a peripheral line,
chest X-ray, EKG, arterial line and ventilation in ICU, hemodialysis for severe kidney injury.
**Discharge diagnoses** (at the discharge time): the chronic conditions, the admission reason
(sepsis, septic shock, pneumonia, NSTEMI/AMI, AKI, GI bleed, COPD exacerbation, respiratory
failure) and marked lab abnormalities.

Determinism: each chunk of subjects draws from its own `numpy` generator seeded by
(seed, chunk index), and nothing depends on the wall clock or on hash order.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from ehrbench.errors import EhrbenchError
from ehrbench.synth.events import (
    EventArrays,
    EventBuffer,
    life_events,
    outpatient_events,
    stay_events,
)
from ehrbench.synth.population import draw_subjects, hospital_course
from ehrbench.synth.sites import DEFAULT_SITE, SITES, Site, site_events
from ehrbench.synth.vocabulary import CODES

SUBJECT_ID_BASE = 10_000_000
MEDS_SCHEMA = pa.schema(
    [
        ("subject_id", pa.int64()),
        ("time", pa.timestamp("us")),
        ("code", pa.string()),
        ("numeric_value", pa.float32()),
    ]
)


def chunk_events(
    seed: int, chunk: int, n_subjects: int, site: Site = SITES[DEFAULT_SITE]
) -> EventArrays:
    """The sorted events of one chunk of `n_subjects` subjects (local indices 0..n-1) at `site`
    (see `ehrbench.synth.sites`)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, chunk)))
    subjects = draw_subjects(rng, n_subjects, site.age_beta)
    subjects, stays = hospital_course(rng, subjects)
    buf = EventBuffer()
    life_events(subjects, buf)
    stay_events(rng, subjects, stays, buf)
    outpatient_events(rng, subjects, stays, buf)
    site_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, chunk)))
    return site_events(site, site_rng, buf.build())


def to_arrow(
    events: EventArrays,
    first_subject: int,
    rows: np.ndarray | slice = slice(None),
    codes: tuple[str, ...] = CODES,
):
    """The MEDS table (subject_id, time, code, numeric_value) of `rows` of a chunk whose code
    indices point into `codes` (a site's `Site.codes()`)."""
    subject = events.subject[rows] + (SUBJECT_ID_BASE + first_subject)
    micros = events.minute[rows] * 60_000_000
    static = events.static[rows]
    value = events.value[rows]
    code_strings = pa.DictionaryArray.from_arrays(
        pa.array(events.code[rows], pa.int16()), pa.array(codes, pa.string())
    ).cast(pa.string())
    return pa.Table.from_arrays(
        [
            pa.array(subject, pa.int64()),
            pa.array(micros, pa.timestamp("us"), mask=static),
            code_strings,
            pa.array(value, pa.float32(), mask=np.isnan(value)),
        ],
        schema=MEDS_SCHEMA,
    )


def generate_events(n_subjects: int, seed: int) -> pl.DataFrame:
    """All events of `n_subjects` synthetic subjects as one MEDS-schema polars DataFrame.

    Subjects are numbered from 10,000,000; the frame is sorted by subject, then time with
    static rows first. Equal to the data of `generate_dataset(..., n_shards=1)`.
    """
    if n_subjects < 1 or seed < 0:
        raise EhrbenchError(
            f"generate_events needs at least 1 subject and a non-negative seed; got "
            f"n_subjects={n_subjects}, seed={seed}."
        )
    return pl.from_arrow(to_arrow(chunk_events(seed, 0, n_subjects), 0))
