"""`meds-from-events` and `import-mimic-demo`: event table in, valid MEDS 0.4 folder out."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import meds
import polars as pl
import pyarrow.parquet as pq
import pytest
from meds_builders import meds_validates

from ehrbench.cli import main
from ehrbench.errors import EhrbenchError
from ehrbench.meds import hash_splits, open_dataset
from ehrbench.meds.convert import meds_from_events

SHARED = Path(__file__).parents[1] / ".." / "shared" / "data"
MIMIC = (SHARED / "mimic_iv_demo_meds").resolve()


def _source(tmp_path) -> Path:
    """An unsorted event table in the MIMIC-demo shape: `value`, a constant `table`, static last."""
    rows = []
    for s in range(1, 31):
        rows += [
            (s, datetime(2020, 1, 2), "LAB//50912//mg/dL", 1.0 + s / 10),
            (s, datetime(1960, 1, 1), "MEDS_BIRTH", None),
            (s, None, "GENDER//F" if s % 2 else "GENDER//M", None),
        ]
    frame = (
        pl.DataFrame(
            rows,
            schema={
                "subject_id": pl.Int64,
                "time": pl.Datetime("us"),
                "code": pl.String,
                "value": pl.Float32,
            },
            orient="row",
        )
        .with_columns(table=pl.lit("condition"))
        .reverse()
    )
    path = tmp_path / "events.parquet"
    frame.write_parquet(path)
    (tmp_path / "LICENSE.txt").write_text("licence text\n")
    return path


def _convert(tmp_path, out: Path, *extra: str) -> int:
    src = _source(tmp_path)
    return main(
        [
            "meds-from-events",
            str(src),
            str(out),
            "--drop",
            "table",
            "--rename",
            "value=numeric_value",
            "--name",
            "toy",
            "--license",
            "CC0-1.0",
            "--license-from",
            str(tmp_path / "LICENSE.txt"),
            *extra,
        ]
    )


def test_meds_from_events_writes_a_valid_sorted_folder(tmp_path, capsys):
    out = tmp_path / "out"
    assert _convert(tmp_path, out, "--shards", "2") == 0
    assert "30 subjects, 90 rows, 4 codes" in capsys.readouterr().out
    meds_validates(out)
    dataset = open_dataset(out)
    splits = pl.read_parquet(out / "metadata" / "subject_splits.parquet")
    assert splits.equals(hash_splits(range(1, 31)))
    for shard in dataset.shards:
        events = dataset.read_shard(shard)
        split = shard.parent.name
        expected = set(splits.filter(pl.col("split") == split).get_column("subject_id"))
        assert set(events.get_column("subject_id")) <= expected
        assert events.columns == ["subject_id", "time", "code", "numeric_value"]
        first = events.group_by("subject_id", maintain_order=True).first()
        assert first.get_column("time").null_count() == first.height  # static row first
    assert {p.parent.name for p in dataset.shards} == {"train", "tuning", "held_out"}
    assert (out / "LICENSE.txt").read_text() == "licence text\n"
    meta = json.loads((out / "metadata" / "dataset.json").read_text())
    assert meta["dataset_name"] == "toy" and meta["license"] == "CC0-1.0"
    assert meta["meds_version"] == meds.__version__
    assert pl.read_parquet(out / "metadata/codes.parquet").height == 4


def test_meds_from_events_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert _convert(tmp_path / "a", tmp_path / "a" / "out") == 0
    assert _convert(tmp_path / "b", tmp_path / "b" / "out") == 0
    files = sorted(p.relative_to(tmp_path / "a" / "out") for p in (tmp_path / "a/out").rglob("*.*"))
    assert len(files) == 7
    for rel in files:
        assert (tmp_path / "a/out" / rel).read_bytes() == (tmp_path / "b/out" / rel).read_bytes()


def test_refuses_a_non_empty_target_and_keeps_it(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert _convert(tmp_path, out) == 2
    err = capsys.readouterr().err
    assert "refusing to replace" in err and "Traceback" not in err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_empty_target_folder_is_used(tmp_path):
    (tmp_path / "out").mkdir()
    assert _convert(tmp_path, tmp_path / "out") == 0
    open_dataset(tmp_path / "out")


@pytest.mark.parametrize(
    ("argv_extra", "message"),
    [
        ([], "has no column `numeric_value`"),  # --rename of a missing column
        (["--drop", "nope"], "has no column `nope` to drop or rename"),
        (["--shards", "0"], "--shards 0 is invalid"),
        (["--fractions", "1,1,1"], "sum to 3"),
        (["--rename", "code=subject_id"], "two `subject_id` columns"),
    ],
)
def test_cli_errors_print_no_traceback(tmp_path, capsys, argv_extra, message):
    src = _source(tmp_path)
    rename = ["--rename", "numeric_value=x"] if not argv_extra else []
    code = main(["meds-from-events", str(src), str(tmp_path / "out"), *rename, *argv_extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_an_empty_event_table_is_named(tmp_path):
    path = tmp_path / "events.parquet"
    schema = {"subject_id": pl.Int64, "time": pl.Datetime("us"), "code": pl.String}
    pl.DataFrame(schema=schema).write_parquet(path)
    with pytest.raises(EhrbenchError, match=r"events.parquet holds no rows"):
        meds_from_events(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_wrong_source_type_is_named(tmp_path):
    path = tmp_path / "events.parquet"
    pl.DataFrame(
        {"subject_id": ["a"], "time": [datetime(2020, 1, 1)], "code": ["X"]}
    ).write_parquet(path)
    with pytest.raises(
        Exception, match=r"column `subject_id` has type String, expected an integer"
    ):
        meds_from_events(path, tmp_path / "out")


def test_null_code_in_source_is_refused(tmp_path):
    path = tmp_path / "events.parquet"
    pl.DataFrame(
        {"subject_id": [1], "time": [datetime(2020, 1, 1)], "code": [None]},
        schema={"subject_id": pl.Int64, "time": pl.Datetime("us"), "code": pl.String},
    ).write_parquet(path)
    with pytest.raises(EhrbenchError, match=r"column `code` has 1 null"):
        meds_from_events(path, tmp_path / "out")


def test_missing_source_prints_no_traceback(tmp_path, capsys):
    assert main(["import-mimic-demo", str(tmp_path / "nothing"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


def test_import_mimic_demo(tmp_path, capsys):
    if not (MIMIC / "mimic_iv_demo_meds_events.parquet").exists():
        pytest.skip(f"../shared/data not present: {MIMIC} is missing")
    out = tmp_path / "mimic"
    assert main(["import-mimic-demo", str(MIMIC), str(out)]) == 0
    meds_validates(out)
    dataset = open_dataset(out)
    rows = sum(pq.read_metadata(s).num_rows for s in dataset.shards)
    assert rows == 916_166
    assert dataset.subject_ids().len() == 100
    assert pl.read_parquet(out / "metadata" / "codes.parquet").height == 7_035
    meta = dataset.metadata()
    assert (meta["dataset_name"], meta["dataset_version"], meta["license"]) == (
        "MIMIC-IV-demo",
        "2.2",
        "ODbL-1.0",
    )
    assert (out / "ODbL-1.0.txt").read_bytes() == (MIMIC / "ODbL-1.0.txt").read_bytes()
    assert (out / "README.md").read_bytes() == (MIMIC / "README.md").read_bytes()
    assert "table" not in dataset.read_shard(dataset.shards[0]).columns
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "subjects    100\nrows        916,166 (100 static)" in capsys.readouterr().out
