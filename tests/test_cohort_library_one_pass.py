"""`ehrbench cohorts extract`: the library in one read, each cohort's files as its own extraction.

Byte identity is checked file by file (labels, attrition JSON, manifest) against
`ehrbench cohort extract` of each cohort alone, on synthetic data and, when `../shared/data` is
present, on the MIMIC-IV and eICU demos.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml

from ehrbench.cli import main
from ehrbench.cohort.config import load_cohort
from ehrbench.cohort.extract import extract
from ehrbench.cohort.library import DatasetNotes, library_dir, list_cohorts, predicates_paths
from ehrbench.cohort.model import ExactCode
from ehrbench.cohort.one_pass import extract_many
from ehrbench.meds import open_dataset

SUFFIXES = (".parquet", ".attrition.json", ".manifest.json")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """A 300-subject synthetic MEDS folder in two shards."""
    from ehrbench.synth.dataset import generate_dataset

    root = tmp_path_factory.mktemp("one_pass") / "meds"
    generate_dataset(root, n_subjects=300, seed=0, n_shards=2)
    return root


def _one_pass(data: Path, predicates: Path, out: Path, *extra: str) -> int:
    argv = ["-q", "cohorts", "extract", "--data", str(data), "--predicates", str(predicates)]
    return main([*argv, "--out", str(out), *extra])


def _one_by_one(data: Path, predicates: Path, out: Path, names: list[str]) -> None:
    for name in names:
        cohort = library_dir() / f"{name}.yaml"
        argv = ["-q", "cohort", "extract", str(cohort), "--predicates", str(predicates)]
        assert main([*argv, "--data", str(data), "--out", str(out / f"{name}.parquet")]) == 0


def _assert_identical(data: Path, predicates: Path, tmp_path: Path) -> None:
    skipped = DatasetNotes.read(predicates).not_expressible
    names = [c.name for c in list_cohorts() if c.name not in skipped]
    assert _one_pass(data, predicates, tmp_path / "one_pass") == 0
    _one_by_one(data, predicates, tmp_path / "single", names)
    written = sorted(p.name for p in (tmp_path / "one_pass").iterdir())
    assert written == sorted(f"{name}{suffix}" for name in names for suffix in SUFFIXES)
    for file in written:
        one_pass = (tmp_path / "one_pass" / file).read_bytes()
        assert one_pass == (tmp_path / "single" / file).read_bytes(), file


def test_synthetic_library_byte_identical(synthetic, tmp_path):
    _assert_identical(synthetic, predicates_paths()["synthetic"], tmp_path)


def test_mimic_library_byte_identical(mimic_meds, tmp_path):
    _assert_identical(mimic_meds, predicates_paths()["mimic_iv"], tmp_path)


def test_eicu_library_byte_identical_and_skips_not_expressible(eicu_meds, tmp_path, capsys):
    predicates = predicates_paths()["eicu"]
    _assert_identical(eicu_meds, predicates, tmp_path)
    skipped = DatasetNotes.read(predicates).not_expressible
    assert skipped
    err = capsys.readouterr().err
    for name, reason in skipped.items():
        assert f"skipped {name}: {reason}" in err


def test_same_name_defined_differently_gives_each_its_labels(synthetic):
    """Two cohorts define `death` differently: each gets the labels of its own definition."""
    predicates = predicates_paths()["synthetic"]
    mortality = load_cohort(library_dir() / "mortality_in_hospital.yaml", predicates)
    label = mortality.label_window.label
    changed = dataclasses.replace(mortality.predicates[label], code=ExactCode("NO_SUCH_CODE"))
    never = dataclasses.replace(mortality, predicates={**mortality.predicates, label: changed})
    cohorts = {"mortality": mortality, "never": never}
    dataset = open_dataset(synthetic, validate=False)
    results, failures = extract_many(cohorts, dataset)
    assert failures == {}
    for name, cohort in cohorts.items():
        alone = extract(cohort, dataset)
        assert results[name].labels.equals(alone.labels)
        assert results[name].attrition == alone.attrition
    assert results["mortality"].labels["boolean_value"].any()
    assert not results["never"].labels["boolean_value"].any()


def test_only_extracts_the_named_cohorts(synthetic, tmp_path):
    out = tmp_path / "out"
    predicates = predicates_paths()["synthetic"]
    assert _one_pass(synthetic, predicates, out, "--only", "readmission_30d,long_los") == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{n}{s}" for n in ("long_los", "readmission_30d") for s in SUFFIXES)


def test_only_refuses_an_unknown_cohort(synthetic, tmp_path, capsys):
    predicates = predicates_paths()["synthetic"]
    assert _one_pass(synthetic, predicates, tmp_path / "out", "--only", "long_lso") != 0
    err = capsys.readouterr().err
    assert "long_lso" in err and "long_los" in err
    assert not (tmp_path / "out").exists()


def test_not_expressible_cohort_is_skipped_with_its_reason(synthetic, tmp_path, capsys):
    raw = yaml.safe_load(predicates_paths()["synthetic"].read_text())
    raw["metadata"] = {"not_expressible": {"long_los": "no discharge times here"}}
    predicates = tmp_path / "predicates.yaml"
    predicates.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    assert _one_pass(synthetic, predicates, out, "--only", "long_los,mortality_icu") == 0
    assert "skipped long_los: no discharge times here" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == sorted(f"mortality_icu{s}" for s in SUFFIXES)


def test_a_cohort_that_fails_to_load_leaves_the_others(synthetic, tmp_path, capsys):
    library = tmp_path / "library"
    shutil.copytree(library_dir(), library)
    (library / "broken.yaml").write_text("trigger: nothing_defined\n")
    out = tmp_path / "out"
    argv = ["--library", str(library), "--only", "broken,long_los"]
    assert _one_pass(synthetic, library / "predicates" / "synthetic.yaml", out, *argv) == 1
    assert "broken:" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == sorted(f"long_los{s}" for s in SUFFIXES)


def test_existing_outputs_are_kept_unless_overwrite(synthetic, tmp_path, capsys):
    predicates = predicates_paths()["synthetic"]
    out = tmp_path / "out"
    assert _one_pass(synthetic, predicates, out, "--only", "long_los") == 0
    assert _one_pass(synthetic, predicates, out, "--only", "long_los") != 0
    assert "--overwrite" in capsys.readouterr().err
    assert _one_pass(synthetic, predicates, out, "--only", "long_los", "--overwrite") == 0


def test_output_inside_the_dataset_is_refused(synthetic, tmp_path, capsys):
    predicates = predicates_paths()["synthetic"]
    assert _one_pass(synthetic, predicates, synthetic / "data" / "labels") != 0
    assert "inside the dataset's data folder" in capsys.readouterr().err
