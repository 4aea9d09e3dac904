"""An on-disk cache of computed features.

An entry is keyed by everything its content depends on: the kind of features, the dataset's
fingerprint (shard and metadata paths, sizes, mtimes), a hash of the label rows (subject_id and
prediction_time, in order), the feature config and the fitting split(s). Any change gives a new
key, so a stale entry is never read. An entry is built in a temporary folder and renamed into
place, so an interrupted run leaves no half entry behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import polars as pl

from ehrbench.digest import json_digest
from ehrbench.errors import EhrbenchError
from ehrbench.features.concepts import featurised_dataset
from ehrbench.features.config import config_record
from ehrbench.features.kinds import FeatureKind
from ehrbench.features.rows import normalise_splits, row_frame
from ehrbench.io import DAMAGED_FILE_ERRORS, file_set, folder_made, naming
from ehrbench.meds import MedsDataset

# Bump when the meaning or layout of cached features changes.
CACHE_FORMAT = 1
logger = logging.getLogger(__name__)
T = TypeVar("T")


def labels_digest(labels: pl.DataFrame) -> str:
    """SHA-256 of the label rows' subject_id and prediction_time (microseconds), in order."""
    rows = row_frame(labels)
    digest = hashlib.sha256()
    digest.update(rows["subject_id"].to_numpy().astype("<i8").tobytes())
    times = rows["prediction_time"].cast(pl.Int64).fill_null(np.iinfo(np.int64).min)
    digest.update(times.to_numpy().astype("<i8").tobytes())
    return digest.hexdigest()


def cache_key(
    kind: FeatureKind, dataset: MedsDataset, labels: pl.DataFrame, config, fit_split
) -> str:
    """The key of the features of `kind` for these inputs (a hex string)."""
    payload = {
        "format": CACHE_FORMAT,
        "kind": kind.name,
        "dataset": featurised_dataset(dataset, config).fingerprint(),
        "labels": labels_digest(labels),
        "config": config_record(config),
        "fit_split": list(normalise_splits(fit_split)),
    }
    return json_digest(payload, length=24)


def entry_path(
    kind: FeatureKind, dataset: MedsDataset, labels: pl.DataFrame, config, fit_split, cache_dir
) -> Path:
    """The cache folder of the features of `kind` for these inputs: `<kind name>-<key>`."""
    key = cache_key(kind, dataset, labels, config, fit_split)
    return Path(cache_dir) / f"{kind.name}-{key}"


def copy_entry(entry: Path, kind: FeatureKind, out: str | Path) -> None:
    """Copy the files of a cache entry of `kind` into `out`, as one set with its manifest."""
    targets = [Path(out) / name for name in kind.outputs]
    with file_set(targets, kind.manifest(out)) as temporary:
        for target in targets:
            shutil.copyfile(entry / target.name, temporary[target])


def cached(
    kind: FeatureKind,
    dataset: MedsDataset,
    labels: pl.DataFrame,
    config: Any,
    fit_split: str | Iterable[str],
    cache_dir: str | Path,
) -> tuple[Any, bool]:
    """`kind.build(...)`, reusing a cached result; returns (features, whether it was cached).

    A missing entry is built, saved into a temporary folder and renamed into place.
    """
    entry = entry_path(kind, dataset, labels, config, fit_split, cache_dir)
    if entry.is_dir():
        logger.debug("%s features from the cache entry %s", kind.name, entry)
        return kind.load(entry), True
    features = kind.build(dataset, labels, config, fit_split)
    _fill_entry(entry, kind, features.save)
    return features, False


def cached_files(
    kind: FeatureKind,
    dataset: MedsDataset,
    labels: pl.DataFrame,
    config: Any,
    fit_split: str | Iterable[str],
    cache_dir: str | Path,
) -> tuple[Path, tuple[int, ...], bool]:
    """The cache entry of these features, written by `kind.write` if missing (so the features
    are never held whole where the kind can stream them): (entry, the features' shape, whether
    it was cached)."""
    entry = entry_path(kind, dataset, labels, config, fit_split, cache_dir)
    if entry.is_dir():
        logger.debug("%s features in the cache entry %s", kind.name, entry)
        return entry, _checked_shape(entry, kind), True
    shape = _fill_entry(
        entry, kind, lambda tmp: kind.write(dataset, labels, config, fit_split, tmp)
    )
    return entry, shape, False


def _checked_shape(entry: Path, kind: FeatureKind) -> tuple[int, ...]:
    """The shape of the features in the cache folder `entry`, after reading each of its files
    whole (`.npz` archives member by member against their CRCs, in pieces): the files are about
    to be copied out without being loaded, so damage must show here."""
    try:
        for name in kind.outputs:
            _check_readable(entry / name)
        return kind.shape(entry)
    except (OSError, *DAMAGED_FILE_ERRORS) as exc:
        raise EhrbenchError(
            f"the feature cache entry {entry} cannot be read ({exc}); delete that folder, or "
            "pass another --cache, and the features are built again."
        ) from exc


def _check_readable(path: Path) -> None:
    """Read `path` whole as what its suffix says it is; raise if it cannot be."""
    if path.suffix == ".npz":
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
        if damaged is not None:
            raise zipfile.BadZipFile(f"{path.name}: member {damaged} fails its CRC check")
    elif path.suffix == ".parquet":
        pl.read_parquet(path)
    elif path.suffix == ".json":
        json.loads(path.read_text(encoding="utf-8"))
    else:
        path.read_bytes()


def _fill_entry(entry: Path, kind: FeatureKind, save: Callable[[Path], T]) -> T:
    """Make the cache folder `entry` with `save(folder)`: into a temporary folder, renamed into
    place, so an interrupted run leaves no half entry behind. Returns what `save` returned."""
    with folder_made(entry.parent):
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent))
        try:
            with naming(entry):
                saved = save(tmp)
            try:
                os.replace(tmp, entry)
            except OSError:
                if not entry.is_dir():  # not a concurrent run that finished first
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    logger.debug("%s features saved in the cache entry %s", kind.name, entry)
    return saved
