"""The library's cohorts on the shared eICU demo: what extracts, a hand count, the documented table.

The hand count re-derives in-hospital mortality with plain polars from `patient.csv` (not from
the converted shards), following the cohort's header comment: a hospital stay still going 24 h
after its admission, labelled 1 when it ends in death (a hospital or unit discharge status of
`Expired`, the earlier one being the death).
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import yaml

from ehrbench.cli import main
from ehrbench.cohort.config import load_cohort
from ehrbench.cohort.extract import extract
from ehrbench.cohort.library import (
    DatasetNotes,
    cohort_counts,
    library_dir,
    list_cohorts,
    predicates_paths,
)
from ehrbench.meds import open_dataset

DOC = Path(__file__).parents[1] / "README.md"
PREDICATES = predicates_paths()["eicu"]
METADATA = yaml.safe_load(PREDICATES.read_text())["metadata"]
DAY_MINUTES = 24 * 60


def hand_mortality(src: Path) -> pl.DataFrame:
    """In-hospital mortality per hospital stay kept at 24 h: subject_id and boolean_value."""
    patient = pl.read_csv(src / "patient.csv", infer_schema=False).drop_nulls("uniquepid")
    minutes = patient.select(
        "patienthealthsystemstayid",
        subject_id=("1" + pl.col("uniquepid").str.replace("-", "")).cast(pl.Int64),
        hospital_admit=pl.col("hospitaladmitoffset").cast(pl.Int64),
        discharge=pl.col("hospitaldischargeoffset").cast(pl.Int64),
        unit_discharge=pl.col("unitdischargeoffset").cast(pl.Int64),
        hospital_died=pl.col("hospitaldischargestatus") == "Expired",
        unit_died=pl.col("unitdischargestatus") == "Expired",
    )
    # Minutes from the hospital admission, which every unit stay of the hospital stay shares.
    since_admit = minutes.select(
        "patienthealthsystemstayid",
        "subject_id",
        discharge=pl.col("discharge") - pl.col("hospital_admit"),
        death=pl.min_horizontal(
            pl.when("hospital_died").then(pl.col("discharge") - pl.col("hospital_admit")),
            pl.when("unit_died").then(pl.col("unit_discharge") - pl.col("hospital_admit")),
        ),
    )
    stays = since_admit.group_by("patienthealthsystemstayid").agg(
        pl.col("subject_id").first(), pl.col("discharge").first(), pl.col("death").min()
    )
    end = pl.min_horizontal("discharge", "death")
    return stays.filter(end > DAY_MINUTES).select(
        "subject_id", boolean_value=pl.col("death").is_not_null()
    )


def test_in_hospital_mortality_matches_hand_count(eicu_meds, eicu_src):
    hand = hand_mortality(eicu_src)
    assert (hand.height, int(hand["boolean_value"].sum())) == (135, 5)
    cohort = load_cohort(library_dir() / "mortality_in_hospital.yaml", PREDICATES)
    labels = extract(cohort, open_dataset(eicu_meds)).labels.select("subject_id", "boolean_value")
    assert labels.sort(labels.columns).equals(hand.sort(hand.columns))


def test_expressible_cohorts_extract_and_the_others_say_which_predicate_is_missing(eicu_meds):
    table, failures = cohort_counts(list_cohorts(), eicu_meds, PREDICATES)
    assert set(failures) == set(METADATA["not_expressible"])
    assert all("'live_discharge' is an unfilled ??? placeholder" in m for m in failures.values())
    counts = {row["cohort"]: (row["rows"], row["positives"]) for row in table.iter_rows(named=True)}
    assert set(counts) == {c.name for c in list_cohorts()} - set(failures)
    assert DatasetNotes.read(PREDICATES).not_expressible == METADATA["not_expressible"]
    for name, (rows, positives) in counts.items():
        if positives is None:  # a duration or class label: no positives
            assert rows > 0, name
        elif name in METADATA["not_meaningful"]:
            assert rows == positives > 0, name  # every row positive, as the reason says
        else:
            assert 0 < positives < rows, f"{name}: both classes should appear"


def _documented_table() -> dict[str, tuple[int, int | None]]:
    """cohort -> (rows, positives) from the eICU table in the README's "The eICU demo" (no
    positives for a non-boolean label)."""
    section = DOC.read_text().split("### The eICU demo", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\w+) \| ([\d,]+) \| ?([\d,]*) \| ?[\d.]* \|", section, re.M)
    return {name: (_number(n), _number(p) if p else None) for name, n, p in rows}


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def test_documented_table_matches_extraction(eicu_meds):
    table, _ = cohort_counts(list_cohorts(), eicu_meds, PREDICATES)
    counts = {row["cohort"]: (row["rows"], row["positives"]) for row in table.iter_rows(named=True)}
    assert counts == _documented_table()


def test_cohorts_verb_says_why_a_cohort_is_not_expressible(eicu_meds, capsys):
    assert main(["cohorts", "--data", str(eicu_meds), "--predicates", "eicu"]) == 0
    out = capsys.readouterr().out
    assert "Not expressible on this dataset:" in out
    for name in METADATA["not_expressible"]:
        assert re.search(rf"^{name} +n/a", out, re.M), name
        assert re.search(rf"^  {name}: \S", out, re.M), name
    assert re.search(r"^  icu_transfer: eICU records only", out, re.M)
