"""A suite's `pretrained:` models: pretrained once, cached, and read as representations.

Each NAME a model of the suite uses (`HEAD@NAME`) is pretrained on the suite's dataset into
`<output>/pretrained/<NAME>-<digest>/`, the digest covering the dataset fingerprint and the
settings: a finished folder (one holding its weights) is reused, an interrupted one resumes
from its checkpoint. The cohorts share most of their (subject_id, prediction_time) rows, so the
distinct rows of all of them are embedded once into `rows.parquet` in that folder (reused while
it holds exactly those rows; a row's embedding reads only its own history, so the cohort it
comes from does not matter), and each cohort's rows of it are written to `<cohort>.parquet`.
NAME then stands for the file pattern `<folder>/{cohort}.parquet`, so the grid reads it like a
`representations:` entry.

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
# The embeddings of the distinct label rows of every cohort, in a pretrained model's folder.
ROWS_FILE = "rows.parquet"


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
    labels = {cohort: data.labels for cohort, data in cohorts.items()}
    for name in sorted(used):
        folder = pretrained_folder(suite.output, name, suite.pretrained[name], fingerprint)
        _pretrain(name, folder, dataset, suite.pretrained[name])
        embed_cohorts(folder, dataset, labels)
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


def embed_cohorts(folder: Path, dataset: MedsDataset, labels: dict[str, pl.DataFrame]) -> None:
    """Embed the distinct rows of every cohort's `labels` once with the pretrained model in
    `folder`, and write each cohort's rows (label order) to `<cohort>.parquet` in it.

    The embedding of the distinct rows is kept in `ROWS_FILE` and reused while it holds exactly
    those rows; a cohort file is rewritten only when it differs from its rows of it.
    """
    rows = {cohort: row_frame(table) for cohort, table in labels.items()}
    if not rows:
        return
    embeddings = _distinct_embeddings(folder, dataset, pl.concat(rows.values()).unique())
    for cohort, cohort_rows in rows.items():
        target = folder / f"{cohort}.parquet"
        mine = cohort_rows.join(embeddings, on=list(KEY), how="left", maintain_order="left")
        if target.is_file() and pl.read_parquet(target).equals(mine):
            logger.info("embeddings of cohort %s: reusing %s", cohort, target)
            continue
        write_parquet_atomic(mine, target)


def _distinct_embeddings(folder: Path, dataset: MedsDataset, rows: pl.DataFrame) -> pl.DataFrame:
    """The embeddings of `rows` (distinct keys), from `ROWS_FILE` while it holds exactly them."""
    from ehrbench.pretrain.represent import represent

    rows = rows.sort(list(KEY))
    path = folder / ROWS_FILE
    cached = pl.read_parquet(path) if path.is_file() else None
    if cached is not None and cached.select(list(KEY)).equals(rows):
        logger.info("embeddings of the %d distinct cohort rows: reusing %s", rows.height, path)
        return cached
    logger.info("embedding the %d distinct cohort rows into %s", rows.height, path)
    embeddings = represent(folder, dataset, rows)
    write_parquet_atomic(embeddings, path)
    return embeddings
