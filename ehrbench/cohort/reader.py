"""The engine's batch reader: an event table's needed columns, a bounded batch of rows at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ehrbench.cohort.model import CODE
from ehrbench.errors import EhrbenchError

# Rows per batch: large enough that per-batch overhead stays small, small enough that a batch
# and the few row-length arrays made from it stay around a MiB (so the reader, not the shard's
# size, sets the engine's peak memory).
BATCH_ROWS = 1 << 16
# Rows read between returns of arrow's cached memory to the system. Arrow's allocator keeps
# freed batches for reuse and its cache keeps growing while a shard is read; releasing after
# every batch would instead make each batch fault its pages in afresh, which costs time.
RELEASE_ROWS = 1 << 19


class EventSource:
    """An event table read in batches of rows: a parquet shard, or an in-memory frame.

    Only the columns the cohort needs are read, with `code` dictionary-encoded where parquet
    stores it so (each code test then runs once per distinct code).
    """

    def __init__(self, source: Path | pl.DataFrame | pl.LazyFrame):
        self._file = source if isinstance(source, Path) else None
        self._frame = None if isinstance(source, Path) else source.lazy()
        # What messages call this table.
        self.where = str(source) if self._file is not None else "the in-memory event table"
        if self._file is not None:
            try:
                self.names = list(pq.read_schema(self._file).names)
            except (OSError, pa.ArrowException) as exc:
                raise EhrbenchError(
                    f"{self._file} is not a readable parquet event shard ({exc})."
                ) from exc
        else:
            self.names = self._frame.collect_schema().names()

    def batches(self, columns: list[str]) -> Iterator[pa.Table]:
        """The `columns` (all among `names`) in batches of at most `BATCH_ROWS` rows."""
        if self._file is not None:
            yield from _file_batches(self._file, columns)
            return
        frame = self._frame.select(columns).collect()
        for offset in range(0, frame.height, BATCH_ROWS):
            yield frame.slice(offset, BATCH_ROWS).to_arrow()


def _file_batches(path: Path, columns: list[str]) -> Iterator[pa.Table]:
    """A parquet file's `columns` streamed in `BATCH_ROWS`-row batches, decoding page by page.

    One decoding thread: the columns are few and the batches small, and each extra thread
    would add its own allocator cache to the peak.
    """
    encoded = [CODE] if CODE in columns else None
    pool = pa.default_memory_pool()
    unreleased = 0
    with pq.ParquetFile(path, read_dictionary=encoded) as reader:
        batches = reader.iter_batches(batch_size=BATCH_ROWS, columns=columns, use_threads=False)
        while batch := _next_batch(path, batches):
            yield pa.Table.from_batches([batch])
            unreleased += batch.num_rows
            if unreleased >= RELEASE_ROWS:
                pool.release_unused()
                unreleased = 0


def _next_batch(path: Path, batches: Iterator[pa.RecordBatch]) -> pa.RecordBatch | None:
    """The next batch, or None at the end; a page that cannot be decoded names the shard.

    The footer was checked when the dataset was opened, but a damaged data page shows only when
    it is read.
    """
    try:
        return next(batches, None)
    except (OSError, pa.ArrowException) as exc:
        raise EhrbenchError(f"{path} is not a readable parquet event shard ({exc}).") from exc
