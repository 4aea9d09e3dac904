"""The settings of each feature kind, light to import (no builder behind them)."""

from __future__ import annotations

from dataclasses import dataclass

from ehrbench.errors import EhrbenchError
from ehrbench.features.windows import parse_windows


@dataclass(frozen=True)
class TabularConfig:
    """Settings of the tabular featuriser."""

    windows: tuple[str, ...] = ("1d", "7d", "30d", "365d", "full")
    min_count: int = 10
    max_codes: int | None = None

    def __post_init__(self) -> None:
        parse_windows(self.windows)


@dataclass(frozen=True)
class SequenceConfig:
    """Settings of the sequence featuriser."""

    max_events: int = 512
    min_count: int = 10
    max_codes: int | None = None

    def __post_init__(self) -> None:
        if self.max_events < 1:
            raise EhrbenchError(f"max_events is {self.max_events}: it must be at least 1.")


@dataclass(frozen=True)
class RepresentationConfig:
    """Settings of a frozen representation: the file of embeddings, one per label row."""

    file: str | None = None


@dataclass(frozen=True)
class EhrshotCountsConfig:
    """EHRSHOT's count features have no settings: every code, lifetime counts, no minimum."""
