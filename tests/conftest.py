"""Shared pytest set-up: a deterministic hypothesis profile for CI, and the shared eICU demo.

Locally, property tests draw new examples on every run, which is how they find new bugs. Under
CI (`CI=true`), they draw the same examples every time, so a submission's CI verdict depends on
its code and not on luck; bugs found locally are kept as explicit examples or unit tests.

`eicu_src` is the shared eICU demo folder (`../shared/data/eicu_demo_subset`; a test using it
skips when it is absent) and `eicu_meds` its conversion, made once per session for the tests of
the import and of the cohorts on it; `mimic_meds` is the shared MIMIC-IV demo converted once per
session likewise. `synthetic_with_labels` is a small valid synthetic dataset and
a label table extracted from it, for the tests that break a copy of one of them.
"""

import os
from pathlib import Path

import pytest
from hypothesis import settings
from meds_builders import synthetic_mortality

from ehrbench.cli import main

settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

SHARED = Path(__file__).parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def eicu_src() -> Path:
    """The shared eICU demo folder of CSV tables."""
    folder = (SHARED / "eicu_demo_subset").resolve()
    if not (folder / "patient.csv").exists():
        pytest.skip(f"../shared/data not present: no eICU demo at {folder}")
    return folder


@pytest.fixture(scope="session")
def eicu_meds(eicu_src, tmp_path_factory) -> Path:
    """The shared eICU demo converted to a MEDS folder by `ehrbench import-eicu-demo`."""
    out = tmp_path_factory.mktemp("eicu") / "meds"
    assert main(["import-eicu-demo", str(eicu_src), str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def mimic_meds(tmp_path_factory) -> Path:
    """The shared MIMIC-IV demo converted to a MEDS folder by `ehrbench import-mimic-demo`."""
    source = (SHARED / "mimic_iv_demo_meds").resolve()
    if not (source / "mimic_iv_demo_meds_events.parquet").exists():
        pytest.skip(f"../shared/data not present: no MIMIC-IV demo at {source}")
    out = tmp_path_factory.mktemp("mimic") / "meds"
    assert main(["import-mimic-demo", str(source), str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def synthetic_with_labels(tmp_path_factory) -> tuple[Path, Path]:
    """A valid 40-subject synthetic MEDS folder and its in-hospital mortality labels."""
    return synthetic_mortality(tmp_path_factory.mktemp("synthetic"), 40)
