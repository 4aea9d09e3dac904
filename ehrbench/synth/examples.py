"""A tiny synthetic dataset and label table, for the examples in docstrings (run as doctests)."""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import shutil
import tempfile
from pathlib import Path

import polars as pl

from ehrbench.meds import MedsDataset, open_dataset
from ehrbench.synth.dataset import generate_dataset


@functools.cache
def example_inputs() -> tuple[MedsDataset, pl.DataFrame]:
    """A 30-subject synthetic dataset (made once per process, removed at exit) and two label rows.

    >>> dataset, labels = example_inputs()
    >>> labels.height, len(dataset.shards)
    (2, 3)
    """
    folder = Path(tempfile.mkdtemp(prefix="ehrbench-example-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    dataset = open_dataset(generate_dataset(folder / "meds", n_subjects=30, seed=0).root)
    labels = pl.DataFrame(
        {"subject_id": [10000001, 10000003], "prediction_time": [dt.datetime(2160, 1, 1)] * 2}
    )
    return dataset, labels
