"""The eICU-CRD demo's CSV tables as one MEDS event table, then a MEDS 0.4 folder.

eICU has no dates. Every `*offset` column counts minutes from the admission to the ICU unit stay
(`patientunitstayid`) its row belongs to, and the only calendar facts are the discharge year
(`hospitaldischargeyear`) and the clock times (`hospitaladmittime24`, ...). This module builds
one timeline per patient and writes the events through `meds_from_events` (no second writer).

Subjects. A subject is a patient (`uniquepid`, written `DDD-D...`); its `subject_id` is the
int64 read from "1" followed by the pid's digits (`002-1039` -> 10021039). The leading 1 keeps
the zeros of the three-digit prefix, so two pids never share an id.

Timeline (all times are minutes from the hospital admission of the row's hospital stay,
`patienthealthsystemstayid`, then placed on the calendar):

- A unit stay begins `-hospitaladmitoffset` minutes after its hospital admission, so every unit
  stay of one hospital stay shares one clock, and an event of a unit stay at offset `x` lies
  `x - hospitaladmitoffset` minutes after the hospital admission.
- A hospital stay is admitted on January 1st of its `hospitaldischargeyear` at its
  `hospitaladmittime24` clock time.
- A patient's hospital stays are ordered by discharge year, then a stay ending in death last,
  then `patienthealthsystemstayid` (eICU gives no finer order). A stay whose events (from its
  earliest event, which may precede the admission, to its latest, which may follow the
  discharge) would begin less than `STAY_GAP` after the previous stay's latest event is moved
  later by whole days, keeping its clock times: stays never overlap, but the time between two
  stays is made up, which is why cohorts that measure it (readmission, new diagnoses within a
  year) are not expressible on eICU (`cohorts/predicates/eicu.yaml`).

Codes (`UNK` where the naming column is empty):

- static `GENDER//F`, `GENDER//M` (other values as written) and `ETHNICITY//<ethnicity>`, from
  the patient's first unit stay;
- `MEDS_BIRTH` at the first hospital admission minus the age in whole years (`> 89` is 90); the
  ages of later stays are not used, since the time between stays is made up;
- `HOSPITAL_ADMISSION//<hospitaladmitsource>` and
  `HOSPITAL_DISCHARGE//<hospitaldischargelocation>`, once per hospital stay;
- `ICU_ADMISSION//<unittype>` at offset 0 and `ICU_DISCHARGE//<unitdischargelocation>` at
  `unitdischargeoffset`, once per unit stay;
- one `MEDS_DEATH` per dead patient, at the earliest of the hospital discharges with
  `hospitaldischargestatus` `Expired` and the unit discharges with `unitdischargestatus`
  `Expired`;
- `ADMISSION_HEIGHT//cm` and `ADMISSION_WEIGHT//kg` (numeric) at unit admission;
- `LAB//<labname>//<labmeasurenamesystem>` at `labresultoffset`: numeric `labresult`, or
  `labresulttext` as text_value when the result is not a number (`<0.2`);
- `MEDICATION//<drugname>`, or `MEDICATION//HICL//<drughiclseqno>` when the name is empty, at
  `drugstartoffset`; cancelled orders (`drugordercancelled` = Yes) are left out;
- `TREATMENT//<treatmentstring>` at `treatmentoffset`;
- `DIAGNOSIS//EICU//<diagnosisstring>` and, for each code of the comma-separated `icd9code`
  (which holds ICD-9 and ICD-10 codes mixed), `DIAGNOSIS//ICD9CM//<code>` or
  `DIAGNOSIS//ICD10CM//<code>` (dots kept) at `diagnosisoffset`;
- `ADMISSION_DIAGNOSIS//<admitdxpath>` at `admitdxenteredoffset`;
- `PHYS_EXAM//<physicalexampath>` at `physicalexamoffset`; when `physicalexamvalue` is a number
  that also ends the path (`.../GCS/Motor Score/6`), the path without it, with the number as
  numeric_value.

Names and units are kept as the source writes them (`&#176;C` included). Rows whose offset is
missing or not an integer (discharges included), rows of unit stays absent from `patient.csv`,
unit stays without the pid, ids, year, clock time or `hospitaladmitoffset` that place them on
the timeline, and medications without name and HICL number are left out and counted (logged).
`hospital.csv` (bed count, region, teaching status) gives no event. Events are sorted on every
column before writing, so two imports give byte-identical shards.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import polars as pl

from ehrbench.errors import EhrbenchError
from ehrbench.meds.convert import licence_files, meds_from_events

log = logging.getLogger(__name__)

DATASET_NAME = "eICU-CRD-demo"
DATASET_VERSION = "2.0.1"
STAY_GAP = dt.timedelta(days=1)
UNKNOWN = "UNK"
# The patient table's columns the conversion reads.
PATIENT_COLUMNS = (
    "patientunitstayid",
    "patienthealthsystemstayid",
    "uniquepid",
    "gender",
    "age",
    "ethnicity",
    "admissionheight",
    "admissionweight",
    "hospitaladmittime24",
    "hospitaladmitoffset",
    "hospitaladmitsource",
    "hospitaldischargeyear",
    "hospitaldischargeoffset",
    "hospitaldischargelocation",
    "hospitaldischargestatus",
    "unittype",
    "unitdischargeoffset",
    "unitdischargelocation",
    "unitdischargestatus",
)
# Unit-relative events: unit stay, minutes after its unit admission, and the MEDS values.
UNIT_EVENT_SCHEMA = {
    "patientunitstayid": pl.Int64,
    "offset": pl.Int64,
    "code": pl.String,
    "numeric_value": pl.Float64,
    "text_value": pl.String,
}
# ICD-9-CM: digits (401.9), V codes (V62.84) and E codes with three digits (E980.2); every other
# letter-and-two-digits code (E87.1, I10, T42.4X) is ICD-10-CM.
ICD9 = r"^(\d{3}|V\d{2}|E\d{3})(\.[0-9A-Z]+)?$"
ICD10 = r"^[A-Z]\d{2}(\.[0-9A-Z]+)?$"


def _read_table(src: Path, stem: str, columns: Iterable[str]) -> pl.DataFrame:
    """`src/<stem>.csv` as strings, blank lines dropped; errors name the file and column."""
    path = src / f"{stem}.csv"
    if not path.is_file():
        raise EhrbenchError(f"{path} does not exist: expected the eICU demo table {stem}.csv.")
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except Exception as exc:  # polars raises several types for malformed CSV
        raise EhrbenchError(f"{path} is not a readable CSV file ({exc}).") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise EhrbenchError(
            f"{path} has no column {', '.join(f'`{c}`' for c in missing)} "
            f"(columns: {frame.columns})."
        )
    return frame.filter(~pl.all_horizontal(pl.all().is_null()))


def _name(column: str) -> pl.Expr:
    """The column's text for a code, `UNK` when it is empty."""
    return pl.col(column).str.strip_chars().replace("", None).fill_null(UNKNOWN)


def _integer(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().cast(pl.Int64, strict=False)


def _number(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)


def _clock_minutes(column: str) -> pl.Expr:
    """Minutes after midnight of an `HH:MM:SS` clock time (null when malformed)."""
    parts = pl.col(column).str.extract_groups(r"^\s*(\d{1,2}):(\d{2})")
    return parts.struct[0].cast(pl.Int64) * 60 + parts.struct[1].cast(pl.Int64)


def subject_id(pid: pl.Expr) -> pl.Expr:
    """The int64 subject id of a `uniquepid` (`002-1039` -> 10021039); null if malformed.

    >>> pl.select(subject_id(pl.lit("002-1039"))).item()
    10021039
    """
    text = pid.str.strip_chars()
    digits = "1" + text.str.replace("-", "", literal=True)
    return pl.when(text.str.contains(r"^\d{3}-\d{1,15}$")).then(digits.cast(pl.Int64, strict=False))


def age_years(age: pl.Expr) -> pl.Expr:
    """eICU's age text as whole years: `> 89` is 90, anything else not a number is null.

    >>> ages = pl.DataFrame({"age": ["> 89", "42", ""]})
    >>> ages.select(age_years(pl.col("age"))).to_series().to_list()
    [90, 42, None]
    """
    text = age.str.strip_chars()
    return pl.when(text == "> 89").then(90).otherwise(text.cast(pl.Int64, strict=False))


def _unit_stays(patient: pl.DataFrame, dropped: dict[str, int]) -> pl.DataFrame:
    """One row per placeable unit stay with its hospital stay and offsets as integers."""
    stays = patient.select(
        _integer("patientunitstayid").alias("patientunitstayid"),
        _integer("patienthealthsystemstayid").alias("hospital_stay"),
        subject_id(pl.col("uniquepid")).alias("subject_id"),
        _integer("hospitaldischargeyear").alias("year"),
        _clock_minutes("hospitaladmittime24").alias("admit_clock"),
        _integer("hospitaladmitoffset").alias("hospital_admit_offset"),
        _integer("hospitaldischargeoffset").alias("hospital_discharge_offset"),
        _integer("unitdischargeoffset").alias("unit_discharge_offset"),
        pl.col("hospitaldischargestatus").str.strip_chars().eq("Expired").alias("hospital_died"),
        pl.col("unitdischargestatus").str.strip_chars().eq("Expired").alias("unit_died"),
        pl.exclude("patientunitstayid"),
    )
    placed = stays.drop_nulls(
        ["patientunitstayid", "hospital_stay", "subject_id", "admit_clock", "hospital_admit_offset"]
    ).filter(pl.col("year").is_between(1, 9998))
    dropped["unit stays without the ids, year, clock time or offset that place them"] = (
        stays.height - placed.height
    )
    if placed.is_empty():
        raise EhrbenchError(
            f"patient.csv: none of its {stays.height} rows is a unit stay that can be placed (ids, "
            "discharge year, clock time and offset): there is nothing to convert."
        )
    duplicates = placed.filter(pl.col("patientunitstayid").is_duplicated()).height
    if duplicates:
        raise EhrbenchError(
            f"patient.csv: column `patientunitstayid` repeats in {duplicates} rows; expected one "
            "row per unit stay."
        )
    return placed


def _stay_events(stays: pl.DataFrame) -> pl.DataFrame:
    """Admission, discharge and death events of each unit stay, and its height and weight."""
    unit = pl.col("patientunitstayid")
    at_admission = pl.lit(0, pl.Int64)
    # The hospital columns repeat on each unit stay of a hospital stay: its lowest unit id's are
    # used, so each hospital stay is admitted and discharged once.
    hospital = stays.filter(unit == unit.min().over("hospital_stay"))
    frames = [
        stays.select(unit, offset=at_admission, code="ICU_ADMISSION//" + _name("unittype")),
        stays.select(
            unit,
            offset="unit_discharge_offset",
            code="ICU_DISCHARGE//" + _name("unitdischargelocation"),
        ),
        hospital.select(
            unit,
            offset="hospital_admit_offset",
            code="HOSPITAL_ADMISSION//" + _name("hospitaladmitsource"),
        ),
        hospital.select(
            unit,
            offset="hospital_discharge_offset",
            code="HOSPITAL_DISCHARGE//" + _name("hospitaldischargelocation"),
        ),
        stays.filter("hospital_died").select(
            unit, offset="hospital_discharge_offset", code=pl.lit("MEDS_DEATH")
        ),
        stays.filter("unit_died").select(
            unit, offset="unit_discharge_offset", code=pl.lit("MEDS_DEATH")
        ),
    ]
    for column, code in (
        ("admissionheight", "ADMISSION_HEIGHT//cm"),
        ("admissionweight", "ADMISSION_WEIGHT//kg"),
    ):
        measured = stays.select(
            unit, offset=at_admission, code=pl.lit(code), numeric_value=_number(column)
        )
        frames.append(measured.drop_nulls("numeric_value"))
    return _unit_frame(frames)


def _unit_frame(frames: Iterable[pl.DataFrame]) -> pl.DataFrame:
    """Stack unit-relative event frames, adding the value columns a frame lacks."""
    return pl.concat(
        [
            frame.select(
                pl.col(name).cast(dtype)
                if name in frame.columns
                else pl.lit(None, dtype).alias(name)
                for name, dtype in UNIT_EVENT_SCHEMA.items()
            )
            for frame in frames
        ]
    )


KEYS = ("patientunitstayid", "offset")


def _lab_events(rows: pl.DataFrame, dropped: dict[str, int]) -> pl.DataFrame:
    """Lab results by name and unit; a result that is not a number is kept as text."""
    value = _number("labresult")
    return rows.select(
        *KEYS,
        code="LAB//" + _name("labname") + "//" + _name("labmeasurenamesystem"),
        numeric_value=value,
        text_value=pl.when(value.is_null()).then(pl.col("labresulttext")),
    )


def _treatment_events(rows: pl.DataFrame, dropped: dict[str, int]) -> pl.DataFrame:
    return rows.select(*KEYS, code="TREATMENT//" + _name("treatmentstring"))


def _admission_diagnosis_events(rows: pl.DataFrame, dropped: dict[str, int]) -> pl.DataFrame:
    return rows.select(*KEYS, code="ADMISSION_DIAGNOSIS//" + _name("admitdxpath"))


def _medication_events(rows: pl.DataFrame, dropped: dict[str, int]) -> pl.DataFrame:
    """Drug starts by name, else by HICL number; cancelled orders left out."""
    ordered = rows.filter(pl.col("drugordercancelled").str.strip_chars().ne_missing("Yes"))
    dropped["cancelled medication orders"] = rows.height - ordered.height
    name = pl.col("drugname").str.strip_chars().replace("", None)
    # The HICL number is written as a float (2812.0) in the demo.
    hicl = pl.col("drughiclseqno").str.strip_chars().str.replace(r"\.0$", "").replace("", None)
    events = ordered.select(
        *KEYS,
        code=pl.coalesce("MEDICATION//" + name, "MEDICATION//HICL//" + hicl),
    )
    named = events.drop_nulls("code")
    dropped["medications without name or HICL number"] = events.height - named.height
    return named


def _diagnosis_events(rows: pl.DataFrame, dropped: dict[str, int]) -> pl.DataFrame:
    """The eICU diagnosis string, and each ICD code of `icd9code` tagged by its system."""
    strings = rows.select(*KEYS, code="DIAGNOSIS//EICU//" + _name("diagnosisstring"))
    codes = (
        rows.select(*KEYS, icd=pl.col("icd9code").str.split(","))
        .explode("icd")
        .with_columns(pl.col("icd").str.strip_chars().str.to_uppercase())
        .filter(pl.col("icd") != "")
    )
    system = (
        pl.when(pl.col("icd").str.contains(ICD9))
        .then(pl.lit("ICD9CM"))
        .when(pl.col("icd").str.contains(ICD10))
        .then(pl.lit("ICD10CM"))
    )
    tagged = codes.select(*KEYS, code="DIAGNOSIS//" + system + "//" + pl.col("icd")).drop_nulls()
    dropped["ICD codes of neither ICD-9-CM nor ICD-10-CM shape"] = codes.height - tagged.height
    return pl.concat([strings, tagged])


def _exam_events(rows: pl.DataFrame, dropped: dict[str, int]) -> pl.DataFrame:
    """Physical exam paths; a number ending the path becomes the value of the shorter path."""
    path = pl.col("physicalexampath").str.strip_chars()
    value = pl.col("physicalexamvalue").str.strip_chars()
    number = _number("physicalexamvalue")
    in_path = number.is_not_null() & path.str.ends_with("/" + value)
    shorter = path.str.head(path.str.len_chars() - value.str.len_chars() - 1)
    return rows.select(
        *KEYS,
        code="PHYS_EXAM//" + pl.when(in_path).then(shorter).otherwise(_name("physicalexampath")),
        numeric_value=pl.when(in_path).then(number),
    )


class EventTable(NamedTuple):
    """An eICU event table: its offset column, the other columns it needs, its event builder."""

    offset: str
    columns: tuple[str, ...]
    build: Callable[[pl.DataFrame, dict[str, int]], pl.DataFrame]


# Each event table by file stem. A builder gets the rows with integer `patientunitstayid` and
# `offset`, returns events (`KEYS`, code, values) and records rows it leaves out in `dropped`.
EVENT_TABLES = {
    "lab": EventTable(
        "labresultoffset",
        ("labname", "labresult", "labresulttext", "labmeasurenamesystem"),
        _lab_events,
    ),
    "medication": EventTable(
        "drugstartoffset", ("drugname", "drughiclseqno", "drugordercancelled"), _medication_events
    ),
    "treatment": EventTable("treatmentoffset", ("treatmentstring",), _treatment_events),
    "diagnosis": EventTable("diagnosisoffset", ("diagnosisstring", "icd9code"), _diagnosis_events),
    "admissionDx": EventTable(
        "admitdxenteredoffset", ("admitdxpath",), _admission_diagnosis_events
    ),
    "physicalExam": EventTable(
        "physicalexamoffset", ("physicalexampath", "physicalexamvalue"), _exam_events
    ),
}


def _unit_events(src: Path, stays: pl.DataFrame, dropped: dict[str, int]) -> pl.DataFrame:
    """Every event of the known unit stays, in minutes after its unit admission."""
    known = stays.get_column("patientunitstayid").implode()
    stay_events = _stay_events(stays)
    frames = [stay_events.drop_nulls("offset")]
    dropped["patient.csv discharges without an integer offset"] = (
        stay_events.height - frames[0].height
    )
    for stem, (offset, columns, build) in EVENT_TABLES.items():
        table = _read_table(src, stem, ("patientunitstayid", offset, *columns)).with_columns(
            _integer("patientunitstayid").alias("patientunitstayid"),
            _integer(offset).alias("offset"),
        )
        known_rows = table.filter(pl.col("patientunitstayid").is_in(known))
        dropped[f"{stem}.csv rows of unit stays not in patient.csv"] = (
            table.height - known_rows.height
        )
        timed = known_rows.drop_nulls("offset")
        dropped[f"{stem}.csv rows without an integer {offset}"] = known_rows.height - timed.height
        frames.append(build(timed, dropped))
    return _unit_frame(frames)


def _hospital_stays(stays: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """One row per hospital stay: its patient, anchor, death flag and the span of its events.

    `first` and `last` are the minutes from the hospital admission to the stay's earliest and
    latest event (the admission and discharge are events, so `first <= 0 <= last`).
    """
    minutes = events.join(
        stays.select("patientunitstayid", "hospital_stay", "hospital_admit_offset"),
        on="patientunitstayid",
    ).select("hospital_stay", minutes=pl.col("offset") - pl.col("hospital_admit_offset"))
    spans = minutes.group_by("hospital_stay").agg(
        first=pl.col("minutes").min(), last=pl.col("minutes").max()
    )
    # As in `_stay_events`, the hospital columns of the lowest unit id are used.
    hospital = (
        stays.sort("patientunitstayid")
        .group_by("hospital_stay", maintain_order=True)
        .agg(
            pl.col("subject_id", "year", "admit_clock").first(),
            died=(pl.col("hospital_died") | pl.col("unit_died")).any(),
        )
    )
    return hospital.join(spans, on="hospital_stay").sort(
        "subject_id", "year", "died", "hospital_stay"
    )


def place_hospital_stays(hospital: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Add each hospital stay's admission time (`admit`); also return how many were moved.

    A stay is admitted on January 1st of its year at its clock time, moved later by whole days
    when its first event would come less than `STAY_GAP` after the previous stay's last event.
    `hospital` is sorted in timeline order (subject, year, death last, stay id).

    The second stay below (clock 01:00, first event 2 h before its admission) must begin a day
    after the first one's last event (2014-01-03 12:00), so it is admitted at 01:00 on the 5th:

    >>> stays = pl.DataFrame({"subject_id": [1, 1], "year": [2014, 2014],
    ...     "admit_clock": [600, 60], "first": [-30, -120], "last": [3000, 100]})
    >>> placed, moved = place_hospital_stays(stays)
    >>> [str(t) for t in placed["admit"]], moved
    (['2014-01-01 10:00:00', '2014-01-05 01:00:00'], 1)
    """
    admits, moved = [], 0
    previous_subject, previous_end = None, None
    for row in hospital.iter_rows(named=True):
        admit = dt.datetime(row["year"], 1, 1) + dt.timedelta(minutes=row["admit_clock"])
        if row["subject_id"] == previous_subject:
            earliest = previous_end + STAY_GAP - dt.timedelta(minutes=row["first"])
            if admit < earliest:
                admit += dt.timedelta(days=math.ceil((earliest - admit) / dt.timedelta(days=1)))
                moved += 1
        admits.append(admit)
        previous_subject = row["subject_id"]
        previous_end = admit + dt.timedelta(minutes=row["last"])
    return hospital.with_columns(admit=pl.Series(admits, dtype=pl.Datetime("us"))), moved


def _timed_events(
    events: pl.DataFrame, stays: pl.DataFrame, hospital: pl.DataFrame
) -> pl.DataFrame:
    """Unit-relative events on the calendar, with one `MEDS_DEATH` per patient (the first)."""
    timed = (
        events.join(
            stays.select("patientunitstayid", "hospital_stay", "hospital_admit_offset"),
            on="patientunitstayid",
        )
        .join(hospital.select("hospital_stay", "subject_id", "admit"), on="hospital_stay")
        .select(
            "subject_id",
            time=pl.col("admit")
            + pl.duration(minutes=pl.col("offset") - pl.col("hospital_admit_offset")),
            code="code",
            numeric_value="numeric_value",
            text_value="text_value",
        )
    )
    is_death = pl.col("code") == "MEDS_DEATH"
    first_death = (
        timed.filter(is_death).group_by("subject_id").agg(pl.all().sort_by("time").first())
    )
    return pl.concat([timed.filter(~is_death), first_death.select(timed.columns)])


def _subject_events(patient_stays: pl.DataFrame, hospital: pl.DataFrame) -> pl.DataFrame:
    """Static gender and ethnicity, and `MEDS_BIRTH`, from each patient's first unit stay."""
    first = (
        patient_stays.join(hospital.select("hospital_stay", "admit"), on="hospital_stay")
        .with_columns(
            unit_admit=pl.col("admit") - pl.duration(minutes=pl.col("hospital_admit_offset"))
        )
        .sort("subject_id", "unit_admit", "patientunitstayid")
        .group_by("subject_id", maintain_order=True)
        .first()
    )
    gender = pl.col("gender").str.strip_chars().replace({"Female": "F", "Male": "M"})
    static = pl.lit(None, pl.Datetime("us"))
    age = age_years(pl.col("age"))
    frames = [
        first.select("subject_id", time=static, code="GENDER//" + gender),
        first.select("subject_id", time=static, code="ETHNICITY//" + _name("ethnicity")),
        first.filter(age.is_not_null()).select(
            "subject_id",
            time=pl.col("admit").dt.offset_by(pl.format("-{}y", age)),
            code=pl.lit("MEDS_BIRTH"),
        ),
    ]
    return pl.concat(frames).drop_nulls("code")


def eicu_events(src: str | os.PathLike) -> tuple[pl.DataFrame, dict[str, int]]:
    """The eICU CSV folder `src` as one MEDS event table, and the rows left out by reason.

    Columns: subject_id, time, code, numeric_value, text_value; rows sorted on all of them.
    """
    src = Path(src)
    dropped: dict[str, int] = {}
    patient = _read_table(src, "patient", PATIENT_COLUMNS)
    stays = _unit_stays(patient, dropped)
    events = _unit_events(src, stays, dropped)
    hospital, moved = place_hospital_stays(_hospital_stays(stays, events))
    log.info(
        "%d hospital stays of %d patients; %d moved later to follow the patient's previous stay",
        hospital.height,
        hospital.get_column("subject_id").n_unique(),
        moved,
    )
    table = pl.concat(
        [_subject_events(stays, hospital), _timed_events(events, stays, hospital)],
        how="diagonal",
    )
    for reason, count in dropped.items():
        if count:
            log.info("left out %d %s", count, reason)
    return table.sort(table.columns, nulls_last=False), dropped


def import_eicu_demo(src: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Convert the eICU-CRD demo CSV folder `src` into a MEDS 0.4 folder at `out_dir`.

    The folder's README.md and `*.txt` licence files are copied along (ODbL requires the licence
    to travel with the data). Returns `meds_from_events`'s summary plus `dropped`, the rows left
    out by reason.
    """
    src = Path(src)
    if not src.is_dir():
        raise EhrbenchError(f"{src} is not a folder: expected the eICU demo folder of CSV tables.")
    if Path(out_dir).resolve().is_relative_to(src.resolve()):
        raise EhrbenchError(
            f"{out_dir} lies inside the input folder {src}: write the MEDS folder elsewhere."
        )
    carried = licence_files(src, "eICU-CRD demo")
    events, dropped = eicu_events(src)
    with tempfile.TemporaryDirectory(prefix="ehrbench-eicu-") as tmp:
        table = Path(tmp) / "eicu_events.parquet"
        events.write_parquet(table)
        summary = meds_from_events(
            table,
            out_dir,
            name=DATASET_NAME,
            version=DATASET_VERSION,
            license="ODbL-1.0",
            license_files=carried,
        )
    return summary | {"dropped": dropped}
