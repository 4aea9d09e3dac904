"""Every library cohort extracts on the synthetic dataset with both label classes present."""

from __future__ import annotations

from pathlib import Path

import pytest

from ehrbench.cli import main
from ehrbench.cohort.config import load_cohort
from ehrbench.cohort.extract import extract
from ehrbench.cohort.library import cohort_paths, predicates_paths
from ehrbench.meds import open_dataset

# Small enough to be quick, large enough that the rarest labels (hypoglycemia and the new
# diagnoses within a year, prevalence about 4-8%) have positives.
N_SUBJECTS = 1000
SEED = 0
# The new-diagnosis cohorts need enough positives for few-shot runs (k = 32..128) on a few
# thousand subjects: the generator makes these conditions start during the record.
NEW_DIAGNOSIS_PREVALENCE = (0.04, 0.15)
NEW_DIAGNOSES = ("new_hypertension", "new_hyperlipidemia", "new_diabetes", "new_acute_mi")


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> Path:
    """One `ehrbench synth` dataset shared by every test of this module."""
    root = tmp_path_factory.mktemp("library_synthetic") / "meds"
    args = ["synth", "--subjects", str(N_SUBJECTS), "--seed", str(SEED), "--out", str(root)]
    assert main(args) == 0
    return root


@pytest.mark.parametrize("path", cohort_paths(), ids=lambda p: p.stem)
def test_cohort_extracts_both_classes_on_synthetic_data(synthetic, path):
    cohort = load_cohort(path, predicates_paths()["synthetic"])
    result = extract(cohort, open_dataset(synthetic, deep=False))
    assert result.warnings == ()  # an empty or one-class cohort warns
    labels = result.labels
    positives = int(labels["boolean_value"].sum())
    assert labels.height >= 100
    assert 0 < positives < labels.height
    assert labels["prediction_time"].null_count() == 0
    if path.stem in NEW_DIAGNOSES:
        low, high = NEW_DIAGNOSIS_PREVALENCE
        assert low <= positives / labels.height <= high, (positives, labels.height)


def test_cohorts_command_picks_the_synthetic_predicates(synthetic, capsys):
    """`ehrbench cohorts --data` finds `synthetic.yaml` from the dataset's name, no error row."""
    assert main(["cohorts", "--data", str(synthetic)]) == 0
    captured = capsys.readouterr()
    assert "predicates/synthetic.yaml" in captured.err
    rows = [line.split() for line in captured.out.splitlines()[1:]]
    assert [row[0] for row in rows] == [path.stem for path in cohort_paths()]
    assert all(row[1] != "error" and float(row[3]) > 0 for row in rows)
