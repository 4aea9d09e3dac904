"""The report's external validation section: internal vs external AUROC and the drop.

Reads what `ehrbench run` wrote for a suite's `external:` datasets (`ehrbench.protocol.external`):
each dataset's results store in `<output>/external/<name>/` and its `skipped.json`. One row per
run scored elsewhere: the internal held_out AUROC, the external AUROC (every row of the external
cohort) and the drop, internal minus external, each with its 95% subject-bootstrap interval (the
drop's from resampling both datasets' subjects, independently).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from ehrbench.protocol.external_runs import SKIPPED_FILE
from ehrbench.protocol.store import ResultsStore
from ehrbench.report.document import Block, Heading, Paragraph, Table
from ehrbench.report.tables import ResultsFolder, fmt_interval, fmt_signed_interval

ANCHOR = ("external", "External validation")
HEADERS = ["dataset", "cohort", "model", "k", "seed", "internal AUROC", "external AUROC",
           "AUROC drop", "internal rows", "external rows"]  # fmt: skip


def external_datasets(root: Path) -> list[Path]:
    """The folders of the external datasets a results folder holds, by name."""
    return sorted(path for path in (root / "external").glob("*") if path.is_dir())


def _auroc(results: pl.DataFrame) -> pl.DataFrame:
    return results.filter((pl.col("group") == "all") & (pl.col("metric") == "auroc")).select(
        "run_id", "value", "ci_low", "ci_high"
    )


def _rows_metric(results: pl.DataFrame) -> dict[str, int]:
    rows = results.filter((pl.col("group") == "all") & (pl.col("metric") == "n_rows"))
    return dict(zip(rows["run_id"], rows["value"].cast(pl.Int64), strict=True))


def external_rows(root: Path, internal: pl.DataFrame) -> list[list[str]]:
    """The table rows (see `HEADERS`) of every external score under results folder `root`;
    `internal` is the folder's results table (one row per run and metric)."""
    internal_auroc = {row[0]: row[1:] for row in _auroc(internal).iter_rows()}
    internal_rows = _rows_metric(internal)
    rows = []
    for folder in external_datasets(root):
        store = ResultsStore(folder)
        runs = store.runs().filter(pl.col("status") == "ok")
        if runs.is_empty():
            continue
        results = store.load_all()
        external_auroc = {row[0]: row[1:] for row in _auroc(results).iter_rows()}
        n_rows = _rows_metric(results)
        for run in runs.sort("cohort", "model", "seed").iter_rows(named=True):
            info = json.loads(run["info"])
            drop = info["auroc_drop"]
            inside = internal_auroc.get(info["internal_run_id"], (None, None, None))
            rows.append(
                [
                    info["dataset"],
                    run["cohort"],
                    run["model"],
                    run["k"],
                    str(run["seed"]),
                    fmt_interval(*inside),
                    fmt_interval(*external_auroc[run["run_id"]]),
                    fmt_signed_interval(drop["value"], drop["ci_low"], drop["ci_high"])
                    if drop["value"] is not None
                    else "n/a",
                    f"{internal_rows.get(info['internal_run_id'], 0):,}",
                    f"{n_rows.get(run['run_id'], 0):,}",
                ]
            )
    return rows


def skipped_cohorts(root: Path) -> list[str]:
    """`dataset / cohort: reason` for each cohort an external dataset could not run."""
    lines = []
    for folder in external_datasets(root):
        path = folder / SKIPPED_FILE
        if path.is_file():
            skipped = json.loads(path.read_text(encoding="utf-8"))
            lines += [
                f"{folder.name} / {name}: {reason.rstrip('.')}" for name, reason in skipped.items()
            ]
    return lines


def external_section(folder: ResultsFolder) -> list[Block]:
    """The section, or nothing when the suite has no external dataset."""
    if not external_datasets(folder.root):
        return []
    blocks: list[Block] = [
        Heading(ANCHOR[1], 2, ANCHOR[0]),
        Paragraph(
            "Each model trained on this suite's dataset, scored on every row of each external "
            "dataset's cohort (nothing fitted or chosen there). Intervals: 95% subject "
            "bootstrap; the drop (internal minus external AUROC) resamples both datasets' "
            "subjects independently.",
            note=True,
        ),
        Table(HEADERS, external_rows(folder.root, folder.results)),
    ]
    skipped = skipped_cohorts(folder.root)
    if skipped:
        blocks.append(Paragraph("Skipped: " + "; ".join(skipped) + ".", note=True))
    return blocks
