"""The `ehrbench cohort` commands (check, extract, explain, schema) on a tiny dataset."""

from __future__ import annotations

import json

import polars as pl
import pytest
from cohort_reference import at, frame, rows

from ehrbench.cli import main
from ehrbench.cohort.explain import explain_events
from ehrbench.cohort.extract import extract_events
from ehrbench.meds import LABEL_SCHEMA, read_labels

COHORT = """
predicates:
  admission: {code: {regex: "^ADM"}}
  death: {code: DEATH}
  lab: {code: LAB, value_min: 2.0}
trigger: admission
windows:
  input:
    start: trigger
    end: start + 24h
    start_inclusive: true
    end_inclusive: true
    has: {lab: "(1, None)"}
    index_timestamp: end
  target:
    start: input.end
    end: start -> death
    start_inclusive: false
    end_inclusive: true
    label: death
"""

DATA = rows(
    (1, 0, "ADM//X"), (1, 2, "LAB", 3.0), (1, 40, "DEATH"),  # kept, label True
    (2, 0, "ADM//X"), (2, 2, "LAB", 1.0), (2, 40, "DEATH"),  # lab too low: has fails
    (3, 0, "ADM//Y"), (3, 2, "LAB", 5.0),  # never dies: target cannot be placed
)  # fmt: skip


@pytest.fixture
def files(tmp_path):
    (tmp_path / "data").mkdir()
    frame(DATA).write_parquet(tmp_path / "data" / "0.parquet")
    (tmp_path / "cohort.yaml").write_text(COHORT)
    return tmp_path


def test_extract_writes_labels_attrition_and_audit(files, capsys):
    out = files / "out" / "labels.parquet"
    code = main(
        ["cohort", "extract", str(files / "cohort.yaml"), "--data", str(files), "--out", str(out),
         "--audit", str(files / "audit.parquet")]
    )  # fmt: skip
    assert code == 0
    labels = read_labels(out)
    assert labels.select("subject_id", "prediction_time", "boolean_value").rows() == [
        (1, at(24), True)
    ]
    steps = json.loads((files / "out" / "labels.attrition.json").read_text())["steps"]
    assert [s["triggers_kept"] for s in steps] == [None, 3, 3, 2, 1]
    audit = pl.read_parquet(files / "audit.parquet")
    assert audit["target.end"].to_list() == [at(40)]
    printed = capsys.readouterr().out
    assert "window input: has lab in (1, None)" in printed
    assert "1 rows, 1 subjects, prevalence 1.0000" in printed


def test_extract_refuses_to_replace_existing_output(files, capsys):
    out = files / "labels.parquet"
    out.write_text("precious")
    args = [
        "cohort",
        "extract",
        str(files / "cohort.yaml"),
        "--data",
        str(files),
        "--out",
        str(out),
    ]
    assert main(args) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert out.read_text() == "precious"
    assert main([*args, "--overwrite"]) == 0
    assert read_labels(out).height == 1


def test_extract_without_index_timestamp_writes_null_times_with_a_warning(files, capsys):
    (files / "noindex.yaml").write_text(COHORT.replace("    index_timestamp: end\n", ""))
    out = files / "labels.parquet"
    args = ["cohort", "extract", str(files / "noindex.yaml"), "--data", str(files), "--out"]
    assert main([*args, str(out)]) == 0
    assert "index_timestamp" in capsys.readouterr().err
    labels = pl.read_parquet(out)
    assert labels["prediction_time"].to_list() == [None]
    assert labels.columns == list(LABEL_SCHEMA)


def test_check_prints_tree_and_attrition(files, capsys):
    assert main(["cohort", "check", str(files / "cohort.yaml"), "--data", str(files)]) == 0
    printed = capsys.readouterr().out
    assert "trigger: admission" in printed
    assert "window target: placed" in printed


def test_check_reports_a_missing_column_without_traceback(files, capsys):
    (files / "bad.yaml").write_text(COHORT.replace("value_min: 2.0", "value_min: 2.0, site: x"))
    assert main(["cohort", "check", str(files / "bad.yaml"), "--data", str(files)]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert "predicate `lab` tests column `site`" in err
    assert "valid cohort" not in captured.out
    assert "Traceback" not in err


def test_explain_tells_why_each_trigger_was_kept_or_dropped(files, capsys):
    args = ["cohort", "explain", str(files / "cohort.yaml"), "--data", str(files), "--subject"]
    assert main([*args, "1"]) == 0
    assert "KEPT, prediction_time 2020-01-02 00:00:00, label True" in capsys.readouterr().out
    assert main([*args, "2"]) == 0
    assert "DROPPED at step `window input: has lab in (1, None)`" in capsys.readouterr().out
    assert main([*args, "3"]) == 0
    printed = capsys.readouterr().out
    assert "target: not placed (end: start -> death: no `death` event at or after" in printed
    assert main([*args, "99"]) == 2
    assert "subject_id 99 has no rows" in capsys.readouterr().err


def test_explain_agrees_with_extraction_on_every_subject(files):
    from ehrbench.cohort.config import load_cohort

    cohort = load_cohort(files / "cohort.yaml")
    events = frame(DATA)
    kept = set(extract_events(cohort, events).labels["subject_id"].to_list())
    for sid in (1, 2, 3):
        text = explain_events(cohort, events.filter(pl.col("subject_id") == sid), sid)
        assert ("KEPT" in text) == (sid in kept)


def test_explain_reports_the_demographic_filter(files):
    cohort_text = COHORT + "patient_demographics:\n  male: {code: GENDER//M}\n"
    (files / "demo.yaml").write_text(cohort_text)
    from ehrbench.cohort.config import load_cohort

    cohort = load_cohort(files / "demo.yaml")
    events = frame(DATA).filter(pl.col("subject_id") == 1)
    text = explain_events(cohort, events, 1)
    assert "demographic `male`: FAILED" in text


def test_schema_prints_json(capsys):
    assert main(["cohort", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "predicates" in schema["properties"]


def test_extract_of_an_empty_cohort_writes_an_empty_label_file(files, capsys):
    (files / "empty.yaml").write_text(COHORT.replace('"(1, None)"', '"(5, None)"'))
    out = files / "labels.parquet"
    args = ["cohort", "extract", str(files / "empty.yaml"), "--data", str(files), "--out"]
    assert main([*args, str(out)]) == 0
    assert read_labels(out).height == 0
    assert "warning: the cohort is empty" in capsys.readouterr().err
