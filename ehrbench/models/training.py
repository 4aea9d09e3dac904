"""One training run: labels + features -> chosen model, held_out predictions, run folder.

Rows are assigned to the dataset's subject splits first; only the train and tuning subsets go to
`select_and_fit`, so held_out rows and labels cannot influence the model or its
hyperparameters. held_out rows are used once, to predict.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from ehrbench.errors import EhrbenchError
from ehrbench.io import write_text_atomic
from ehrbench.models.base import take_rows
from ehrbench.models.grid import FitResult, select_and_fit
from ehrbench.models.predictions import make_predictions, write_predictions

SPLITS = ("train", "tuning", "held_out")


def label_values(labels: pl.DataFrame, source: str) -> np.ndarray:
    """The `boolean_value` column as a bool array; raise when it is absent or has nulls."""
    if "boolean_value" not in labels.columns or labels["boolean_value"].null_count():
        raise EhrbenchError(
            f"label table {source} needs a non-null `boolean_value` on every row: the models "
            "predict a binary label."
        )
    return labels["boolean_value"].cast(pl.Boolean).to_numpy().astype(bool)


def split_indices(rows: pl.DataFrame, splits: pl.DataFrame, source: str) -> dict[str, np.ndarray]:
    """Row indices (label order) of each split; raise if a row's subject has no split."""
    assigned = rows.select(pl.col("subject_id").cast(pl.Int64)).join(
        splits.select(pl.col("subject_id").cast(pl.Int64), "split"),
        on="subject_id",
        how="left",
        maintain_order="left",
    )
    missing = assigned.filter(pl.col("split").is_null())["subject_id"].unique().sort()
    if missing.len():
        raise EhrbenchError(
            f"label table {source}: {missing.len()} subject(s) (e.g. {missing.head(5).to_list()}) "
            "have no row in the dataset's subject splits (metadata/subject_splits.parquet), so "
            "they cannot be placed in train, tuning or held_out."
        )
    split = assigned["split"].to_numpy()
    return {name: np.flatnonzero(split == name) for name in SPLITS}


def check_split_sizes(indices: dict[str, np.ndarray], source: str) -> None:
    """Raise when the tuning or held_out split has no label row."""
    for name, purpose in (("tuning", "choose hyperparameters"), ("held_out", "score the model")):
        if indices[name].size == 0:
            sizes = ", ".join(f"{k} {v.size}" for k, v in indices.items())
            raise EhrbenchError(
                f"label table {source} has no row in the `{name}` split ({sizes}); a run needs "
                f"{name} rows to {purpose}. Check the cohort or the dataset's subject splits."
            )


def fit_on_splits(
    name: str,
    features: Any,
    y: np.ndarray,
    indices: dict[str, np.ndarray],
    seed: int,
    overrides: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> FitResult:
    """Choose and fit model `name` on the train and tuning rows only."""
    train, tuning = indices["train"], indices["tuning"]
    return select_and_fit(
        name,
        take_rows(features, train),
        y[train],
        take_rows(features, tuning),
        y[tuning],
        seed,
        overrides=overrides,
        progress=progress,
    )


def safe_auroc(y: np.ndarray, probabilities: np.ndarray) -> float | None:
    """AUROC, or None when `y` holds one class only."""
    return float(roc_auc_score(y, probabilities)) if 0 < y.sum() < y.size else None


@dataclass(frozen=True)
class RunResult:
    """What a training run produced."""

    fit: FitResult
    predictions: pl.DataFrame
    held_out_auroc: float | None


def train_and_predict(
    name: str,
    features: Any,
    labels: pl.DataFrame,
    indices: dict[str, np.ndarray],
    seed: int,
    overrides: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> RunResult:
    """Fit on train/tuning, then predict the held_out rows in meds-evaluation form."""
    y = label_values(labels, "given")
    fit = fit_on_splits(name, features, y, indices, seed, overrides, progress)
    held_out = indices["held_out"]
    probabilities = fit.model.predict_proba(take_rows(features, held_out))
    predictions = make_predictions(labels[held_out], probabilities)
    return RunResult(fit, predictions, safe_auroc(y[held_out], probabilities))


def write_run(result: RunResult, out: Path, seed: int) -> None:
    """Write the fitted model, hyperparameters.json and (last) predictions.parquet."""
    result.fit.model.save(out / "model")
    record = {
        **result.fit.summary(),
        "seed": seed,
        "held_out_auroc": result.held_out_auroc,
        "refit": "chosen setting fitted on train, tuning for early stopping (same seed)",
    }
    write_text_atomic(
        json.dumps(record, indent=2, sort_keys=True) + "\n", out / "hyperparameters.json"
    )
    write_predictions(result.predictions, out / "predictions.parquet")
