"""Command-line verb for the cohort library: `ehrbench cohorts`."""

from __future__ import annotations

import argparse
import logging
import math
import re

import polars as pl

from ehrbench.cohort.library import (
    DatasetNotes,
    LibraryCohort,
    cohort_counts,
    dataset_predicates,
    list_cohorts,
)
from ehrbench.cohort.library_extract import EXTRACT_EXAMPLE, extract_library
from ehrbench.errors import EhrbenchError
from ehrbench.scheduler import add_scheduler_options

log = logging.getLogger(__name__)

EXAMPLE = """example:
  ehrbench cohorts
  ehrbench cohorts --data data/mimic_meds --predicates mimic_iv
  ehrbench cohorts --data data/synthetic --markdown > cohort_table.md
  ehrbench cohorts extract --data data/mimic_meds --predicates mimic_iv --out labels/

--predicates takes a library dataset name (the files in cohorts/predicates/: synthetic,
mimic_iv, eicu) or a path. Without it, --data picks the library predicates file whose name
appears in the dataset's metadata/dataset.json dataset_name (MIMIC-IV-demo -> mimic_iv).
A cohort the dataset cannot express shows `n/a`, with the reason its predicates file gives.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `cohorts` verb."""
    parser = subparsers.add_parser(
        "cohorts",
        help="list the cohort library; with --data, each cohort's rows and prevalence",
        description="List the library's standard cohorts (name, prediction time, label) and,\n"
        "given a MEDS dataset, extract each one and show its row count and prevalence.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", metavar="DIR", help="MEDS dataset to extract every cohort on")
    _library_options(parser)
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.set_defaults(handler=_cohorts)
    verbs = parser.add_subparsers(dest="cohorts_command", metavar="VERB")
    extract = verbs.add_parser(
        "extract",
        help="extract many library cohorts in one read of the data",
        description="Extract the library's cohorts (or those of --only) on a MEDS dataset, "
        "reading the data once.",
        epilog=EXTRACT_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    extract.add_argument("--data", metavar="DIR", required=True, help="MEDS dataset folder")
    _library_options(extract)
    extract.add_argument("--out", metavar="DIR", required=True, help="folder to write labels into")
    extract.add_argument("--only", metavar="A,B,...", help="extract only these cohorts")
    extract.add_argument(
        "--overwrite", action="store_true", help="replace output files that already exist"
    )
    add_scheduler_options(extract)
    extract.set_defaults(handler=extract_library)


def _library_options(parser: argparse.ArgumentParser) -> None:
    """--predicates and --library, which every `cohorts` command takes."""
    parser.add_argument(
        "--predicates", metavar="P.yaml", help="predicates file: library name or path"
    )
    parser.add_argument(
        "--library", metavar="DIR", help="cohort folder (default: the repository's cohorts/)"
    )


def short(text: str) -> str:
    """The first clause of a header field: up to the first `(`, `;` or sentence end."""
    clause = re.split(r" \(|; |\. ", text, maxsplit=1)[0]
    return clause.rstrip(".").strip()


def _cohorts(args: argparse.Namespace) -> int:
    cohorts = list_cohorts(args.library)
    if not cohorts:
        raise EhrbenchError(f"The cohort library folder {args.library} holds no cohort YAML file.")
    if args.predicates and not args.data:
        raise EhrbenchError("--predicates is used with --data only: pass the MEDS folder too.")
    counts, failures, notes = None, {}, DatasetNotes({}, {})
    if args.data:
        predicates = dataset_predicates(args.predicates, args.data, args.library)
        log.info("predicates: %s", predicates)
        notes = DatasetNotes.read(predicates)
        expressible = [c for c in cohorts if c.name not in notes.not_expressible]
        counts, failures = cohort_counts(expressible, args.data, predicates)
    render = _markdown if args.markdown else _plain
    print(render(cohorts, counts, failures), end="")
    print(_notes_text(notes, args.markdown), end="")
    for name, message in failures.items():
        log.error("%s: %s", name, message)
    return 1 if failures else 0


def _notes_text(notes: DatasetNotes, markdown: bool) -> str:
    """The predicates file's reasons, after the table: why a cohort is absent or one-sided."""
    bullet = "- " if markdown else "  "
    lines = []
    for title, reasons in (
        ("Not expressible on this dataset", notes.not_expressible),
        ("Extracted, but the label is fixed by the data", notes.not_meaningful),
    ):
        if reasons:
            lines += ["", f"{title}:"] + [f"{bullet}{n}: {r}" for n, r in sorted(reasons.items())]
    return "".join(f"{line}\n" for line in lines)


def _count_cells(name: str, counts: pl.DataFrame | None, failures: dict) -> list[str]:
    if counts is None:
        return []
    if name in failures:
        return ["error", "", ""]
    if name not in counts["cohort"]:
        return ["n/a", "", ""]  # not expressible: the reason follows the table
    row = counts.row(by_predicate=pl.col("cohort") == name, named=True)
    prevalence = "" if math.isnan(row["prevalence"]) else f"{row['prevalence']:.3f}"
    positives = "" if row["positives"] is None else f"{row['positives']:,}"
    return [f"{row['rows']:,}", positives, prevalence]


def _plain(cohorts: list[LibraryCohort], counts, failures) -> str:
    head = ["cohort"] + (["rows", "positives", "prevalence"] if counts is not None else [])
    head += ["prediction time", "label"]
    table = [head] + [
        [c.name, *_count_cells(c.name, counts, failures), short(c.prediction_time), short(c.label)]
        for c in cohorts
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    return "".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True))
        + f"  {row[-1]}\n"
        for row in table
    )


def _markdown(cohorts: list[LibraryCohort], counts, failures) -> str:
    head = ["cohort", "prediction time", "label"]
    head += ["rows", "positives", "prevalence"] if counts is not None else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cohorts:
        cells = [f"`{c.name}`", short(c.prediction_time), short(c.label)]
        cells += _count_cells(c.name, counts, failures)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
