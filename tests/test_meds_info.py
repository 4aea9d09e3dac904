"""`ehrbench info` and `ehrbench validate` on a small folder."""

from __future__ import annotations

import json
from datetime import datetime

from meds_builders import events_frame, write_meds_folder

from ehrbench.cli import main


def _folder(tmp_path):
    t = datetime
    rows = [
        (1, None, "GENDER//F", None),
        (1, t(2001, 1, 1), "MEDS_BIRTH", None),
        (1, t(2020, 1, 1), "LAB//50912//mg/dL", 1.0),
        (1, t(2020, 1, 2), "LAB//50912//mg/dL", 1.2),
        (2, None, "GENDER//M", None),
        (2, t(1990, 1, 1), "MEDS_BIRTH", None),
        (2, t(2021, 6, 1), "LAB//50912//mg/dL", 0.9),
        (3, t(1985, 3, 1), "MEDS_BIRTH", None),
    ]
    splits = {1: "train", 2: "train", 3: "held_out"}
    return write_meds_folder(tmp_path / "ds", events_frame(rows), splits, shards=2)


def test_info_text(tmp_path, capsys):
    root = _folder(tmp_path)
    assert main(["info", str(root), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "subjects    3\n" in out
    assert "rows        8 (2 static)" in out
    assert "shards      2\n" in out
    assert "codes       4 in data, 4 in metadata/codes.parquet" in out
    assert "time range  1985-03-01 00:00:00 to 2021-06-01 00:00:00" in out
    assert "splits      train 2, held_out 1 (metadata/subject_splits.parquet)" in out
    assert out.rstrip().endswith("top 2 codes:\n  3  LAB//50912//mg/dL\n  3  MEDS_BIRTH")


def test_info_json(tmp_path, capsys):
    root = _folder(tmp_path)
    assert main(["info", str(root), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["subjects"] == 3 and summary["rows"] == 8
    assert summary["top_codes"][0] == {"code": "LAB//50912//mg/dL", "rows": 3}
    assert summary["metadata"]["dataset_name"] == "test"


def test_validate_command(tmp_path, capsys):
    root = _folder(tmp_path)
    assert main(["validate", str(root)]) == 0
    assert "valid MEDS 0.4 dataset (2 shards" in capsys.readouterr().out


def test_info_on_bad_folder_prints_no_traceback(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "expected a `data/` subfolder" in err
    assert "Traceback" not in err
