"""Every library cohort extracts on the synthetic dataset with its label classes present (both
for a boolean label, the levels for a class label, varied lengths for a length of stay)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ehrbench.cli import main
from ehrbench.cohort.config import load_cohort
from ehrbench.cohort.extract import extract
from ehrbench.cohort.library import cohort_paths, library_dir, predicates_paths
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
    assert labels.height >= 100
    assert labels["prediction_time"].null_count() == 0
    values = labels[cohort.label_column]
    assert values.null_count() == 0
    if cohort.label_column == "categorical_value":
        # The four EHRSHOT levels: at least normal, mild and moderate occur, nothing else.
        assert {"normal", "mild", "moderate"} <= set(values) <= set(cohort.label_classes)
        return
    if cohort.label_column == "float_value":
        # Length of stay in days: every stay in the cohort lasts more than its first 24 h.
        assert values.min() > 1 and values.n_unique() > labels.height // 2
        return
    positives = int(values.sum())
    assert 0 < positives < labels.height
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
    assert all(row[1] != "error" for row in rows)
    # Boolean cohorts show a prevalence; the others (a duration or class label) leave it blank.
    boolean = [row for row in rows if not row[0].endswith("_levels") and row[0] != "length_of_stay"]
    assert all(float(row[3]) > 0 for row in boolean)


def _extracted(synthetic: Path, name: str):
    cohort = load_cohort(library_dir() / f"{name}.yaml", predicates_paths()["synthetic"])
    return extract(cohort, open_dataset(synthetic, deep=False)).labels


def test_cohorts_built_on_mortality_keep_its_rows(synthetic):
    """The ICU first-day cohort (triggered on mortality_in_hospital's rows) keeps their labels;
    length of stay has the same rows; the adults-only variant is a subset (all adults here)."""
    keys = ["subject_id", "prediction_time"]
    mortality = _extracted(synthetic, "mortality_in_hospital")
    icu = _extracted(synthetic, "mortality_in_hospital_icu_first_day")
    assert 0 < icu.height < mortality.height
    joined = icu.join(mortality, on=keys, how="left", suffix="_all")
    assert joined["boolean_value"].equals(joined["boolean_value_all"], check_names=False)
    assert _extracted(synthetic, "length_of_stay").select(keys).equals(mortality.select(keys))
    adults = _extracted(synthetic, "mortality_in_hospital_adults")
    assert adults.select(keys).join(mortality, on=keys, how="anti").is_empty()


def test_level_cohorts_binarise_to_the_lab_cohorts(synthetic):
    """Each four-level lab cohort, cut at mild, gives its binary lab cohort's labels."""
    for lab in ("anemia", "hyperkalemia", "hypoglycemia", "hyponatremia", "thrombocytopenia"):
        binary = _extracted(synthetic, f"lab_{lab}")
        levels = _extracted(synthetic, f"lab_{lab}_levels")
        cut = levels["categorical_value"] != "normal"
        assert binary["boolean_value"].equals(cut, check_names=False), lab
