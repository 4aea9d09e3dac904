"""`ehrbench run SUITE.yaml [key=value ...]`: a suite's grid and its output tables."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ehrbench.errors import EhrbenchError
from ehrbench.protocol.outputs import write_outputs
from ehrbench.protocol.runner import GridRunner
from ehrbench.protocol.suite import load_suite

logger = logging.getLogger(__name__)

RUN_EPILOG = """\
examples:
  ehrbench run tasks/synthetic.yaml
  ehrbench run tasks/mimic_iv_demo.yaml dataset.path=data/mimic_meds output=results/mimic
  ehrbench run tasks/synthetic.yaml models=[logreg,lightgbm] k=[1,4,16,all] seeds=[0,1]

A suite is a YAML file: dataset (`path`, or `synthetic: {subjects, seed, shards}` generated
into <output>/dataset), predicates, cohorts (names in cohorts_dir, or `all`), models,
baseline, k, seeds, features.tabular / features.sequence, model_params, grids,
representations ({NAME: FILE}, FILE may hold {cohort}; models HEAD@NAME, e.g. logreg@clmbr,
train a tabular head on those frozen embeddings), bootstrap (resamples, seed),
subgroups.age_bands, output. Any key can be overridden as
key=value (lists as k=[4,all]); relative paths typed here are relative to the current folder.

Rerunning the same command resumes: finished runs are skipped, failed runs are kept
(--retry-failed reruns them). The output folder gets results.parquet/.csv (one row per run
and metric, with 95% interval bounds), runs.csv, paired.*, calibration.*, manifest.json,
cohorts/<name>/ (labels, attrition) and runs/<id>/predictions.parquet (meds-evaluation form).
Then `ehrbench report OUTPUT` writes the report.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `run` verb."""
    run = subparsers.add_parser(
        "run",
        help="run a task suite's few-shot grid (resumable)",
        description="Run every (cohort, model, k, seed) of a task suite into its output folder.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("suite", help="the suite file, e.g. tasks/synthetic.yaml")
    run.add_argument("overrides", nargs="*", metavar="key=value", help="suite settings to change")
    run.add_argument(
        "--retry-failed", action="store_true", help="rerun the runs recorded as failed"
    )
    run.set_defaults(handler=_run)


def run_suite(
    suite_path: str | Path,
    overrides: list[str],
    retry_failed: bool = False,
    output: str | Path | None = None,
) -> Path:
    """Run a suite's grid and write its output tables; return the output folder."""
    suite = load_suite(suite_path, overrides, output)
    _check_output(suite.output)
    started = time.monotonic()
    result = GridRunner(suite, retry_failed=retry_failed).run()
    write_outputs(result)
    minutes = (time.monotonic() - started) / 60
    statuses = list(result.statuses.values())
    logger.info(
        "done in %.1f min: %d ok, %d failed of %d runs (%d computed now); results in %s",
        minutes,
        statuses.count("ok"),
        statuses.count("failed"),
        len(statuses),
        result.computed,
        suite.output / "results.csv",
    )
    if result.skipped_cohorts:
        logger.info("skipped cohorts: %s", ", ".join(sorted(result.skipped_cohorts)))
    return suite.output


def _check_output(output: Path) -> None:
    """Refuse an existing, non-empty folder that is not an ehrbench results folder."""
    if output.exists() and not output.is_dir():
        raise EhrbenchError(f"The suite's output {output} exists and is not a folder.")
    ours = ("runs", "cohorts", "manifest.json", "dataset", "features")
    if output.is_dir() and any(output.iterdir()) and not any((output / n).exists() for n in ours):
        raise EhrbenchError(
            f"The suite's output folder {output} already holds files that ehrbench did not "
            "write; choose an empty or new folder (`output=DIR`) so nothing of yours is touched."
        )


def _run(args: argparse.Namespace) -> int:
    run_suite(args.suite, args.overrides, args.retry_failed)
    return 0
