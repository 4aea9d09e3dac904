"""One test per rule of the cohort spec's section 10 (10.2 to 10.5), on hand-made event tables.

Each expected answer was worked out by hand from the spec; every in-memory case is also checked
against the plain-Python reference evaluator (`cohort_reference`), and the cases that need files
(cohort predicates, the command line) against single and one-pass extraction.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import yaml
from cohort_reference import at, cohort, frame, plain, reference_labels, rows, window
from meds_builders import write_meds_folder

from ehrbench.cli import main
from ehrbench.cohort.artifact import ExtractionFiles
from ehrbench.cohort.config import load_cohort
from ehrbench.cohort.explain import explain_events
from ehrbench.cohort.extract import extract, extract_events
from ehrbench.cohort.model import (
    AgeFilter,
    ClassesLabel,
    CountLabel,
    DurationLabel,
    TriggerBetween,
    ValueLabel,
)
from ehrbench.cohort.one_pass import extract_many
from ehrbench.errors import EhrbenchError
from ehrbench.meds import LABEL_SCHEMA, open_dataset, read_labels

ADM = plain("adm", "ADM")
DIS = plain("dis", "DIS")
LAB = plain("lab", "LAB")
DEATH = plain("death", "DEATH")
VALUE_COLUMNS = ("boolean_value", "integer_value", "float_value", "categorical_value")
YEAR = 365.25 * 24  # hours


def run(c, data, audit=False):
    """Extract with the engine, check it against the reference, return the Extraction."""
    result = extract_events(c, frame(data), audit=audit)
    assert labels_of(result, c) == reference_labels(c, data)
    return result


def labels_of(result, c) -> list[tuple]:
    columns = ["subject_id", "prediction_time", c.label_column]
    return [tuple(r) for r in result.labels.select(columns).iter_rows()]


def stay(label_form=None, si=False, ei=True, extra=(), **extensions):
    """Triggered on `adm`; window `stay` from the trigger to the next `dis`, predicted at start."""
    w = window("stay", "trigger", "start -> dis", si, ei, index="start", label_form=label_form)
    return cohort([ADM, DIS, LAB, *extra], "adm", [w], **extensions)


# ---- 10.2 labels other than boolean ---------------------------------------------------------

COUNT_DATA = rows(
    (1, 0, "ADM"), (1, 1, "LAB"), (1, 1, "LAB"), (1, 3, "LAB"), (1, 5, "DIS"), (1, 6, "LAB"),
    (2, 0, "ADM"), (2, 2, "DIS"),
)  # fmt: skip


def test_count_label_is_the_count_in_the_window_zero_allowed():
    c = stay(CountLabel("lab"))
    result = run(c, COUNT_DATA)
    assert labels_of(result, c) == [(1, at(0), 3), (2, at(0), 0)]
    assert c.label_column == "integer_value" and c.label_classes is None


def test_the_other_value_columns_stay_null():
    labels = run(stay(CountLabel("lab")), COUNT_DATA).labels
    assert labels.schema == pl.Schema(LABEL_SCHEMA)
    for column in ("boolean_value", "float_value", "categorical_value"):
        assert labels[column].null_count() == labels.height


@pytest.mark.parametrize(("si", "ei"), [(False, True), (True, True), (False, False)])
def test_duration_label_uses_real_boundary_times_whatever_the_flags(si, ei):
    data = rows((1, 0, "ADM"), (1, 36, "DIS"))  # the end is the event's own time
    c = stay(DurationLabel(dt.timedelta(days=1)), si, ei)
    assert labels_of(run(c, data), c) == [(1, at(0), 1.5)]
    c = stay(DurationLabel(dt.timedelta(hours=1)), si, ei)
    assert labels_of(run(c, data), c) == [(1, at(0), 36.0)]


def test_duration_of_a_zero_length_window_is_zero():
    data = rows((1, 0, "ADM"), (1, 0, "DIS"))  # `-> dis` may stop at the trigger (end inclusive)
    c = stay(DurationLabel(dt.timedelta(hours=1)), ei=True)
    assert labels_of(run(c, data), c) == [(1, at(0), 0.0)]


VALUE_DATA = rows(
    (1, 0, "ADM"), (1, 1, "LAB", 4.0), (1, 1, "LAB", 2.0), (1, 3, "LAB"),
    (1, 4, "LAB", 3.0), (1, 4, "LAB", 5.0), (1, 5, "DIS"), (1, 6, "LAB", 9.0),
    (2, 0, "ADM"), (2, 1, "LAB"), (2, 2, "DIS"),
    (3, 0, "ADM"), (3, 1, "DIS"),
)  # fmt: skip


@pytest.mark.parametrize(
    ("take", "expected"),
    # first/last: by time, ties in file order (4.0 before 2.0 at 1 h; 3.0 before 5.0 at 4 h);
    # the null at 3 h and the 9.0 after the window are not used.
    [("first", 4.0), ("last", 5.0), ("min", 2.0), ("max", 5.0), ("mean", 3.5)],
)
def test_value_label_takes_a_statistic_of_non_null_values(take, expected):
    c = stay(ValueLabel("lab", take))
    assert labels_of(run(c, VALUE_DATA), c) == [(1, at(0), expected)]
    assert c.label_column == "float_value"


def test_value_label_without_a_usable_row_drops_the_trigger_at_its_own_step():
    result = run(stay(ValueLabel("lab", "max")), VALUE_DATA)
    last = result.attrition.steps[-1]
    # Subject 2 has only a null value in its stay, subject 3 no lab at all.
    assert (last.step, last.triggers_in, last.triggers_kept) == ("label has no value", 3, 1)
    assert (last.subjects_in, last.subjects_kept) == (3, 1)


CLASS_DATA = rows(
    (1, 0, "ADM"), (1, 1, "LAB", 1.0), (1, 2, "LAB", 4.0), (1, 3, "DIS"),
    (2, 0, "ADM"), (2, 1, "LAB", 4.0), (2, 3, "DIS"),
    (3, 0, "ADM"), (3, 1, "LAB", 6.0), (3, 3, "DIS"),
)  # fmt: skip
SEVERE = plain("severe_lab", "LAB", value_max=2.0)
MILD = plain("mild_lab", "LAB", value_max=5.0)


def test_classes_label_is_the_first_listed_class_present_else_otherwise():
    form = ClassesLabel((("severe", "severe_lab"), ("mild", "mild_lab")), "normal")
    c = stay(form, extra=(SEVERE, MILD))
    # Subject 1 has both a severe and a mild value: the first listed class wins.
    assert labels_of(run(c, CLASS_DATA), c) == [
        (1, at(0), "severe"),
        (2, at(0), "mild"),
        (3, at(0), "normal"),
    ]
    assert c.label_column == "categorical_value"
    assert c.label_classes == ("severe", "mild", "normal")


def test_classes_order_is_precedence():
    form = ClassesLabel((("mild", "mild_lab"), ("severe", "severe_lab")), "normal")
    c = stay(form, extra=(SEVERE, MILD))
    assert [row[2] for row in labels_of(run(c, CLASS_DATA), c)] == ["mild", "mild", "normal"]


def test_label_table_is_written_in_the_meds_schema(tmp_path):
    """float_value is float32, integer_value int64, categorical_value a string, as MEDS says."""
    for form in (CountLabel("lab"), ValueLabel("lab", "mean")):
        result = extract_events(stay(form), frame(VALUE_DATA))
        files = ExtractionFiles.beside(tmp_path / f"{type(form).__name__}.parquet")
        result.write(files)
        back = read_labels(files.labels)
        assert back.schema == pl.Schema(LABEL_SCHEMA)
        assert back.equals(result.labels)
    assert LABEL_SCHEMA["float_value"] == pl.Float32


# ---- 10.3 age at the trigger ------------------------------------------------------------------

AGE_DATA = rows(
    (1, -18 * YEAR, "MEDS_BIRTH"), (1, 0, "ADM"), (1, 1, "DIS"),  # exactly 18.0 at the trigger
    (2, -10 * YEAR, "MEDS_BIRTH"), (2, 0, "ADM"), (2, 1, "DIS"),  # 10
    (3, 0, "ADM"), (3, 1, "DIS"),  # no birth row
    (4, -5 * YEAR, "MEDS_BIRTH"), (4, -20 * YEAR, "MEDS_BIRTH"), (4, 0, "ADM"), (4, 1, "DIS"),
)  # fmt: skip


@pytest.mark.parametrize(
    ("age", "kept"),
    [
        (AgeFilter(18), [1, 4]),  # both bounds inclusive: 18.0 passes
        (AgeFilter(None, 18), [1, 2]),
        (AgeFilter(18, 18), [1]),
        (AgeFilter(18.0001), [4]),  # subject 4: the first (earliest) birth row, age 20
        (AgeFilter(), [1, 2, 4]),  # no bounds: only a subject without a birth row leaves
    ],
)
def test_age_in_years_at_the_trigger_bounds_inclusive(age, kept):
    c = stay(CountLabel("lab"), age=age)
    assert [row[0] for row in labels_of(run(c, AGE_DATA), c)] == kept


def test_age_birth_code_can_be_named():
    data = rows((1, -30 * YEAR, "BORN"), (1, 0, "ADM"), (1, 1, "DIS"))
    c = stay(CountLabel("lab"), age=AgeFilter(18, None, "BORN"))
    assert labels_of(run(c, data), c) == [(1, at(0), 0)]
    assert labels_of(run(stay(CountLabel("lab"), age=AgeFilter(18)), data), c) == []


def test_age_and_calendar_steps_come_after_the_trigger_and_before_the_windows():
    between = TriggerBetween(at(-1), None)
    result = run(stay(CountLabel("lab"), age=AgeFilter(18), trigger_between=between), AGE_DATA)
    steps = [s.step for s in result.attrition.steps]
    assert steps == [
        "demographics (none)",
        "trigger adm",
        "trigger_between [2019-12-31 23:00:00, inf)",
        "age [18, inf] (birth MEDS_BIRTH)",
        "window stay: placed",
    ]
    age_step = result.attrition.steps[3]
    assert (age_step.triggers_in, age_step.triggers_kept) == (4, 2)


def test_audit_and_explain_show_age_and_label():
    c = stay(ValueLabel("lab", "max"), age=AgeFilter(18))
    data = [*AGE_DATA, *rows((1, 0.5, "LAB", 7.0))]
    audit = run(c, data, audit=True).audit
    assert audit["age"].to_list() == [18.0]
    text = explain_events(c, frame([r for r in data if r["subject_id"] == 1]), 1)
    assert "KEPT, prediction_time 2020-01-01 00:00:00, label 7.0 (age 18.00)" in text
    text = explain_events(c, frame([r for r in data if r["subject_id"] == 4]), 4)
    assert "DROPPED at step `label has no value` (age 20.00)" in text


# ---- 10.5 calendar time of the trigger ------------------------------------------------------

CALENDAR_DATA = rows(
    (1, 0, "ADM"), (1, 1, "DIS"), (1, 24, "ADM"), (1, 25, "DIS"), (1, 48, "ADM"), (1, 49, "DIS")
)


@pytest.mark.parametrize(
    ("start", "end", "kept"),
    [
        (at(24), at(48), [at(24)]),  # start inclusive, end exclusive
        (None, at(24), [at(0)]),
        (at(24), None, [at(24), at(48)]),
        (at(12), at(47), [at(24)]),
    ],
)
def test_trigger_between_keeps_triggers_in_start_inclusive_end_exclusive(start, end, kept):
    c = stay(CountLabel("lab"), trigger_between=TriggerBetween(start, end))
    assert [row[1] for row in labels_of(run(c, CALENDAR_DATA), c)] == kept


def test_trigger_between_reads_iso_dates_and_datetimes(tmp_path):
    config = {
        "predicates": {"adm": {"code": "ADM"}},
        "trigger": "adm",
        "trigger_between": {"start": "2020-01-02", "end": "2020-01-02T12:00"},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    loaded = load_cohort(path)
    assert loaded.trigger_between == TriggerBetween(at(24), at(36))


# ---- 10.4 a cohort as a predicate of another ------------------------------------------------

INNER = {
    "predicates": {"adm": {"code": "ADM"}, "death": {"code": "DEATH"}},
    "trigger": "adm",
    "windows": {
        "first": {
            "start": "trigger",
            "end": "start + 2h",
            "start_inclusive": True,
            "end_inclusive": True,
            "label": "death",
            "index_timestamp": "end",
        }
    },
}
NESTED_EVENTS = rows(
    (1, 0, "ADM"), (1, 5, "LAB"),  # inner row at 2 h, label false
    (2, 0, "ADM"), (2, 1, "DEATH"), (2, 20, "ADM"), (2, 30, "LAB"),  # 2 h true, 22 h false
    (3, 10, "LAB"),  # never admitted
)  # fmt: skip


def outer(stay_label="any", **changes) -> dict:
    """Triggered on the inner cohort's rows; the label is a lab within 10 h."""
    config = {
        "predicates": {
            "stay": {"cohort": "inner/inner.yaml", "label": stay_label},
            "lab": {"code": "LAB"},
        },
        "trigger": "stay",
        "windows": {
            "after": {
                "start": "trigger",
                "end": "start + 10h",
                "start_inclusive": True,
                "end_inclusive": True,
                "label": "lab",
                "index_timestamp": "start",
            }
        },
    }
    config.update(changes)
    return config


def write(directory: Path, name: str, config: dict) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def nested(tmp_path) -> Path:
    write(tmp_path, "inner/inner.yaml", INNER)
    return tmp_path


@pytest.mark.parametrize(
    ("stay_label", "expected"),
    [
        # The inner rows fall between events (2 h, 22 h): they are triggers of their own.
        ("any", [(1, at(2), True), (2, at(2), False), (2, at(22), True)]),
        (True, [(2, at(2), False)]),
        (False, [(1, at(2), True), (2, at(22), True)]),
    ],
)
def test_cohort_predicate_counts_one_at_each_label_row(nested, stay_label, expected):
    c = load_cohort(write(nested, "outer.yaml", outer(stay_label)))
    assert labels_of(run(c, NESTED_EVENTS), c) == expected


def test_cohort_predicate_in_has_label_and_expr(nested):
    config = outer()
    config["predicates"]["adm"] = {"code": "ADM"}
    config["predicates"]["stay_or_lab"] = {"expr": "or(stay, lab)"}
    config["trigger"] = "adm"
    config["windows"]["after"] = {
        "start": "trigger",
        "end": "start + 24h",
        "start_inclusive": False,
        "end_inclusive": True,
        "has": {"stay": "(1, None)"},
        "label": {"count": "stay_or_lab"},
        "index_timestamp": "start",
    }
    c = load_cohort(write(nested, "outer.yaml", config))
    # Subject 1: stay at 2 h, lab at 5 h; subject 2 at 0 h: stays at 2 h and 22 h (lab at 30 h
    # is outside); at 20 h: stay at 22 h, lab at 30 h.
    assert labels_of(run(c, NESTED_EVENTS), c) == [(1, at(0), 2), (2, at(0), 2), (2, at(20), 2)]


def test_cohort_path_is_relative_to_the_file_that_names_it(tmp_path):
    write(tmp_path, "data/preds/inner/inner.yaml", INNER)
    cohort_file = write(tmp_path, "cohorts/outer.yaml", {**outer(), "predicates": {"stay": "???"}})
    predicates = write(
        tmp_path,
        "data/preds/predicates.yaml",
        {"predicates": {"stay": {"cohort": "inner/inner.yaml"}, "lab": {"code": "LAB"}}},
    )
    c = load_cohort(cohort_file, predicates)
    assert labels_of(run(c, NESTED_EVENTS), c)[0] == (1, at(2), True)


def test_a_cohort_naming_itself_is_an_error_naming_the_loop(tmp_path):
    def naming(other: str) -> dict:
        return {**INNER, "predicates": {"adm": {"cohort": other}, "death": {"code": "DEATH"}}}

    write(tmp_path, "a.yaml", naming("a.yaml"))
    with pytest.raises(EhrbenchError, match=r"predicates\.adm\.cohort .*loop: a.yaml -> a.yaml"):
        load_cohort(tmp_path / "a.yaml")
    write(tmp_path, "b.yaml", naming("c.yaml"))
    write(tmp_path, "c.yaml", naming("b.yaml"))
    with pytest.raises(EhrbenchError, match="loop: b.yaml -> c.yaml -> b.yaml"):
        load_cohort(tmp_path / "b.yaml")


def test_named_cohort_needs_an_index_timestamp(tmp_path):
    inner = {**INNER, "windows": {"first": {**INNER["windows"]["first"]}}}
    del inner["windows"]["first"]["index_timestamp"]
    write(tmp_path, "inner/inner.yaml", inner)
    with pytest.raises(EhrbenchError, match="has no index_timestamp"):
        load_cohort(write(tmp_path, "outer.yaml", outer()))


def test_label_true_or_false_needs_a_boolean_label(tmp_path):
    inner = {**INNER, "windows": {"first": {**INNER["windows"]["first"]}}}
    inner["windows"]["first"]["label"] = {"count": "death"}
    write(tmp_path, "inner/inner.yaml", inner)
    assert load_cohort(write(tmp_path, "outer.yaml", outer("any")))
    with pytest.raises(EhrbenchError, match=r"predicates\.stay\.label .*boolean label"):
        load_cohort(write(tmp_path, "outer.yaml", outer(True)))


def test_one_pass_extraction_equals_single_extraction(nested):
    """Nested cohorts, value labels and age through `extract_many`: byte-identical results."""
    data = [*NESTED_EVENTS, *rows((1, -40 * YEAR, "MEDS_BIRTH"), (2, 1, "LAB", 2.5))]
    root = write_meds_folder(nested / "meds", frame(data), shards=2)
    aged = {**outer(), "age": {"min": 30}, "trigger_between": {"start": "2020-01-01"}}
    aged["windows"]["after"]["label"] = {"value": "lab", "take": "mean"}
    cohorts = {
        "outer": load_cohort(write(nested, "outer.yaml", outer())),
        "aged": load_cohort(write(nested, "aged.yaml", aged)),
        "inner": load_cohort(nested / "inner" / "inner.yaml"),
    }
    dataset = open_dataset(root, validate=False)
    many, failures = extract_many(cohorts, dataset)
    assert failures == {}
    for name, c in cohorts.items():
        single = extract(c, dataset)
        assert many[name].labels.equals(single.labels), name
        assert many[name].attrition == single.attrition, name
    # Subject 1 is 40 but has no lab value in `after`; subject 2 (2.5 at 1 h, in the window
    # from 0 h... no: the window starts at 2 h) has no birth row.
    assert many["aged"].labels.height == 0
    assert [s.step for s in many["aged"].attrition.steps][-1] == "label has no value"


# ---- the command line -----------------------------------------------------------------------


def test_cohort_check_names_the_extensions_used(nested, capsys):
    config = outer()
    config["age"] = {"min": 18}
    classes = [["lab", "lab"], ["stay", "stay"]]
    config["windows"]["after"]["label"] = {"classes": classes, "otherwise": "none"}
    assert main(["cohort", "check", str(write(nested, "outer.yaml", config))]) == 0
    out = capsys.readouterr().out
    assert (
        "uses ehrbench extensions (not ACES): label {classes: ...} (10.2), age (10.3), "
        "cohort predicate stay (10.4)"
    ) in out
    assert "label={classes: [[lab, lab], [stay, stay]], otherwise: none}" in out
    assert main(["cohort", "check", str(nested / "inner" / "inner.yaml")]) == 0
    assert "extensions" not in capsys.readouterr().out


def test_cohort_extract_writes_a_non_boolean_label(nested, capsys):
    config = outer()
    config["windows"]["after"]["label"] = {"duration": "1h"}
    root = write_meds_folder(nested / "meds", frame(NESTED_EVENTS))
    out = nested / "labels.parquet"
    args = ["cohort", "extract", str(write(nested, "outer.yaml", config)), "--data", str(root)]
    assert main([*args, "--out", str(out)]) == 0
    assert "float_value mean 10" in capsys.readouterr().out
    assert read_labels(out)["float_value"].to_list() == [10.0, 10.0, 10.0]
