"""`ehrbench cohorts extract`: many library cohorts' labels from one read of a MEDS dataset."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ehrbench.cohort.library import (
    DatasetNotes,
    LibraryCohort,
    dataset_predicates,
    list_cohorts,
    load_library,
)
from ehrbench.errors import EhrbenchError, did_you_mean
from ehrbench.output_paths import check_not_inputs, check_writable, dataset_inputs, refuse_existing
from ehrbench.scheduler import scheduler_from_args, use_scheduler

if TYPE_CHECKING:
    from ehrbench.cohort.artifact import ExtractionFiles

log = logging.getLogger(__name__)

EXTRACT_EXAMPLE = """example:
  ehrbench cohorts extract --data data/mimic_meds --predicates mimic_iv --out labels/
  ehrbench cohorts extract --data data/synth --out labels/ --only long_los,readmission_30d
  ehrbench cohorts extract --data data/mimic_meds --out labels/ --scheduler tcp://head:8786

Writes OUT/<cohort>.parquet, OUT/<cohort>.attrition.json and OUT/<cohort>.manifest.json for
each cohort, exactly as `ehrbench cohort extract COHORT --out OUT/<cohort>.parquet` would, but
reads the data once for all of them. Cohorts the predicates file marks not expressible on the
dataset are skipped with its reason. --predicates defaults as for `ehrbench cohorts --data`.
"""


def extract_library(args: argparse.Namespace) -> int:
    """`ehrbench cohorts extract`: write each chosen cohort's files; 1 if any cohort failed."""
    from ehrbench.cohort.artifact import ExtractionFiles
    from ehrbench.cohort.commands import label_summary
    from ehrbench.cohort.one_pass import extract_many
    from ehrbench.meds import open_dataset

    scheduler = scheduler_from_args(args)
    out = check_writable(args.out, "--out", folder=True)
    predicates = dataset_predicates(args.predicates, args.data, args.library)
    cohorts = _expressible(_chosen(args), DatasetNotes.read(predicates))
    files = {c.name: ExtractionFiles.beside(out / f"{c.name}.parquet") for c in cohorts}
    _check_outputs(args, cohorts, files, predicates)
    loaded, failures = load_library(cohorts, predicates)
    # The engine checks what it relies on as it reads (as `ehrbench cohort extract` does).
    with use_scheduler(scheduler):
        results, unextracted = extract_many(loaded, open_dataset(args.data, validate=False))
    failures |= unextracted
    for name, result in results.items():
        result.write(files[name])
        print(label_summary(result.labels, files[name].labels))
        for message in result.warnings:
            log.warning("%s: %s", name, message)
    for item in cohorts:
        if item.name in failures:
            log.error("%s: %s", item.name, failures[item.name])
    return 1 if failures else 0


def _chosen(args: argparse.Namespace) -> list[LibraryCohort]:
    """The library's cohorts, or those `--only` names (each checked), in library order."""
    cohorts = list_cohorts(args.library)
    if not cohorts:
        raise EhrbenchError(f"The cohort library folder {args.library} holds no cohort YAML file.")
    if args.only is None:
        return cohorts
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    known = [c.name for c in cohorts]
    for name in names:
        if name not in known:
            hint = did_you_mean(name, known)
            raise EhrbenchError(
                f"--only names {name!r}, which is not a library cohort; expected some of "
                f"{', '.join(known)}{f'; {hint}' if hint else ''}"
            )
    if not names:
        raise EhrbenchError("--only is empty: expected cohort names separated by commas.")
    return [c for c in cohorts if c.name in names]


def _expressible(cohorts: list[LibraryCohort], notes: DatasetNotes) -> list[LibraryCohort]:
    """The cohorts the dataset can express; the others are skipped with the file's reason."""
    for item in cohorts:
        if item.name in notes.not_expressible:
            log.warning("skipped %s: %s", item.name, notes.not_expressible[item.name])
    return [c for c in cohorts if c.name not in notes.not_expressible]


def _check_outputs(
    args: argparse.Namespace,
    cohorts: list[LibraryCohort],
    files: dict[str, ExtractionFiles],
    predicates: Path,
) -> None:
    """Every output outside the inputs, none replaced unless --overwrite (as `cohort extract`)."""
    inputs = {**dataset_inputs(args.data), "the predicates file": predicates}
    inputs |= {f"the cohort file of {c.name}": c.path for c in cohorts}
    named = {f"--out's {path.name}": path for each in files.values() for path in each.paths}
    check_not_inputs(named, inputs)
    if not args.overwrite:
        paths = [path for each in files.values() for path in each.paths]
        refuse_existing(paths, "choose another --out folder, or pass --overwrite")
