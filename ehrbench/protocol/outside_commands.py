"""`ehrbench evaluate`: score prediction files written by any framework against a label table."""

from __future__ import annotations

import argparse
from pathlib import Path

from ehrbench.arguments import seed, whole_number
from ehrbench.errors import EhrbenchError
from ehrbench.meds.label_kinds import parse_class_order
from ehrbench.protocol.suite import DEFAULT_RESAMPLES, MAX_RESAMPLES

EVALUATE_EPILOG = """\
examples:
  ehrbench evaluate --labels labels/held_out.parquet \\
      --predictions clmbr=preds/clmbr.parquet gbm=preds/gbm.parquet \\
      --data synth_meds --out results/outside
  ehrbench evaluate --labels labels.parquet --predictions mine=p.parquet --out results/mine

Prediction files are in the meds-evaluation form: subject_id, prediction_time,
predicted_boolean_probability (boolean_value and predicted_boolean_value optional), one row per
label row; a missing, extra or repeated row, a null/NaN probability or one outside [0, 1] is an
error. For a regression label table (integer_value or float_value) the files hold
predicted_float_value instead; for a multiclass one (categorical_value) one
predicted_probability//<CLASS> column per class (--class-order A,B,... orders the classes, most
severe first, and adds the per-threshold AUROCs). Every label row is scored: each metric with
its subject-bootstrap 95% interval (the resamples a suite draws for the same subjects,
--resamples and --seed), paired differences of the label kind's primary metric (AUROC, RMSE,
macro one-vs-rest AUROC) against the baseline (first named, or --baseline), calibration
(binary), and, with --data (the MEDS dataset, for sex and birth date), subgroups by sex and age
band. --out gets the tables `ehrbench run` writes (results, paired, calibration, runs.csv,
manifest.json) and report/report.html and report.md.
"""


def parse_named_files(items: list[str]) -> dict[str, Path]:
    """`NAME=PATH` items -> {NAME: PATH}; raises `EhrbenchError` for a malformed or repeated one.

    >>> parse_named_files(["clmbr=preds/clmbr.parquet"])
    {'clmbr': PosixPath('preds/clmbr.parquet')}
    """
    named: dict[str, Path] = {}
    for item in items:
        name, _, path = item.partition("=")
        name = name.strip()
        if not name or not path.strip():
            raise EhrbenchError(
                f"--predictions {item!r}: expected NAME=FILE.parquet, e.g. clmbr=preds.parquet."
            )
        if name in named:
            raise EhrbenchError(f"--predictions names the model `{name}` twice.")
        named[name] = Path(path.strip())
    return named


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate` verb."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score outside prediction files against a label table (metrics, paired, report)",
        description=(
            "Score prediction files written by any framework against a MEDS label table, as a\n"
            "suite scores its runs, and write the results tables and the report."
        ),
        epilog=EVALUATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--labels", required=True, metavar="LABELS.parquet", help="MEDS label table"
    )
    parser.add_argument(
        "--predictions",
        required=True,
        nargs="+",
        metavar="NAME=FILE",
        help="one prediction file per model, named",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="new results folder")
    parser.add_argument("--data", metavar="DIR", help="the MEDS dataset, for subgroups (optional)")
    parser.add_argument("--baseline", metavar="NAME", help="default: the first named model")
    parser.add_argument(
        "--resamples",
        type=whole_number(1, MAX_RESAMPLES),
        default=DEFAULT_RESAMPLES,
        help=f"bootstrap resamples (default {DEFAULT_RESAMPLES}, as a suite)",
    )
    parser.add_argument("--seed", type=seed, default=0, help="bootstrap seed (default 0)")
    parser.add_argument(
        "--class-order",
        type=parse_class_order,
        metavar="A,B,...",
        help="a multiclass label's classes in order, most severe first (default: alphabetical)",
    )
    parser.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from ehrbench.protocol.outside import Evaluation, evaluate_outside
    from ehrbench.report.build import build_report

    out = evaluate_outside(
        Evaluation(
            labels=Path(args.labels),
            predictions=parse_named_files(args.predictions),
            out=Path(args.out),
            data=Path(args.data) if args.data else None,
            baseline=args.baseline,
            resamples=args.resamples,
            seed=args.seed,
            class_order=tuple(args.class_order) if args.class_order else None,
        )
    )
    html, markdown = build_report(out)
    print(f"results: {out}/results.csv, paired.csv, calibration.csv")
    print(f"report:  {html}")
    print(f"         {markdown}")
    return 0
