"""The report's part for cohorts whose label is not binary (regression, multiclass).

The binary sections (macro average, learning curves, leaderboard, paired comparisons,
calibration, subgroups) read the binary cohorts only (`binary_part`); each regression or
multiclass cohort gets its own block here: its k = all metrics with intervals per model, its
primary metric (RMSE, macro one-vs-rest AUROC) against k, the paired difference of that metric
against the baseline, and a fitting plot of the k = all predictions (predicted vs true for
regression, a confusion matrix for multiclass). k counts examples per class for multiclass
cohorts and examples in all for regression cohorts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl

from ehrbench.meds.label_kinds import (
    BINARY,
    MULTICLASS,
    PREDICTED_COLUMNS,
    REGRESSION,
    LabelTarget,
)
from ehrbench.metrics.tables import PRIMARY_METRICS
from ehrbench.protocol.fewshot import ALL
from ehrbench.report import figures
from ehrbench.report.document import Block, Heading, Image, Paragraph, Table
from ehrbench.report.tables import (
    ResultsFolder,
    at_all,
    curve,
    first_seed,
    fmt,
    fmt_interval,
    fmt_signed_interval,
    ks_present,
)

ANCHOR = ("kinds", "Regression and multiclass cohorts")
COUNTS = ("n_rows", "n_subjects")
K_MEANING = {
    REGRESSION: "k is the number of training (and tuning) examples in all",
    MULTICLASS: "k is the number of training (and tuning) examples per class",
}


def targets(folder: ResultsFolder) -> dict[str, LabelTarget]:
    """Each run cohort's label target, in suite order."""
    return {name: folder.manifest.cohorts[name].target for name in folder.cohorts}


def binary_part(folder: ResultsFolder) -> ResultsFolder:
    """`folder` with only its binary cohorts (what the binary sections read)."""
    binary = [name for name, target in targets(folder).items() if target.kind == BINARY]
    if len(binary) == len(folder.cohorts):
        return folder
    manifest = dataclasses.replace(folder.manifest, cohort_order=tuple(binary))
    keep = pl.col("cohort").is_in(binary)
    paired = folder.paired.filter(keep) if "cohort" in folder.paired.columns else folder.paired
    return dataclasses.replace(
        folder, manifest=manifest, results=folder.results.filter(keep), paired=paired
    )


def kinds_section(folder: ResultsFolder) -> list[Block]:
    """One block per regression or multiclass cohort (nothing when every cohort is binary)."""
    others = {name: t for name, t in targets(folder).items() if t.kind != BINARY}
    if not others:
        return []
    blocks: list[Block] = [
        Heading(ANCHOR[1], anchor=ANCHOR[0]),
        Paragraph(
            "Regression cohorts: MAE, RMSE and R²; multiclass cohorts: macro one-vs-rest "
            "AUROC, accuracy, macro F1 and, for ordered classes (most severe first), the AUROC "
            "of each threshold (`auroc_at_least//C`: classes up to C against the rest). Values "
            "[95% subject-bootstrap interval] at k = all. Few-shot: for a regression cohort k "
            "is the total number of examples (there are no classes), for a multiclass cohort "
            "k examples per class.",
            note=True,
        ),
    ]
    for cohort, target in others.items():
        blocks += _cohort_blocks(folder, cohort, target)
    return blocks


def _describe(target: LabelTarget) -> str:
    if target.kind == REGRESSION:
        return f"regression on `{target.column}`"
    order = "ordered" if target.ordered else "unordered"
    return f"multiclass on `{target.column}`, {order} classes {', '.join(target.classes)}"


def _cohort_blocks(folder: ResultsFolder, cohort: str, target: LabelTarget) -> list[Block]:
    primary, higher = PRIMARY_METRICS[target.kind]
    blocks: list[Block] = [
        Heading(cohort, level=3),
        Paragraph(f"{_describe(target)}; {K_MEANING[target.kind]}.", note=True),
        _metrics_table(folder, cohort),
        Heading(f"{primary} by k ({'higher' if higher else 'lower'} is better)", level=4),
        _by_k_table(folder, cohort, primary),
    ]
    paired = _paired_table(folder, cohort, primary)
    if paired is not None:
        blocks += [Heading(f"{primary} difference against {folder.baseline}", level=4), paired]
    png = _fitting_plot(folder, cohort, target)
    if png is not None:
        blocks.append(Image(f"fit_{cohort}.png", png, f"fit of the k = all runs for {cohort}"))
    return blocks


def _metrics_table(folder: ResultsFolder, cohort: str) -> Table:
    """Rows metrics, columns models: the k = all value [interval]."""
    part = folder.results.filter(
        (pl.col("cohort") == cohort) & (pl.col("group") == "all") & (pl.col("k") == ALL)
    )
    metrics = list(dict.fromkeys(part["metric"].to_list()))
    models = _cohort_models(folder, cohort)
    rows = []
    for metric in metrics:
        values = at_all(dataclasses.replace(folder, results=part), metric)
        cells = [metric]
        for model in models:
            hit = values.filter(pl.col("model") == model)
            if hit.is_empty():
                cells.append("failed")
            elif metric in COUNTS:
                cells.append(f"{hit['value'][0]:.0f}")
            else:
                cells.append(fmt_interval(*hit.row(0)[2:5]))
        rows.append(cells)
    return Table(["metric at k = all", *models], rows)


def _cohort_models(folder: ResultsFolder, cohort: str) -> list[str]:
    """The suite's models that were run on `cohort` (a model is not run on a label kind it
    cannot fit), in suite order."""
    planned = set(folder.runs.filter(pl.col("cohort") == cohort)["model"].to_list())
    return [model for model in folder.models if model in planned]


def _by_k_table(folder: ResultsFolder, cohort: str, metric: str) -> Table:
    """Rows models, columns k: the seed-mean primary metric."""
    points = curve(folder, metric).filter(pl.col("cohort") == cohort)
    ks = ks_present(folder)
    rows = []
    for model in _cohort_models(folder, cohort):
        cells = [model]
        for k in ks:
            hit = points.filter((pl.col("model") == model) & (pl.col("k") == k))
            cells.append("" if hit.is_empty() else fmt(hit["value"][0]))
        rows.append(cells)
    return Table(["model", *[f"k={k}" for k in ks]], rows)


def _paired_table(folder: ResultsFolder, cohort: str, metric: str) -> Table | None:
    """The k = all paired difference of each model against the baseline, or None."""
    if folder.baseline is None or "cohort" not in folder.paired.columns:
        return None
    part = folder.paired.filter((pl.col("cohort") == cohort) & (pl.col("k") == ALL))
    if part.is_empty():
        return None
    rows = [
        [
            f"{row['model']} - {row['baseline']}",
            fmt_signed_interval(row["difference"], row["ci_low"], row["ci_high"]),
            fmt(row["p_value"]),
        ]
        for row in first_seed(part).sort("model").iter_rows(named=True)
    ]
    return Table([f"{metric} difference", "value [95% interval]", "p"], rows)


def _k_all_predictions(folder: ResultsFolder, cohort: str) -> dict[str, pl.DataFrame]:
    """Each model's k = all predictions (its first seed's run), where the run folder has them."""
    part = folder.results.filter((pl.col("cohort") == cohort) & (pl.col("k") == ALL))
    runs = part.group_by("model").agg(pl.col("run_id").sort_by("seed").first())
    found = {}
    for model in folder.models:
        hit = runs.filter(pl.col("model") == model)
        if hit.is_empty():
            continue
        path = Path(folder.root) / "runs" / hit["run_id"][0] / "predictions.parquet"
        if path.exists():
            found[model] = pl.read_parquet(path)
    return found


def _fitting_plot(folder: ResultsFolder, cohort: str, target: LabelTarget) -> bytes | None:
    """Predicted vs true (regression) or confusion matrices (multiclass), or None."""
    predictions = _k_all_predictions(folder, cohort)
    if not predictions:
        return None
    if target.kind == REGRESSION:
        points = {
            model: (
                frame[target.column].cast(pl.Float64).to_numpy(),
                frame[PREDICTED_COLUMNS[REGRESSION]].to_numpy(),
            )
            for model, frame in predictions.items()
        }
        return figures.predicted_vs_true(points, cohort)
    index = {name: i for i, name in enumerate(target.classes)}
    matrices = {}
    for model, frame in predictions.items():
        counts = np.zeros((len(index), len(index)), dtype=np.int64)
        true = [index[v] for v in frame[target.column].to_list()]
        predicted = [index[v] for v in frame[PREDICTED_COLUMNS[MULTICLASS]].to_list()]
        np.add.at(counts, (true, predicted), 1)
        matrices[model] = counts
    return figures.confusion_matrices(matrices, list(target.classes), cohort)
