"""`ehrbench report RESULTS_DIR`: the Markdown and HTML report of a finished grid."""

from __future__ import annotations

import argparse

REPORT_EPILOG = """\
examples:
  ehrbench report results/synthetic
  ehrbench report results/synthetic --out reports/synthetic

Reads what `ehrbench run` wrote (manifest.json, results.parquet, paired.parquet,
calibration.parquet, runs.csv) and writes report.html (self-contained: images embedded),
report.md and figures/*.png into --out (default: RESULTS_DIR/report). A report or figure
already there is replaced only with --overwrite (your edits to it are never lost silently);
other files in --out are left alone.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `report` verb."""
    parser = subparsers.add_parser(
        "report",
        help="write the Markdown and HTML report of a results folder",
        description="Write the benchmark report of a results folder written by `ehrbench run`.",
        epilog=REPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("results_dir", metavar="RESULTS_DIR", help="the output folder of a run")
    parser.add_argument("--out", help="where to write the report (default: RESULTS_DIR/report)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a report and figures already in --out"
    )
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from ehrbench.report.build import build_report

    html, markdown = build_report(args.results_dir, args.out, overwrite=args.overwrite)
    print(f"report: {html}")
    print(f"        {markdown}")
    return 0
