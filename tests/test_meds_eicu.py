"""`import-eicu-demo`: the eICU CSV tables to a valid MEDS 0.4 folder on one timeline per patient.

A tiny inline eICU folder checks the timeline and the codes exactly; the shared demo (skipped when
`../shared/data` is absent) is checked against counts written in plain polars over its CSV files,
independently of the converter.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from meds_builders import meds_validates

from ehrbench.cli import main
from ehrbench.errors import EhrbenchError
from ehrbench.meds import open_dataset
from ehrbench.meds.eicu import EVENT_TABLES, PATIENT_COLUMNS, eicu_events, import_eicu_demo

# --- a tiny eICU folder -------------------------------------------------------------------------


def _stay(unit: int, hospital: int, pid: str, **fields) -> dict:
    base = {
        "patientunitstayid": unit,
        "patienthealthsystemstayid": hospital,
        "uniquepid": pid,
        "gender": "Male",
        "age": "60",
        "ethnicity": "Caucasian",
        "admissionheight": "180",
        "admissionweight": "",
        "hospitaladmittime24": "10:00:00",
        "hospitaladmitoffset": "0",
        "hospitaladmitsource": "Emergency Department",
        "hospitaldischargeyear": "2014",
        "hospitaldischargeoffset": "3000",
        "hospitaldischargelocation": "Home",
        "hospitaldischargestatus": "Alive",
        "unittype": "MICU",
        "unitdischargeoffset": "1000",
        "unitdischargelocation": "Floor",
        "unitdischargestatus": "Alive",
    }
    return base | fields


def _write(path: Path, columns, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def _tiny(folder: Path) -> Path:
    """Patient 002-0001: two 2014 hospital stays (the second ends in death); 017-12345: one."""
    folder.mkdir()
    patients = [
        _stay(100, 10, "002-0001", age="> 89", hospitaladmitoffset="-30"),
        _stay(101, 10, "002-0001", age="> 89", hospitaladmitoffset="-1500"),
        _stay(
            110,
            11,
            "002-0001",
            age="> 89",
            hospitaladmittime24="01:00:00",
            hospitaldischargeoffset="100",
            hospitaldischargelocation="Death",
            hospitaldischargestatus="Expired",
            unitdischargeoffset="100",
            unitdischargelocation="Death",
            unitdischargestatus="Expired",
        ),
        _stay(200, 20, "017-12345", gender="Female", hospitaldischargeyear="2015"),
    ]
    _write(folder / "patient.csv", PATIENT_COLUMNS, patients)
    (folder / "patient.csv").write_text((folder / "patient.csv").read_text() + ",,,\n\n")
    rows = {
        "lab": [
            {"labname": "sodium", "labresult": "131", "labmeasurenamesystem": "mmol/L"},
            {"labname": "troponin - I", "labresulttext": "<0.01", "labmeasurenamesystem": ""},
            {"labresultoffset": "", "labname": "sodium", "labresult": "140"},
        ],
        "medication": [
            {"drugname": "ENOXAPARIN", "drugordercancelled": "No"},
            {"drughiclseqno": "2812.0", "drugordercancelled": "No"},
            {"drugname": "HEPARIN", "drugordercancelled": "Yes"},
            {"drugordercancelled": "No"},
        ],
        "diagnosis": [
            {"diagnosisstring": "endocrine|hypopituitarism", "icd9code": "253.2, E23.0"},
            {"diagnosisstring": "toxicology|overdose", "icd9code": "E980.2, V62.84,R51"},
        ],
        "treatment": [{"treatmentstring": "pulmonary|ventilation"}],
        "admissionDx": [{"admitdxpath": "admission diagnosis|Operative"}],
        "physicalExam": [
            {"physicalexampath": "notes/GCS/Motor Score/6", "physicalexamvalue": "6"},
            {"physicalexampath": "notes/GCS/scored", "physicalexamvalue": "scored"},
        ],
    }
    for stem, (offset, columns, _) in EVENT_TABLES.items():
        filled = [{"patientunitstayid": "100", offset: "60"} | row for row in rows[stem]]
        _write(folder / f"{stem}.csv", ("patientunitstayid", offset, *columns), filled)
    (folder / "ODbL-1.0.txt").write_text("licence text\n")
    (folder / "README.md").write_text("# tiny\n")
    return folder


def _at(events: pl.DataFrame, code: str) -> list:
    return events.filter(pl.col("code") == code).get_column("time").to_list()


def test_tiny_timeline_orders_and_spaces_the_stays(tmp_path):
    events, dropped = eicu_events(_tiny(tmp_path / "eicu"))
    first = events.filter(pl.col("subject_id") == 10020001)
    # Stay 10 is admitted on 2014-01-01 at 10:00; unit 100 starts 30 min later, unit 101 25 h
    # later; both discharge the hospital stay 3000 min after unit 100's start (once).
    assert _at(first, "HOSPITAL_ADMISSION//Emergency Department") == [
        dt.datetime(2014, 1, 1, 10),
        dt.datetime(2014, 1, 5, 1),
    ]
    assert _at(first, "ICU_ADMISSION//MICU") == [
        dt.datetime(2014, 1, 1, 10, 30),
        dt.datetime(2014, 1, 2, 11),
        dt.datetime(2014, 1, 5, 1),
    ]
    # Stay 11 (01:00, year 2014) would overlap stay 10 (last event 2014-01-03 12:30): it moves
    # by whole days to the first 01:00 at least a day later, and its death is the one MEDS_DEATH.
    assert _at(first, "HOSPITAL_DISCHARGE//Home") == [dt.datetime(2014, 1, 3, 12, 30)]
    assert _at(first, "MEDS_DEATH") == [dt.datetime(2014, 1, 5, 2, 40)]
    # "> 89" is 90 years before the first hospital admission.
    assert _at(first, "MEDS_BIRTH") == [dt.datetime(1924, 1, 1, 10)]
    second = events.filter(pl.col("subject_id") == 101712345)
    assert _at(second, "HOSPITAL_ADMISSION//Emergency Department") == [dt.datetime(2015, 1, 1, 10)]
    statics = events.filter(pl.col("time").is_null()).sort("subject_id", "code")
    assert statics.rows() == [
        (10020001, None, "ETHNICITY//Caucasian", None, None),
        (10020001, None, "GENDER//M", None, None),
        (101712345, None, "ETHNICITY//Caucasian", None, None),
        (101712345, None, "GENDER//F", None, None),
    ]
    assert dropped["lab.csv rows without an integer labresultoffset"] == 1
    assert dropped["cancelled medication orders"] == 1
    assert dropped["medications without name or HICL number"] == 1


def test_tiny_codes_and_values(tmp_path):
    events, _ = eicu_events(_tiny(tmp_path / "eicu"))
    at_60 = events.filter(pl.col("time") == dt.datetime(2014, 1, 1, 11, 30))
    values = {row[0]: row[1:] for row in at_60.select("code", "numeric_value", "text_value").rows()}
    assert values == {
        "LAB//sodium//mmol/L": (131.0, None),
        "LAB//troponin - I//UNK": (None, "<0.01"),
        "MEDICATION//ENOXAPARIN": (None, None),
        "MEDICATION//HICL//2812": (None, None),
        "DIAGNOSIS//EICU//endocrine|hypopituitarism": (None, None),
        "DIAGNOSIS//ICD9CM//253.2": (None, None),
        "DIAGNOSIS//ICD10CM//E23.0": (None, None),
        "DIAGNOSIS//EICU//toxicology|overdose": (None, None),
        "DIAGNOSIS//ICD9CM//E980.2": (None, None),
        "DIAGNOSIS//ICD9CM//V62.84": (None, None),
        "DIAGNOSIS//ICD10CM//R51": (None, None),
        "TREATMENT//pulmonary|ventilation": (None, None),
        "ADMISSION_DIAGNOSIS//admission diagnosis|Operative": (None, None),
        "PHYS_EXAM//notes/GCS/Motor Score": (6.0, None),
        "PHYS_EXAM//notes/GCS/scored": (None, None),
    }
    assert events.filter(pl.col("code") == "ADMISSION_HEIGHT//cm").height == 4
    assert events.filter(pl.col("code") == "ADMISSION_WEIGHT//kg").height == 0


def test_tiny_rows_that_cannot_be_placed_are_left_out_and_counted(tmp_path):
    src = _tiny(tmp_path / "eicu")
    patient = pl.read_csv(src / "patient.csv", infer_schema=False)
    extra = pl.DataFrame(
        [
            _stay(300, 30, "not-a-pid"),
            _stay(301, 31, "003-1", hospitaladmittime24=""),
            _stay(201, 20, "017-12345", unitdischargeoffset=""),
        ]
    ).select(pl.all().cast(pl.String))
    pl.concat([patient, extra], how="diagonal").write_csv(src / "patient.csv")
    events, dropped = eicu_events(src)
    assert dropped["unit stays without the ids, year, clock time or offset that place them"] == 2
    assert dropped["patient.csv discharges without an integer offset"] == 1
    assert set(events.get_column("subject_id")) == {10020001, 101712345}
    assert events.filter(pl.col("code") == "ICU_ADMISSION//MICU").height == 5
    assert events.filter(pl.col("code") == "ICU_DISCHARGE//Floor").height == 3


def test_tiny_import_writes_a_valid_folder_with_its_licence(tmp_path, capsys):
    src = _tiny(tmp_path / "eicu")
    assert main(["import-eicu-demo", str(src), str(tmp_path / "out")]) == 0
    assert "wrote" in (out := capsys.readouterr().out) and "2 subjects" in out
    meds_validates(tmp_path / "out")
    assert (tmp_path / "out" / "ODbL-1.0.txt").read_text() == "licence text\n"
    assert (tmp_path / "out" / "README.md").is_file()
    meta = json.loads((tmp_path / "out" / "metadata" / "dataset.json").read_text())
    assert (meta["dataset_name"], meta["license"]) == ("eICU-CRD-demo", "ODbL-1.0")


def test_errors_name_the_file_and_column(tmp_path, capsys):
    src = _tiny(tmp_path / "eicu")
    assert main(["import-eicu-demo", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "nowhere is not a folder" in capsys.readouterr().err
    lab = pl.read_csv(src / "lab.csv", infer_schema=False).drop("labname")
    lab.write_csv(src / "lab.csv")
    with pytest.raises(EhrbenchError, match=r"lab\.csv has no column `labname`"):
        import_eicu_demo(src, tmp_path / "out")
    (src / "ODbL-1.0.txt").unlink()
    with pytest.raises(EhrbenchError, match=r"no licence file \(\*\.txt\) in .*eicu"):
        import_eicu_demo(src, tmp_path / "out")
    (src / "ODbL-1.0.txt").write_text("licence text\n")
    patient = pl.read_csv(src / "patient.csv", infer_schema=False)
    pl.concat([patient, patient.head(1)]).write_csv(src / "patient.csv")
    with pytest.raises(EhrbenchError, match=r"patient\.csv: column `patientunitstayid` repeats"):
        eicu_events(src)
    patient.head(0).write_csv(src / "patient.csv")
    with pytest.raises(EhrbenchError, match=r"patient\.csv: none of its 0 rows is a unit stay"):
        eicu_events(src)
    assert not (tmp_path / "out").exists()


# --- the shared eICU demo -----------------------------------------------------------------------


def _csv(src: Path, stem: str) -> pl.DataFrame:
    """A demo table as strings, without its blank trailing lines."""
    frame = pl.read_csv(src / f"{stem}.csv", infer_schema=False)
    return frame.filter(pl.col(frame.columns[0]).is_not_null())


def _code_counts(root: Path) -> dict[str, int]:
    events = pl.read_parquet(root / "data" / "**" / "*.parquet")
    prefix = events.select(pl.col("code").str.extract(r"^([A-Z_]+)"))
    return dict(prefix.group_by("code").len().rows())


def test_demo_validates_and_matches_hand_counts(eicu_meds, eicu_src):
    meds_validates(eicu_meds)
    patient = _csv(eicu_src, "patient")
    medication = _csv(eicu_src, "medication")
    diagnosis = _csv(eicu_src, "diagnosis")
    icd = diagnosis.select(pl.col("icd9code").str.split(",")).explode("icd9code").drop_nulls()
    exam = _csv(eicu_src, "physicalExam")
    hand = {
        "GENDER": patient.get_column("uniquepid").n_unique(),
        "ETHNICITY": patient.get_column("uniquepid").n_unique(),
        "MEDS_BIRTH": patient.get_column("uniquepid").n_unique(),
        "ICU_ADMISSION": patient.height,
        "ICU_DISCHARGE": patient.height,
        "HOSPITAL_ADMISSION": patient.get_column("patienthealthsystemstayid").n_unique(),
        "HOSPITAL_DISCHARGE": patient.get_column("patienthealthsystemstayid").n_unique(),
        "MEDS_DEATH": patient.filter(
            (pl.col("hospitaldischargestatus") == "Expired")
            | (pl.col("unitdischargestatus") == "Expired")
        )
        .get_column("uniquepid")
        .n_unique(),
        "ADMISSION_HEIGHT": patient.get_column("admissionheight").drop_nulls().len(),
        "ADMISSION_WEIGHT": patient.get_column("admissionweight").drop_nulls().len(),
        "LAB": _csv(eicu_src, "lab").height,
        "MEDICATION": medication.filter(
            (pl.col("drugordercancelled") != "Yes")
            & (pl.col("drugname").is_not_null() | pl.col("drughiclseqno").is_not_null())
        ).height,
        "DIAGNOSIS": diagnosis.height + icd.height,
        "TREATMENT": _csv(eicu_src, "treatment").height,
        "ADMISSION_DIAGNOSIS": _csv(eicu_src, "admissionDx").height,
        "PHYS_EXAM": exam.height,
    }
    assert _code_counts(eicu_meds) == hand
    # The README's numbers: 100 patients, 174 ICU stays, 144 hospital stays; the 9 unit stays
    # whose hospital stay ended in death belong to 6 hospital stays of 6 patients.
    assert (hand["GENDER"], hand["ICU_ADMISSION"], hand["HOSPITAL_ADMISSION"]) == (100, 174, 144)
    assert patient.filter(pl.col("hospitaldischargestatus") == "Expired").height == 9
    assert hand["MEDS_DEATH"] == 6
    assert open_dataset(eicu_meds).subject_ids().len() == 100


def _hospital_stays(root: Path) -> pl.DataFrame:
    """Each subject's hospital admissions with the next discharge after them."""
    events = pl.read_parquet(root / "data" / "**" / "*.parquet")
    admits = events.filter(pl.col("code").str.starts_with("HOSPITAL_ADMISSION//"))
    ends = events.filter(pl.col("code").str.starts_with("HOSPITAL_DISCHARGE//"))
    return admits.select("subject_id", "time").join_asof(
        ends.select("subject_id", end="time"),
        left_on="time",
        right_on="end",
        by="subject_id",
        strategy="forward",
        check_sortedness=False,
    )


def _hand_subject(pid: pl.Expr) -> pl.Expr:
    return ("1" + pid.str.replace("-", "")).cast(pl.Int64)


def test_demo_timeline_keeps_stay_lengths_years_and_never_overlaps(eicu_meds, eicu_src):
    stays = _hospital_stays(eicu_meds).sort("subject_id", "time")
    previous_end = pl.col("end").shift().over("subject_id")
    assert stays.filter(pl.col("time") <= previous_end).height == 0
    hospital = (
        _csv(eicu_src, "patient")
        .group_by("patienthealthsystemstayid")
        .first()
        .select(
            _hand_subject(pl.col("uniquepid")).alias("subject_id"),
            minutes=pl.col("hospitaldischargeoffset").cast(pl.Int64)
            - pl.col("hospitaladmitoffset").cast(pl.Int64),
            year=pl.col("hospitaldischargeyear").cast(pl.Int32),
        )
    )
    converted = stays.select(
        "subject_id",
        minutes=(pl.col("end") - pl.col("time")).dt.total_minutes(),
        year=pl.col("end").dt.year(),
    )
    key = ["subject_id", "minutes", "year"]
    assert converted.sort(key).equals(hospital.sort(key))


def test_demo_unit_stays_line_up_with_their_hospital_admission(eicu_meds, eicu_src):
    events = pl.read_parquet(eicu_meds / "data" / "**" / "*.parquet")
    units = events.filter(pl.col("code").str.starts_with("ICU_ADMISSION//")).sort("time")
    with_admit = units.join_asof(
        _hospital_stays(eicu_meds).sort("time").rename({"time": "admit"}),
        left_on="time",
        right_on="admit",
        by="subject_id",
        strategy="backward",
        check_sortedness=False,
    ).select("subject_id", minutes=(pl.col("time") - pl.col("admit")).dt.total_minutes())
    hand = _csv(eicu_src, "patient").select(
        _hand_subject(pl.col("uniquepid")).alias("subject_id"),
        minutes=-pl.col("hospitaladmitoffset").cast(pl.Int64),
    )
    assert with_admit.sort("subject_id", "minutes").equals(hand.sort("subject_id", "minutes"))


def test_demo_import_is_byte_identical(eicu_meds, eicu_src, tmp_path):
    assert main(["import-eicu-demo", str(eicu_src), str(tmp_path / "again")]) == 0
    for shard in sorted(eicu_meds.rglob("*.parquet")):
        again = tmp_path / "again" / shard.relative_to(eicu_meds)
        assert again.read_bytes() == shard.read_bytes(), shard


def test_demo_icd_codes_are_tagged_by_system(eicu_meds):
    codes = set(pl.read_parquet(eicu_meds / "metadata" / "codes.parquet").get_column("code"))
    assert {"DIAGNOSIS//ICD9CM//253.2", "DIAGNOSIS//ICD10CM//E23.0"} <= codes
    assert {"DIAGNOSIS//ICD9CM//E980.2", "DIAGNOSIS//ICD10CM//E87.1"} <= codes
    assert "DIAGNOSIS//ICD9CM//V62.84" in codes
    assert not any(code.startswith("DIAGNOSIS//ICD9CM// ") for code in codes)
