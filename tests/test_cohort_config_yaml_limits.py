"""YAML limits of cohort and predicates files: size is free, alias expansion and depth are not,
and loader internals never reach a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from ehrbench.cli import main
from ehrbench.cohort.config import load_cohort

REPO = Path(__file__).resolve().parents[1]
COHORT = REPO / "cohorts" / "mortality_in_hospital.yaml"
PREDICATES = """\
predicates:
  admission: {code: {regex: "^HOSPITAL_ADMISSION//"}}
  discharge: {code: {regex: "^HOSPITAL_DISCHARGE//"}}
"""

BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
        *(
            f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]"
            for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "predicates: *i",
        "trigger: admission",
    ]
)


def _write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_predicate_with_12000_codes_loads(tmp_path):
    codes = "".join(f'      - "ICD10//A{i:05d}"\n' for i in range(12_000))
    path = _write(tmp_path, PREDICATES + "  death:\n    code:\n      any:\n" + codes)
    cohort = load_cohort(COHORT, path)
    assert len(cohort.predicates["death"].code.values) == 12_000


def test_a_few_aliases_are_fine(tmp_path):
    text = PREDICATES + "  death: &d {code: MEDS_DEATH}\n  also_death: *d\n"
    assert load_cohort(COHORT, _write(tmp_path, text)).predicates["death"]


def test_a_billion_laughs_is_refused_before_it_is_built(tmp_path, capsys):
    path = _write(tmp_path, BILLION_LAUGHS, "bomb.yaml")
    assert main(["cohort", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"In {path}: its aliases" in err and "alias bomb" in err and "100,000" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("predicates:\n  null: {code: X}\n", "at predicates.null (line 2): a key is null"),
        ("predicates:\n  ~: {code: X}\n", "(line 2): a key is null"),
        ("predicates: !!set {a, b}\n", "at predicates (line 1): holds a value tagged !!set"),
        ("predicates:\n  a: !!binary aGVsbG8=\n", "at predicates.a (line 2): holds a value tagged"),
        ("predicates:\n  a: !custom x\n", "at predicates.a (line 2): holds a value tagged !custom"),
        ("predicates:\n  ? [a, b]\n  : {code: X}\n", "a key is a sequence"),
        ("predicates: &p\n  a: *p\n", "(a cycle)"),
        ("predicates:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 150)) + "  " * 150
         + "x: 1\n", "nested more than 100 levels deep"),
        ("predicates:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 1500)) + "  " * 1500
         + "x: 1\n", "nested more than 100 levels deep"),
        ("predicates: " + "[" * 3000 + "]" * 3000 + "\n", "nested more than 100 levels deep"),
        ("predicates: " + "[" * 500 + "]" * 500 + "\n", "nested more than 100 levels deep"),
    ],
)  # fmt: skip
def test_loader_problems_read_in_house_style(tmp_path, capsys, text, expected):
    path = _write(tmp_path, text, "bad.yaml")
    assert main(["cohort", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: In {path}") and expected in err, err
    assert "full_key" not in err and "recursion" not in err and len(err.splitlines()) == 1, err
