"""An on-disk cache of computed features.

An entry is keyed by everything its content depends on: the kind of features, the dataset's
fingerprint (shard and metadata paths, sizes, mtimes), a hash of the label rows (subject_id and
prediction_time, in order), the feature config and the fitting split(s). Any change gives a new
key, so a stale entry is never read. An entry is built in a temporary folder and renamed into
place, so an interrupted run leaves no half entry behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

import numpy as np
import polars as pl

from ehrbench.digest import json_digest
from ehrbench.features.events import normalise_splits, row_frame
from ehrbench.features.sequence import SequenceConfig, SequenceFeatures, build_sequences
from ehrbench.features.tabular import TabularConfig, TabularFeatures, build_tabular
from ehrbench.io import atomic_path
from ehrbench.meds import MedsDataset

# Bump when the meaning or layout of cached features changes.
CACHE_FORMAT = 1
T = TypeVar("T")


def labels_digest(labels: pl.DataFrame) -> str:
    """SHA-256 of the label rows' subject_id and prediction_time (microseconds), in order."""
    rows = row_frame(labels)
    digest = hashlib.sha256()
    digest.update(rows["subject_id"].to_numpy().astype("<i8").tobytes())
    times = rows["prediction_time"].cast(pl.Int64).fill_null(np.iinfo(np.int64).min)
    digest.update(times.to_numpy().astype("<i8").tobytes())
    return digest.hexdigest()


def cache_key(kind: str, dataset: MedsDataset, labels: pl.DataFrame, config, fit_split) -> str:
    """The key of the features of `kind` for these inputs (a hex string)."""
    payload = {
        "format": CACHE_FORMAT,
        "kind": kind,
        "dataset": dataset.fingerprint(),
        "labels": labels_digest(labels),
        "config": asdict(config),
        "fit_split": list(normalise_splits(fit_split)),
    }
    return json_digest(payload, length=24)


def entry_path(
    kind: str, dataset: MedsDataset, labels: pl.DataFrame, config, fit_split, cache_dir
) -> Path:
    """The cache folder of the features of `kind` ("tabular" or "sequence") for these inputs."""
    return Path(cache_dir) / f"{kind}-{cache_key(kind, dataset, labels, config, fit_split)}"


def copy_entry(entry: Path, names: tuple[str, ...], out: str | Path) -> None:
    """Copy the files `names` of a cache entry into `out`, each atomically."""
    for name in names:
        with atomic_path(Path(out) / name) as tmp:
            shutil.copyfile(entry / name, tmp)


def _cached(
    entry: Path, build: Callable[[], T], save: Callable[[T, Path], None], load: Callable[[Path], T]
) -> tuple[T, bool]:
    """Load `entry` if it exists, else build, save into a temporary folder and rename it."""
    if entry.is_dir():
        return load(entry), True
    value = build()
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        save(value, tmp)
        try:
            os.replace(tmp, entry)
        except OSError:
            if not entry.is_dir():  # not a concurrent run that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return value, False


def cached_tabular(
    dataset: MedsDataset,
    labels: pl.DataFrame,
    config: TabularConfig,
    fit_split: str | tuple[str, ...],
    cache_dir: str | Path,
) -> tuple[TabularFeatures, bool]:
    """`build_tabular`, reusing a cached result; returns (features, whether it was cached)."""
    return _cached(
        entry_path("tabular", dataset, labels, config, fit_split, cache_dir),
        lambda: build_tabular(dataset, labels, config, fit_split),
        lambda features, path: features.save(path),
        TabularFeatures.load,
    )


def cached_sequences(
    dataset: MedsDataset,
    labels: pl.DataFrame,
    config: SequenceConfig,
    fit_split: str | tuple[str, ...],
    cache_dir: str | Path,
) -> tuple[SequenceFeatures, bool]:
    """`build_sequences`, reusing a cached result; returns (features, whether it was cached)."""
    return _cached(
        entry_path("sequence", dataset, labels, config, fit_split, cache_dir),
        lambda: build_sequences(dataset, labels, config, fit_split),
        lambda features, path: features.save(path),
        SequenceFeatures.load,
    )
