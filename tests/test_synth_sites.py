"""Synthetic sites: site A is today's hospital byte for byte; site B has the documented shift."""

import hashlib
from pathlib import Path

import polars as pl
import pytest

from ehrbench.cli import main
from ehrbench.errors import EhrbenchError
from ehrbench.meds import open_dataset
from ehrbench.synth import generate_dataset
from ehrbench.synth.sites import CELSIUS_CODE, site_named

FAHRENHEIT = "LAB//223761//°F"
SODIUM = "LAB//50983//mEq/L"


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _events(root: Path) -> pl.DataFrame:
    return pl.read_parquet(root / "data" / "**" / "*.parquet")


def test_default_site_is_the_default_output(tmp_path):
    plain = generate_dataset(tmp_path / "plain", 200, seed=3).root
    site_a = generate_dataset(tmp_path / "a", 200, seed=3, site="A").root
    assert _digests(plain) == _digests(site_a)


def test_site_b_shift(tmp_path):
    a = _events(generate_dataset(tmp_path / "a", 400, seed=1).root)
    root_b = generate_dataset(tmp_path / "b", 400, seed=1, site="B").root
    b = _events(root_b)
    open_dataset(root_b)  # valid MEDS, every code in codes.parquet
    # coding habit: temperature in Celsius under its own code, the same readings converted
    assert FAHRENHEIT not in set(b["code"]) and CELSIUS_CODE in set(b["code"])
    celsius = b.filter(pl.col("code") == CELSIUS_CODE)["numeric_value"].median()
    assert 36.0 < celsius < 38.0
    # lab frequency: about half the sodium draws per admission
    per_admission = {
        name: frame.filter(pl.col("code") == SODIUM).height
        / frame.filter(pl.col("code").str.starts_with("HOSPITAL_ADMISSION//")).height
        for name, frame in (("a", a), ("b", b))
    }
    assert 0.35 < per_admission["b"] / per_admission["a"] < 0.65
    # case mix: older subjects at their first event
    ages = {}
    for name, frame in (("a", a), ("b", b)):
        timed = frame.filter(pl.col("time").is_not_null())
        birth = timed.filter(pl.col("code") == "MEDS_BIRTH").select("subject_id", birth="time")
        first = (
            timed.filter(pl.col("code") != "MEDS_BIRTH")
            .group_by("subject_id")
            .agg(pl.col("time").min())
        )
        years = first.join(birth, on="subject_id").select(
            (pl.col("time") - pl.col("birth")).dt.total_days() / 365.25
        )
        ages[name] = years.to_series().mean()
    assert ages["b"] > ages["a"] + 5
    metadata = (root_b / "metadata" / "dataset.json").read_text(encoding="utf-8")
    assert '"site": "B"' in metadata


def test_synth_cli_site(tmp_path, capsys):
    assert (
        main(["-q", "synth", "--subjects", "20", "--site", "B", "--out", str(tmp_path / "b")]) == 0
    )
    assert CELSIUS_CODE in set(_events(tmp_path / "b")["code"])
    with pytest.raises(SystemExit):
        main(["synth", "--subjects", "20", "--site", "C", "--out", str(tmp_path / "c")])
    assert "invalid choice: 'C'" in capsys.readouterr().err


def test_unknown_site_is_a_clear_error():
    with pytest.raises(
        EhrbenchError, match=r"unknown synthetic site 'b': the sites are \['A', 'B'\]"
    ):
        site_named("b")
