"""A suite's `pretrained:` models: pretrained once, cached, and read as representations.

Each NAME a model of the suite uses (`HEAD@NAME`) is pretrained on the suite's dataset into
`<output>/pretrained/<NAME>-<digest>/`, the digest covering the dataset fingerprint and the
settings: a finished folder (one holding its weights) is reused, an interrupted one resumes
from its checkpoint. Each cohort is then embedded into `<cohort>.parquet` in that folder,
reused while it holds exactly the cohort's label rows. NAME then stands for the file pattern
`<folder>/{cohort}.parquet`, so the grid reads it like a `representations:` entry.

torch is imported only when a suite has such a model.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import polars as pl

from ehrbench.alignment import KEY
from ehrbench.digest import json_digest
from ehrbench.features.rows import row_frame
from ehrbench.io import write_parquet_atomic
from ehrbench.meds import MedsDataset
from ehrbench.pretrain.settings import PretrainSettings
from ehrbench.protocol.prepare import CohortData
from ehrbench.protocol.suite import COHORT_PLACEHOLDER, Suite, representation_name

logger = logging.getLogger(__name__)

PRETRAINED_DIR = "pretrained"


def pretrained_folder(
    output: Path, name: str, settings: PretrainSettings, fingerprint: str
) -> Path:
    """The cache folder of model `name` pretrained with `settings` on the dataset `fingerprint`.

    >>> pretrained_folder(Path("out"), "mine", PretrainSettings(), "abc").parent
    PosixPath('out/pretrained')
    >>> pretrained_folder(Path("out"), "mine", PretrainSettings(), "abc").name.startswith("mine-")
    True
    """
    digest = json_digest({"fingerprint": fingerprint, "settings": dataclasses.asdict(settings)})
    return output / PRETRAINED_DIR / f"{name}-{digest[:12]}"


def with_pretrained(suite: Suite, dataset: MedsDataset, cohorts: dict[str, CohortData]) -> Suite:
    """`suite` with each pretrained model its models use made, embedding every cohort in
    `cohorts`, and named in `representations` by its file pattern."""
    used = {representation_name(m) for m in suite.models} & set(suite.pretrained)
    if not used:
        return suite
    fingerprint = dataset.fingerprint()
    patterns = {}
    for name in sorted(used):
        folder = pretrained_folder(suite.output, name, suite.pretrained[name], fingerprint)
        _pretrain(name, folder, dataset, suite.pretrained[name])
        for cohort, data in cohorts.items():
            _represent(name, folder, dataset, data, folder / f"{cohort}.parquet")
        patterns[name] = folder / f"{COHORT_PLACEHOLDER}.parquet"
    return dataclasses.replace(suite, representations={**suite.representations, **patterns})


def _pretrain(name: str, folder: Path, dataset: MedsDataset, settings: PretrainSettings) -> None:
    """Pretrain into `folder` unless it holds finished weights; resume what it holds."""
    from ehrbench.pretrain.training import WEIGHTS_FILE, pretrain_dataset

    if (folder / WEIGHTS_FILE).is_file():
        logger.info("pretrained model %s: reusing %s", name, folder)
        return
    logger.info("pretrained model %s: pretraining into %s", name, folder)
    folder.mkdir(parents=True, exist_ok=True)
    pretrain_dataset(dataset, folder, settings)


def _represent(
    name: str, folder: Path, dataset: MedsDataset, data: CohortData, target: Path
) -> None:
    """Embed the cohort's label rows into `target` unless it holds exactly those rows."""
    from ehrbench.pretrain.represent import represent

    rows = row_frame(data.labels)
    if target.is_file() and pl.read_parquet(target, columns=list(KEY)).equals(rows):
        logger.info("pretrained model %s, cohort %s: reusing %s", name, data.name, target)
        return
    logger.info("pretrained model %s, cohort %s: embedding %d rows", name, data.name, rows.height)
    write_parquet_atomic(represent(folder, dataset, data.labels), target)
