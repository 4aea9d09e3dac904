"""Command-line verbs for cohorts: `ehrbench cohort check | extract | explain | schema`."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from ehrbench.output_paths import (
    check_distinct,
    check_not_inputs,
    check_writable,
    dataset_inputs,
    refuse_existing,
)
from ehrbench.scheduler import add_scheduler_options, scheduler_from_args, use_scheduler

if TYPE_CHECKING:  # the command module loads the cohort package only when a verb runs
    from ehrbench.cohort.model import Cohort

log = logging.getLogger(__name__)

CHECK_EXAMPLE = """example:
  ehrbench cohort check mortality.yaml
  ehrbench cohort check mortality.yaml --predicates mimic_predicates.yaml --data data/mimic_meds
"""
EXTRACT_EXAMPLE = """example:
  ehrbench cohort extract mortality.yaml --data data/mimic_meds --out labels/mortality.parquet
  (also writes labels/mortality.attrition.json and labels/mortality.manifest.json, the
  manifest last; add --audit audit.parquet for window details; add --scheduler local
  --workers 2 to read the shards on 2 Dask worker processes, with the same output)
"""
EXPLAIN_EXAMPLE = """example:
  ehrbench cohort explain mortality.yaml --data data/mimic_meds --subject 10000032
"""
SCHEMA_EXAMPLE = """example:
  ehrbench cohort schema > cohort.schema.json
  then start a cohort YAML with `# yaml-language-server: $schema=cohort.schema.json`
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `cohort` verb and its sub-verbs."""
    cohort = subparsers.add_parser(
        "cohort",
        help="check, extract and explain ACES-compatible cohort definitions",
        description="Cohort definitions (ACES task-configuration language) on MEDS data.",
        epilog=CHECK_EXAMPLE + EXTRACT_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = cohort.add_subparsers(dest="cohort_command", metavar="VERB")
    cohort.set_defaults(handler=lambda args: _usage(cohort))

    check = _verb(verbs, "check", "validate a cohort and print its window tree", CHECK_EXAMPLE)
    check.add_argument("--data", metavar="DIR", help="MEDS dataset: check columns, print attrition")
    check.set_defaults(handler=_check)

    extract = _verb(verbs, "extract", "write the cohort's labels", EXTRACT_EXAMPLE)
    extract.add_argument("--data", metavar="DIR", required=True, help="MEDS dataset folder")
    extract.add_argument("--out", metavar="LABELS.parquet", required=True, help="label file")
    extract.add_argument("--audit", metavar="AUDIT.parquet", help="also write the audit table")
    extract.add_argument(
        "--overwrite", action="store_true", help="replace output files that already exist"
    )
    add_scheduler_options(extract)
    extract.set_defaults(handler=_extract)

    explain = _verb(verbs, "explain", "show how the cohort treats one subject", EXPLAIN_EXAMPLE)
    explain.add_argument("--data", metavar="DIR", required=True, help="MEDS dataset folder")
    explain.add_argument("--subject", metavar="ID", type=int, required=True, help="subject_id")
    explain.set_defaults(handler=_explain)

    schema = verbs.add_parser(
        "schema",
        help="print the cohort language's JSON Schema",
        epilog=SCHEMA_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    schema.set_defaults(handler=_schema)


def _verb(verbs, name: str, help_text: str, example: str) -> argparse.ArgumentParser:
    parser = verbs.add_parser(
        name, help=help_text, epilog=example, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cohort", metavar="COHORT.yaml", help="cohort config file")
    parser.add_argument(
        "--predicates", metavar="P.yaml", help="predicates file overriding the cohort's entries"
    )
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _warn(messages: Iterable[str]) -> None:
    for message in messages:
        log.warning(message)


def _load(args: argparse.Namespace):
    from ehrbench.cohort.config import load_cohort

    return load_cohort(args.cohort, args.predicates)


def _open(path: str):
    from ehrbench.meds import open_dataset

    # The engine checks what it relies on as it reads (columns and their types, one shard per
    # subject) and needs no row order, so the full-read validation is skipped.
    return open_dataset(path, validate=False)


def _check(args: argparse.Namespace) -> int:
    from ehrbench.cohort.config_extensions import extensions_used
    from ehrbench.cohort.extract import extract
    from ehrbench.cohort.tree import render_tree

    cohort = _load(args)
    # Extracted before anything is printed: a column the data lacks makes the cohort invalid.
    result = extract(cohort, _open(args.data)) if args.data else None
    print(f"{args.cohort}: valid cohort")
    extensions = extensions_used(cohort)
    if extensions:
        print("uses ehrbench extensions (not ACES): " + ", ".join(extensions))
    print(render_tree(cohort), end="")
    _warn(cohort.warnings)
    if result is not None:
        print()
        print(result.attrition.render(), end="")
        _warn(result.warnings)
    return 0


def _extract(args: argparse.Namespace) -> int:
    from ehrbench.cohort.artifact import ExtractionFiles
    from ehrbench.cohort.extract import extract

    scheduler = scheduler_from_args(args)
    check_writable(args.out, "--out")
    if args.audit is not None:
        check_writable(args.audit, "--audit")
    files = ExtractionFiles.beside(args.out, args.audit)
    outputs = {**files.named, "the manifest": files.manifest}
    check_distinct(outputs)
    cohort = _load(args)
    check_not_inputs(outputs, _inputs(args, cohort))
    if not args.overwrite:
        remedy = "choose another --out / --audit path, or pass --overwrite"
        refuse_existing(outputs.values(), remedy)
    dataset = _open(args.data)
    with use_scheduler(scheduler):
        result = extract(cohort, dataset, audit=args.audit is not None)
    result.write(files)
    print(result.attrition.render(), end="")
    print(label_summary(result.labels, files.labels))
    _warn(result.warnings)
    return 0


def _inputs(args: argparse.Namespace, cohort: Cohort) -> dict[str, Path]:
    """What an extraction reads, which none of its outputs may be or lie inside."""
    inputs = {**dataset_inputs(args.data), "the cohort file": Path(args.cohort)}
    for path in cohort.named_cohort_files():
        inputs[f"the cohort file {path.name} that {Path(args.cohort).name} names"] = path
    if args.predicates:
        inputs["the predicates file"] = Path(args.predicates)
    return inputs


def label_summary(labels: pl.DataFrame, out: Path) -> str:
    """One line on a written label table: rows, subjects, and what its labels hold.

    >>> labels = pl.DataFrame({"subject_id": [1, 2], "boolean_value": [True, False],
    ...     "integer_value": [None, None], "float_value": [None, None],
    ...     "categorical_value": [None, None]})
    >>> label_summary(labels, Path("x.parquet"))
    'wrote x.parquet: 2 rows, 2 subjects, prevalence 0.5000 (1 positive)'
    """
    rows = labels.height
    text = f"wrote {out}: {rows:,} rows, {labels['subject_id'].n_unique():,} subjects"
    positives = labels["boolean_value"].sum() if rows else 0
    if rows and labels["boolean_value"].null_count() < rows:
        text += f", prevalence {positives / rows:.4f} ({positives:,} positive)"
    for column in ("integer_value", "float_value"):
        if rows and labels[column].null_count() < rows:
            values = labels[column]
            text += f", {column} mean {values.mean():.4g} "
            text += f"(min {values.min():.4g}, max {values.max():.4g})"
    if rows and labels["categorical_value"].null_count() < rows:
        counts = labels["categorical_value"].value_counts().sort("categorical_value").iter_rows()
        text += ", classes " + ", ".join(f"{name} {count:,}" for name, count in counts)
    return text


def _explain(args: argparse.Namespace) -> int:
    from ehrbench.cohort.explain import explain

    dataset = _open(args.data)
    cohort = _load(args)
    _warn(cohort.warnings)
    print(explain(cohort, dataset, args.subject), end="")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from ehrbench.cohort.schema import cohort_json_schema

    print(json.dumps(cohort_json_schema(), indent=2))
    return 0
