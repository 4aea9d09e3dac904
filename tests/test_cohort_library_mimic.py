"""The library's cohorts on the shared MIMIC-IV demo: hand counts and the documented table.

The hand counts below re-derive three cohorts (in-hospital mortality, 30-day readmission, long
stay) with plain polars from the converted MEDS shards, without the cohort engine, following each
cohort's header comment and the MIMIC-IV predicates file (an in-hospital death is `MEDS_DEATH` or
`HOSPITAL_DISCHARGE//DIED`).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest

from ehrbench.cohort.config import load_cohort
from ehrbench.cohort.extract import extract
from ehrbench.cohort.library import cohort_counts, library_dir, list_cohorts, predicates_paths
from ehrbench.meds import open_dataset

DOC = Path(__file__).parents[1] / "README.md"
DAY = dt.timedelta(hours=24)


@pytest.fixture(scope="module")
def mimic(mimic_meds) -> Path:
    """The demo converted to a MEDS folder once per session (`conftest.mimic_meds`)."""
    return mimic_meds


def _events(root: Path) -> pl.DataFrame:
    return pl.read_parquet(root / "data" / "**" / "*.parquet").filter(pl.col("time").is_not_null())


def _times(events: pl.DataFrame, condition: pl.Expr) -> pl.DataFrame:
    """Distinct (subject_id, time) where `condition` holds, sorted."""
    return events.filter(condition).select("subject_id", "time").unique().sort("subject_id", "time")


def _next_after(left: pl.DataFrame, right: pl.DataFrame, name: str) -> pl.DataFrame:
    """Add `name`: each row's first `right` time strictly after its own, same subject."""
    return left.join_asof(
        right.rename({"time": name}),
        left_on="time",
        right_on=name,
        by="subject_id",
        strategy="forward",
        allow_exact_matches=False,
        check_sortedness=False,
    )


def _codes(events: pl.DataFrame) -> dict[str, pl.DataFrame]:
    code = pl.col("code")
    return {
        "admission": _times(events, code.str.starts_with("HOSPITAL_ADMISSION//")),
        "stay_end": _times(
            events, code.str.starts_with("HOSPITAL_DISCHARGE//") | (code == "MEDS_DEATH")
        ),
        "death": _times(events, code.is_in(["MEDS_DEATH", "HOSPITAL_DISCHARGE//DIED"])),
        "live_discharge": _times(
            events,
            code.str.starts_with("HOSPITAL_DISCHARGE//") & (code != "HOSPITAL_DISCHARGE//DIED"),
        ),
    }


def hand_mortality(events: pl.DataFrame) -> pl.DataFrame:
    """In-hospital mortality: stays still going at 24 h, no new admission by then."""
    c = _codes(events)
    stays = _next_after(_next_after(c["admission"], c["stay_end"], "end"), c["admission"], "next")
    kept = stays.filter(
        (pl.col("end") > pl.col("time") + DAY)
        & (pl.col("next").is_null() | (pl.col("next") > pl.col("time") + DAY))
    )
    # The stay's end is its first discharge or death, so a death in the stay is at that end.
    deaths = c["death"].rename({"time": "end"}).with_columns(died=pl.lit(True))
    return kept.join(deaths, on=["subject_id", "end"], how="left").select(
        "subject_id",
        (pl.col("time") + DAY).alias("prediction_time"),
        pl.col("died").fill_null(False).alias("boolean_value"),
    )


def hand_long_los(events: pl.DataFrame) -> pl.DataFrame:
    """Long stay: stays still going at 24 h, no new admission by then; no end within 7 days."""
    c = _codes(events)
    stays = _next_after(_next_after(c["admission"], c["stay_end"], "end"), c["admission"], "next")
    kept = stays.filter(
        (pl.col("end").is_null() | (pl.col("end") > pl.col("time") + DAY))
        & (pl.col("next").is_null() | (pl.col("next") > pl.col("time") + DAY))
    )
    return kept.select(
        "subject_id",
        (pl.col("time") + DAY).alias("prediction_time"),
        (pl.col("end").is_null() | (pl.col("end") >= pl.col("time") + dt.timedelta(days=7))).alias(
            "boolean_value"
        ),
    )


def hand_readmission(events: pl.DataFrame) -> pl.DataFrame:
    """30-day readmission: live discharges after some admission; admission within 30 days."""
    c = _codes(events)
    admissions = c["admission"].rename({"time": "previous"})
    with_start = c["live_discharge"].join_asof(
        admissions,
        left_on="time",
        right_on="previous",
        by="subject_id",
        strategy="backward",
        check_sortedness=False,
    )
    rows = _next_after(with_start.filter(pl.col("previous").is_not_null()), c["admission"], "next")
    return rows.select(
        "subject_id",
        pl.col("time").alias("prediction_time"),
        ((pl.col("next") - pl.col("time")) <= dt.timedelta(days=30))
        .fill_null(False)
        .alias("boolean_value"),
    )


def _engine(name: str, root: Path) -> pl.DataFrame:
    cohort = load_cohort(library_dir() / f"{name}.yaml", predicates_paths()["mimic_iv"])
    labels = extract(cohort, open_dataset(root)).labels
    return labels.select("subject_id", "prediction_time", "boolean_value")


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("subject_id", "prediction_time", "boolean_value")


def test_hand_count_sanity(mimic):
    """The README's facts: 275 admissions, 15 of them ending in death before exclusions."""
    c = _codes(_events(mimic))
    assert c["admission"].height == 275
    stays = _next_after(c["admission"], c["stay_end"], "end")
    deaths = c["death"].rename({"time": "end"}).with_columns(died=pl.lit(True))
    assert stays.join(deaths, on=["subject_id", "end"]).height == 15


def test_in_hospital_mortality_matches_hand_count(mimic):
    hand = hand_mortality(_events(mimic))
    assert (hand.height, int(hand["boolean_value"].sum())) == (245, 14)
    assert _sorted(_engine("mortality_in_hospital", mimic)).equals(_sorted(hand))


def test_readmission_matches_hand_count(mimic):
    hand = hand_readmission(_events(mimic))
    assert (hand.height, int(hand["boolean_value"].sum())) == (260, 53)
    assert _sorted(_engine("readmission_30d", mimic)).equals(_sorted(hand))


def test_long_los_matches_hand_count(mimic):
    hand = hand_long_los(_events(mimic))
    assert (hand.height, int(hand["boolean_value"].sum())) == (245, 92)
    assert _sorted(_engine("long_los", mimic)).equals(_sorted(hand))


def _documented_table() -> dict[str, tuple[int, int | None]]:
    """cohort -> (rows, positives) from the MIMIC-IV demo table in the README (no positives for
    a non-boolean label)."""
    rows = re.findall(
        r"^\| `(\w+)` \|.*\| ([\d,]+) \| ([\d,]*) \| [\d.]* \|$", DOC.read_text(), re.M
    )
    return {
        name: (int(n.replace(",", "")), int(p.replace(",", "")) if p else None)
        for name, n, p in rows
    }


def test_documented_table_matches_extraction(mimic):
    """Every library cohort extracts on the demo, with the counts the docs table shows."""
    table, failures = cohort_counts(list_cohorts(), mimic, predicates_paths()["mimic_iv"])
    counts = {row["cohort"]: (row["rows"], row["positives"]) for row in table.iter_rows(named=True)}
    assert failures == {}
    assert all(rows > 0 for rows, _ in counts.values())
    assert counts == _documented_table()
