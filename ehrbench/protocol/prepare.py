"""What a grid needs before its runs: the dataset, each cohort's labels, and their features.

Each piece is computed once per results folder and reused on a rerun:

- a synthetic dataset is generated into its folder only when that folder is absent or empty
  (`generate_dataset` builds it beside and renames it into place, so an interrupted generation
  leaves nothing behind); an existing one must match the suite's `dataset.synthetic`;
- a cohort's labels are extracted once per (dataset fingerprint, cohort file, predicates file)
  into `cohorts/<name>/` with its attrition (JSON and text) and a summary; the cohorts to extract
  are extracted together, in one read of the data;
- features go through the feature cache in `features/` (keyed by dataset, labels and config).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ehrbench.cohort.artifact import Extraction, ExtractionFiles
from ehrbench.cohort.attrition import Attrition
from ehrbench.cohort.config import load_cohort
from ehrbench.cohort.model import Cohort
from ehrbench.cohort.one_pass import extract_many
from ehrbench.digest import file_digest
from ehrbench.errors import EhrbenchError
from ehrbench.features.cache import cached
from ehrbench.features.kinds import FeatureKind
from ehrbench.interrupts import raise_if_stopping
from ehrbench.io import write_text_atomic
from ehrbench.meds import (
    SPLIT_NAMES,
    MedsDataset,
    open_dataset,
    split_indices,
)
from ehrbench.meds.label_kinds import (
    BINARY,
    BINARY_TARGET,
    MULTICLASS,
    LabelTarget,
    label_target,
    target_values,
)
from ehrbench.metrics.bootstrap import Resamples, draw_resamples
from ehrbench.metrics.subgroups import demographics_from_events
from ehrbench.protocol.suite import Suite, SyntheticSpec
from ehrbench.synth.dataset import generate_dataset
from ehrbench.synth.sites import DEFAULT_SITE

logger = logging.getLogger(__name__)


def prepare_dataset(suite: Suite) -> MedsDataset:
    """Open the suite's dataset, generating the synthetic one first if its folder is absent."""
    path = suite.dataset_path
    spec = suite.synthetic
    if spec is not None and path.is_dir() and any(path.iterdir()):
        _check_synthetic(path, spec)
    elif spec is not None:
        logger.info(
            "generating the synthetic dataset (%d subjects, seed %d, %d shard(s)) into %s",
            spec.subjects,
            spec.seed,
            spec.shards,
            path,
        )
        generate_dataset(
            path, n_subjects=spec.subjects, seed=spec.seed, n_shards=spec.shards, site=spec.site
        )
    return open_dataset(path, validate=True, deep=False)


def _check_synthetic(path: Path, spec: SyntheticSpec) -> None:
    """Refuse to reuse a generated dataset whose settings differ from the suite's."""
    metadata = path / "metadata" / "dataset.json"
    made = None
    if metadata.is_file():
        made = json.loads(metadata.read_text(encoding="utf-8")).get("ehrbench_synth")
    if not isinstance(made, dict):
        return  # not written by `ehrbench synth`: a folder the user supplied, used as it is
    wanted = spec.as_dict() | {"site": spec.site}
    # `ehrbench synth` records a site only when it is not the default one
    found = {key: made.get(key, DEFAULT_SITE if key == "site" else None) for key in wanted}
    if found != wanted:
        raise EhrbenchError(
            f"The dataset folder {path} was generated with {found} ({metadata}), but the suite "
            f"asks for dataset.synthetic = {wanted}; choose another `output` (or "
            "`dataset.path`), or delete that folder to generate it again."
        )


def demographics(dataset: MedsDataset) -> pl.DataFrame:
    """Sex and birth time of every subject (for the subgroup metrics)."""
    return pl.concat(
        [demographics_from_events(dataset.scan(shard)) for shard in dataset.shards]
    ).sort("subject_id")


@dataclass
class CohortData:
    """One cohort's labels and attrition, its label kind (`target`) and labels as the models
    take them (`y`), split row indices, shared resamples and features."""

    name: str
    labels: pl.DataFrame
    attrition: Attrition
    y: np.ndarray
    indices: dict[str, np.ndarray]
    resamples: Resamples
    summary: dict[str, Any]
    features: dict[str, Any] = field(default_factory=dict)
    target: LabelTarget = BINARY_TARGET

    @property
    def class_order(self) -> list[str] | None:
        """The class order to fit with: the classes of an ordered multiclass label, else None."""
        return list(self.target.classes) if self.target.ordered else None


def cohort_summary(
    labels: pl.DataFrame, indices: dict[str, np.ndarray], target: LabelTarget | None = None
) -> dict[str, Any]:
    """Rows and subjects, overall and per split, with positives and prevalence (binary), the
    rows per class (multiclass) or the mean and standard deviation (regression)."""
    target = label_target(labels, "cohort labels") if target is None else target
    y = target_values(labels, target)

    def counts(rows: np.ndarray) -> dict[str, Any]:
        subjects = labels["subject_id"].gather(rows).n_unique() if rows.size else 0
        return {"rows": int(rows.size), "subjects": subjects, **_label_counts(y[rows], target)}

    return {
        "all": counts(np.arange(labels.height)),
        **{split: counts(indices[split]) for split in SPLIT_NAMES},
    }


def _label_counts(y: np.ndarray, target: LabelTarget) -> dict[str, Any]:
    """The label part of a split's summary (see `cohort_summary`)."""
    if target.kind == BINARY:
        positives = int(y.sum())
        return {"positives": positives, "prevalence": positives / y.size if y.size else None}
    if target.kind == MULTICLASS:
        counts = np.bincount(y, minlength=len(target.classes))
        return {"classes": dict(zip(target.classes, counts.tolist(), strict=True))}
    return {
        "mean": float(np.mean(y)) if y.size else None,
        "std": float(np.std(y)) if y.size else None,
    }


def load_cohorts(
    suite: Suite,
    dataset: MedsDataset,
    splits: pl.DataFrame,
) -> tuple[dict[str, CohortData], dict[str, Exception]]:
    """Extract (or reuse) every cohort of the suite into `<output>/cohorts/<name>/`.

    Each cohort's label kind is read from its labels, and a multiclass cohort's class order
    from its config (`Cohort.label_classes`: the listed classes, most severe first, then
    `otherwise`).

    The cohorts that cannot be reused are extracted together, in one read of the dataset
    (`extract_many`), each written as its own extraction would be. Returns the loaded cohorts
    and the error of each cohort that cannot be loaded or extracted, or has no label row (the
    others still run), both in the suite's order.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from ehrbench.cohort.library import library_dir, predicates_paths
    >>> from ehrbench.protocol.suite import load_suite
    >>> from ehrbench.synth.dataset import generate_dataset
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     root = generate_dataset(Path(tmp) / "meds", n_subjects=50, seed=0).root
    ...     suite_file = Path(tmp) / "suite.yaml"
    ...     _ = suite_file.write_text(
    ...         f"dataset: {{path: {root}}}\\npredicates: {predicates_paths()['synthetic']}\\n"
    ...         f"cohorts_dir: {library_dir()}\\ncohorts: [long_los, readmission_30d]\\n"
    ...         f"models: [logreg]\\noutput: {Path(tmp) / 'out'}\\n"
    ...     )
    ...     suite = load_suite(suite_file)
    ...     dataset = prepare_dataset(suite)
    ...     cohorts, errors = load_cohorts(suite, dataset, dataset.subject_splits())
    >>> list(cohorts), errors
    (['long_los', 'readmission_30d'], {})
    """
    fingerprint = dataset.fingerprint()
    folders: dict[str, _CohortFolder] = {}
    reused: dict[str, Extraction] = {}
    configs: dict[str, Cohort] = {}
    pending: dict[str, Cohort] = {}
    errors: dict[str, Exception] = {}
    for name in suite.cohorts:
        try:
            folders[name] = folder = _cohort_folder(suite, fingerprint, name)
            configs[name] = load_cohort(suite.cohort_path(name), suite.predicates)
            extraction = _reuse(folder)
            if extraction is None:
                pending[name] = configs[name]
            else:
                reused[name] = extraction
        except Exception as exc:  # this cohort is skipped; the report lists it
            raise_if_stopping(exc)
            errors[name] = exc
    extracted, failed = _extract_pending(suite, dataset, pending, folders)
    errors |= failed
    cohorts = {}
    for name in suite.cohorts:
        extraction = reused.get(name, extracted.get(name))
        if extraction is None:
            continue
        try:
            order = configs[name].label_classes
            cohorts[name] = _cohort_data(
                suite, splits, name, extraction, folders[name], name in reused, dataset.root, order
            )
        except Exception as exc:  # this cohort is skipped; the report lists it
            raise_if_stopping(exc)
            errors[name] = exc
    return cohorts, {name: errors[name] for name in suite.cohorts if name in errors}


@dataclass(frozen=True)
class _CohortFolder:
    """Where one cohort's extraction is written, and the key under which it is reused."""

    files: ExtractionFiles
    record: Path
    key: dict[str, str]


def _cohort_folder(suite: Suite, fingerprint: str, name: str) -> _CohortFolder:
    folder = suite.output / "cohorts" / name
    files = ExtractionFiles(
        labels=folder / "labels.parquet",
        attrition=folder / "attrition.json",
        attrition_text=folder / "attrition.txt",
    )
    key = {
        "dataset": fingerprint,
        "cohort_file": file_digest(suite.cohort_path(name)),
        "predicates_file": file_digest(suite.predicates),
    }
    return _CohortFolder(files, folder / "cohort.json", key)


def _cohort_data(
    suite: Suite,
    splits: pl.DataFrame,
    name: str,
    extraction: Extraction,
    folder: _CohortFolder,
    reused: bool,
    root: Path,
    class_order: tuple[str, ...] | None,
) -> CohortData:
    """The cohort's label kind, split rows, summary and resamples; its record is written when
    new."""
    files = folder.files
    labels = extraction.labels
    if labels.height == 0:
        raise EhrbenchError(
            f"cohort `{name}` ({suite.cohort_path(name)}) gives no label row on {root}; "
            f"see {files.attrition_text} for where the rows were dropped."
        )
    labels = labels.sort("subject_id", "prediction_time", maintain_order=True)
    target = label_target(labels, str(files.labels), class_order)
    indices = split_indices(labels, splits, str(files.labels))
    summary = cohort_summary(labels, indices, target)
    if not reused:
        record = {
            "key": folder.key,
            "cohort": name,
            "file": str(suite.cohort_path(name)),
            **summary,
        }
        write_text_atomic(json.dumps(record, indent=2, sort_keys=True) + "\n", folder.record)
    held_out = labels["subject_id"].gather(indices["held_out"]).to_numpy()
    logger.info(
        "cohort %s: %s rows, %s (held_out %s rows)",
        name,
        summary["all"]["rows"],
        _label_text(summary["all"], target),
        summary["held_out"]["rows"],
    )
    return CohortData(
        name=name,
        labels=labels,
        attrition=extraction.attrition,
        y=target_values(labels, target),
        indices=indices,
        resamples=draw_resamples(held_out, suite.resamples, suite.bootstrap_seed),
        summary=summary,
        target=target,
    )


def _label_text(counts: dict[str, Any], target: LabelTarget) -> str:
    """How a cohort's log line describes its labels."""
    if target.kind == BINARY:
        value = counts["prevalence"]
        return "prevalence " + ("n/a" if value is None else f"{100 * value:.1f}%")
    if target.kind == MULTICLASS:
        return "classes " + ", ".join(f"{k} {v}" for k, v in counts["classes"].items())
    return f"{target.column} mean {counts['mean']:.3g}"


def _reuse(folder: _CohortFolder) -> Extraction | None:
    """The extraction written earlier with the same key, or None (also when its files do not
    form the set that was written together: it is then extracted again)."""
    if not folder.record.exists() or not all(path.exists() for path in folder.files.paths):
        return None
    record = json.loads(folder.record.read_text(encoding="utf-8"))
    if record.get("key") != folder.key:
        return None
    try:
        return Extraction.read(folder.files)
    except EhrbenchError:
        return None


def _extract_pending(
    suite: Suite,
    dataset: MedsDataset,
    cohorts: dict[str, Cohort],
    folders: dict[str, _CohortFolder],
) -> tuple[dict[str, Extraction], dict[str, Exception]]:
    """Extract `cohorts` in one pass and write each; returns the written ones and the errors."""
    if not cohorts:
        return {}, {}
    logger.info("extracting %d cohort(s) in one pass: %s", len(cohorts), ", ".join(cohorts))
    try:
        results, failures = extract_many(cohorts, dataset)
    except Exception as exc:  # an error of the data itself concerns every cohort
        raise_if_stopping(exc)
        return {}, dict.fromkeys(cohorts, exc)
    errors: dict[str, Exception] = {
        name: EhrbenchError(message) for name, message in failures.items()
    }
    written = {}
    for name, extraction in results.items():
        try:
            _write(suite, name, extraction, folders[name])
        except Exception as exc:  # this cohort is skipped; the others are written
            raise_if_stopping(exc)
            errors[name] = exc
        else:
            written[name] = extraction
    return written, errors


def _write(suite: Suite, name: str, extraction: Extraction, folder: _CohortFolder) -> None:
    """Write a fresh extraction into the cohort's folder, once it is known to suit a benchmark."""
    if not extraction.prediction_times:
        raise EhrbenchError(
            f"cohort `{name}` ({suite.cohort_path(name)}) sets no `index_timestamp`, so its "
            "labels have no prediction_time, which a benchmark needs; add `index_timestamp: "
            "start` or `end` to the window whose boundary is the prediction time."
        )
    for message in extraction.warnings:
        logger.warning("cohort %s: %s", name, message)
    folder.record.unlink(missing_ok=True)  # the old record no longer applies
    extraction.write(folder.files)


def cohort_features(suite: Suite, dataset: MedsDataset, data: CohortData, kind: FeatureKind) -> Any:
    """The cohort's features of `kind`, fitted on its train rows (cached on disk)."""
    if kind.name not in data.features:
        config = suite.feature_config(kind)
        cache = suite.output / "features"
        features, _ = cached(kind, dataset, data.labels, config, "train", cache)
        data.features[kind.name] = features
    return data.features[kind.name]
