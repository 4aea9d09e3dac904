"""Concept maps: each map's concepts resolve on its dataset, values are in the stated unit, the
featurisers read concepts under `vocabulary: concepts`, and a malformed map is a clear error."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ehrbench.cohort.config import load_cohort
from ehrbench.cohort.extract import extract
from ehrbench.errors import EhrbenchError
from ehrbench.features.concepts import (
    concept_dataset,
    concept_map_path,
    load_concept_map,
)
from ehrbench.features.config import SequenceConfig, TabularConfig
from ehrbench.features.sequence import build_sequences
from ehrbench.features.tabular import build_tabular, fit_tabular, transform_tabular
from ehrbench.meds import open_dataset
from ehrbench.synth import generate_dataset

COHORTS = Path(__file__).parents[1] / "cohorts"
# Plausible medians in each concept's stated unit, for every dataset.
MEDIANS = {
    "sodium": (130, 145),
    "potassium": (3.5, 5.0),
    "creatinine": (0.6, 2.0),
    "glucose": (90, 180),
    "hemoglobin": (8, 15),
    "platelets": (120, 320),
    "heart_rate": (60, 110),
    "temperature": (36, 38),
}


def _concept_events(root: Path) -> pl.DataFrame:
    dataset = concept_dataset(open_dataset(root, deep=False))
    return pl.concat([dataset.read_shard(shard) for shard in dataset.shards])


def _check_map(root: Path, name: str) -> None:
    events = _concept_events(root)
    cmap = load_concept_map(concept_map_path(name))
    assert set(cmap.units) <= set(events["code"])  # every concept resolves on the dataset
    assert set(events["code"]) <= set(cmap.units) | {"MEDS_BIRTH", "MEDS_DEATH"}
    for concept, (low, high) in MEDIANS.items():
        values = events.filter(pl.col("code") == concept)["numeric_value"].drop_nulls()
        if concept in cmap.units and values.len():
            assert low < values.median() < high, (name, concept, values.median())
    for concept, unit in cmap.units.items():
        if unit is None:  # an event: no values
            assert events.filter(pl.col("code") == concept)["numeric_value"].null_count() == (
                events.filter(pl.col("code") == concept).height
            )


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sites")
    return {
        site: generate_dataset(folder / site, 300, seed=2, site=site).root for site in ("A", "B")
    }


def test_synthetic_map_both_sites(sites):
    for root in sites.values():
        _check_map(root, "synthetic")


def test_mimic_map(mimic_meds):
    _check_map(mimic_meds, "mimic_iv")


def test_eicu_map(eicu_meds):
    _check_map(eicu_meds, "eicu")


def _labels(root: Path) -> pl.DataFrame:
    cohort = load_cohort(
        COHORTS / "mortality_in_hospital.yaml", COHORTS / "predicates" / "synthetic.yaml"
    )
    return extract(cohort, open_dataset(root)).labels


def test_concept_features_transfer_between_sites(sites):
    """Fitted at site A, the concept vocabulary gives site B rows the same columns, and
    site B's Celsius temperature lands in A's temperature columns."""
    config = TabularConfig(windows=("full",), vocabulary="concepts")
    a, b = open_dataset(sites["A"]), open_dataset(sites["B"])
    labels_a, labels_b = _labels(sites["A"]), _labels(sites["B"])
    features_a = build_tabular(a, labels_a, config)
    assert "temperature/value/last/full" in features_a.feature_names
    assert not any(name.startswith("LAB//") for name in features_a.feature_names)
    features_b = transform_tabular(b, labels_b, features_a.vocabulary)
    assert features_b.feature_names == features_a.feature_names
    column = features_a.feature_names.index("temperature/value/last/full")
    last_b = features_b.matrix[:, column].toarray().ravel()
    assert 35 < np.median(last_b[last_b > 0]) < 40
    # the code vocabulary of site A does not see site B's temperature at all
    codes = fit_tabular(a, labels_a, np.ones(labels_a.height, bool), TabularConfig(("full",)))
    assert "LAB//223762//°C" not in codes.codes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sodium: {}\n", "a concept map is a mapping with one key, `concepts`"),
        ("concepts:\n  sodium: {unit: mmol/L}\n", "at concepts.sodium.codes (line 2)"),
        (
            "concepts:\n  sodium:\n    unit: mmol/L\n    codes: [{code: X, multiply: two}]\n",
            "at concepts.sodium.codes.0.multiply (line 4): expected a finite number",
        ),
        (
            "concepts:\n  admission:\n    codes: [{code: X, add: 1}]\n",
            "concept 'admission' has no `unit` to convert them to",
        ),
        (
            "concepts:\n  sodium:\n    units: mmol/L\n    codes: [{code: X}]\n",
            "unknown key(s) ['units']; expected ['unit', 'codes', 'description']",
        ),
        (
            "concepts:\n  sodium:\n    codes: [{code: {regex: '('}}]\n",
            "at concepts.sodium.codes.0.code.regex (line 3): invalid regular expression",
        ),
    ],
)
def test_malformed_map_is_a_clear_error(tmp_path, text, expected):
    path = tmp_path / "map.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(EhrbenchError) as error:
        load_concept_map(path)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_vocabulary_setting_is_checked():
    with pytest.raises(EhrbenchError, match="vocabulary is 'concept'"):
        TabularConfig(vocabulary="concept")


def test_sequences_read_concepts(sites):
    dataset, labels = open_dataset(sites["B"]), _labels(sites["B"])
    config = SequenceConfig(max_events=32, vocabulary="concepts")
    sequences = build_sequences(dataset, labels, config)
    assert "temperature" in sequences.vocabulary
    assert not any(code.startswith("LAB//") for code in sequences.vocabulary)
    assert sequences.static_codes == ["sex_female", "sex_male"]
