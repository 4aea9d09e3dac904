"""Every load-time error of the cohort language: each bad config fails with a located message.

Each case mutates a valid base config, writes it as YAML and checks that `load_cohort` raises
`EhrbenchError` naming the file, the YAML path, the line, and the expected hint.
"""

from __future__ import annotations

import copy
import re
import textwrap
from pathlib import Path

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehrbench.cohort.config import load_cohort
from ehrbench.cohort.extract import extract_events
from ehrbench.errors import EhrbenchError

BASE = {
    "predicates": {
        "admission": {"code": "HOSPITAL_ADMISSION//EMERGENCY"},
        "discharge": {"code": {"regex": "^HOSPITAL_DISCHARGE//"}},
        "death": {"code": "MEDS_DEATH"},
        "male": {"code": "GENDER//M", "static": True},
        "discharge_or_death": {"expr": "or(discharge, death)"},
    },
    "patient_demographics": {"female": {"code": "GENDER//F"}},
    "trigger": "admission",
    "windows": {
        "input": {
            "start": None,
            "end": "trigger + 24h",
            "start_inclusive": True,
            "end_inclusive": True,
            "index_timestamp": "end",
        },
        "gap": {
            "start": "input.end",
            "end": "start + 48h",
            "start_inclusive": False,
            "end_inclusive": True,
            "has": {"discharge": "(None, 0)"},
        },
        "target": {
            "start": "gap.end",
            "end": "start -> discharge_or_death",
            "start_inclusive": False,
            "end_inclusive": True,
            "label": "death",
        },
    },
}
# An event table with no rows and these columns: column tests are checked when extracting.
EVENTS = pl.DataFrame(
    schema={
        "subject_id": pl.Int64,
        "time": pl.Datetime("us"),
        "code": pl.String,
        "numeric_value": pl.Float32,
        "site": pl.String,
    }
)


def write_config(directory: Path, config: dict, name: str = "cohort.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def mutated(**changes) -> dict:
    """BASE with changes given as dotted-path keywords (`__` separates levels); None deletes."""
    config = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = config
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return config


DELETE = object()
W = "windows"

# (id, config, YAML path in the message, fragments the message must contain)
CASES = [
    (
        "label_negated not a boolean",
        mutated(windows__target__label_negated="yes"),
        "windows.target.label_negated",
        ["true or false"],
    ),
    (
        "label_negated without a label",
        mutated(windows__gap__label_negated=True),
        "windows.gap.label_negated",
        ["needs a `label`"],
    ),
    ("unknown top-level key", {**BASE, "widnows": {}}, "widnows", ["did you mean 'windows'"]),
    ("missing trigger", mutated(trigger=DELETE), None, ["'trigger'"]),
    ("missing predicates", mutated(predicates=DELETE), None, ["'predicates'"]),
    (
        "predicates not a mapping",
        mutated(predicates=["admission"]),
        "predicates",
        ["mapping"],
    ),
    (
        "bad predicate name",
        mutated(**{"predicates__bad-name": {"code": "X"}}),
        "predicates.bad-name",
        ["letters, digits and _"],
    ),
    (
        "bad window name",
        mutated(**{"windows__my window": BASE["windows"]["gap"]}),
        "windows.my window",
        ["letters, digits and _"],
    ),
    (
        "special predicate redefined",
        mutated(predicates___ANY_EVENT={"code": "X"}),
        "predicates._ANY_EVENT",
        ["built-in"],
    ),
    (
        "plain predicate without code",
        mutated(predicates__death={"value_min": 3}),
        "predicates.death",
        ["has no code"],
    ),
    (
        "predicate not a mapping",
        mutated(predicates__death="MEDS_DEATH"),
        "predicates.death",
        ["must be a mapping"],
    ),
    (
        "code mapping with a typo",
        mutated(predicates__death={"code": {"regexp": "^MEDS"}}),
        "predicates.death.code",
        ["did you mean 'regex'"],
    ),
    (
        "code with regex and any",
        mutated(predicates__death={"code": {"regex": "a", "any": ["b"]}}),
        "predicates.death.code",
        ["exactly one key"],
    ),
    (
        "code as a list",
        mutated(predicates__death={"code": ["A", "B"]}),
        "predicates.death.code",
        ["expected a string"],
    ),
    (
        "code as a number",
        mutated(predicates__death={"code": 50912}),
        "predicates.death.code",
        ["quote codes"],
    ),
    (
        "empty any list",
        mutated(predicates__death={"code": {"any": []}}),
        "predicates.death.code.any",
        ["non-empty list"],
    ),
    (
        "non-string in any list",
        mutated(predicates__death={"code": {"any": ["A", 3]}}),
        "predicates.death.code.any.1",
        ["expected a code string"],
    ),
    (
        "regex the engine cannot compile",
        mutated(predicates__death={"code": {"regex": "(?<=A)B"}}),
        "predicates.death.code.regex",
        ["invalid regular expression", "look-around"],
    ),
    (
        "value_min not a number",
        mutated(predicates__death={"code": "X", "value_min": "five"}),
        "predicates.death.value_min",
        ["finite number"],
    ),
    (
        "bad value inclusive flag",
        mutated(predicates__death={"code": "X", "value_min": 1, "value_min_inclusive": "yes"}),
        "predicates.death.value_min_inclusive",
        ["true or false"],
    ),
    (
        "other_cols not a mapping",
        mutated(predicates__death={"code": "X", "other_cols": ["site"]}),
        "predicates.death.other_cols",
        ["mapping {column: value}"],
    ),
    (
        "column test without a value",
        mutated(predicates__death={"code": "X", "site": None}),
        "predicates.death.site",
        ["needs one value"],
    ),
    (
        "column tested twice",
        mutated(predicates__death={"code": "X", "site": "a", "other_cols": {"site": "b"}}),
        "predicates.death.other_cols.site",
        ["twice"],
    ),
    (
        "derived with one name",
        mutated(predicates__discharge_or_death={"expr": "or(discharge)"}),
        "predicates.discharge_or_death.expr",
        ["only one predicate"],
    ),
    (
        "derived with unknown operator",
        mutated(predicates__discharge_or_death={"expr": "xor(discharge, death)"}),
        "predicates.discharge_or_death.expr",
        ["unknown operator 'xor'"],
    ),
    (
        "derived with not",
        mutated(predicates__discharge_or_death={"expr": "not(discharge, death)"}),
        "predicates.discharge_or_death.expr",
        ["there is no `not`"],
    ),
    (
        "derived nested",
        mutated(predicates__discharge_or_death={"expr": "or(discharge, and(death, admission))"}),
        "predicates.discharge_or_death.expr",
        ["nests expressions"],
    ),
    (
        "derived not a call",
        mutated(predicates__discharge_or_death={"expr": "discharge | death"}),
        "predicates.discharge_or_death.expr",
        ["not an expression"],
    ),
    (
        "derived with a bad name",
        mutated(predicates__discharge_or_death={"expr": "or(discharge, de ath)"}),
        "predicates.discharge_or_death.expr",
        ["'de ath' is not a predicate name"],
    ),
    (
        "derived names an unknown predicate",
        mutated(predicates__discharge_or_death={"expr": "or(dischrge, death)"}),
        "predicates.discharge_or_death.expr",
        ["unknown predicate 'dischrge'", "did you mean 'discharge'"],
    ),
    (
        "derived cycle",
        mutated(
            predicates__a={"expr": "and(b, death)"},
            predicates__b={"expr": "or(a, discharge)"},
        ),
        "predicates.a.expr",
        ["cycle", "a -> b -> a"],
    ),
    (
        "derived with extra key",
        mutated(predicates__discharge_or_death={"expr": "or(discharge, death)", "code": "X"}),
        "predicates.discharge_or_death.code",
        ["takes only expr"],
    ),
    (
        "derived with a special predicate",
        mutated(predicates__discharge_or_death={"expr": "or(discharge, _ANY_EVENT)"}),
        "predicates.discharge_or_death.expr",
        ["_ANY_EVENT cannot be combined"],
    ),
    (
        "derived with a static predicate",
        mutated(predicates__discharge_or_death={"expr": "or(discharge, male)"}),
        "predicates.discharge_or_death.expr",
        ["'male' is static"],
    ),
    (
        "unfilled placeholder predicate",
        mutated(predicates__death="???"),
        "predicates.death",
        ["'death'", "unfilled ??? placeholder"],
    ),
    (
        "unfilled placeholder code",
        mutated(predicates__death={"code": "???"}),
        "predicates.death.code",
        ["'death'", "unfilled ??? placeholder"],
    ),
    (
        "static predicate in has",
        mutated(windows__gap__has={"male": "(1, None)"}),
        "windows.gap.has.male",
        ["static predicate"],
    ),
    (
        "demographic in has",
        mutated(windows__gap__has={"female": "(1, None)"}),
        "windows.gap.has.female",
        ["static predicate"],
    ),
    (
        "static predicate as label",
        mutated(windows__target__label="male"),
        "windows.target.label",
        ["static predicate", "label"],
    ),
    ("static trigger", mutated(trigger="female"), "trigger", ["static predicate"]),
    (
        "unknown trigger",
        mutated(trigger="admision"),
        "trigger",
        ["unknown predicate 'admision'", "did you mean 'admission'"],
    ),
    ("trigger placeholder", mutated(trigger="???"), "trigger", ["unfilled ??? placeholder"]),
    ("trigger not a name", mutated(trigger={"predicate": "admission"}), "trigger", ["name"]),
    (
        "bare predicate name as reference",
        mutated(windows__gap__start="admission"),
        "windows.gap.start",
        ["bare predicate name is not a reference", "start -> admission"],
    ),
    (
        "bare window name as reference",
        mutated(windows__gap__start="input"),
        "windows.gap.start",
        ["did you mean input.start or input.end"],
    ),
    (
        "misspelt trigger reference",
        mutated(windows__gap__start="triger"),
        "windows.gap.start",
        ["did you mean 'trigger'"],
    ),
    (
        "reference to a bad side",
        mutated(windows__gap__start="input.middle"),
        "windows.gap.start",
        [".start or .end"],
    ),
    (
        "undefined window",
        mutated(windows__gap__start="inptu.end"),
        "windows.gap.start",
        ["undefined window 'inptu'", "did you mean 'input'"],
    ),
    (
        "both sides null",
        mutated(windows__gap__start=None, windows__gap__end=None),
        "windows.gap",
        ["both null"],
    ),
    (
        "sides refer to each other",
        mutated(windows__gap__start="end - 1h", windows__gap__end="start + 1h"),
        "windows.gap",
        ["refer to each other"],
    ),
    (
        "null start with end on start",
        mutated(windows__gap__start=None, windows__gap__end="start + 1h"),
        "windows.gap",
        ["refer to each other"],
    ),
    (
        "neither side refers to the other",
        mutated(windows__gap__start="trigger", windows__gap__end="trigger + 1d"),
        "windows.gap",
        ["neither side refers to the other"],
    ),
    (
        "side refers to itself",
        mutated(windows__gap__end="end + 1h"),
        "windows.gap.end",
        ["refers to itself"],
    ),
    (
        "end before start by offset",
        mutated(windows__gap__end="start - 48h"),
        "windows.gap.end",
        ["must move forward", "start + Δ or start -> PRED"],
    ),
    (
        "end before start by event",
        mutated(windows__gap__end="start <- discharge"),
        "windows.gap.end",
        ["must move forward"],
    ),
    (
        "start after end by offset",
        mutated(windows__input__start="end + 1d"),
        "windows.input.start",
        ["must move backward", "end - Δ or end <- PRED"],
    ),
    (
        "start after end by event",
        mutated(windows__input__start="end -> admission"),
        "windows.input.start",
        ["must move backward"],
    ),
    (
        "windows in a loop",
        mutated(
            windows__a={
                "start": "b.end",
                "end": "start + 1h",
                "start_inclusive": True,
                "end_inclusive": True,
            },
            windows__b={
                "start": "a.end",
                "end": "start + 1h",
                "start_inclusive": True,
                "end_inclusive": True,
            },
        ),
        "windows.a",
        ["loop", "a -> b -> a"],
    ),
    (
        "duration in months",
        mutated(windows__gap__end="start + 1 month"),
        "windows.gap.end",
        ["months or years"],
    ),
    (
        "duration in years",
        mutated(windows__gap__end="start + 2y"),
        "windows.gap.end",
        ["months or years"],
    ),
    (
        "duration without unit",
        mutated(windows__gap__end="start + 24"),
        "windows.gap.end",
        ["no unit"],
    ),
    (
        "two operators",
        mutated(windows__gap__end="start + -24h"),
        "windows.gap.end",
        ["more than one operator"],
    ),
    (
        "boundary garbage",
        mutated(windows__gap__end="start plus 24h"),
        "windows.gap.end",
        ["not a boundary"],
    ),
    (
        "event bound by a bad name",
        mutated(windows__target__end="start -> dis charge"),
        "windows.target.end",
        ["one predicate name"],
    ),
    (
        "event bound by an unknown predicate",
        mutated(windows__target__end="start -> dischrge"),
        "windows.target.end",
        ["unknown predicate 'dischrge'", "did you mean 'discharge'"],
    ),
    (
        "event bound by a static predicate",
        mutated(windows__target__end="start -> male"),
        "windows.target.end",
        ["static predicate"],
    ),
    (
        "boundary not a string",
        mutated(windows__gap__end=24),
        "windows.gap.end",
        ["expected a string"],
    ),
    (
        "has None None",
        mutated(windows__gap__has={"discharge": "(None, None)"}),
        "windows.gap.has.discharge",
        ["bounds nothing"],
    ),
    (
        "has min above max",
        mutated(windows__gap__has={"discharge": "(5, 2)"}),
        "windows.gap.has.discharge",
        ["min 5 > max 2"],
    ),
    (
        "has bare number",
        mutated(windows__gap__has={"discharge": 0}),
        "windows.gap.has.discharge",
        ['"(min, max)"'],
    ),
    (
        "has bare number string",
        mutated(windows__gap__has={"discharge": "0"}),
        "windows.gap.has.discharge",
        ["not a count range"],
    ),
    (
        "has non-integer bound",
        mutated(windows__gap__has={"discharge": "(0.5, None)"}),
        "windows.gap.has.discharge",
        ["not a count range"],
    ),
    (
        "has unknown predicate",
        mutated(windows__gap__has={"dischage": "(None, 0)"}),
        "windows.gap.has.dischage",
        ["unknown predicate 'dischage'", "did you mean 'discharge'"],
    ),
    (
        "has not a mapping",
        mutated(windows__gap__has=["discharge"]),
        "windows.gap.has",
        ["expected a mapping"],
    ),
    (
        "two label windows",
        mutated(windows__gap__label="death"),
        "windows.target.label",
        ["only one window may have label", "gap, target"],
    ),
    (
        "two index windows",
        mutated(windows__gap__index_timestamp="start"),
        "windows.gap.index_timestamp",
        ["only one window may have index_timestamp", "input, gap"],
    ),
    (
        "index_timestamp value",
        mutated(windows__input__index_timestamp="middle"),
        "windows.input.index_timestamp",
        ["expected start or end"],
    ),
    (
        "unknown label predicate",
        mutated(windows__target__label="deaht"),
        "windows.target.label",
        ["unknown predicate 'deaht'", "did you mean 'death'"],
    ),
    (
        "unknown window key",
        mutated(windows__target__lable="death"),
        "windows.target.lable",
        ["did you mean 'label'"],
    ),
    (
        "missing inclusive flag",
        mutated(windows__gap__end_inclusive=DELETE),
        "windows.gap",
        ["missing end_inclusive"],
    ),
    (
        "bad inclusive flag",
        mutated(windows__gap__start_inclusive="no way"),
        "windows.gap.start_inclusive",
        ["true or false"],
    ),
    (
        "window not a mapping",
        mutated(windows__gap="trigger + 1d"),
        "windows.gap",
        ["must be a mapping"],
    ),
    (
        "windows not a mapping",
        mutated(windows=["gap"]),
        "windows",
        ["expected a mapping"],
    ),
    (
        "placeholder in a window",
        mutated(windows__gap__end="???"),
        "windows.gap.end",
        ["unfilled ??? placeholder"],
    ),
    (
        "name under predicates and demographics",
        mutated(patient_demographics__male={"code": "GENDER//M"}),
        "patient_demographics.male",
        ["both under predicates and patient_demographics"],
    ),
    (
        "demographic with expr",
        mutated(patient_demographics__female={"expr": "or(a, b)"}),
        "patient_demographics.female.expr",
        ["plain predicates"],
    ),
    (
        "demographic marked not static",
        mutated(patient_demographics__female={"code": "GENDER//F", "static": False}),
        "patient_demographics.female.static",
        ["static"],
    ),
]


def labelled(label, **window) -> dict:
    """BASE with the target window's label (and other keys) replaced."""
    return mutated(windows__target={**BASE["windows"]["target"], "label": label, **window})


TARGET = "windows.target.label"
# The extensions of spec section 10: label forms, age, cohort predicates, trigger_between.
CASES += [
    ("label two forms", labelled({"count": "death", "duration": "1d"}), TARGET, ["exactly one"]),
    ("label unknown form", labelled({"cuont": "death"}), TARGET, ["did you mean 'count'"]),
    ("count unknown", labelled({"count": "deth"}), f"{TARGET}.count", ["did you mean 'death'"]),
    ("count static", labelled({"count": "male"}), f"{TARGET}.count", ["static predicate"]),
    ("duration unit", labelled({"duration": "1 month"}), f"{TARGET}.duration", ["duration"]),
    ("duration zero", labelled({"duration": "0h"}), f"{TARGET}.duration", ["longer than zero"]),
    ("value no take", labelled({"value": "death"}), f"{TARGET}.take", ["take must be one of"]),
    (
        "value bad take",
        labelled({"value": "death", "take": "maximum"}),
        f"{TARGET}.take",
        ["take must be one of", "did you mean 'max'"],
    ),
    (
        "value derived",
        labelled({"value": "discharge_or_death", "take": "max"}),
        f"{TARGET}.value",
        ["plain predicate"],
    ),
    (
        "value extra key",
        labelled({"value": "death", "take": "max", "unit": "mg"}),
        f"{TARGET}.unit",
        ["unknown key"],
    ),
    (
        "classes not a list",
        labelled({"classes": "death", "otherwise": "alive"}),
        f"{TARGET}.classes",
        ["at least two"],
    ),
    (
        "classes one pair",
        labelled({"classes": [["dead", "death"]], "otherwise": "alive"}),
        f"{TARGET}.classes",
        ["at least two"],
    ),
    (
        "classes bad pair",
        labelled({"classes": [["dead", "death"], ["gone"]], "otherwise": "alive"}),
        f"{TARGET}.classes.1",
        ["[NAME, PRED] pair"],
    ),
    (
        "classes twice",
        labelled({"classes": [["dead", "death"], ["dead", "discharge"]], "otherwise": "x"}),
        f"{TARGET}.classes.1",
        ["listed twice"],
    ),
    (
        "classes unknown predicate",
        labelled({"classes": [["dead", "death"], ["home", "dischrge"]], "otherwise": "x"}),
        f"{TARGET}.classes.1",
        ["unknown predicate", "did you mean 'discharge'"],
    ),
    (
        "classes no otherwise",
        labelled({"classes": [["dead", "death"], ["home", "discharge"]]}),
        f"{TARGET}.otherwise",
        ["expected the name"],
    ),
    (
        "otherwise is a class",
        labelled({"classes": [["dead", "death"], ["home", "discharge"]], "otherwise": "home"}),
        f"{TARGET}.otherwise",
        ["must differ"],
    ),
    (
        "label_negated with a mapping",
        labelled({"count": "death"}, label_negated=True),
        "windows.target.label_negated",
        ["only to the plain form"],
    ),
    (
        "two label windows, one a mapping",
        mutated(windows__gap__label={"count": "death"}),
        "windows.target.label",
        ["only one window may have label"],
    ),
    ("age not a mapping", mutated(age=18), "age", ["expected a mapping"]),
    ("age unknown key", mutated(age={"mni": 18}), "age.mni", ["did you mean 'min'"]),
    ("age not a number", mutated(age={"min": "adult"}), "age.min", ["a number"]),
    ("age min above max", mutated(age={"min": 65, "max": 18}), "age", ["above max"]),
    ("age birth", mutated(age={"min": 18, "birth": 5}), "age.birth", ["birth code"]),
    ("between not a mapping", mutated(trigger_between="2015"), "trigger_between", ["mapping"]),
    (
        "between unknown key",
        mutated(trigger_between={"strat": "2015-01-01"}),
        "trigger_between.strat",
        ["did you mean 'start'"],
    ),
    (
        "between bad date",
        mutated(trigger_between={"start": "2015-13-01"}),
        "trigger_between.start",
        ["ISO date"],
    ),
    (
        "between empty",
        mutated(trigger_between={"start": "2020-01-01", "end": "2015-01-01"}),
        "trigger_between",
        ["not before"],
    ),
    (
        "between time zone",
        mutated(trigger_between={"start": "2015-01-01T00:00+02:00"}),
        "trigger_between.start",
        ["time zone"],
    ),
    (
        "cohort file missing",
        mutated(predicates__stays={"cohort": "nowhere.yaml"}),
        "predicates.stays.cohort",
        ["does not exist"],
    ),
    (
        "cohort file a folder",
        mutated(predicates__stays={"cohort": "."}),
        "predicates.stays.cohort",
        ["is a folder, not a cohort file"],
    ),
    (
        "cohort label",
        mutated(predicates__stays={"cohort": "nowhere.yaml", "label": "maybe"}),
        "predicates.stays.label",
        ["label must be one of any, true, false"],
    ),
    (
        "cohort extra key",
        mutated(predicates__stays={"cohort": "nowhere.yaml", "code": "X"}),
        "predicates.stays.code",
        ["unknown key"],
    ),
    (
        "cohort not a path",
        mutated(predicates__stays={"cohort": 5}),
        "predicates.stays.cohort",
        ["a path"],
    ),
]


@pytest.mark.parametrize(
    ("config", "where", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_load_time_error(tmp_path, config, where, fragments):
    path = write_config(tmp_path, config)
    with pytest.raises(EhrbenchError) as caught:
        load_cohort(path)
    message = str(caught.value)
    assert str(path) in message
    if where is not None:
        assert f" at {where} (line " in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message


def test_error_names_the_exact_line(tmp_path):
    path = tmp_path / "cohort.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            predicates:
              admission: {code: "HOSPITAL_ADMISSION//URGENT"}
              discharge: {code: "HOSPITAL_DISCHARGE//HOME"}
            trigger: admission
            windows:
              gap:
                start: trigger
                end: start + 48h
                start_inclusive: false
                end_inclusive: true
                has:
                  admision: (None, 0)
                index_timestamp: end
            """
        )
    )
    with pytest.raises(EhrbenchError, match=r"windows\.gap\.has\.admision \(line 12\)"):
        load_cohort(path)


def test_unquoted_range_in_flow_mapping(tmp_path):
    path = tmp_path / "cohort.yaml"
    path.write_text(
        "predicates: {a: {code: A}}\ntrigger: a\nwindows:\n"
        "  w: {start: trigger, end: start + 1h, start_inclusive: true, end_inclusive: true,\n"
        "      has: {a: (5, None)}}\n"
    )
    with pytest.raises(EhrbenchError, match=r"at windows\.w\.has\.a \(line 5\).*quote the range"):
        load_cohort(path)


def test_unknown_column_against_the_data_suggests_the_predicate_key(tmp_path):
    config = mutated(predicates__death={"code": "X", "value_mim": 3})
    cohort = load_cohort(write_config(tmp_path, config))
    with pytest.raises(EhrbenchError) as caught:
        extract_events(cohort, EVENTS)
    message = str(caught.value)
    assert "predicates.death.value_mim (line" in message
    assert "`death`" in message and "did you mean 'value_min'" in message


def test_unknown_column_against_the_data_suggests_a_column(tmp_path):
    config = mutated(predicates__death={"code": "X", "other_cols": {"sitee": "arterial"}})
    cohort = load_cohort(write_config(tmp_path, config))
    with pytest.raises(EhrbenchError, match=r"other_cols\.sitee .*did you mean 'site'"):
        extract_events(cohort, EVENTS)


def test_demographic_columns_are_checked_against_the_data(tmp_path):
    config = mutated(patient_demographics__female={"code": "GENDER//F", "sex": "F"})
    cohort = load_cohort(write_config(tmp_path, config))
    with pytest.raises(EhrbenchError, match=r"patient_demographics\.female\.sex"):
        extract_events(cohort, EVENTS)


def test_known_columns_pass_the_data_check(tmp_path):
    config = mutated(predicates__death={"code": "X", "site": "ward"})
    cohort = load_cohort(write_config(tmp_path, config))
    assert cohort.predicates["death"].other_cols == (("site", "ward"),)
    assert extract_events(cohort, EVENTS).labels.is_empty()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("predicates: [a\n", "not valid YAML"),
        ("predicates: {}\npredicates: {}\ntrigger: x\n", "duplicate key"),
        ("- predicates\n", "must be a YAML mapping"),
    ],
    ids=["syntax", "duplicate key", "not a mapping"],
)
def test_unreadable_yaml(tmp_path, text, fragment):
    path = tmp_path / "cohort.yaml"
    path.write_text(text)
    with pytest.raises(EhrbenchError) as caught:
        load_cohort(path)
    message = str(caught.value)
    assert str(path) in message and fragment in message
    if fragment != "must be a YAML mapping":
        assert re.search(r"\(line \d+\)", message)


def test_missing_file(tmp_path):
    with pytest.raises(EhrbenchError, match="does not exist"):
        load_cohort(tmp_path / "nope.yaml")


def test_missing_predicates_file(tmp_path):
    with pytest.raises(EhrbenchError, match="predicates file .* does not exist"):
        load_cohort(write_config(tmp_path, BASE), tmp_path / "nope.yaml")


def test_predicates_file_errors_name_that_file(tmp_path):
    cohort = write_config(tmp_path, mutated(predicates__death="???"))
    extra = write_config(tmp_path, {"predicates": {"death": {"cod": "MEDS_DEATH"}}}, "p.yaml")
    with pytest.raises(EhrbenchError) as caught:
        load_cohort(cohort, extra)
    message = str(caught.value)
    assert str(extra) in message and "predicates.death (line 2)" in message


def test_predicates_file_unknown_top_level_key(tmp_path):
    cohort = write_config(tmp_path, BASE)
    extra = write_config(tmp_path, {"predicates": {}, "trigger": "death"}, "p.yaml")
    with pytest.raises(EhrbenchError, match=r"p\.yaml at trigger .*unknown key 'trigger'"):
        load_cohort(cohort, extra)


def test_placeholder_not_filled_by_predicates_file(tmp_path):
    cohort = write_config(tmp_path, mutated(predicates__death={"code": "???"}))
    extra = write_config(tmp_path, {"predicates": {"admission": {"code": "A"}}}, "p.yaml")
    with pytest.raises(EhrbenchError, match=r"cohort\.yaml at predicates\.death\.code .*'death'"):
        load_cohort(cohort, extra)


# --- robustness: any YAML whatsoever gives a cohort or an EhrbenchError, never a traceback ---

_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        ["???", "", "a", "death", "trigger", "start + 1h", "end <- a", "(1, None)", "or(a, b)"]
    ),
    st.text(max_size=8),
)
_KEYS = st.sampled_from(
    [
        "a",
        "death",
        "code",
        "expr",
        "regex",
        "any",
        "start",
        "end",
        "has",
        "label",
        "1",
        "_ANY_EVENT",
    ]
    + ["start_inclusive", "end_inclusive", "index_timestamp", "value_min", "static", "other_cols"]
)
_TREES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=12,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    config=st.fixed_dictionaries(
        {},
        optional={
            "predicates": _TREES,
            "trigger": _TREES,
            "windows": _TREES,
            "patient_demographics": _TREES,
        },
    )
)
def test_any_yaml_gives_a_cohort_or_a_clear_error(tmp_path, config):
    path = write_config(tmp_path, config)
    try:
        load_cohort(path)
    except EhrbenchError as exc:
        assert str(path) in str(exc)
