"""A one-screen summary of a MEDS dataset, computed lazily shard by shard."""

from __future__ import annotations

import polars as pl

from ehrbench.meds.dataset import MedsDataset
from ehrbench.meds.splits import split_sizes
from ehrbench.meds.validate import reading

_TIME = pl.col("time")


def _shard_summary(dataset: MedsDataset, shard) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Counts and time range of one shard, and its per-code row counts (one pass over the file)."""
    lf = dataset.scan(shard)
    stats = lf.select(
        rows=pl.len(),
        subjects=pl.col("subject_id").n_unique(),
        static_rows=_TIME.null_count(),
        first_time=_TIME.min(),
        last_time=_TIME.max(),
    )
    codes = lf.group_by("code").agg(rows=pl.len())
    with reading(shard):
        stats_df, codes_df = pl.collect_all([stats, codes])
    return stats_df, codes_df


def summarize(dataset: MedsDataset, top: int = 10) -> dict:
    """Subjects, rows, shards, codes, time range, split sizes and the `top` most frequent codes.

    Subjects are summed over shards, which is exact because a subject lives in one shard (checked
    when the dataset is opened).
    """
    parts = [_shard_summary(dataset, shard) for shard in dataset.shards]
    stats = pl.concat([s for s, _ in parts])
    code_rows = (
        pl.concat([c for _, c in parts])
        .group_by("code")
        .agg(pl.col("rows").sum())
        .sort(["rows", "code"], descending=[True, False])
    )
    codes_table = dataset.codes()
    has_split_file = dataset.splits_path.exists()
    return {
        "root": str(dataset.root),
        "metadata": dataset.metadata(),
        "subjects": int(stats.get_column("subjects").sum()),
        "rows": int(stats.get_column("rows").sum()),
        "static_rows": int(stats.get_column("static_rows").sum()),
        "shards": len(dataset.shards),
        "codes": code_rows.height,
        "codes_in_metadata": None if codes_table is None else codes_table.height,
        "first_time": stats.get_column("first_time").min(),
        "last_time": stats.get_column("last_time").max(),
        "splits": split_sizes(dataset.subject_splits()),
        "splits_source": "file" if has_split_file else "hash (not saved)",
        "top_codes": [{"code": c, "rows": n} for c, n in code_rows.head(top).iter_rows()],
    }


def format_summary(summary: dict) -> str:
    """Render `summarize`'s dict as aligned plain text."""
    meta = summary["metadata"]
    name = " ".join(str(meta[k]) for k in ("dataset_name", "dataset_version") if k in meta)
    codes_meta = summary["codes_in_metadata"]
    split_note = (
        "metadata/subject_splits.parquet"
        if summary["splits_source"] == "file"
        else "stable hash split, not saved; `ehrbench splits DIR --write` saves it"
    )
    lines = [
        f"dataset     {name or '(no metadata/dataset.json name)'}"
        + (f" (license {meta['license']})" if "license" in meta else ""),
        f"folder      {summary['root']}",
        f"subjects    {summary['subjects']:,}",
        f"rows        {summary['rows']:,} ({summary['static_rows']:,} static)",
        f"shards      {summary['shards']}",
        f"codes       {summary['codes']:,} in data"
        + ("" if codes_meta is None else f", {codes_meta:,} in metadata/codes.parquet"),
        f"time range  {summary['first_time']} to {summary['last_time']}",
        "splits      "
        + ", ".join(f"{k} {v:,}" for k, v in summary["splits"].items())
        + f" ({split_note})",
        f"top {len(summary['top_codes'])} codes:",
    ]
    width = max((len(f"{c['rows']:,}") for c in summary["top_codes"]), default=0)
    lines += [f"  {c['rows']:>{width},}  {c['code']}" for c in summary["top_codes"]]
    return "\n".join(lines)
