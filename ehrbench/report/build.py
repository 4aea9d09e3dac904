"""`build_report`: a results folder -> report.md (+ figures/) and a self-contained report.html.

Sections, in order: header; macro-average over cohorts; learning curves per cohort (AUROC and
AUPRC against k, EHRSHOT style); leaderboard at k = all, with what each model cost; paired
comparisons against the baseline; calibration curves; subgroups (these for the binary cohorts);
regression and multiclass cohorts, when there are any (metrics, fitting plots); cohorts (counts,
prevalence or label counts, attrition); external validation (only for a suite with `external:`);
failed runs.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ehrbench.io import atomic_path, write_text_atomic
from ehrbench.meds.label_kinds import MULTICLASS, REGRESSION
from ehrbench.output_paths import check_writable, refuse_existing
from ehrbench.protocol.fewshot import ALL
from ehrbench.protocol.manifest import CohortInfo
from ehrbench.report import figures
from ehrbench.report.document import (
    Block,
    Cell,
    Details,
    Heading,
    Image,
    Links,
    Paragraph,
    Table,
    to_html,
    to_markdown,
)
from ehrbench.report.external import ANCHOR as EXTERNAL_ANCHOR
from ehrbench.report.external import external_section
from ehrbench.report.label_kinds import ANCHOR as KINDS_ANCHOR
from ehrbench.report.label_kinds import binary_part, kinds_section
from ehrbench.report.tables import (
    CURVE_METRICS,
    ResultsFolder,
    at_all,
    calibration_at_all,
    costs_at_all,
    curve,
    failed_runs,
    fmt,
    fmt_interval,
    fmt_signed_interval,
    ks_present,
    load_results,
    macro,
    paired_at,
    subgroups,
    win_rates,
)

SECTIONS = (
    ("macro", "Macro-average"),
    ("curves", "Learning curves"),
    ("leaderboard", "Leaderboard at k = all"),
    ("paired", "Paired comparisons"),
    ("calibration", "Calibration"),
    ("subgroups", "Subgroups"),
    ("cohorts", "Cohorts"),
    ("failures", "Failed runs"),
)


def build_report(
    results_dir: str | Path, out: str | Path | None = None, *, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write report.html, report.md and figures/ into `out` (default `<results_dir>/report`).

    A file it would write that exists already (the report with any edits made to it, a figure)
    is replaced only with `overwrite`; other files in `out` are left alone.
    """
    folder = load_results(results_dir)
    out = check_writable(out if out is not None else folder.root / "report", "--out", folder=True)
    markdown = out / "report.md"
    page = out / "report.html"
    remedy = "choose another --out, or pass --overwrite"
    if not overwrite:  # checked before drawing too, so a rerun into a report fails fast
        refuse_existing([page, markdown], remedy)
    blocks = report_blocks(folder)
    images = {out / "figures" / block.name: block.png for block in _images(blocks)}
    if not overwrite:
        refuse_existing(list(images), remedy)
    title = f"ehrbench report: {folder.manifest.suite.name}"
    for path, png in images.items():
        with atomic_path(path) as tmp:
            tmp.write_bytes(png)
    write_text_atomic(f"# {title}\n\n" + to_markdown(blocks), markdown)
    write_text_atomic(to_html(title, [Heading(title, 1), *blocks]), page)
    return page, markdown


def _images(blocks: list[Block]) -> list[Image]:
    found = []
    for block in blocks:
        if isinstance(block, Image):
            found.append(block)
        elif isinstance(block, Details):
            found.extend(_images(block.blocks))
    return found


def report_blocks(folder: ResultsFolder) -> list[Block]:
    """Every section of the report as document blocks.

    The binary sections read the binary cohorts; regression and multiclass cohorts, when the
    suite has any, get their own section (`ehrbench.report.label_kinds`), and a suite with
    `external:` gets its external validation section (`ehrbench.report.external`).
    """
    binary = binary_part(folder)
    kinds = kinds_section(folder)
    external = external_section(folder)
    sections = list(SECTIONS if binary.cohorts else SECTIONS[-2:])
    if kinds:
        sections.insert(sections.index(("cohorts", "Cohorts")), KINDS_ANCHOR)
    if external:
        sections.insert(sections.index(("failures", "Failed runs")), EXTERNAL_ANCHOR)
    return [
        *header(folder),
        Links(sections),
        *(_binary_sections(binary) if binary.cohorts else []),
        *kinds,
        *cohort_section(folder),
        *external,
        *failure_section(folder),
    ]


def _binary_sections(binary: ResultsFolder) -> list[Block]:
    """The sections that read binary cohorts (a suite with none has none of them)."""
    return [
        *macro_section(binary),
        *curves_section(binary),
        *leaderboard_section(binary),
        *paired_section(binary),
        *calibration_section(binary),
        *subgroup_section(binary),
    ]


PROTOCOL_TEXT = {
    "ehrbench": "ehrbench",
    "ehrshot": "ehrshot (EHRSHOT's grids, shuffle, count features; `all` once per seed)",
}


def header(folder: ResultsFolder) -> list[Block]:
    """Protocol, dataset fingerprint, ehrbench version, config hash, date and the grid."""
    m = folder.manifest
    synthetic = m.dataset.synthetic
    dataset = m.dataset.path
    if synthetic:
        dataset += (
            f" (synthetic: {synthetic['subjects']} subjects, seed {synthetic['seed']}, "
            f"{synthetic['shards']} shard(s))"
        )
    runs = m.runs
    rows = [
        ["suite", Cell(f"{m.suite.name} ({m.suite.file})", text=True)],
        ["protocol", Cell(PROTOCOL_TEXT.get(m.protocol, m.protocol), text=True)],
        ["overrides", Cell(" ".join(m.suite.overrides) or "none", text=True)],
        ["dataset", Cell(dataset, text=True)],
        ["dataset fingerprint", Cell(m.dataset.fingerprint, text=True)],
        ["ehrbench version", Cell(m.ehrbench_version, text=True)],
        ["config hash", Cell(m.config_hash, text=True)],
        ["date", Cell(m.date, text=True)],
        ["models", Cell(", ".join(m.models) + f" (baseline: {m.baseline})", text=True)],
        ["k per class", Cell(", ".join(m.k), text=True)],
        ["replicate seeds", Cell(", ".join(str(s) for s in m.seeds), text=True)],
        [
            "bootstrap",
            Cell(
                f"{m.bootstrap.resamples} resamples of held-out subjects, seed "
                f"{m.bootstrap.seed}; 95% percentile intervals",
                text=True,
            ),
        ],
        [
            "runs",
            Cell(f"{runs.ok} ok, {runs.failed} failed, of {runs.total}", text=True),
        ],
    ]
    blocks: list[Block] = []
    if m.suite.description:
        blocks.append(Paragraph(m.suite.description))
    blocks.append(Table(None, rows))
    if m.skipped_cohorts:
        blocks.append(
            Paragraph(
                f"Skipped cohorts, not run: {', '.join(sorted(m.skipped_cohorts))} (why: see "
                "Skipped cohorts under Failed runs)."
            )
        )
    return blocks


def _grid_table(frame: pl.DataFrame, models: list[str], ks: list[str], counts: bool) -> Table:
    """Rows models, columns k: the value (and the number of cohorts when it varies)."""
    rows = []
    n_cohorts = frame["n_cohorts"].max() if counts and not frame.is_empty() else None
    for model in models:
        cells: list[Cell | str] = [model]
        for k in ks:
            hit = frame.filter((pl.col("model") == model) & (pl.col("k") == k))
            if hit.is_empty():
                cells.append("")
                continue
            text = fmt(hit["value"][0])
            if counts and hit["n_cohorts"][0] != n_cohorts:
                text += f" ({hit['n_cohorts'][0]} cohorts)"
            cells.append(text)
        rows.append(cells)
    _bold_best_per_column(rows)
    return Table(["model", *[f"k={k}" for k in ks]], rows)


def _bold_best_per_column(rows: list[list[Cell | str]]) -> None:
    for column in range(1, len(rows[0]) if rows else 0):
        values = []
        for row in rows:
            try:
                values.append(float(str(row[column]).split(" ")[0]))
            except ValueError:
                values.append(float("-inf"))
        best = max(values)
        if best == float("-inf"):
            continue
        for row, value in zip(rows, values, strict=True):
            if value == best:
                row[column] = Cell(str(row[column]), bold=True)


def macro_section(folder: ResultsFolder) -> list[Block]:
    """Macro-average over cohorts: a figure and a table per metric."""
    ks = ks_present(folder)
    tables = {metric: macro(folder, metric) for metric in CURVE_METRICS}
    blocks: list[Block] = [
        Heading("Macro-average over cohorts", anchor="macro"),
        Paragraph(
            "Mean over cohorts of each model's seed-mean value at each k (best per column in "
            "bold). A cohort where a model has no value at a k (a failed run) is left out of "
            "that cell, which then names the number of cohorts it averages.",
            note=True,
        ),
    ]
    if all(table.is_empty() for table in tables.values()):
        return [*blocks, Paragraph("Nothing to average: no run has an AUROC or AUPRC.")]
    blocks.append(
        Image(
            "macro.png",
            figures.macro_curves(tables, folder.models, ks),
            "macro-average AUROC and AUPRC against k",
        )
    )
    for metric in CURVE_METRICS:
        blocks.append(Heading(f"Macro {metric.upper()}", level=3))
        blocks.append(_grid_table(tables[metric], folder.models, ks, counts=True))
    return blocks


NOTHING_TO_DRAW = (
    "Nothing to draw: no run of this cohort has an AUROC or AUPRC (its runs failed: see Failed "
    "runs; or its held-out rows hold one class: see Cohorts)."
)


def curves_section(folder: ResultsFolder) -> list[Block]:
    """One AUROC/AUPRC learning-curve figure per cohort, with its AUROC table."""
    ks = ks_present(folder)
    curves = {metric: curve(folder, metric) for metric in CURVE_METRICS}
    blocks: list[Block] = [
        Heading("Learning curves", anchor="curves"),
        Paragraph(
            "EHRSHOT-style learning curves: lines are the mean over replicate seeds, shaded "
            "bands the mean 95% bootstrap interval of one replicate, small dots the individual "
            "replicates; the diamond at `all` is the single run on the full train and tuning "
            "sets, with its interval. The dashed line is chance (0.5 for AUROC, the held-out "
            "prevalence for AUPRC).",
            note=True,
        ),
    ]
    for cohort in folder.cohorts:
        blocks.append(Heading(cohort, level=3))
        if all(frame.filter(pl.col("cohort") == cohort).is_empty() for frame in curves.values()):
            blocks.append(Paragraph(NOTHING_TO_DRAW))
            continue
        prevalence = folder.manifest.cohorts[cohort].counts["held_out"]["prevalence"]
        png = figures.learning_curves(curves, cohort, folder.models, ks, prevalence)
        blocks.append(Image(f"curve_{cohort}.png", png, f"learning curves for {cohort}"))
        points = (
            curves["auroc"]
            .filter(pl.col("cohort") == cohort)
            .with_columns(pl.lit(1).alias("n_cohorts"))
        )
        blocks.append(
            Details(
                f"AUROC by k ({cohort})", [_grid_table(points, folder.models, ks, counts=False)]
            )
        )
    return blocks


def _leaderboard_table(folder: ResultsFolder, metric: str, higher_better: bool) -> Table:
    frame = at_all(folder, metric)
    rows = []
    for cohort in folder.cohorts:
        cells: list[Cell | str] = [cohort]
        values = []
        for model in folder.models:
            hit = frame.filter((pl.col("cohort") == cohort) & (pl.col("model") == model))
            if hit.is_empty():
                cells.append("failed")
                values.append(None)
                continue
            row = hit.row(0, named=True)
            cells.append(fmt_interval(row["value"], row["ci_low"], row["ci_high"]))
            values.append(row["value"])
        present = [v for v in values if v is not None and v == v]
        if present:
            best = max(present) if higher_better else min(present)
            for i, value in enumerate(values):
                if value == best:
                    cells[i + 1] = Cell(str(cells[i + 1]), bold=True)
        rows.append(cells)
    means = frame.group_by("model").agg(pl.col("value").mean())
    macro_row: list[Cell | str] = ["macro (mean over cohorts)"]
    for model in folder.models:
        hit = means.filter(pl.col("model") == model)
        macro_row.append(fmt(hit["value"][0]) if not hit.is_empty() else "")
    rows.append(macro_row)
    return Table(["cohort", *folder.models], rows)


def leaderboard_section(folder: ResultsFolder) -> list[Block]:
    """k = all: AUROC, AUPRC, Brier and ECE per cohort and model, with intervals."""
    blocks: list[Block] = [
        Heading("Leaderboard at k = all", anchor="leaderboard"),
        Paragraph(
            "Each model trained on the full train split (hyperparameters chosen on the full "
            "tuning split), scored on the held-out split; value [95% interval]; best in bold.",
            note=True,
        ),
    ]
    for metric, label, higher in (
        ("auroc", "AUROC", True),
        ("auprc", "AUPRC", True),
        ("brier", "Brier score (lower is better)", False),
        ("ece", "Expected calibration error, 10 bins (lower is better)", False),
    ):
        blocks.append(Heading(label, level=3))
        blocks.append(_leaderboard_table(folder, metric, higher))
    return blocks + _cost_blocks(folder)


def _cost_blocks(folder: ResultsFolder) -> list[Block]:
    """What each model's k = all runs cost, beside its macro AUROC (none for older results)."""
    costs = costs_at_all(folder)
    if costs.is_empty():
        return []
    auroc = at_all(folder, "auroc").group_by("model").agg(pl.col("value").mean())
    rows = []
    for model in folder.models:
        cost = costs.filter(pl.col("model") == model)
        if cost.is_empty():
            continue
        row = cost.row(0, named=True)
        hit = auroc.filter(pl.col("model") == model)
        parameters = row["n_parameters"]
        rows.append(
            [
                model,
                fmt(hit["value"][0] if not hit.is_empty() else None),
                fmt(row["fit_seconds"], 2),
                fmt(row["predict_seconds"], 3),
                fmt(row["peak_memory_mb"], 1),
                "n/a" if parameters is None else f"{round(parameters):,}",
            ]
        )
    header = ["model", "macro AUROC", "fit s", "predict s", "peak MB", "parameters"]
    return [
        Heading("Cost at k = all", level=3),
        Paragraph(
            "Mean over cohorts of each model's k = all run: fit seconds (the whole "
            "hyperparameter search and the chosen fit), predict seconds (the held-out rows), "
            "peak memory (MB of resident memory above the run's start) and trained parameters. "
            "Timings depend on the machine and its load, and vary between runs.",
            note=True,
        ),
        Table(header, rows),
    ]


def paired_section(folder: ResultsFolder) -> list[Block]:
    """AUROC differences against the baseline at k = all, and win rates at every k."""
    baseline = folder.baseline
    others = [m for m in folder.models if m != baseline]
    blocks: list[Block] = [Heading(f"Paired comparisons against {baseline}", anchor="paired")]
    if baseline is None or not others:
        return [*blocks, Paragraph("No baseline or no other model: nothing to compare.")]
    blocks.append(
        Paragraph(
            f"AUROC(model) - AUROC({baseline}) on the same held-out rows and the same subject "
            "resamples, so noise shared by both models cancels; [95% interval], p = two-sided "
            "bootstrap p-value. Win rate: cohorts where the model's seed-mean AUROC is above "
            f"{baseline}'s.",
            note=True,
        )
    )
    paired = paired_at(folder, ALL)
    rows = []
    for cohort in folder.cohorts:
        cells: list[Cell | str] = [cohort]
        for model in others:
            hit = paired.filter((pl.col("cohort") == cohort) & (pl.col("model") == model))
            if hit.is_empty():
                cells.append("n/a")
                continue
            row = hit.row(0, named=True)
            text = fmt_signed_interval(row["difference"], row["ci_low"], row["ci_high"])
            significant = row["ci_low"] > 0 or row["ci_high"] < 0
            cells.append(Cell(f"{text} {_p_text(row['p_value'])}", bold=significant))
        rows.append(cells)
    blocks.append(Heading("AUROC difference at k = all (bold: interval excludes 0)", level=3))
    blocks.append(Table(["cohort", *[f"{m} - {baseline}" for m in others]], rows))
    wins = win_rates(folder)
    ks = ks_present(folder)
    win_rows = []
    for model in others:
        cells = [model]
        for k in ks:
            hit = wins.filter((pl.col("model") == model) & (pl.col("k") == k))
            if hit.is_empty():
                cells.append("")
                continue
            won, compared = hit["wins"][0], hit["compared"][0]
            cells.append(f"{won}/{compared} ({100 * won / compared:.0f}%)")
        win_rows.append(cells)
    blocks.append(Heading(f"Win rate against {baseline} across cohorts", level=3))
    blocks.append(Table(["model", *[f"k={k}" for k in ks]], win_rows))
    return blocks


def _p_text(p_value: float) -> str:
    """The bootstrap p-value; below 0.001 it is only known to be small."""
    return "p<0.001" if p_value < 0.001 else f"p={fmt(p_value, 3)}"


def calibration_section(folder: ResultsFolder) -> list[Block]:
    """Reliability diagrams at k = all."""
    blocks: list[Block] = [
        Heading("Calibration at k = all", anchor="calibration"),
        Paragraph(
            "Observed fraction of positives against mean predicted probability in 10 "
            "equal-width bins (the ECE's bins; bins with fewer than 5 rows are not drawn); marker "
            "area grows with the number of rows in the bin; the dashed diagonal is perfect "
            "calibration.",
            note=True,
        ),
    ]
    calibration = calibration_at_all(folder)
    if calibration.is_empty():
        return [*blocks, Paragraph("No k = all run finished.")]
    cohorts = [c for c in folder.cohorts if c in set(calibration["cohort"].to_list())]
    png = figures.calibration_grid(calibration, cohorts, folder.models)
    return [*blocks, Image("calibration.png", png, "calibration curves at k = all")]


def subgroup_section(folder: ResultsFolder) -> list[Block]:
    """k = all AUROC by sex and age band, with each level's rows and prevalence."""
    frame = subgroups(folder)
    blocks: list[Block] = [
        Heading("Subgroups at k = all", anchor="subgroups"),
        Paragraph(
            "AUROC [95% interval] by sex and by age band at prediction time (bands by lower "
            f"bound: {', '.join(str(b) for b in folder.manifest.age_bands)}); the first row "
            "of each cohort gives the held-out rows and prevalence of each level. n/a: the "
            "level holds one class only.",
            note=True,
        ),
    ]
    if frame.is_empty():
        return [
            *blocks,
            Paragraph(
                "No subgroup metrics: no k = all run finished, or no demographics (`ehrbench "
                "evaluate` without --data)."
            ),
        ]
    levels = frame.select("group", "level").unique(maintain_order=True)
    order = {"sex": 0, "age_band": 1}
    level_list = sorted(levels.iter_rows(), key=lambda gl: (order.get(gl[0], 2), _level_key(gl[1])))
    headers = ["cohort", "model", *[level for _, level in level_list]]
    rows = []
    for cohort in folder.cohorts:
        part = frame.filter(pl.col("cohort") == cohort)
        if part.is_empty():
            continue
        first_model = part["model"][0]
        sizes: list[Cell | str] = [cohort, "rows (prevalence)"]
        for group, level in level_list:
            n = _value(part, first_model, group, level, "n_rows")
            prevalence = _value(part, first_model, group, level, "prevalence")
            sizes.append("" if n is None else f"{int(n)} ({fmt(prevalence, 2)})")
        rows.append(sizes)
        for model in folder.models:
            cells: list[Cell | str] = ["", model]
            for group, level in level_list:
                hit = part.filter(
                    (pl.col("model") == model)
                    & (pl.col("group") == group)
                    & (pl.col("level") == level)
                    & (pl.col("metric") == "auroc")
                )
                cells.append(
                    ""
                    if hit.is_empty()
                    else fmt_interval(hit["value"][0], hit["ci_low"][0], hit["ci_high"][0])
                )
            rows.append(cells)
    return [*blocks, Table(headers, rows)]


def _level_key(level: str) -> tuple[int, str]:
    digits = "".join(ch for ch in level.split("-")[0] if ch.isdigit())
    if level.startswith("<"):
        return (-1, level)
    return (int(digits) if digits else 10_000, level)


def _value(part: pl.DataFrame, model: str, group: str, level: str, metric: str) -> float | None:
    hit = part.filter(
        (pl.col("model") == model)
        & (pl.col("group") == group)
        & (pl.col("level") == level)
        & (pl.col("metric") == metric)
    )
    return None if hit.is_empty() else hit["value"][0]


def _count_table(info: CohortInfo) -> Table:
    """A cohort's rows and subjects per split, with its label counts: positives and prevalence
    (binary), rows per class (multiclass), or the label's mean and standard deviation."""
    splits = [(s, info.counts[s]) for s in ("all", "train", "tuning", "held_out")]
    target = info.target
    if target.kind == MULTICLASS:
        label_headers = list(target.classes)
        label_cells = [[str(c["classes"][name]) for name in target.classes] for _, c in splits]
    elif target.kind == REGRESSION:
        label_headers = [f"mean {target.column}", "sd"]
        label_cells = [[fmt(c["mean"]), fmt(c["std"])] for _, c in splits]
    else:
        label_headers = ["positives", "prevalence"]
        label_cells = [
            [
                str(c["positives"]),
                fmt(c["prevalence"] * 100 if c["prevalence"] is not None else None, 1) + "%",
            ]
            for _, c in splits
        ]
    rows = [
        [split, str(c["rows"]), str(c["subjects"]), *cells]
        for (split, c), cells in zip(splits, label_cells, strict=True)
    ]
    return Table(["split", "rows", "subjects", *label_headers], rows)


def cohort_section(folder: ResultsFolder) -> list[Block]:
    """Each cohort's rows, subjects and label counts per split, and its attrition table."""
    blocks: list[Block] = [Heading("Cohorts", anchor="cohorts")]
    for cohort in folder.cohorts:
        info = folder.manifest.cohorts[cohort]
        attrition = [
            [
                Cell(step["step"], text=True),
                str(step["subjects_in"]),
                str(step["subjects_kept"]),
                _count(step["triggers_in"]),
                _count(step["triggers_kept"]),
            ]
            for step in info.attrition["steps"]
        ]
        blocks.append(Heading(cohort, level=3))
        blocks.append(_count_table(info))
        blocks.append(
            Details(
                f"Attrition ({cohort})",
                [
                    Table(
                        ["step", "subjects in", "subjects kept", "triggers in", "triggers kept"],
                        attrition,
                    )
                ],
                open=True,
            )
        )
    return blocks


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def failure_section(folder: ResultsFolder) -> list[Block]:
    """Failed runs grouped by cohort, model and error, then the skipped cohorts and why."""
    failed = failed_runs(folder)
    blocks: list[Block] = [Heading("Failed runs", anchor="failures")]
    if not failed.is_empty():
        rows = [
            [
                row["cohort"],
                row["model"],
                str(row["runs"]),
                Cell(row["k"], text=True),
                Cell(row["error"], text=True),
            ]
            for row in failed.iter_rows(named=True)
        ]
        blocks.append(Table(["cohort", "model", "runs", "k", "error"], rows))
    elif folder.manifest.runs.total == 0:
        blocks.append(Paragraph("None, and no run either: the grid had no runs."))
    elif folder.manifest.skipped_cohorts:
        blocks.append(Paragraph("None: every run of the cohorts that were not skipped finished."))
    else:
        blocks.append(Paragraph("None: every run of the grid finished."))
    return blocks + _skipped_blocks(folder)


def _skipped_blocks(folder: ResultsFolder) -> list[Block]:
    """The cohorts that could not be loaded or extracted, with the reason (none: nothing)."""
    skipped = folder.manifest.skipped_cohorts
    if not skipped:
        return []
    rows = [[name, Cell(why, text=True)] for name, why in sorted(skipped.items())]
    return [
        Heading("Skipped cohorts", level=3),
        Paragraph(
            "These cohorts could not be loaded or extracted (or held no rows), so none of their "
            "runs is in the grid or in this report."
        ),
        Table(["cohort", "why"], rows),
    ]
