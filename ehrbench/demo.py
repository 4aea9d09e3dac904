"""`ehrbench demo --out DIR`: the whole pipeline on synthetic data, from generation to report.

The composition of two stages, `ehrbench.protocol` (the suite's grid) then `ehrbench.report`,
lives here, above both, so the protocol never imports the report.
"""

from __future__ import annotations

import argparse
import time

from ehrbench.bundled import suite_file
from ehrbench.protocol.commands import grid_exit_code, run_suite
from ehrbench.report.build import build_report

DEMO_EPILOG = """\
examples:
  ehrbench demo --out demo_output
  ehrbench demo --out /tmp/tiny dataset.synthetic.subjects=300 cohorts=[mortality_in_hospital] \\
      models=[logreg] k=[4,all] seeds=[0]

Runs tasks/demo.yaml (the synthetic dataset, a few standard cohorts, logreg, lightgbm and gru
on a small few-shot grid; sized to finish in about 10 minutes on 2 cores), then writes the
report into DIR/report and prints where it is. Rerunning resumes instead of starting over.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` verb."""
    demo = subparsers.add_parser(
        "demo",
        help="the whole pipeline on synthetic data: generate, extract, featurise, run, report",
        description="Run tasks/demo.yaml end to end and write its report.",
        epilog=DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--out", required=True, help="the demo's output folder")
    demo.add_argument("overrides", nargs="*", metavar="key=value", help="suite settings to change")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    result = run_suite(suite_file("demo"), args.overrides, output=args.out)
    output = result.suite.output
    # The demo folder is the demo's own: a rerun refreshes its report.
    html, markdown = build_report(output, overwrite=True)
    minutes = (time.monotonic() - started) / 60
    print(f"demo finished in {minutes:.1f} min")
    print(f"report: {html}")
    print(f"        {markdown}")
    return grid_exit_code(result)
