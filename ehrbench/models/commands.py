"""`ehrbench train`: fit one model on a dataset's train/tuning rows and predict held_out."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ehrbench.arguments import seed
from ehrbench.cohort.artifact import read_label_file
from ehrbench.errors import EhrbenchError
from ehrbench.features.kinds import feature_kind
from ehrbench.features.representation import check_head, read_representation
from ehrbench.meds import check_split_sizes, open_dataset, split_indices
from ehrbench.meds.label_kinds import (
    BINARY,
    MULTICLASS,
    LabelTarget,
    label_target,
    parse_class_order,
    target_values,
)
from ehrbench.models.base import check_label_kind, model_class
from ehrbench.models.training import fit_and_predict, write_run
from ehrbench.output_paths import (
    check_not_inputs,
    check_writable,
    dataset_inputs,
    refuse_existing,
)
from ehrbench.overrides import parse_dotlist

logger = logging.getLogger(__name__)

_EPILOG = """\
example:
  ehrbench train --data synth_meds --labels labels/in_hospital_mortality.parquet \\
      --model lightgbm --out runs/mortality_lightgbm
  ehrbench train --data synth_meds --labels labels.parquet --model gru --out runs/gru \\
      max_epochs=10 max_len=256 features.max_events=256
  ehrbench train --data synth_meds --labels labels.parquet --model logreg \
      --representation clmbr_embeddings.parquet --out runs/logreg_clmbr
  ehrbench train --data synth_meds --labels lab_levels.parquet --model lightgbm \
      --class-order severe,moderate,mild,normal --out runs/lab_levels

The label kind follows the value column the label table fills: `boolean_value` (binary,
scored by AUROC), `integer_value` / `float_value` (regression, -RMSE), `categorical_value`
(multiclass, macro one-vs-rest AUROC).

overrides: `name=value` fixes a model hyperparameter in every grid setting (the grid then
searches the others); `features.name=value` sets a feature-builder setting.
The run folder gets predictions.parquet (meds-evaluation form, held_out rows),
hyperparameters.json (chosen setting, every grid score, and the cost: fit and predict
seconds, peak memory MB, trained parameters) and model/ (the fitted model).
"""


def parse_overrides(items: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split `key=value` items into (model hyperparameters, feature settings)."""
    tree = parse_dotlist(items, "`learning_rate=0.1` or `features.min_count=5`")
    features = tree.pop("features", {}) or {}
    if not isinstance(features, dict):
        raise EhrbenchError("`features=` needs a setting name, e.g. `features.min_count=5`.")
    for name, value in tree.items():
        if isinstance(value, dict | list):
            raise EhrbenchError(
                f"override `{name}` has the value {value!r}: a model hyperparameter takes one "
                "value (e.g. `learning_rate=0.1`); the grid is searched over the others."
            )
    return tree, features


def build_features(kind: str, dataset: Any, labels: pl.DataFrame, settings: dict[str, Any]) -> Any:
    """Features of `kind` (a `Model.kind`) for every label row, fitted on the train split only."""
    chosen = feature_kind(kind)
    return chosen.build(dataset, labels, chosen.config(settings), "train")


def check_classes(
    y: np.ndarray, indices: dict[str, np.ndarray], source: Path, target: LabelTarget
) -> None:
    """Raise when the train or tuning rows of a binary label hold one class only, or those of a
    multiclass label fewer than two classes."""
    if target.kind == MULTICLASS:
        for name in ("train", "tuning"):
            present = [target.classes[i] for i in np.unique(y[indices[name]])]
            if len(present) < 2:
                raise EhrbenchError(
                    f"label table {source}: the `{name}` split holds class(es) {present} only "
                    f"of {list(target.classes)} in `{target.column}`; fitting and choosing a "
                    "model needs at least two classes there."
                )
        return
    if target.kind != BINARY:
        return
    for name in ("train", "tuning"):
        part = y[indices[name]]
        n_pos = int(part.sum())
        if n_pos in (0, part.size):
            raise EhrbenchError(
                f"label table {source}: the `{name}` split has {n_pos} positive and "
                f"{part.size - n_pos} negative row(s) in `boolean_value`; fitting and choosing a "
                "model needs both classes there."
            )


def check_out_dir(out: Path) -> None:
    """Refuse a run folder that already holds files, so no earlier run is overwritten."""
    refuse_existing([out], "choose a new --out run folder (an earlier run is never overwritten)")


def check_representation_use(model: str, kind: str, settings: dict[str, Any]) -> None:
    """Refuse `--representation` with a model that is not a head, or with feature settings."""
    check_head(model, kind, "--representation")
    if settings:
        raise EhrbenchError(
            f"feature setting(s) {['features.' + k for k in settings]} do not apply with "
            "--representation: the embeddings are the features."
        )


def _features(
    args: argparse.Namespace, kind: str, dataset: Any, labels: pl.DataFrame, settings: dict
) -> Any:
    """The embeddings of `--representation`, or ehrbench's own features of `kind`."""
    started = time.monotonic()
    if args.representation:
        logger.info("reading the representation %s ...", args.representation)
        features = read_representation(args.representation, labels)
    else:
        logger.info("building %s features for %s label rows ...", kind, f"{labels.height:,}")
        features = build_features(kind, dataset, labels, settings)
    logger.info("features ready in %.1fs; searching the grid ...", time.monotonic() - started)
    return features


def _train(args: argparse.Namespace) -> int:
    model_cls = model_class(args.model)
    params, settings = parse_overrides(args.overrides)
    if args.representation:
        check_representation_use(args.model, model_cls.kind, settings)
    model_cls(**params)  # unknown or mistyped hyperparameters fail before any work
    out = check_writable(args.out, "--out", folder=True)
    check_out_dir(out)
    check_not_inputs(
        {"--out": out}, {**dataset_inputs(args.data), "the label file": Path(args.labels)}
    )
    dataset = open_dataset(args.data, deep=False)
    labels = read_label_file(args.labels, dataset)
    source = Path(args.labels)
    target = label_target(labels, str(source), args.class_order)
    check_label_kind(model_cls, target)
    y = target_values(labels, target)
    indices = split_indices(labels, dataset.subject_splits(), str(source))
    check_split_sizes(indices, str(source))
    check_classes(y, indices, source, target)
    features = _features(args, model_cls.kind, dataset, labels, settings)
    result = fit_and_predict(
        args.model,
        features,
        labels,
        train=indices["train"],
        tuning=indices["tuning"],
        held_out=indices["held_out"],
        seed=args.seed,
        overrides=params,
        class_order=args.class_order,
    )
    write_run(result, out, args.seed)
    held_out = "undefined" if result.held_out_score is None else f"{result.held_out_score:.4f}"
    if target.kind == BINARY and result.held_out_score is None:
        held_out = "undefined (one class)"
    score = _SCORE_TEXT[result.fit.score_name]
    sizes = ", ".join(f"{k} {v.size:,}" for k, v in indices.items())
    if target.kind != BINARY:
        print(f"{target.kind} label `{target.column}` {list(target.classes) or ''}".rstrip())
    print(f"{args.model}: rows {sizes}; chosen {result.fit.params}")
    print(f"tuning {score} {result.fit.tuning_score:.4f}; held_out {score} {held_out}")
    cost = result.cost.as_dict()
    print(
        f"cost: fit {cost['fit_seconds']} s, predict {cost['predict_seconds']} s, peak memory "
        f"{cost['peak_memory_mb']} MB, {cost['n_parameters']:,} parameters"
    )
    print(f"wrote {out}/predictions.parquet, hyperparameters.json, model/")
    return 0


_SCORE_TEXT = {"auroc": "AUROC", "macro_ovr_auroc": "macro OvR AUROC", "neg_rmse": "-RMSE"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` verb."""
    parser = subparsers.add_parser(
        "train",
        help="fit a model on train/tuning and predict held_out",
        description=(
            "Build features for a label table, choose the model's hyperparameters by the tuning\n"
            "score of the label's kind (train rows fit, tuning rows choose and early-stop),\n"
            "predict the held_out rows, and write the run folder. Splits are the dataset's own."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", required=True, metavar="DIR", help="MEDS dataset folder")
    parser.add_argument(
        "--labels", required=True, metavar="LABELS.parquet", help="MEDS label table"
    )
    parser.add_argument(
        "--model",
        required=True,
        metavar="NAME",
        help="a model: logreg, lightgbm, random_forest, ridge, gru, lstm, transformer or a "
        "plugin's (`ehrbench models` lists them and the label kinds each fits)",
    )
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="new run folder")
    parser.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--representation",
        metavar="FILE.parquet",
        help="train a head (logreg, lightgbm, random_forest) on these frozen embeddings "
        "(subject_id, prediction_time, embedding; one row per label row) instead of "
        "ehrbench's own features",
    )
    parser.add_argument(
        "--class-order",
        type=parse_class_order,
        metavar="A,B,...",
        help="the classes of a multiclass (`categorical_value`) label in order, most severe "
        "first (as the cohort's `classes:` then `otherwise`); default: alphabetical, unordered",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="overrides (see below)")
    parser.set_defaults(handler=_train)
