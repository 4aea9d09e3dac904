"""The engine's event reader: an event table as a lazy query, run by polars' streaming engine."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import polars as pl

from ehrbench.meds.validate import reading


class EventSource:
    """An event table read lazily: a parquet shard, or an in-memory frame.

    Queries built on `scan` read only the columns they use and run through polars' streaming
    engine (`collect`), so memory is bounded by the engine's batches and the results, not by
    the shard.

    >>> source = EventSource(pl.DataFrame({"subject_id": [1, 2], "code": ["A", "B"]}))
    >>> source.names, source.where
    (['subject_id', 'code'], 'the in-memory event table')
    >>> source.collect([source.scan().select(pl.len())])[0].item()
    2
    """

    def __init__(self, source: Path | pl.DataFrame | pl.LazyFrame):
        self._file = source if isinstance(source, Path) else None
        # What messages call this table.
        self.where = str(source) if self._file is not None else "the in-memory event table"
        if self._file is not None:
            self._frame = pl.scan_parquet(self._file, glob=False)
        else:
            assert not isinstance(source, Path)
            self._frame = source.lazy()
        with self._reading():
            self.schema = self._frame.collect_schema()
        self.names = self.schema.names()

    def _reading(self):
        """Failures to decode the shard name it (the footer is read first, pages as needed)."""
        return reading(self._file) if self._file is not None else nullcontext()

    def scan(self) -> pl.LazyFrame:
        """The whole table, lazily: queries built on it read only the columns they use."""
        return self._frame

    def collect(self, queries: list[pl.LazyFrame]) -> list[pl.DataFrame]:
        """Run `queries` (built on `scan`) together on the streaming engine."""
        with self._reading():
            return pl.collect_all(queries, engine="streaming")
