"""The window tree rendering and the shipped JSON Schema, on fixtures and generated configs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehrbench.cohort.config import load_cohort
from ehrbench.cohort.schema import cohort_json_schema
from ehrbench.cohort.tree import render_tree

jsonschema = pytest.importorskip("jsonschema")

FIXTURES = Path(__file__).parent / "fixtures" / "cohorts"


def validator():
    schema = cohort_json_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_render_tree_of_inhospital_mortality():
    text = render_tree(load_cohort(FIXTURES / "inhospital_mortality.yaml"))
    assert text == (
        "trigger: admission\n"
        "├── input [null (first event), trigger + 1d]  has _ANY_EVENT (5, None)"
        "  index_timestamp=end (prediction time)\n"
        "└── gap (trigger, start + 2d]  has admission (None, 0), discharge (None, 0), "
        "death (None, 0)\n"
        "    └── target (gap.end, start -> discharge_or_death]  label=death\n"
    )


def test_render_tree_nests_and_marks_exclusive_edges():
    cohort = load_cohort(
        FIXTURES / "agnostic_mortality.yaml", FIXTURES / "agnostic_mortality_predicates.yaml"
    )
    lines = render_tree(cohort).splitlines()
    assert lines[0] == "demographics: male"
    assert lines[2].startswith("└── input [null (first event), trigger + 1d]")
    assert lines[3] == "    └── target (input.end, start -> discharge_or_death]  label=death"


def test_render_tree_shows_backward_boundaries():
    text = render_tree(load_cohort(FIXTURES / "readmission_30d.yaml"))
    assert "stay [end <- admission, trigger]" in text
    assert "    └── target (stay.end, start + 30d]  has death (None, 0)  label=admission" in text


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.yaml")), ids=lambda p: p.name)
def test_fixtures_match_the_schema(path):
    config = yaml.safe_load(path.read_text())
    if path.stem.endswith("_predicates"):
        config = {**config, "trigger": "x"}  # a predicates file lacks only the trigger
    errors = [e.message for e in validator().iter_errors(config)]
    assert errors == []


@pytest.mark.parametrize(
    "config",
    [
        {"predicates": {}, "trigger": "a", "widnows": {}},
        {"predicates": {"a": {"code": {"regexp": "x"}}}, "trigger": "a"},
        {"predicates": {"a": {"expr": "xor(b, c)"}}, "trigger": "a"},
        {"predicates": {"a": {"code": "A"}}, "trigger": "a", "windows": {"w": {"start": None}}},
        {
            "predicates": {"a": {"code": "A"}},
            "trigger": "a",
            "windows": {
                "w": {
                    "start": "trigger",
                    "end": "start + 1d",
                    "start_inclusive": True,
                    "end_inclusive": True,
                    "has": {"a": "5"},
                }
            },
        },
        {
            "predicates": {"a": {"code": "A"}},
            "trigger": "a",
            "windows": {
                "w": {
                    "start": "admission",
                    "end": "start + 1d",
                    "start_inclusive": True,
                    "end_inclusive": True,
                }
            },
        },
    ],
    ids=["top key", "code form", "expr", "missing flags", "bare has number", "bare name"],
)
def test_schema_rejects_bad_shapes(config):
    assert not validator().is_valid(config)


def test_schema_is_shipped_as_package_data():
    schema = cohort_json_schema()
    assert schema["$schema"].startswith("http://json-schema.org/draft-07")
    assert set(schema["properties"]) == {
        "predicates",
        "trigger",
        "windows",
        "patient_demographics",
        "metadata",
        "description",
        "age",
        "trigger_between",
    }


LIBRARY = Path(__file__).parents[1] / "cohorts"


@pytest.mark.parametrize("path", sorted(LIBRARY.glob("*.yaml")), ids=lambda p: p.stem)
def test_library_cohorts_match_the_schema(path):
    """The library's cohorts, those using the extensions (spec 10) among them, fit the schema."""
    errors = [e.message for e in validator().iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


EXTENDED = {"predicates": {"a": {"code": "A"}}, "trigger": "a"}


def _labelled(label) -> dict:
    window = {"start": "trigger", "end": "start + 1d", "start_inclusive": True}
    return {**EXTENDED, "windows": {"w": {**window, "end_inclusive": True, "label": label}}}


@pytest.mark.parametrize(
    "config",
    [
        {**EXTENDED, "age": {"min": 18, "max": None, "birth": "MEDS_BIRTH"}},
        {**EXTENDED, "trigger_between": {"start": "2015-01-01", "end": None}},
        {**EXTENDED, "predicates": {"a": {"cohort": "other.yaml", "label": True}}},
        _labelled({"count": "a"}),
        _labelled({"duration": "1d"}),
        _labelled({"value": "a", "take": "mean"}),
        _labelled({"classes": [["high", "a"], ["low", "a"]], "otherwise": "normal"}),
    ],
    ids=["age", "trigger_between", "cohort predicate", "count", "duration", "value", "classes"],
)
def test_schema_accepts_the_extensions(config):
    assert validator().is_valid(config)


@pytest.mark.parametrize(
    "config",
    [
        {**EXTENDED, "age": {"minimum": 18}},
        {**EXTENDED, "trigger_between": {"from": "2015-01-01"}},
        {**EXTENDED, "predicates": {"a": {"cohort": "other.yaml", "label": "yes"}}},
        _labelled({"count": "a", "duration": "1d"}),
        _labelled({"value": "a", "take": "median"}),
        _labelled({"classes": [["high", "a"]], "otherwise": "normal"}),
    ],
    ids=["age key", "trigger_between key", "cohort label", "two forms", "take", "one class"],
)
def test_schema_rejects_bad_extensions(config):
    assert not validator().is_valid(config)


# --- generated configs ------------------------------------------------------------------------

DURATIONS = ["1h", "24h", "2d", "30m", "1.5h", "1d12h", "1 day, 2:00:00", "7 days", "0h"]


@st.composite
def codes(draw):
    kind = draw(st.sampled_from(["exact", "regex", "any"]))
    if kind == "exact":
        return draw(st.sampled_from(["MEDS_DEATH", "LAB//50912//mg/dL", "OUTPATIENT_VISIT"]))
    if kind == "regex":
        return {"regex": draw(st.sampled_from(["^HOSPITAL_ADMISSION//", "ICU_", "//E11"]))}
    return {"any": draw(st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=3))}


@st.composite
def cohort_configs(draw):
    plain = [f"p{i}" for i in range(draw(st.integers(1, 4)))]
    predicates = {}
    for name in plain:
        entry = {"code": draw(codes())}
        if draw(st.booleans()):
            entry["value_min"] = draw(st.floats(-5, 5, allow_nan=False))
            entry["value_min_inclusive"] = draw(st.booleans())
        predicates[name] = entry
    usable = list(plain)
    if len(plain) >= 2 and draw(st.booleans()):
        inputs = draw(st.lists(st.sampled_from(plain), min_size=2, max_size=3, unique=True))
        predicates["d0"] = {"expr": f"{draw(st.sampled_from(['and', 'or']))}({', '.join(inputs)})"}
        usable.append("d0")
    countable = [*usable, "_ANY_EVENT"]
    windows = {}
    for i in range(draw(st.integers(0, 5))):
        anchors = ["trigger", *(f"w{j}.{s}" for j in range(i) for s in ("start", "end"))]
        anchor = draw(st.sampled_from(anchors))
        outside = draw(
            st.sampled_from(
                [
                    anchor,
                    f"{anchor} + {draw(st.sampled_from(DURATIONS))}",
                    f"{anchor} - {draw(st.sampled_from(DURATIONS))}",
                    f"{anchor} -> {draw(st.sampled_from(usable))}",
                    f"{anchor} <- {draw(st.sampled_from(usable))}",
                ]
            )
        )
        forward = draw(st.booleans())
        inner_ref, sign, arrow = ("start", "+", "->") if forward else ("end", "-", "<-")
        inner = draw(
            st.sampled_from(
                [
                    None,
                    inner_ref,
                    f"{inner_ref} {sign} {draw(st.sampled_from(DURATIONS))}",
                    f"{inner_ref} {arrow} {draw(st.sampled_from(usable))}",
                ]
            )
        )
        window = {
            "start": outside if forward else inner,
            "end": inner if forward else outside,
            "start_inclusive": draw(st.booleans()),
            "end_inclusive": draw(st.booleans()),
        }
        constrained = draw(st.lists(st.sampled_from(countable), max_size=3, unique=True))
        if constrained:
            window["has"] = {name: draw(count_ranges()) for name in constrained}
        windows[f"w{i}"] = window
    names = list(windows)
    if names and draw(st.booleans()):
        windows[draw(st.sampled_from(names))]["label"] = draw(st.sampled_from(countable))
    if names and draw(st.booleans()):
        windows[draw(st.sampled_from(names))]["index_timestamp"] = draw(
            st.sampled_from(["start", "end"])
        )
    order = draw(st.permutations(names))
    config = {"predicates": predicates, "trigger": draw(st.sampled_from(countable))}
    if names:
        config["windows"] = {name: windows[name] for name in order}
    return config


@st.composite
def count_ranges(draw):
    low = draw(st.one_of(st.none(), st.integers(0, 5)))
    high = draw(st.one_of(st.none(), st.integers(low or 0, 9)))
    if low is None and high is None:
        high = 0
    style = draw(st.sampled_from(["none", "empty"]))
    text = {None: "None" if style == "none" else ""}
    return f"({text.get(low, low)}, {text.get(high, high)})"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(config=cohort_configs())
def test_generated_configs_load_render_and_validate(tmp_path, config):
    path = tmp_path / "cohort.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cohort = load_cohort(path)
    placed = set()
    for window in cohort.windows:
        anchor = getattr(window, window.anchored_side).reference.window
        assert anchor is None or anchor in placed
        placed.add(window.name)
    assert placed == set(config.get("windows", {}))
    text = render_tree(cohort)
    drawn = [re.search(r"[├└]── (\w+) ", line)[1] for line in text.splitlines()[1:]]
    assert sorted(drawn) == sorted(placed)
    assert validator().is_valid(config), list(validator().iter_errors(config))
