"""Code vocabularies and value statistics, fitted on the fitting rows' history only.

The fitting history of a subject with fitting label rows is every event of that subject at or
before the latest of those rows' prediction times, plus its static (null-time) rows. Each event
is counted once, however many fitting rows see it. Subjects without a fitting row contribute
nothing, so changing any held-out subject's events never changes a vocabulary or a statistic.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl

from ehrbench.features.shard_events import events_upto, rows_by_shard
from ehrbench.meds import MedsDataset
from ehrbench.scheduler import Call, current_executor

STAT_SCHEMA = {
    "code": pl.String(),
    "static": pl.Boolean(),
    "count": pl.Int64(),
    "value_count": pl.Int64(),
    "value_sum": pl.Float64(),
    "value_sum_sq": pl.Float64(),
}
logger = logging.getLogger(__name__)


def _shard_statistics(dataset: MedsDataset, shard: Path, shard_rows: pl.DataFrame) -> pl.DataFrame:
    """One shard batch's part of `fit_code_statistics` (a task of the current executor)."""
    return (
        events_upto(dataset, shard, shard_rows)
        .group_by("code", pl.col("time").is_null().alias("static"))
        .agg(
            pl.len().cast(pl.Int64).alias("count"),
            pl.col("value").count().cast(pl.Int64).alias("value_count"),
            pl.col("value").sum().alias("value_sum"),
            (pl.col("value") ** 2).sum().alias("value_sum_sq"),
        )
        .collect(engine="streaming")
    )


def fit_code_statistics(dataset: MedsDataset, rows: pl.DataFrame, mask: np.ndarray) -> pl.DataFrame:
    """Per (code, static) over the fitting history: event count, value count, sum, sum of squares.

    `rows` is the `label_rows` table and `mask` selects the fitting rows. Rows come sorted by
    (static, code) so the result does not depend on the shard order.
    """
    fitting = rows.filter(pl.Series(mask)).group_by("subject_id").agg(pl.col("t").max())
    calls = (
        Call(_shard_statistics, (dataset, shard, shard_rows), shard)
        for shard, shard_rows in rows_by_shard(dataset, fitting, desc="fitting the vocabulary")
    )
    parts = list(current_executor().ordered_values(calls))
    if not parts:
        return pl.DataFrame(schema=STAT_SCHEMA)
    return (
        pl.concat(parts)
        .group_by("code", "static")
        .agg(pl.col("count", "value_count", "value_sum", "value_sum_sq").sum())
        .select(pl.col(name).cast(dtype) for name, dtype in STAT_SCHEMA.items())
        .sort("static", "code")
    )


def select_codes(
    stats: pl.DataFrame, *, static: bool, min_count: int, max_codes: int | None
) -> pl.DataFrame:
    """Codes seen at least `min_count` times, capped to the `max_codes` most frequent.

    Ties in the cap are broken by code so the choice is deterministic; the result is sorted by
    code, which fixes the feature order.
    """
    seen = stats.filter(pl.col("static") == static)
    kept = seen.filter(pl.col("count") >= min_count)
    if max_codes is not None:
        kept = kept.sort(["count", "code"], descending=[True, False]).head(max_codes)
    what = "static" if static else "timed"
    logger.debug(
        "vocabulary: %d of the %d %s codes of the fitting history", kept.height, seen.height, what
    )
    return kept.sort("code")


def value_moments(stats: pl.DataFrame) -> pl.DataFrame:
    """Add `mean` and `std` of the values per code; std is 1 where it is (numerically) zero.

    The variance comes from sums of squares, so a constant code can show a rounding residue;
    anything below 1e-10 of the squared scale counts as zero.
    """
    n = pl.col("value_count").cast(pl.Float64)
    mean = pl.col("value_sum") / n
    var = (pl.col("value_sum_sq") / n - mean**2).clip(lower_bound=0.0)
    return stats.with_columns(
        pl.when(n > 0).then(mean).otherwise(0.0).alias("mean"),
        pl.when((n > 1) & (var > 1e-10 * (mean**2 + 1.0)))
        .then(var.sqrt())
        .otherwise(1.0)
        .alias("std"),
    )
