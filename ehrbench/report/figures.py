"""The report's figures (matplotlib, Agg backend), returned as PNG bytes.

The k axis is logarithmic (base 2) with `all` placed one step after the largest k, separated by
a dotted line: `all` is the full training set, not a point on the same scale.
"""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from ehrbench.protocol.fewshot import ALL  # noqa: E402
from ehrbench.report.tables import k_order  # noqa: E402

DPI = 110
METRIC_NAMES = {"auroc": "AUROC", "auprc": "AUPRC"}
# Calibration bins with fewer rows are not drawn: their observed fraction is mostly noise.
MIN_BIN = 5


def model_colors(models: list[str]) -> dict[str, str]:
    """One fixed colour per model, in suite order, shared by every figure."""
    palette = plt.get_cmap("tab10").colors
    return {model: matplotlib.colors.to_hex(palette[i % 10]) for i, model in enumerate(models)}


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def _legend_on_top(figure: plt.Figure, handles: list, labels: list[str]) -> None:
    """One legend row above the panels, with room kept for it (about 0.35 inch)."""
    figure.legend(
        handles,
        labels,
        loc="upper center",
        ncol=len(labels),
        frameon=False,
        bbox_to_anchor=(0.5, 1.0),
    )
    height = figure.get_size_inches()[1]
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.35 / height))


def k_positions(ks: list[str]) -> dict[str, float]:
    """x position of each k label: log2(k), and `all` one step after the largest."""
    numeric = [int(k) for k in ks if k != ALL]
    positions = {str(k): math.log2(k) for k in numeric}
    if ALL in ks:
        positions[ALL] = (math.log2(max(numeric)) if numeric else 0.0) + 1.2
    return positions


def _k_axis(axis: plt.Axes, ks: list[str]) -> None:
    positions = k_positions(ks)
    axis.set_xticks([positions[k] for k in ks], ks)
    numeric = [positions[k] for k in ks if k != ALL]
    if ALL in ks and numeric:
        axis.axvline((max(numeric) + positions[ALL]) / 2, color="0.75", linestyle=":", lw=1)
    left, right = min(positions.values()), max(positions.values())
    axis.set_xlim(left - 0.4, right + 0.4)
    axis.set_xlabel("k examples per class (log scale)")
    axis.grid(axis="y", color="0.92")


def learning_curves(
    curves: dict[str, pl.DataFrame],
    cohort: str,
    models: list[str],
    ks: list[str],
    prevalence: float | None,
) -> bytes:
    """AUROC and AUPRC against k for each model of one cohort, with interval bands."""
    colors = model_colors(models)
    figure, axes = plt.subplots(1, 2, figsize=(10.5, 3.4))
    positions = k_positions(ks)
    for axis, metric in zip(axes, ("auroc", "auprc"), strict=True):
        rows = curves[metric].filter(pl.col("cohort") == cohort)
        for index, model in enumerate(models):
            # Side by side at `all`, so one model's interval does not hide another's.
            dodge = (index - (len(models) - 1) / 2) * 0.12
            _model_curve(
                axis, rows.filter(pl.col("model") == model), positions, colors[model], model, dodge
            )
        chance = 0.5 if metric == "auroc" else prevalence
        if chance is not None:
            axis.axhline(chance, color="0.4", linestyle="--", lw=0.8)
            axis.annotate(
                "chance",
                (1.0, chance),
                xycoords=("axes fraction", "data"),
                xytext=(-4, 3),
                textcoords="offset points",
                ha="right",
                fontsize=8,
                color="0.4",
            )
        _k_axis(axis, ks)
        axis.set_ylabel(METRIC_NAMES[metric])
        axis.set_title(f"{METRIC_NAMES[metric]}", fontsize=10)
    axes[0].set_ylim(top=1.0)
    _legend_on_top(figure, *_panel_legend(axes))
    return _png(figure)


def _panel_legend(axes: list[plt.Axes]) -> tuple[list, list[str]]:
    """Each model's legend entry, from whichever panel drew it: a model may have points in one
    metric only (its AUROC is undefined when the held-out rows hold one class)."""
    entries: dict[str, object] = {}
    for axis in axes:
        handles, labels = axis.get_legend_handles_labels()
        for handle, label in zip(handles, labels, strict=True):
            entries.setdefault(label, handle)
    return list(entries.values()), list(entries)


def _model_curve(
    axis: plt.Axes, rows: pl.DataFrame, positions, color: str, model: str, dodge: float
) -> None:
    if rows.is_empty():
        return
    rows = rows.sort(pl.col("k").map_elements(k_order, return_dtype=pl.Int64))
    numeric = rows.filter(pl.col("k") != ALL)
    label_used = False
    if not numeric.is_empty():
        x = np.array([positions[k] for k in numeric["k"]])
        axis.fill_between(x, numeric["ci_low"], numeric["ci_high"], color=color, alpha=0.15, lw=0)
        axis.plot(x, numeric["value"], marker="o", ms=4, color=color, lw=1.6, label=model)
        label_used = True
        for xi, values in zip(x, numeric["per_seed"], strict=True):
            axis.scatter(np.full(len(values), xi), values, s=6, color=color, alpha=0.35, lw=0)
    full = rows.filter(pl.col("k") == ALL)
    if not full.is_empty():
        row = full.row(0, named=True)
        x = positions[ALL] + dodge
        # A bound can pass the point by a rounding step (a perfect score's interval is [1, 1]).
        below = max(row["value"] - row["ci_low"], 0.0)
        above = max(row["ci_high"] - row["value"], 0.0)
        axis.errorbar(
            x,
            row["value"],
            yerr=[[below], [above]],
            fmt="D",
            ms=5,
            color=color,
            capsize=3,
            lw=1.2,
            label=None if label_used else model,
        )


def macro_curves(macro: dict[str, pl.DataFrame], models: list[str], ks: list[str]) -> bytes:
    """Macro-average AUROC and AUPRC over cohorts against k, one line per model."""
    colors = model_colors(models)
    positions = k_positions(ks)
    figure, axes = plt.subplots(1, 2, figsize=(10.5, 3.4))
    for axis, metric in zip(axes, ("auroc", "auprc"), strict=True):
        rows = macro[metric]
        for model in models:
            part = rows.filter(pl.col("model") == model).sort(
                pl.col("k").map_elements(k_order, return_dtype=pl.Int64)
            )
            numeric = part.filter(pl.col("k") != ALL)
            x = [positions[k] for k in numeric["k"]]
            axis.plot(
                x, numeric["value"], marker="o", ms=4, color=colors[model], lw=1.6, label=model
            )
            full = part.filter(pl.col("k") == ALL)
            if not full.is_empty():
                axis.plot(
                    positions[ALL],
                    full["value"][0],
                    marker="D",
                    ms=6,
                    color=colors[model],
                    label=None if x else model,
                )
        if metric == "auroc":
            axis.axhline(0.5, color="0.4", linestyle="--", lw=0.8)
        _k_axis(axis, ks)
        axis.set_ylabel(f"macro {METRIC_NAMES[metric]}")
        axis.set_title(f"Macro-average {METRIC_NAMES[metric]} over cohorts", fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    _legend_on_top(figure, handles, labels)
    return _png(figure)


def calibration_grid(calibration: pl.DataFrame, cohorts: list[str], models: list[str]) -> bytes:
    """One reliability diagram per cohort (k = all): observed vs predicted, each model."""
    colors = model_colors(models)
    columns = min(3, max(1, len(cohorts)))
    rows = math.ceil(len(cohorts) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.4 * rows), squeeze=False)
    for index, cohort in enumerate(cohorts):
        axis = axes[index // columns][index % columns]
        axis.plot([0, 1], [0, 1], color="0.6", linestyle="--", lw=0.8)
        for model in models:
            part = calibration.filter(
                (pl.col("cohort") == cohort) & (pl.col("model") == model) & (pl.col("n") >= MIN_BIN)
            )
            if part.is_empty():
                continue
            part = part.sort("bin")
            sizes = 8 + 60 * np.sqrt(part["n"].to_numpy() / max(1, part["n"].sum()))
            axis.plot(
                part["mean_predicted"],
                part["fraction_positive"],
                color=colors[model],
                lw=1.2,
                label=model,
            )
            axis.scatter(
                part["mean_predicted"],
                part["fraction_positive"],
                s=sizes,
                color=colors[model],
                alpha=0.8,
                lw=0,
            )
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1)
        axis.set_aspect("equal")
        axis.set_title(cohort, fontsize=9)
        axis.set_xlabel("mean predicted probability", fontsize=8)
        axis.set_ylabel("observed fraction positive", fontsize=8)
        axis.tick_params(labelsize=7)
    for index in range(len(cohorts), rows * columns):
        axes[index // columns][index % columns].axis("off")
    handles = [plt.Line2D([], [], color=colors[m], lw=2) for m in models]
    _legend_on_top(figure, handles, models)
    return _png(figure)


def predicted_vs_true(points: dict[str, tuple[np.ndarray, np.ndarray]], cohort: str) -> bytes:
    """One panel per model: predicted against true value of each held-out row (k = all), with
    the identity line; `points` maps a model to its (true, predicted) arrays."""
    models = list(points)
    figure, axes = plt.subplots(
        1, max(1, len(models)), figsize=(3.2 * max(1, len(models)), 3.2), squeeze=False
    )
    colors = model_colors(models)
    for axis, model in zip(axes[0], models, strict=False):
        true, predicted = points[model]
        axis.scatter(true, predicted, s=8, alpha=0.6, color=colors[model], linewidths=0)
        both = np.concatenate([true, predicted]) if true.size else np.zeros(1)
        low, high = float(both.min()), float(both.max())
        axis.plot([low, high], [low, high], color="0.5", linestyle="--", lw=1)
        axis.set_title(model)
        axis.set_xlabel("true")
        axis.set_ylabel("predicted")
        axis.grid(color="0.92")
    figure.suptitle(f"{cohort}: predicted vs true (held-out rows, k = all)")
    figure.tight_layout()
    return _png(figure)


def confusion_matrices(matrices: dict[str, np.ndarray], classes: list[str], cohort: str) -> bytes:
    """One panel per model: held-out rows by true class (rows) and predicted class (columns),
    each cell's count written in it; `matrices` maps a model to its [classes, classes] counts."""
    models = list(matrices)
    size = 1.0 + 0.6 * len(classes)
    figure, axes = plt.subplots(
        1, max(1, len(models)), figsize=(size * max(1, len(models)), size), squeeze=False
    )
    for axis, model in zip(axes[0], models, strict=False):
        counts = matrices[model]
        axis.imshow(counts, cmap="Blues")
        for (row, column), count in np.ndenumerate(counts):
            dark = count > counts.max() / 2
            axis.text(
                column,
                row,
                str(int(count)),
                ha="center",
                va="center",
                color="white" if dark else "black",
                fontsize=8,
            )
        axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        axis.set_yticks(range(len(classes)), classes)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(model)
    figure.suptitle(f"{cohort}: confusion matrix (held-out rows, k = all)")
    figure.tight_layout()
    return _png(figure)
