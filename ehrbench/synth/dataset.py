"""Writing the synthetic dataset as a MEDS 0.4 folder, shard by shard.

Layout: `data/<split>/<shard>.parquet` (one generated chunk of subjects per shard number, split
into train / tuning / held_out files), `metadata/codes.parquet`, `metadata/dataset.json`,
`metadata/subject_splits.parquet`. The folder is built under a temporary name beside the target
and renamed into place at the end, so an interrupted run leaves nothing behind and nothing the
user had is overwritten. The files are byte-identical for the same (subjects, seed, shards).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import meds
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ehrbench import __version__
from ehrbench.errors import EhrbenchError
from ehrbench.logs import progress
from ehrbench.output_paths import check_writable, refuse_existing
from ehrbench.synth.events import MAX_CHUNK_SUBJECTS
from ehrbench.synth.generator import SUBJECT_ID_BASE, chunk_events, to_arrow
from ehrbench.synth.sites import DEFAULT_SITE, Site, site_named

GENERATOR_VERSION = "1.1"  # bump whenever the same seed would give different data
DATASET_NAME = "ehrbench-synthetic"
CREATED_AT = "2025-01-01T00:00:00+00:00"  # fixed, so the metadata is byte-identical for a seed
SUBJECTS_PER_SHARD = 10_000
SPLITS = ((meds.train_split, 0.70), (meds.tuning_split, 0.15), (meds.held_out_split, 0.15))
PARQUET_OPTIONS = dict(
    compression="zstd", compression_level=3, row_group_size=1_000_000, use_dictionary=True
)


@dataclass(frozen=True)
class SynthSummary:
    """What `generate_dataset` wrote."""

    root: Path
    subjects: int
    rows: int
    shards: int
    files: int


def default_shards(n_subjects: int) -> int:
    """One shard per 10,000 subjects (at least one)."""
    return max(1, math.ceil(n_subjects / SUBJECTS_PER_SHARD))


def _check_request(n_subjects: int, seed: int, n_shards: int) -> None:
    if n_subjects < 1:
        raise EhrbenchError(f"--subjects must be at least 1; got {n_subjects}.")
    if seed < 0:
        raise EhrbenchError(f"--seed must be a non-negative integer; got {seed}.")
    if not 1 <= n_shards <= n_subjects:
        raise EhrbenchError(
            f"--shards must be between 1 and the number of subjects ({n_subjects}); got {n_shards}."
        )
    if math.ceil(n_subjects / n_shards) > MAX_CHUNK_SUBJECTS:
        raise EhrbenchError(
            f"--shards {n_shards} puts more than {MAX_CHUNK_SUBJECTS:,} subjects in one shard; "
            f"use at least {math.ceil(n_subjects / MAX_CHUNK_SUBJECTS)} shards."
        )


def _check_target(out: Path) -> None:
    check_writable(out, "--out", folder=True)
    refuse_existing(
        [out], "`ehrbench synth` writes only into a new or empty folder; choose another --out"
    )


def subject_splits(n_subjects: int, seed: int) -> np.ndarray:
    """The split index (into SPLITS) of each subject: a seeded 70/15/15 shuffle."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    order = rng.permutation(n_subjects)
    n_train = round(SPLITS[0][1] * n_subjects)
    n_tuning = round(SPLITS[1][1] * n_subjects)
    split = np.full(n_subjects, 2, np.int8)
    split[order[:n_train]] = 0
    split[order[n_train : n_train + n_tuning]] = 1
    return split


def generate_dataset(
    out_dir: str | os.PathLike,
    n_subjects: int,
    seed: int,
    n_shards: int | None = None,
    site: str = DEFAULT_SITE,
) -> SynthSummary:
    """Write a synthetic MEDS 0.4 dataset of `n_subjects` subjects to the new folder `out_dir`.

    `n_shards` defaults to one per 10,000 subjects; memory use is bounded by one shard. `site`
    names the hospital (`ehrbench.synth.sites`: `A`, the default, or `B`, with a documented
    shift); a site other than the default is recorded in `metadata/dataset.json`.
    A progress bar counts the shards (`ehrbench.logs.progress`).
    Raises `EhrbenchError` when `out_dir` exists and is not an empty folder.
    """
    n_shards = default_shards(n_subjects) if n_shards is None else n_shards
    _check_request(n_subjects, seed, n_shards)
    hospital = site_named(site)
    out = Path(out_dir)
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        rows, files = _write_data(tmp, n_subjects, seed, n_shards, hospital)
        _write_metadata(tmp, n_subjects, seed, n_shards, hospital)
        os.chmod(tmp, 0o755)
        _check_target(out)
        os.replace(tmp, out)  # onto a missing or empty folder: atomic on one filesystem
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SynthSummary(root=out, subjects=n_subjects, rows=rows, shards=n_shards, files=files)


def _write_data(root: Path, n_subjects, seed, n_shards, site: Site) -> tuple[int, int]:
    split_of = subject_splits(n_subjects, seed)
    bounds = [n_subjects * k // n_shards for k in range(n_shards + 1)]
    rows = files = 0
    for shard in progress(range(n_shards), desc="synthetic shards", unit="shard"):
        first, size = bounds[shard], bounds[shard + 1] - bounds[shard]
        events = chunk_events(seed, shard, size, site)
        row_split = split_of[first + events.subject]
        for index, (name, _) in enumerate(SPLITS):
            mask = row_split == index
            if not mask.any():
                continue
            table = to_arrow(events, first, mask, site.codes())
            meds.DataSchema.validate(table)
            path = root / meds.data_subdirectory / name / f"{shard}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path, **PARQUET_OPTIONS)
            files += 1
        rows += len(events.code)
    return rows, files


def _write_metadata(root: Path, n_subjects: int, seed: int, n_shards: int, site: Site) -> None:
    (root / "metadata").mkdir()
    vocabulary = site.vocabulary()
    codes = pa.table(
        {
            "code": pa.array([c for c, _ in vocabulary], pa.string()),
            "description": pa.array([d for _, d in vocabulary], pa.string()),
            "parent_codes": pa.array([None] * len(vocabulary), pa.list_(pa.string())),
        }
    )
    meds.CodeMetadataSchema.validate(codes)
    pq.write_table(codes, root / meds.code_metadata_filepath, **PARQUET_OPTIONS)
    split_of = subject_splits(n_subjects, seed)
    names = np.array([name for name, _ in SPLITS], dtype=object)
    splits = pa.table(
        {
            "subject_id": pa.array(SUBJECT_ID_BASE + np.arange(n_subjects), pa.int64()),
            "split": pa.array(names[split_of], pa.string()),
        }
    )
    meds.SubjectSplitSchema.validate(splits)
    pq.write_table(splits, root / meds.subject_splits_filepath, **PARQUET_OPTIONS)
    version_tag = "" if site.is_default else f"-site{site.name}"
    metadata = {
        "dataset_name": DATASET_NAME,
        "dataset_version": f"{GENERATOR_VERSION}-n{n_subjects}-seed{seed}{version_tag}",
        "etl_name": "ehrbench synth",
        "etl_version": __version__,
        "meds_version": version("meds"),
        "created_at": CREATED_AT,
        "license": "CC0-1.0",
        "description_uri": "ehrbench.synth.generator (module docstring: the generative story)",
        "ehrbench_synth": {
            "generator_version": GENERATOR_VERSION,
            "subjects": n_subjects,
            "seed": seed,
            "shards": n_shards,
        }
        | ({} if site.is_default else {"site": site.name}),
    }
    text = json.dumps(metadata, indent=2, sort_keys=True) + "\n"
    (root / meds.dataset_metadata_filepath).write_text(text, encoding="utf-8")
