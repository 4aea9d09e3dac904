"""Print the internal-vs-external table of finished `ehrbench run` results folders as Markdown.

The rows are the report's "External validation" table (`ehrbench.report.external`), for pasting
into docs/results/external_validation.md:

    .venv/bin/python benchmarks/external_tables.py results/external_synthetic
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

from ehrbench.report.document import Paragraph, Table, to_markdown
from ehrbench.report.external import HEADERS, external_rows, skipped_cohorts


def main(folders: list[str]) -> None:
    """One table (and the skipped cohorts) per results folder."""
    for folder in map(Path, folders):
        results = pl.read_parquet(folder / "results.parquet")
        blocks = [Table(HEADERS, external_rows(folder, results))]
        skipped = skipped_cohorts(folder)
        if skipped:
            blocks.append(Paragraph("Skipped: " + "; ".join(skipped) + "."))
        print(f"<!-- {folder} -->\n" + to_markdown(blocks))


if __name__ == "__main__":
    main(sys.argv[1:])
