"""A tiny synthetic dataset and suite for the runner, demo and report tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from meds_builders import write_meds_folder

from ehrbench.logs import ROOT, configure
from ehrbench.synth.generator import generate_events

REPO = Path(__file__).resolve().parents[1]
COHORTS = REPO / "cohorts"
PREDICATES = COHORTS / "predicates" / "synthetic.yaml"
# Readmission has a prevalence of about 16%: enough positives in every split at 400 subjects.
COHORT = "readmission_30d"


def tiny_dataset(root: Path, subjects: int = 400, seed: int = 0) -> Path:
    """A small synthetic MEDS folder (two shards, stable hash splits) at `root`."""
    events = generate_events(subjects, seed)
    return write_meds_folder(root, events, shards=2, dataset_json={"dataset_name": "tiny"})


def tiny_suite(folder: Path, dataset: Path, **changes) -> Path:
    """Write a fast suite (one cohort, logreg and lightgbm, k in {4, all}, seeds 0 and 1)."""
    suite = {
        "name": "tiny",
        "dataset": {"path": str(dataset)},
        "predicates": str(PREDICATES),
        "cohorts_dir": str(COHORTS),
        "cohorts": [COHORT],
        "models": ["logreg", "lightgbm"],
        "baseline": "logreg",
        "k": [4, "all"],
        "seeds": [0, 1],
        "features": {"tabular": {"windows": ["30d", "full"], "min_count": 10}},
        "grids": {
            "logreg": [{"C": 0.01}, {"C": 0.1}],
            "lightgbm": [{"num_leaves": 8, "learning_rate": 0.1, "n_estimators": 50}],
        },
        "bootstrap": {"resamples": 100, "seed": 0},
        "output": str(folder / "out"),
    }
    suite.update(changes)
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return path


@contextmanager
def captured_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Show the `ehrbench` messages as the command line does, and also keep them in `caplog`."""
    configure(0)  # INFO and above, to the current stderr
    logger = logging.getLogger(ROOT)
    logger.addHandler(caplog.handler)
    try:
        yield
    finally:
        logger.removeHandler(caplog.handler)
