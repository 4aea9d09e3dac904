"""What a run cost: fit and predict seconds, peak memory, and the fitted model's size.

Peak memory is the process's resident set size (RSS: every page in RAM, whatever allocated it:
Python, numpy, LightGBM's or torch's native code and threads) at its highest during the run,
minus the RSS when the run began, so the features and data already loaded do not count. RSS is
read from `/proc/self/statm` every `SAMPLE_SECONDS` by a background thread; when the run also
raised the process's high-water mark (`getrusage` max RSS), that exact peak is used instead of
the samples. Where `/proc` is missing (macOS, Windows) the peak is not measured (None).

Timings vary from run to run, so costs are kept apart from everything that must be
byte-identical (predictions, metrics): in the run record and its own columns only.
"""

from __future__ import annotations

import os
import resource
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import polars as pl

# The cost columns of a results folder's `runs.csv`, with their types.
COST_COLUMNS: dict[str, pl.DataType] = {
    "fit_seconds": pl.Float64(),
    "predict_seconds": pl.Float64(),
    "peak_memory_mb": pl.Float64(),
    "n_parameters": pl.Int64(),
}
SAMPLE_SECONDS = 0.005
_STATM = Path("/proc/self/statm")
_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 0.0


@dataclass(frozen=True)
class RunCost:
    """The cost of one run: the grid search and chosen fit, the held_out prediction, the size."""

    fit_seconds: float
    predict_seconds: float
    peak_memory_mb: float | None
    n_parameters: int

    def as_dict(self) -> dict[str, Any]:
        """The cost as JSON-ready fields (seconds to the millisecond, memory to 0.1 MB).

        >>> RunCost(1.23456, 0.0104, 12.345, 7).as_dict()
        {'fit_seconds': 1.235, 'predict_seconds': 0.01, 'peak_memory_mb': 12.3, 'n_parameters': 7}
        """
        values = asdict(self)
        values["fit_seconds"] = round(self.fit_seconds, 3)
        values["predict_seconds"] = round(self.predict_seconds, 3)
        if self.peak_memory_mb is not None:
            values["peak_memory_mb"] = round(self.peak_memory_mb, 1)
        return values


def _rss_mb() -> float:
    return int(_STATM.read_text().split()[1]) * _PAGE_MB


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class PeakMemory:
    """A `with` block that measures its peak RSS growth in MB (`peak_mb`; see the module doc).

    >>> with PeakMemory() as memory:
    ...     block = bytearray(64 * 2**20)
    >>> memory.peak_mb is None or memory.peak_mb >= 0
    True
    """

    def __init__(self) -> None:
        self.peak_mb: float | None = None
        self._measured = _STATM.exists()
        self._stop = threading.Event()
        self._sampled = 0.0
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sampled = max(self._sampled, _rss_mb())

    def __enter__(self) -> Self:
        if self._measured:
            self._start, self._start_max = _rss_mb(), _max_rss_mb()
            self._sampled = self._start
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._measured:
            return
        self._stop.set()
        self._thread.join()
        peak = max(self._sampled, _rss_mb())
        high_water = _max_rss_mb()
        if high_water > self._start_max:  # the run set the process's peak: take it exactly
            peak = max(peak, high_water)
        self.peak_mb = max(0.0, peak - self._start)
