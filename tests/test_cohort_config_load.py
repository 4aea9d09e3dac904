"""Loading valid cohort configs: fixtures, the predicates file, the typed objects built."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from ehrbench.cohort.config import load_cohort, parse_boundary
from ehrbench.cohort.model import (
    RECORD_END,
    RECORD_START,
    TRIGGER,
    AnyCode,
    Boundary,
    Constraint,
    DerivedPredicate,
    ExactCode,
    Reference,
    RegexCode,
)
from ehrbench.errors import EhrbenchError

FIXTURES = Path(__file__).parent / "fixtures" / "cohorts"
COHORTS = sorted(p for p in FIXTURES.glob("*.yaml") if not p.stem.endswith("_predicates"))


def write(directory: Path, text: str, name: str = "cohort.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("path", [p for p in COHORTS if p.stem != "agnostic_mortality"], ids=str)
def test_fixture_cohorts_load(path):
    cohort = load_cohort(path)
    assert cohort.windows and cohort.label_window and cohort.index_window
    assert cohort.warnings == ()


def test_inhospital_mortality_objects():
    cohort = load_cohort(FIXTURES / "inhospital_mortality.yaml")
    assert cohort.trigger == "admission"
    assert cohort.predicates["admission"].code == RegexCode("^HOSPITAL_ADMISSION//")
    assert cohort.predicates["discharge_or_death"] == DerivedPredicate(
        "discharge_or_death", "or", ("discharge", "death")
    )
    windows = {w.name: w for w in cohort.windows}
    assert windows["input"].start == Boundary(
        Reference("input", "end"), "prev", predicate=RECORD_START, was_null=True
    )
    assert windows["input"].end == Boundary(TRIGGER, "offset", offset=dt.timedelta(hours=24))
    assert windows["gap"].start == Boundary(TRIGGER, "offset")
    assert windows["gap"].end == Boundary(
        Reference("gap", "start"), "offset", offset=dt.timedelta(hours=48)
    )
    assert windows["gap"].has == (
        Constraint("admission", None, 0),
        Constraint("discharge", None, 0),
        Constraint("death", None, 0),
    )
    assert windows["target"].start == Boundary(Reference("gap", "end"), "offset")
    assert windows["target"].end == Boundary(
        Reference("target", "start"), "next", predicate="discharge_or_death"
    )
    assert (windows["target"].start_inclusive, windows["target"].end_inclusive) == (False, True)
    assert cohort.label_window.name == "target" and cohort.label_window.label == "death"
    assert cohort.index_window.name == "input" and cohort.index_window.index_timestamp == "end"
    assert cohort.description.startswith("Predict death")


def test_code_forms_bounds_and_columns():
    cohort = load_cohort(FIXTURES / "icu_sepsis_aki.yaml")
    assert cohort.predicates["icu_admission"].code == AnyCode(
        (
            "ICU_ADMISSION//Medical Intensive Care Unit (MICU)",
            "ICU_ADMISSION//Surgical Intensive Care Unit (SICU)",
        )
    )
    high = cohort.predicates["creatinine_high"]
    assert high.code == ExactCode("LAB//50912//mg/dL")
    assert (high.value_min, high.value_min_inclusive, high.value_max) == (2.0, True, None)
    assert high.other_cols == ()
    window = {w.name: w for w in cohort.windows}["observation"]
    assert window.end.offset == dt.timedelta(days=1)
    assert window.has == (Constraint("icu_discharge", None, 0),)


def test_demographics_are_static_and_separate():
    cohort = load_cohort(FIXTURES / "hyperkalemia_48h.yaml")
    assert set(cohort.demographics) == {"female"}
    assert cohort.demographics["female"].static
    assert "female" not in cohort.predicates
    assert {w.name: w for w in cohort.windows}["history"].has == (
        Constraint("_ANY_EVENT", 10, None),
    )


def test_predicates_file_fills_placeholders_and_adds_demographics():
    cohort = load_cohort(
        FIXTURES / "agnostic_mortality.yaml", FIXTURES / "agnostic_mortality_predicates.yaml"
    )
    assert cohort.predicates["icu_admission"].code == RegexCode("^ICU_ADMISSION//")
    assert cohort.predicates["icu_discharge"].code == RegexCode("^ICU_DISCHARGE//")
    assert list(cohort.predicates) == [
        "icu_admission",
        "icu_discharge",
        "death",
        "discharge_or_death",
    ]
    assert set(cohort.demographics) == {"male"}


def test_placeholder_without_predicates_file_fails():
    with pytest.raises(EhrbenchError, match=r"predicates\.icu_admission .*'icu_admission'"):
        load_cohort(FIXTURES / "agnostic_mortality.yaml")


def test_predicates_file_replaces_whole_entries(tmp_path):
    cohort_path = write(
        tmp_path,
        """\
        predicates:
          lab: {code: "LAB//A", value_min: 5}
          death: {code: MEDS_DEATH}
        trigger: lab
        """,
    )
    extra = write(
        tmp_path,
        """\
        predicates:
          lab: {code: {any: ["LAB//B", "LAB//C"]}}
          extra: {code: "X"}
        """,
        "predicates.yaml",
    )
    cohort = load_cohort(cohort_path, extra)
    assert cohort.predicates["lab"].code == AnyCode(("LAB//B", "LAB//C"))
    assert cohort.predicates["lab"].value_min is None  # replaced, not merged
    assert list(cohort.predicates) == ["lab"]  # only used predicates are kept


def test_unused_predicates_are_checked_but_not_kept(tmp_path):
    text = """\
        predicates:
          a: {code: A, site: ward}
          b: {code: B, value_mim: 1}
          c: {expr: "or(a, d)"}
          d: {code: D}
        trigger: c
        """
    cohort = load_cohort(write(tmp_path, text))
    assert list(cohort.predicates) == ["a", "c", "d"]
    assert list(cohort.required_columns()) == ["code", "site"]  # not b's value_mim
    broken = text.replace("{code: B, value_mim: 1}", "{value_min: 1}")
    with pytest.raises(EhrbenchError, match=r"predicates\.b .*no code"):
        load_cohort(write(tmp_path, broken))


def test_cohort_may_take_all_predicates_from_the_predicates_file(tmp_path):
    cohort_path = write(tmp_path, "trigger: death\n")
    extra = write(tmp_path, "predicates:\n  death: {code: MEDS_DEATH}\n", "p.yaml")
    assert load_cohort(cohort_path, extra).trigger == "death"


def test_windows_come_in_dependency_order(tmp_path):
    path = write(
        tmp_path,
        """\
        predicates:
          a: {code: A}
        trigger: a
        windows:
          third: {start: second.end, end: start + 1h, start_inclusive: true, end_inclusive: true}
          second: {start: end - 1h, end: first.start, start_inclusive: true, end_inclusive: true}
          first: {start: trigger, end: start + 1h, start_inclusive: true, end_inclusive: true,
                  index_timestamp: start}
          other: {start: trigger, end: null, start_inclusive: true, end_inclusive: true}
        """,
    )
    cohort = load_cohort(path)
    names = [w.name for w in cohort.windows]
    assert names.index("first") < names.index("second") < names.index("third")
    other = {w.name: w for w in cohort.windows}["other"]
    assert other.end == Boundary(
        Reference("other", "start"), "next", predicate=RECORD_END, was_null=True
    )
    assert other.anchored_side == "start"
    second = {w.name: w for w in cohort.windows}["second"]
    assert second.anchored_side == "end"
    assert second.start.offset == -dt.timedelta(hours=1)


def test_warnings_are_returned_not_raised(tmp_path, recwarn):
    path = write(
        tmp_path,
        """\
        predicates:
          lab: {code: "LAB//A", value_mn: 5}
        trigger: lab
        windows:
          w: {start: trigger, end: start + 1h, start_inclusive: true, end_inclusive: true}
        """,
    )
    cohort = load_cohort(path)
    assert len(recwarn) == 0
    assert any("index_timestamp" in w for w in cohort.warnings)
    assert any("predicates.lab.value_mn" in w and "'value_min'" in w for w in cohort.warnings)
    assert cohort.predicates["lab"].other_cols == (("value_mn", 5),)


def test_accepted_oddities_warn(tmp_path):
    path = write(
        tmp_path,
        """\
        predicates:
          k: {code: K, value_min: 5, value_max: 1}
          j: {code: J, value_min: 2, value_max: 2, value_min_inclusive: true}
        trigger: k
        windows:
          trigger:
            start: trigger
            end: start + 1h
            start_inclusive: true
            end_inclusive: true
            has: {j: "(-1, 2)"}
            index_timestamp: end
        """,
    )
    cohort = load_cohort(path)
    assert cohort.windows[0].name == "trigger"
    assert cohort.windows[0].has == (Constraint("j", -1, 2),)
    assert [w.split(": ", 1)[0].split(" at ")[1] for w in cohort.warnings] == [
        "predicates.k (line 2)",
        "predicates.j (line 3)",
        "windows.trigger.has.j (line 11)",
    ]
    assert "'k' matches nothing" in cohort.warnings[0]
    assert "same as None" in cohort.warnings[2]


def test_no_windows_warns(tmp_path):
    path = write(tmp_path, "predicates: {}\ntrigger: _ANY_EVENT\n")
    cohort = load_cohort(path)
    assert cohort.windows == () and "no windows" in cohort.warnings[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(5, None)", (5, None)),
        ("(None, 0)", (None, 0)),
        ("(5,)", (5, None)),
        ("(,10)", (None, 10)),
        ("( 1 , 2 )", (1, 2)),
        ("1, 2", (1, 2)),
        ("(1, 2", (1, 2)),
        ("3, None)", (3, None)),
        ("(0, 0)", (0, 0)),
    ],
)
def test_has_range_forms(tmp_path, text, expected):
    path = write(
        tmp_path,
        f"""\
        predicates:
          a: {{code: A}}
        trigger: a
        windows:
          w:
            start: trigger
            end: start + 1d
            start_inclusive: true
            end_inclusive: true
            has: {{a: "{text}"}}
            index_timestamp: end
        """,
    )
    (window,) = load_cohort(path).windows
    assert (window.has[0].min_count, window.has[0].max_count) == expected


def test_other_cols_and_extra_keys_are_both_column_tests(tmp_path):
    path = write(
        tmp_path,
        """\
        predicates:
          bp: {code: BP, site: arterial, other_cols: {position: sitting}}
        trigger: bp
        """,
    )
    bp = load_cohort(path).predicates["bp"]
    assert bp.other_cols == (("site", "arterial"), ("position", "sitting"))


def test_codes_are_not_interpolated(tmp_path):
    path = write(tmp_path, 'predicates:\n  a: {code: "A${x}"}\ntrigger: a\n')
    assert load_cohort(path).predicates["a"].code == ExactCode("A${x}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, Boundary(Reference("w", "end"), "prev", predicate=RECORD_START, was_null=True)),
        ("None", Boundary(Reference("w", "end"), "prev", predicate=RECORD_START, was_null=True)),
        ("trigger", Boundary(TRIGGER, "offset")),
        ("trigger + 0h", Boundary(TRIGGER, "offset")),
        ("trigger-2d", Boundary(TRIGGER, "offset", offset=-dt.timedelta(days=2))),
        (
            "end - 1 day, 14:20:16",
            Boundary(
                Reference("w", "end"),
                "offset",
                offset=-dt.timedelta(days=1, hours=14, minutes=20, seconds=16),
            ),
        ),
        ("end <- adm", Boundary(Reference("w", "end"), "prev", predicate="adm")),
        ("w.end <- adm", Boundary(Reference("w", "end"), "prev", predicate="adm")),
        ("gap.start->adm", Boundary(Reference("gap", "start"), "next", predicate="adm")),
        ("trigger -> _RECORD_END", Boundary(TRIGGER, "next", predicate=RECORD_END)),
    ],
)
def test_parse_boundary(text, expected):
    assert parse_boundary(text, window="w", side="start") == expected


def test_parse_boundary_null_end():
    assert parse_boundary(None, window="w", side="end") == Boundary(
        Reference("w", "start"), "next", predicate=RECORD_END, was_null=True
    )
