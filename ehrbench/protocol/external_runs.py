"""The external datasets of a grid: prepared once per run of `ehrbench run`, scored per run.

`prepare_sites` generates (when synthetic) and opens each of the suite's `external:` datasets and
extracts the suite's cohorts on it with its own predicates file, exactly as the suite's own
dataset is prepared (`ehrbench.protocol.prepare`, into `<output>/external/<name>/`); the reasons
for the cohorts it skips are written to `<output>/external/<name>/skipped.json` for the report.
`score_run` scores one fitted run on every prepared dataset and saves each score in that
dataset's results store (see `ehrbench.protocol.external`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import polars as pl

from ehrbench.errors import EhrbenchError
from ehrbench.interrupts import raise_if_stopping
from ehrbench.io import write_text_atomic
from ehrbench.metrics.bootstrap import Resamples
from ehrbench.models.base import Model
from ehrbench.protocol.external import (
    ExternalSite,
    external_cohort,
    score_external,
    skip_reasons,
)
from ehrbench.protocol.prepare import demographics, load_cohorts, prepare_dataset
from ehrbench.protocol.store import ResultsStore, RunKey
from ehrbench.protocol.suite import Suite

logger = logging.getLogger(__name__)
SKIPPED_FILE = "skipped.json"


def prepare_sites(suite: Suite, cohorts: list[str]) -> list[ExternalSite]:
    """Each external dataset of `suite`, with the `cohorts` (the ones the suite's own dataset
    gave) extracted on it; the whole of each is a test set."""
    sites = []
    for spec in suite.external:
        local = dataclasses.replace(
            suite,
            dataset_path=spec.path,
            synthetic=spec.synthetic,
            predicates=spec.predicates,
            output=suite.output / "external" / spec.name,
            cohorts=tuple(cohorts),
            external=(),
        )
        dataset = prepare_dataset(local)
        loaded, errors = load_cohorts(local, dataset, dataset.subject_splits())
        skipped = skip_reasons(spec, errors)
        for name, reason in skipped.items():
            logger.warning("external dataset %s: cohort %s skipped: %s", spec.name, name, reason)
        write_text_atomic(
            json.dumps(skipped, indent=2, sort_keys=True) + "\n", local.output / SKIPPED_FILE
        )
        sites.append(
            ExternalSite(
                spec=spec,
                dataset=dataset,
                fingerprint=dataset.fingerprint(),
                cohorts={
                    name: external_cohort(data.labels, suite.resamples, suite.bootstrap_seed)
                    for name, data in loaded.items()
                },
                skipped=skipped,
                demographics=demographics(dataset),
                store=ResultsStore(local.output),
            )
        )
    return sites


def needs_scores(sites: list[ExternalSite], key: RunKey, cohort: str, retry_failed: bool) -> bool:
    """Whether a run still lacks its score on an external dataset that has its cohort."""
    return any(
        cohort in site.cohorts and not site.store.has(site.key(key), retry_failed=retry_failed)
        for site in sites
    )


def score_run(
    sites: list[ExternalSite],
    suite: Suite,
    key: RunKey,
    model: Model,
    features: Any,
    predictions: pl.DataFrame,
    resamples: Resamples,
) -> None:
    """Score the fitted `model` of the run `key` on every external dataset that has its cohort,
    saving each score (or its failure) in that dataset's store."""
    for site in sites:
        if key.cohort not in site.cohorts:
            continue
        external_key = site.key(key)
        try:
            metrics, external, info = score_external(
                site,
                key.cohort,
                model,
                site.features(key.cohort, features),
                predictions,
                resamples,
                suite.age_bands,
            )
        except EhrbenchError as exc:
            raise_if_stopping(exc)
            site.store.save(external_key, status="failed", error=str(exc), overwrite=True)
            logger.warning("%s %s on %s: FAILED: %s", key.cohort, key.model, site.spec.name, exc)
            continue
        info["internal_run_id"] = key.run_id
        site.store.save(external_key, metrics, external, info=info, overwrite=True)
        drop = info["auroc_drop"]
        logger.info(
            "%s %s k=%s seed=%s on %s: AUROC drop %s",
            key.cohort,
            key.model,
            key.k,
            key.seed,
            site.spec.name,
            "n/a" if drop["value"] is None else f"{drop['value']:.3f}",
        )
