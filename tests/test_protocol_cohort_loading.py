"""A suite's cohorts: extracted together in one pass, each folder as its own extraction."""

from __future__ import annotations

import json
import shutil

import pytest
from protocol_helpers import COHORTS, PREDICATES, captured_logs, tiny_dataset, tiny_suite

from ehrbench.cohort.artifact import ExtractionFiles
from ehrbench.cohort.config import load_cohort
from ehrbench.cohort.extract import extract
from ehrbench.meds import open_dataset
from ehrbench.protocol.prepare import load_cohorts
from ehrbench.protocol.suite import load_suite

GOOD = ["readmission_30d", "mortality_in_hospital", "lab_anemia", "long_los"]
EXTRACTED_FILES = ["labels.parquet", "labels.manifest.json", "attrition.json", "attrition.txt"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return open_dataset(tiny_dataset(tmp_path_factory.mktemp("loading") / "meds"))


@pytest.fixture
def cohorts_dir(tmp_path):
    """The library cohorts used here, and a cohort file that cannot be loaded."""
    folder = tmp_path / "cohorts"
    folder.mkdir()
    for name in GOOD:
        shutil.copy(COHORTS / f"{name}.yaml", folder)
    (folder / "broken.yaml").write_text("trigger: [unclosed\n", encoding="utf-8")
    return folder


def suite_of(tmp_path, dataset, cohorts_dir, names):
    path = tiny_suite(tmp_path, dataset.root, cohorts_dir=str(cohorts_dir), cohorts=names)
    return load_suite(path)


def test_each_folder_is_byte_identical_to_its_own_extraction(tmp_path, dataset, cohorts_dir):
    suite = suite_of(tmp_path, dataset, cohorts_dir, GOOD)
    cohorts, errors = load_cohorts(suite, dataset, dataset.subject_splits())
    assert list(cohorts) == GOOD and errors == {}
    for name in GOOD:
        alone = tmp_path / "alone" / name
        files = ExtractionFiles(
            labels=alone / "labels.parquet",
            attrition=alone / "attrition.json",
            attrition_text=alone / "attrition.txt",
        )
        extract(load_cohort(cohorts_dir / f"{name}.yaml", PREDICATES), dataset).write(files)
        folder = suite.output / "cohorts" / name
        for file in EXTRACTED_FILES:
            assert (folder / file).read_bytes() == (alone / file).read_bytes(), (name, file)
        record = json.loads((folder / "cohort.json").read_text(encoding="utf-8"))
        assert record["cohort"] == name and record["all"] == cohorts[name].summary["all"]


def test_a_broken_cohort_is_skipped_and_the_others_extract_in_one_pass(
    tmp_path, dataset, cohorts_dir, caplog
):
    suite = suite_of(tmp_path, dataset, cohorts_dir, [GOOD[0], "broken", *GOOD[1:]])
    with captured_logs(caplog):
        cohorts, errors = load_cohorts(suite, dataset, dataset.subject_splits())
    assert list(cohorts) == GOOD and list(errors) == ["broken"]
    assert "broken.yaml" in str(errors["broken"])
    passes = [r.getMessage() for r in caplog.records if "in one pass" in r.getMessage()]
    assert passes == [f"extracting {len(GOOD)} cohort(s) in one pass: {', '.join(GOOD)}"]
    assert not (suite.output / "cohorts" / "broken").exists()


def test_a_rerun_reuses_every_extraction(tmp_path, dataset, cohorts_dir, caplog):
    suite = suite_of(tmp_path, dataset, cohorts_dir, GOOD)
    first, _ = load_cohorts(suite, dataset, dataset.subject_splits())
    records = {n: suite.output / "cohorts" / n / "cohort.json" for n in GOOD}
    written = {n: path.stat().st_mtime_ns for n, path in records.items()}
    caplog.clear()
    with captured_logs(caplog):
        again, errors = load_cohorts(suite, dataset, dataset.subject_splits())
    assert errors == {} and list(again) == GOOD
    assert not [r for r in caplog.records if "in one pass" in r.getMessage()]
    assert {n: path.stat().st_mtime_ns for n, path in records.items()} == written
    for name in GOOD:
        assert again[name].labels.equals(first[name].labels)


def test_only_the_cohorts_whose_key_changed_are_extracted_again(
    tmp_path, dataset, cohorts_dir, caplog
):
    suite = suite_of(tmp_path, dataset, cohorts_dir, GOOD)
    load_cohorts(suite, dataset, dataset.subject_splits())
    changed = cohorts_dir / f"{GOOD[1]}.yaml"
    changed.write_text(changed.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    caplog.clear()
    with captured_logs(caplog):
        cohorts, _ = load_cohorts(suite, dataset, dataset.subject_splits())
    passes = [r.getMessage() for r in caplog.records if "in one pass" in r.getMessage()]
    assert passes == [f"extracting 1 cohort(s) in one pass: {GOOD[1]}"]
    assert list(cohorts) == GOOD
