"""The settings of each feature kind, light to import (no builder behind them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ehrbench.errors import EhrbenchError
from ehrbench.features.windows import parse_windows

# What codes features read: the dataset's own, or the shared concepts of its concept map
# (`ehrbench.features.concepts`: codes outside the map are dropped).
VOCABULARIES = ("codes", "concepts")
DEFAULT_VOCABULARY = "codes"


def check_vocabulary(value: str) -> None:
    """Raise EhrbenchError unless `value` is a feature vocabulary (`codes` or `concepts`).

    >>> check_vocabulary("words")
    Traceback (most recent call last):
    ehrbench.errors.EhrbenchError: vocabulary is 'words': it must be one of ['codes', 'concepts'].
    """
    if value not in VOCABULARIES:
        raise EhrbenchError(f"vocabulary is {value!r}: it must be one of {list(VOCABULARIES)}.")


def config_record(config: Any) -> dict[str, Any]:
    """A feature config's fields as a dict, without `vocabulary` when it is the default `codes`,
    so cache keys, run hashes and saved vocabularies from before the setting are unchanged.

    >>> config_record(TabularConfig(windows=("full",)))
    {'windows': ('full',), 'min_count': 10, 'max_codes': None}
    """
    record = asdict(config)
    if record.get("vocabulary") == DEFAULT_VOCABULARY:
        del record["vocabulary"]
    return record


@dataclass(frozen=True)
class TabularConfig:
    """Settings of the tabular featuriser."""

    windows: tuple[str, ...] = ("1d", "7d", "30d", "365d", "full")
    min_count: int = 10
    max_codes: int | None = None
    vocabulary: str = DEFAULT_VOCABULARY

    def __post_init__(self) -> None:
        parse_windows(self.windows)
        check_vocabulary(self.vocabulary)


# Events per row of a sequence: 65,536 of them already make a 10,000-row input of several GB.
MAX_EVENTS = 65_536


@dataclass(frozen=True)
class SequenceConfig:
    """Settings of the sequence featuriser."""

    max_events: int = 512
    min_count: int = 10
    max_codes: int | None = None
    vocabulary: str = DEFAULT_VOCABULARY

    def __post_init__(self) -> None:
        check_vocabulary(self.vocabulary)
        if not 1 <= self.max_events <= MAX_EVENTS:
            raise EhrbenchError(
                f"max_events is {self.max_events}: it must be from 1 to {MAX_EVENTS} (a "
                "sequence model's input holds rows x max_events events)."
            )


@dataclass(frozen=True)
class RepresentationConfig:
    """Settings of a frozen representation: the file of embeddings, one per label row."""

    file: str | None = None


@dataclass(frozen=True)
class EhrshotCountsConfig:
    """EHRSHOT's count features have no settings: every code, lifetime counts, no minimum."""
