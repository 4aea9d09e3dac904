"""The code vocabulary of the synthetic dataset (MIMIC-IV MEDS style) with descriptions.

Codes are held as small integer indices while generating and turned into strings only when a
shard is written. The order of `CODES` is also the order of rows that share a subject and a
minute: admissions come before the measurements taken at the same minute, and the discharge
diagnoses, the discharge and the death come last.
"""

from __future__ import annotations

BIRTH = "MEDS_BIRTH"
DEATH = "MEDS_DEATH"
OUTPATIENT_VISIT = "OUTPATIENT_VISIT"

SEXES = ("F", "M")
ADMISSION_TYPES = ("EMERGENCY", "URGENT", "ELECTIVE")
DISPOSITIONS = ("HOME", "HOME HEALTH CARE", "SKILLED NURSING FACILITY", "REHAB", "HOSPICE", "DIED")
ICU_UNITS = (
    "Medical Intensive Care Unit (MICU)",
    "Surgical Intensive Care Unit (SICU)",
    "Coronary Care Unit (CCU)",
)

# name -> (MIMIC-IV itemid, unit, description). Labs are labevents; vitals are chartevents.
LABS = {
    "creatinine": (50912, "mg/dL", "Creatinine (blood)"),
    "potassium": (50971, "mEq/L", "Potassium (blood)"),
    "sodium": (50983, "mEq/L", "Sodium (blood)"),
    "glucose": (50931, "mg/dL", "Glucose (blood)"),
    "bicarbonate": (50882, "mEq/L", "Bicarbonate (blood)"),
    "bun": (51006, "mg/dL", "Urea nitrogen (blood)"),
    "chloride": (50902, "mEq/L", "Chloride (blood)"),
    "anion_gap": (50868, "mEq/L", "Anion gap (blood)"),
    "calcium": (50893, "mg/dL", "Calcium, total (blood)"),
    "magnesium": (50960, "mg/dL", "Magnesium (blood)"),
    "phosphate": (50970, "mg/dL", "Phosphate (blood)"),
    "hemoglobin": (51222, "g/dL", "Hemoglobin (blood)"),
    "hematocrit": (51221, "%", "Hematocrit (blood)"),
    "platelets": (51265, "K/uL", "Platelet count (blood)"),
    "wbc": (51301, "K/uL", "White blood cells (blood)"),
    "lactate": (50813, "mmol/L", "Lactate (blood gas)"),
    "cholesterol": (50907, "mg/dL", "Cholesterol, total (blood)"),
}
VITALS = {
    "heart_rate": (220045, "bpm", "Heart rate"),
    "systolic_bp": (220179, "mmHg", "Non-invasive blood pressure, systolic"),
    "resp_rate": (220210, "insp/min", "Respiratory rate"),
    "spo2": (220277, "%", "O2 saturation, pulse oximetry"),
    "temperature": (223761, "°F", "Temperature, Fahrenheit"),
}

# Chronic conditions, in the order used by every condition array of the generator.
CHRONIC_DIAGNOSES = {
    "hypertension": ("I10", "Essential (primary) hypertension"),
    "diabetes": ("E119", "Type 2 diabetes mellitus without complications"),
    "hyperlipidemia": ("E785", "Hyperlipidemia, unspecified"),
    "ckd": ("N183", "Chronic kidney disease, stage 3 (moderate)"),
    "heart_failure": ("I509", "Heart failure, unspecified"),
    "copd": ("J449", "Chronic obstructive pulmonary disease, unspecified"),
}
ACUTE_DIAGNOSES = {
    "sepsis": ("A419", "Sepsis, unspecified organism"),
    "septic_shock": ("R6521", "Severe sepsis with septic shock"),
    "pneumonia": ("J189", "Pneumonia, unspecified organism"),
    "nstemi": ("I214", "Non-ST elevation (NSTEMI) myocardial infarction"),
    "ami": ("I219", "Acute myocardial infarction, unspecified"),
    "aki": ("N179", "Acute kidney failure, unspecified"),
    "gi_bleed": ("K922", "Gastrointestinal hemorrhage, unspecified"),
    "copd_exacerbation": ("J441", "Chronic obstructive pulmonary disease with acute exacerbation"),
    "resp_failure": ("J9601", "Acute respiratory failure with hypoxia"),
    "hyperkalemia": ("E875", "Hyperkalemia"),
    "hyponatremia": ("E871", "Hypo-osmolality and hyponatremia"),
    "hypoglycemia": ("E162", "Hypoglycemia, unspecified"),
    "thrombocytopenia": ("D696", "Thrombocytopenia, unspecified"),
    "anemia": ("D649", "Anemia, unspecified"),
    "post_procedure": ("Z9889", "Other specified postprocedural states"),
}

MEDICATIONS = (
    "Heparin",
    "Insulin",
    "Metformin",
    "Metoprolol Tartrate",
    "Lisinopril",
    "Furosemide",
    "Atorvastatin",
    "Vancomycin",
    "Piperacillin-Tazobactam",
    "Acetaminophen",
    "Norepinephrine",
)

# name -> (MIMIC-IV procedureevents itemid, description)
PROCEDURES = {
    "peripheral_line": (224275, "20 Gauge peripheral line"),
    "chest_xray": (225459, "Chest X-Ray"),
    "ekg": (225402, "EKG"),
    "arterial_line": (225752, "Arterial line"),
    "ventilation": (225792, "Invasive ventilation"),
    "hemodialysis": (225441, "Hemodialysis"),
}


def lab_code(name: str) -> str:
    """The code of a lab or vital sign by its short name, e.g. `LAB//50912//mg/dL`."""
    itemid, unit, _ = LABS[name] if name in LABS else VITALS[name]
    return f"LAB//{itemid}//{unit}"


def diagnosis_code(name: str) -> str:
    """The ICD-10 diagnosis code of a chronic or acute condition by its short name."""
    icd, _ = CHRONIC_DIAGNOSES[name] if name in CHRONIC_DIAGNOSES else ACUTE_DIAGNOSES[name]
    return f"DIAGNOSIS//ICD//10//{icd}"


def medication_code(name: str) -> str:
    """The code of an administered medication."""
    return f"MEDICATION//{name}//Administered"


def procedure_code(name: str, edge: str) -> str:
    """The code of a procedure's START or END."""
    return f"PROCEDURE//{edge}//{PROCEDURES[name][0]}"


def _vocabulary() -> list[tuple[str, str]]:
    """Every (code, description) in the order that breaks ties at one minute."""
    entries = [(BIRTH, "Birth of the subject")]
    entries += [(f"GENDER//{s}", f"Sex: {'female' if s == 'F' else 'male'}") for s in SEXES]
    entries += [(OUTPATIENT_VISIT, "Outpatient clinic visit")]
    entries += [
        (f"HOSPITAL_ADMISSION//{t}", f"Hospital admission, {t.lower()}") for t in ADMISSION_TYPES
    ]
    entries += [(f"ICU_ADMISSION//{u}", f"ICU admission to {u}") for u in ICU_UNITS]
    for name, (_, unit, text) in {**LABS, **VITALS}.items():
        entries.append((lab_code(name), f"{text} [{unit}]"))
    entries += [(medication_code(m), f"{m} administered") for m in MEDICATIONS]
    for name, (_, text) in PROCEDURES.items():
        entries.append((procedure_code(name, "START"), f"{text} started"))
        entries.append((procedure_code(name, "END"), f"{text} ended"))
    entries += [(f"ICU_DISCHARGE//{u}", f"ICU discharge from {u}") for u in ICU_UNITS]
    for name, (_, text) in {**CHRONIC_DIAGNOSES, **ACUTE_DIAGNOSES}.items():
        entries.append((diagnosis_code(name), f"ICD-10-CM: {text}"))
    entries += [
        (f"HOSPITAL_DISCHARGE//{d}", f"Hospital discharge, disposition {d.lower()}")
        for d in DISPOSITIONS
    ]
    entries.append((DEATH, "Death of the subject"))
    return entries


VOCABULARY: tuple[tuple[str, str], ...] = tuple(_vocabulary())
CODES: tuple[str, ...] = tuple(code for code, _ in VOCABULARY)
CODE_INDEX: dict[str, int] = {code: i for i, code in enumerate(CODES)}
