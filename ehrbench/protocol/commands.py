"""`ehrbench run SUITE.yaml [key=value ...]`: a suite's grid and its output tables."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ehrbench.errors import EhrbenchError
from ehrbench.io import remove_stale_temporaries
from ehrbench.output_paths import (
    check_not_inputs,
    check_writable,
    dataset_inputs,
    exclusive_folder,
)
from ehrbench.protocol.outputs import write_outputs
from ehrbench.protocol.runner import GridResult, GridRunner
from ehrbench.protocol.suite import Suite, load_suite
from ehrbench.scheduler import add_scheduler_options, use_scheduler

logger = logging.getLogger(__name__)

RUN_EPILOG = """\
examples:
  ehrbench run tasks/synthetic.yaml
  ehrbench run tasks/mimic_iv_demo.yaml dataset.path=data/mimic_meds output=results/mimic
  ehrbench run tasks/synthetic.yaml models=[logreg,lightgbm] k=[1,4,16,all] seeds=[0,1]
  ehrbench run demo    # a shipped suite by name, from any install (tasks/demo.yaml works too)
  ehrbench run tasks/synthetic.yaml --scheduler local --workers 2   # runs on 2 Dask workers

A suite is a YAML file: dataset (`path`, or `synthetic: {subjects, seed, shards, site}` generated
into <output>/dataset), predicates, cohorts (names in cohorts_dir, or `all`), models,
baseline, k, seeds, features.tabular / features.sequence, model_params, grids,
representations ({NAME: FILE}, FILE may hold {cohort}; models HEAD@NAME, e.g. logreg@clmbr,
train a tabular head on those frozen embeddings), bootstrap (resamples, seed),
subgroups.age_bands, output (default: results/<name> in the current folder), external (a
list of {name, path or synthetic, predicates[, concepts]}: every model is also scored on those
datasets' cohorts, into <output>/external/<name>/), scheduler and workers (where the runs
go, as --scheduler and --workers, which replace them). Any key can be overridden as
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
    add_scheduler_options(run)
    run.set_defaults(handler=_run)


def run_suite(
    suite_path: str | Path,
    overrides: list[str],
    retry_failed: bool = False,
    output: str | Path | None = None,
) -> GridResult:
    """Run a suite's grid and write its output tables into the suite's output folder."""
    suite = load_suite(suite_path, overrides, output)
    _check_output(suite)
    started = time.monotonic()
    with (
        exclusive_folder(suite.output, f"`ehrbench run {suite.source}`"),
        use_scheduler(suite.scheduler),
    ):
        if removed := remove_stale_temporaries(suite.output):
            logger.info("removed %d temporary file(s) left by an interrupted run", removed)
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
    return result


def grid_exit_code(result: GridResult) -> int:
    """1 (and an error saying what) when any run of the grid failed or a cohort of the suite was
    skipped (it could not be loaded or extracted, or kept no row), else 0."""
    statuses = list(result.statuses.values())
    failed = statuses.count("failed")
    if failed:
        logger.error(
            "%d of %d runs failed; each one's error is in %s (--retry-failed reruns them)",
            failed,
            len(statuses),
            result.suite.output / "runs.csv",
        )
    if result.skipped_cohorts:
        logger.error(
            "%d of the suite's %d cohorts were skipped, so none of their runs was made: %s",
            len(result.skipped_cohorts),
            len(result.suite.cohorts),
            "; ".join(f"{name}: {why}" for name, why in sorted(result.skipped_cohorts.items())),
        )
    return 1 if failed or result.skipped_cohorts else 0


def _check_output(suite: Suite) -> None:
    """Refuse an output folder that is an input, or holds files ehrbench did not write."""
    output = suite.output
    # A generated dataset may live inside the output folder, never the output inside a dataset.
    inputs = {
        "the predicates file": suite.predicates,
        "the cohorts folder": suite.cohorts_dir,
        **dataset_inputs(suite.dataset_path),
    }
    for external in suite.external:  # an external dataset's own files are inputs too
        inputs[f"the predicates file of external dataset `{external.name}`"] = external.predicates
        if external.synthetic is None:
            inputs |= {
                f"{what} of external dataset `{external.name}`": path
                for what, path in dataset_inputs(external.path).items()
            }
    # Inputs first, so an output inside one is named as that input (which dataset, which part).
    check_not_inputs({"the suite's `output`": output}, inputs)
    check_writable(output, "the suite's `output`", folder=True)
    ours = ("runs", "cohorts", "manifest.json", "dataset", "features", ".lock")
    if output.is_dir() and any(output.iterdir()) and not any((output / n).exists() for n in ours):
        raise EhrbenchError(
            f"The suite's output folder {output} already holds files that ehrbench did not "
            "write; choose an empty or new folder (`output=DIR`) so nothing of yours is touched."
        )


def scheduler_overrides(args: argparse.Namespace) -> list[str]:
    """`--scheduler` and `--workers` as suite overrides (checked with the suite's keys); a
    scheduler typed without workers drops the suite's workers.

    >>> scheduler_overrides(argparse.Namespace(scheduler="local", workers=None))
    ['scheduler=local', 'workers=null']
    """
    overrides = [] if args.scheduler is None else [f"scheduler={args.scheduler}"]
    if args.workers is not None:
        overrides.append(f"workers={args.workers}")
    elif args.scheduler is not None:
        overrides.append("workers=null")
    return overrides


def _run(args: argparse.Namespace) -> int:
    overrides = [*args.overrides, *scheduler_overrides(args)]
    return grid_exit_code(run_suite(args.suite, overrides, args.retry_failed))
