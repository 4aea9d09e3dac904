"""Benchmark metrics: point estimates, subject bootstrap, paired comparisons, subgroups."""

from ehrbench.metrics.bootstrap import (
    METRIC_TABLE_SCHEMA,
    Resamples,
    bootstrap_distribution,
    bootstrap_metrics,
    draw_resamples,
    percentile_interval,
    weighted_metrics,
)
from ehrbench.metrics.calibration import calibration_curve
from ehrbench.metrics.evaluate import check_predictions, evaluate_predictions
from ehrbench.metrics.paired import (
    PairedDifference,
    align_predictions,
    auroc_difference,
    paired_auroc,
    win_rate,
)
from ehrbench.metrics.scores import METRICS, auprc, auroc, brier, ece, point_metrics
from ehrbench.metrics.subgroups import (
    DEFAULT_AGE_BANDS,
    age_band_labels,
    assign_subgroups,
    demographics_from_events,
    subgroup_metrics,
)

__all__ = [
    "DEFAULT_AGE_BANDS",
    "METRICS",
    "METRIC_TABLE_SCHEMA",
    "PairedDifference",
    "Resamples",
    "age_band_labels",
    "align_predictions",
    "assign_subgroups",
    "auprc",
    "auroc",
    "auroc_difference",
    "bootstrap_distribution",
    "bootstrap_metrics",
    "brier",
    "calibration_curve",
    "check_predictions",
    "demographics_from_events",
    "draw_resamples",
    "ece",
    "evaluate_predictions",
    "paired_auroc",
    "percentile_interval",
    "point_metrics",
    "subgroup_metrics",
    "weighted_metrics",
    "win_rate",
]
