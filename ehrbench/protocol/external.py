"""External validation: every model a suite trains is also scored on other datasets' cohorts.

A suite's `external:` lists the datasets, each a mapping:

    external:
      - {name: site_b, synthetic: {subjects: 2000, seed: 1, site: B},
         predicates: ../cohorts/predicates/synthetic.yaml}
      - {name: eicu, path: ../data/eicu_meds, predicates: ../cohorts/predicates/eicu.yaml,
         concepts: ../cohorts/concepts/eicu.yaml}

`name` (default: the folder's name, or `synthetic_<site>_seed<seed>`) names the dataset in the
results; `path` is a MEDS folder, or where `synthetic` generates one (default
`<output>/external/<name>/dataset`); `predicates` is that dataset's predicates file (required:
the suite's cohort files are read with it); `concepts` its concept map for `vocabulary:
concepts` (default: `../concepts/<predicates file name>` beside the predicates file).

The whole external dataset is a test set: nothing is fitted or chosen on it. Each cohort is
extracted on it (in `<output>/external/<name>/cohorts/`), featurised with the vocabulary fitted on
the suite's own train rows (`transform_tabular`; under `vocabulary: concepts` through the
external dataset's concept map, which is what lets a MIMIC-IV model read eICU rows), and every
row is predicted by the model of each run. Scores have subject-bootstrap intervals over the
external dataset's subjects; the AUROC drop (internal held_out AUROC minus external AUROC) has
an interval from resampling both datasets' subjects, independently. Each score is a run record
of a `ResultsStore` in `<output>/external/<name>/`, keyed by the external dataset's fingerprint
and the internal run's cohort, model, k, seed and config hash; its info names the dataset and the
internal run. A cohort that the external dataset cannot express is skipped with its reason.
Only models that read tabular features are scored: sequence features keep no fitted vocabulary
to featurise another dataset with.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import polars as pl

from ehrbench.cohort.library import DatasetNotes
from ehrbench.errors import EhrbenchError
from ehrbench.features.concepts import concept_dataset, concepts_beside
from ehrbench.features.tabular import TabularFeatures, transform_tabular
from ehrbench.meds import MedsDataset
from ehrbench.metrics.bootstrap import (
    CI_LEVEL,
    Resamples,
    auroc_distribution,
    draw_resamples,
    percentile_interval,
)
from ehrbench.metrics.evaluate import evaluate_predictions
from ehrbench.metrics.scores import as_arrays, point_metrics
from ehrbench.models.base import Model, predict
from ehrbench.models.predictions import make_predictions
from ehrbench.protocol.store import ResultsStore, RunKey

logger = logging.getLogger(__name__)
KEYS = ("name", "path", "synthetic", "predicates", "concepts")
SYNTHETIC_KEYS = ("subjects", "seed", "shards", "site")
SPELLING = (
    "a list of datasets, each {name: ..., path: DIR, predicates: FILE} or "
    "{name: ..., synthetic: {subjects: N, seed: S, site: B}, predicates: FILE}"
)


@dataclass(frozen=True)
class ExternalDataset:
    """One external dataset of a suite, with absolute paths."""

    name: str
    path: Path
    synthetic: Any  # a `SyntheticSpec`, or None for a given folder
    predicates: Path
    concepts: Path

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (for the manifest and the run hashes)."""
        spec = None if self.synthetic is None else self.synthetic.as_dict()
        return {"name": self.name, "path": str(self.path), "synthetic": spec}


def parse_external(value: Any, fail, base_dir, output: Path, synthetic_spec) -> tuple:
    """The suite's `external:` list as `ExternalDataset`s.

    `fail(key, message)` raises the suite's located error; `base_dir(key)` is the folder relative
    paths of `key` are read against; `synthetic_spec(section, key)` checks a synthetic spec.
    """
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        _fail_type(fail, "external", value)
    datasets = []
    for index, entry in enumerate(value):
        key = f"external.{index}"
        if not isinstance(entry, dict):
            _fail_type(fail, key, entry)
        odd = sorted(str(k) for k in entry if k not in KEYS)
        if odd:
            fail(key, f"has unknown key(s) {odd}; expected {list(KEYS)}.")
        if entry.get("path") is None and entry.get("synthetic") is None:
            fail(key, f"needs `path` (a MEDS folder) or `synthetic`; expected {SPELLING}.")
        datasets.append(_dataset(entry, key, fail, base_dir, output, synthetic_spec))
    names = [d.name for d in datasets]
    for name in names:
        if names.count(name) > 1:
            fail("external", f"names the dataset `{name}` twice; give each its own `name`.")
    return tuple(datasets)


def _fail_type(fail, key: str, value: Any) -> NoReturn:
    fail(key, f"must be {SPELLING}; got {value!r}.")


def _dataset(entry: dict, key: str, fail, base_dir, output: Path, synthetic_spec):
    spec = None
    if entry.get("synthetic") is not None:
        section = entry["synthetic"]
        given = {str(k) for k in section} if isinstance(section, dict) else set()
        if not isinstance(section, dict) or given - set(SYNTHETIC_KEYS):
            fail(f"{key}.synthetic", f"must map {list(SYNTHETIC_KEYS)} to values, got {section!r}.")
        spec = synthetic_spec(section, f"{key}.synthetic")
    paths = {}
    for field in ("path", "predicates", "concepts"):
        raw = entry.get(field)
        if raw is None:
            continue
        if not isinstance(raw, str) or not raw.strip():
            fail(f"{key}.{field}", f"must be a path, got {raw!r}.")
        paths[field] = (base_dir(f"{key}.{field}") / Path(raw).expanduser()).resolve()
    default = paths["path"].name if spec is None else f"synthetic_{spec.site}_seed{spec.seed}"
    name = entry.get("name", default)
    if not isinstance(name, str) or not name or "/" in name:
        fail(f"{key}.name", f"must be a name without `/`, got {name!r}.")
    if "predicates" not in paths:
        fail(f"{key}.predicates", "is required: the predicates file of that dataset.")
    if not paths["predicates"].is_file():
        fail(f"{key}.predicates", f"names {paths['predicates']}, which is not a file.")
    path = paths.get("path", output / "external" / name / "dataset")
    if spec is None and not path.is_dir():
        fail(f"{key}.path", f"names {path}, which is not a folder (a MEDS dataset).")
    concepts = paths.get("concepts", concepts_beside(paths["predicates"]))
    return ExternalDataset(name, path, spec, paths["predicates"], concepts)


@dataclass
class ExternalCohort:
    """One cohort on an external dataset: every row is a test row."""

    labels: pl.DataFrame
    resamples: Resamples
    features: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass
class ExternalSite:
    """An external dataset ready to score on: its cohorts, demographics and results store."""

    spec: ExternalDataset
    dataset: MedsDataset
    fingerprint: str  # the dataset's, read once: a key per run and per resumed run needs it
    cohorts: dict[str, ExternalCohort]
    skipped: dict[str, str]
    demographics: pl.DataFrame
    store: ResultsStore

    def key(self, internal: RunKey) -> RunKey:
        """The store key of an internal run's score on this dataset."""
        return dataclasses.replace(internal, dataset_fingerprint=self.fingerprint)

    def features(self, cohort: str, internal: Any) -> TabularFeatures:
        """The cohort's external features with the vocabulary of the `internal` features."""
        vocabulary = getattr(internal, "vocabulary", None)
        if not isinstance(internal, TabularFeatures) or vocabulary is None:
            raise EhrbenchError(
                "external validation scores models that read tabular features; these "
                "features keep no fitted vocabulary to featurise another dataset with."
            )
        data = self.cohorts[cohort]
        name = str(vocabulary.config)
        if name not in data.features:
            dataset = self.dataset
            if vocabulary.config.vocabulary == "concepts":
                dataset = concept_dataset(self.dataset, self.spec.concepts)
            data.features[name] = transform_tabular(dataset, data.labels, vocabulary)
        return data.features[name]


def skip_reasons(spec: ExternalDataset, errors: dict[str, Exception]) -> dict[str, str]:
    """Why each cohort is skipped: the predicates file's `not_expressible` reason, else the
    error."""
    notes = DatasetNotes.read(spec.predicates).not_expressible
    return {
        name: f"not expressible on {spec.name}: {notes[name]}" if name in notes else str(exc)
        for name, exc in errors.items()
    }


def external_cohort(labels: pl.DataFrame, resamples: int, seed: int):
    """An external cohort: its rows sorted as the internal ones are, resamples over all its
    subjects (the whole dataset is a test set)."""
    return ExternalCohort(labels, draw_resamples(labels["subject_id"], resamples, seed))


def score_external(
    site: ExternalSite,
    cohort: str,
    model: Model,
    features: TabularFeatures,
    internal: pl.DataFrame,
    internal_resamples: Resamples,
    age_bands,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Predict every row of `cohort` on `site` with a fitted `model`; return the metrics, the
    predictions and the AUROC drop from the `internal` held_out predictions, with its interval
    (resampling both datasets' subjects independently)."""
    data = site.cohorts[cohort]
    predictions = make_predictions(data.labels, predict(model, features))
    metrics = evaluate_predictions(predictions, data.resamples, site.demographics, age_bands)
    drop = auroc_drop(internal, internal_resamples, predictions, data.resamples)
    return metrics, predictions, {"dataset": site.spec.name, "auroc_drop": drop}


def auroc_drop(
    internal: pl.DataFrame,
    internal_resamples: Resamples,
    external: pl.DataFrame,
    external_resamples: Resamples,
    level: float = CI_LEVEL,
) -> dict[str, float | None]:
    """Internal minus external AUROC, with the percentile interval of the difference of the two
    bootstrap distributions (resample b of each dataset, drawn independently).

    >>> from datetime import datetime
    >>> def frame(p):
    ...     return pl.DataFrame({
    ...         "subject_id": range(8),
    ...         "prediction_time": [datetime(2020, 1, 1)] * 8,
    ...         "boolean_value": [True, False] * 4,
    ...         "predicted_boolean_probability": p,
    ...     })
    >>> good, poor = frame([0.9, 0.1] * 4), frame([0.6, 0.5, 0.4, 0.5] * 2)
    >>> resamples = draw_resamples(range(8), 50, 0)
    >>> drop = auroc_drop(good, resamples, poor, resamples)
    >>> drop["value"]
    0.5
    """
    dists, points = [], []
    for predictions, resamples in ((internal, internal_resamples), (external, external_resamples)):
        y, p = as_arrays(
            predictions["boolean_value"].to_numpy(),
            predictions["predicted_boolean_probability"].cast(pl.Float64).to_numpy(),
        )
        subjects = predictions["subject_id"].to_numpy()
        dists.append(auroc_distribution(y, p, subjects, resamples))
        points.append(point_metrics(y, p, subjects)["auroc"])
    n = min(dists[0].size, dists[1].size)
    low, high, valid = percentile_interval(dists[0][:n] - dists[1][:n], level)
    value = float(points[0] - points[1])
    finite = np.isfinite(value) and valid > 0
    return {
        "value": value if np.isfinite(value) else None,
        "ci_low": low if finite else None,
        "ci_high": high if finite else None,
        "n_boot": valid,
    }
