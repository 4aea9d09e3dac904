"""Benchmark: the vectorised subject bootstrap against a per-resample scikit-learn loop.

Held-out set: 2,000 rows over 1,000 subjects (scores rounded to 3 decimals, so ties occur).
Timed side by side in one process, median of a few repeats:

- ehrbench: `bootstrap_distribution` (AUROC, AUPRC, Brier, ECE, prevalence on 1,000 resamples)
  and `evaluate_predictions` (point metrics + intervals + sex/age subgroups);
- loop: scikit-learn `roc_auc_score` + `average_precision_score` on explicitly resampled rows,
  timed on 100 resamples and scaled to 1,000 (AUROC and AUPRC only, so it does less work).

Writes benchmarks/results/metrics.json and metrics.md. Usage: `python benchmarks/bench_metrics.py`.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path

import numpy as np
import polars as pl
from common import median_seconds
from sklearn.metrics import average_precision_score, roc_auc_score

from ehrbench.io import write_text_atomic
from ehrbench.metrics import bootstrap_distribution, draw_resamples, evaluate_predictions
from ehrbench.metrics.paired import auroc_difference

N_ROWS, N_SUBJECTS, N_RESAMPLES, LOOP_RESAMPLES, REPEATS = 2_000, 1_000, 1_000, 100, 5
OUT = Path(__file__).parent / "results"


def _data():
    rng = np.random.default_rng(0)
    subject = np.concatenate(
        [np.arange(N_SUBJECTS), rng.integers(0, N_SUBJECTS, N_ROWS - N_SUBJECTS)]
    )
    y = rng.random(N_ROWS) < 0.2
    prob = np.round(np.clip(0.3 * y + 0.7 * rng.random(N_ROWS), 0, 1), 3)
    other = np.round(np.clip(0.2 * y + 0.8 * rng.random(N_ROWS), 0, 1), 3)
    predictions = pl.DataFrame(
        {
            "subject_id": subject,
            "prediction_time": [dt.datetime(2020, 1, 1)] * N_ROWS,
            "boolean_value": y,
            "predicted_boolean_probability": prob,
        }
    )
    demographics = pl.DataFrame(
        {
            "subject_id": np.arange(N_SUBJECTS),
            "sex": np.where(np.arange(N_SUBJECTS) % 2 == 0, "F", "M"),
            "birth_datetime": [
                dt.datetime(1930 + int(a), 1, 1) for a in rng.integers(0, 70, N_SUBJECTS)
            ],
        }
    )
    return y, prob, other, subject, predictions, demographics


def _sklearn_loop(y, prob, subject, resamples) -> None:
    weights = resamples.row_weights(subject, slice(0, LOOP_RESAMPLES)).astype(int)
    for row in weights:
        idx = np.repeat(np.arange(row.size), row)
        roc_auc_score(y[idx], prob[idx])
        average_precision_score(y[idx], prob[idx])


def main() -> None:
    """Run the benchmark and write the results table."""
    y, prob, other, subject, predictions, demographics = _data()
    resamples = draw_resamples(subject, N_RESAMPLES, seed=0)
    bootstrap_distribution(y, prob, subject, resamples)  # warm-up
    timings = {
        "draw_resamples (1,000)": median_seconds(
            lambda: draw_resamples(subject, N_RESAMPLES, 0), REPEATS
        ),
        "bootstrap_distribution (5 metrics)": median_seconds(
            lambda: bootstrap_distribution(y, prob, subject, resamples), REPEATS
        ),
        "evaluate_predictions (overall + 7 subgroups)": median_seconds(
            lambda: evaluate_predictions(predictions, resamples, demographics), REPEATS
        ),
        "auroc_difference (paired)": median_seconds(
            lambda: auroc_difference(y, prob, other, subject, resamples), REPEATS
        ),
        "sklearn loop, AUROC+AUPRC (scaled to 1,000)": median_seconds(
            lambda: _sklearn_loop(y, prob, subject, resamples), repeats=3
        )
        * (N_RESAMPLES / LOOP_RESAMPLES),
    }
    ratio = (
        timings["sklearn loop, AUROC+AUPRC (scaled to 1,000)"]
        / timings["bootstrap_distribution (5 metrics)"]
    )
    result = {
        "setup": {
            "rows": N_ROWS,
            "subjects": N_SUBJECTS,
            "resamples": N_RESAMPLES,
            "repeats": REPEATS,
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "median_seconds": {name: round(seconds, 4) for name, seconds in timings.items()},
        "speedup_vs_sklearn_loop": round(ratio, 1),
    }
    lines = [
        f"# Metrics benchmark: {N_RESAMPLES:,} subject resamples, {N_ROWS:,} rows x "
        f"{N_SUBJECTS:,} subjects",
        "",
        "| step | median seconds |",
        "|---|---|",
        *(f"| {name} | {seconds:.4f} |" for name, seconds in timings.items()),
        "",
        f"Vectorised bootstrap is {ratio:.0f}x faster than the scikit-learn loop "
        "(which computes only AUROC and AUPRC).",
        "",
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    write_text_atomic(json.dumps(result, indent=2) + "\n", OUT / "metrics.json")
    write_text_atomic("\n".join(lines), OUT / "metrics.md")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
