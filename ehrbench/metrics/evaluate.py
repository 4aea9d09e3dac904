"""A run's metrics table from its meds-evaluation prediction frame.

The table has one row per (group, level, metric): group `all` / level `all` for the whole
held-out set, then `sex` and `age_band` levels when demographics are given. Columns follow
`METRIC_TABLE_SCHEMA`: value, 95% percentile interval (ci_low, ci_high) and n_boot, the number
of resamples on which the metric was defined. Probabilities are scored as float32, the type they
are stored in.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from ehrbench.errors import EhrbenchError
from ehrbench.meds.label_kinds import BINARY_TARGET, LabelTarget, prediction_target
from ehrbench.metrics.bootstrap import CI_LEVEL, Resamples
from ehrbench.metrics.scores import N_BINS
from ehrbench.metrics.subgroups import DEFAULT_AGE_BANDS, subgroup_metrics
from ehrbench.metrics.tables import required_columns, score_table


def check_predictions(
    predictions: pl.DataFrame, source: str = "predictions", target: LabelTarget | None = None
) -> None:
    """Raise `EhrbenchError` unless `predictions` has the columns the metrics of its label kind
    need (`target`, or read from the frame's columns), without nulls."""
    target = prediction_target(predictions, source) if target is None else target
    needed = required_columns(target)
    missing = [c for c in needed if c not in predictions.columns]
    if missing:
        raise EhrbenchError(
            f"{source}: missing column(s) {missing}; a prediction frame needs "
            f"{needed} (the meds-evaluation form)."
        )
    nulls = [c for c in needed if predictions[c].null_count()]
    if nulls:
        raise EhrbenchError(f"{source}: column(s) {nulls} contain nulls; every row needs a value.")


def evaluate_predictions(
    predictions: pl.DataFrame,
    resamples: Resamples,
    demographics: pl.DataFrame | None = None,
    age_bands: Sequence[int] = DEFAULT_AGE_BANDS,
    n_bins: int = N_BINS,
    level: float = CI_LEVEL,
    target: LabelTarget | None = None,
) -> pl.DataFrame:
    """Overall metrics with intervals, plus sex and age-band subgroups if `demographics` given.

    The metrics are those of the frame's label kind (`ehrbench.metrics.tables`); `target` gives
    the kind and, for multiclass, the class order (default: read from the frame's columns,
    classes unordered).

    >>> from datetime import datetime
    >>> from ehrbench.metrics.bootstrap import draw_resamples
    >>> predictions = pl.DataFrame({
    ...     "subject_id": [1, 2, 3, 4],
    ...     "prediction_time": [datetime(2020, 1, 1)] * 4,
    ...     "boolean_value": [True, False, True, False],
    ...     "predicted_boolean_probability": [0.9, 0.2, 0.6, 0.4],
    ... })
    >>> metrics = evaluate_predictions(predictions, draw_resamples(predictions["subject_id"], 20))
    >>> metrics["metric"].to_list()
    ['auroc', 'auprc', 'brier', 'ece', 'prevalence', 'n_rows', 'n_subjects']
    >>> metrics.filter(pl.col("metric") == "auroc").select("value", "ci_low", "ci_high").row(0)
    (1.0, 1.0, 1.0)
    """
    target = prediction_target(predictions, "predictions") if target is None else target
    check_predictions(predictions, target=target)
    if target == BINARY_TARGET:
        # Score the probabilities as stored (float32, the meds-evaluation type), so the metrics
        # can be reproduced exactly from the saved prediction parquet.
        predictions = predictions.with_columns(
            pl.col("predicted_boolean_probability").cast(pl.Float32).cast(pl.Float64)
        )
    overall = score_table(predictions, resamples, target, n_bins, level).select(
        pl.lit("all").alias("group"), pl.lit("all").alias("level"), pl.all()
    )
    if demographics is None:
        return overall
    groups = subgroup_metrics(
        predictions, demographics, resamples, age_bands, n_bins, level, target
    )
    return pl.concat([overall, groups])
