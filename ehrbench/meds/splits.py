"""Subject-level splits: the stable hash split used when a dataset ships none.

A subject's split depends only on its `subject_id` and the fractions: the id's 8 little-endian
bytes are hashed with BLAKE2b (64-bit digest), the digest is read as a number `u` in [0, 1), and
`u` falls into `train`, `tuning` or `held_out` by the cumulative fractions. Python's `hash()` is
not used because it is salted per process for some types and not guaranteed across versions.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence

import meds
import numpy as np
import polars as pl

from ehrbench.errors import EhrbenchError

SPLIT_NAMES = (meds.train_split, meds.tuning_split, meds.held_out_split)
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
_DIGEST_SCALE = float(2**64)


def _unit_hash(subject_id: int) -> float:
    """The subject's position in [0, 1): BLAKE2b-64 of its int64 little-endian bytes."""
    digest = hashlib.blake2b(subject_id.to_bytes(8, "little", signed=True), digest_size=8)
    return int.from_bytes(digest.digest(), "little") / _DIGEST_SCALE


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Return `fractions` as a (train, tuning, held_out) triple, or raise if they are invalid."""
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or any(not math.isfinite(f) or f < 0 for f in values):
        raise EhrbenchError(
            f"split fractions {list(fractions)} are invalid: expected three non-negative numbers "
            "for train, tuning and held_out, e.g. 0.7,0.15,0.15."
        )
    if abs(sum(values) - 1.0) > 1e-6:
        raise EhrbenchError(
            f"split fractions {list(values)} sum to {sum(values):g}: expected them to sum to 1 "
            "(train, tuning, held_out), e.g. 0.7,0.15,0.15."
        )
    return values  # type: ignore[return-value]


def parse_fractions(text: str) -> tuple[float, float, float]:
    """Parse a command-line fractions string such as `0.7,0.15,0.15`."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise EhrbenchError(
            f"--fractions {text!r} is not a comma-separated list of numbers: expected three "
            "fractions for train, tuning and held_out, e.g. 0.7,0.15,0.15."
        ) from None
    return check_fractions(values)


def hash_splits(
    subject_ids: Iterable[int], fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> pl.DataFrame:
    """Assign each subject to train/tuning/held_out by a stable hash of its id.

    Returns a (subject_id Int64, split String) frame sorted by subject_id, one row per distinct id.
    """
    train, tuning, _ = check_fractions(fractions)
    ids = sorted({int(i) for i in subject_ids})
    bounds = (train, train + tuning)
    splits = []
    for subject_id in ids:
        u = _unit_hash(subject_id)
        splits.append(SPLIT_NAMES[0] if u < bounds[0] else SPLIT_NAMES[1 + (u >= bounds[1])])
    return pl.DataFrame(
        {"subject_id": ids, "split": splits}, schema={"subject_id": pl.Int64, "split": pl.String}
    )


def split_sizes(splits: pl.DataFrame) -> dict[str, int]:
    """Subjects per split, the standard names first, then any others alphabetically."""
    counts = dict(splits.group_by("split").len().iter_rows())
    order = [s for s in SPLIT_NAMES if s in counts] + sorted(set(counts) - set(SPLIT_NAMES))
    return {name: counts[name] for name in order}


def split_indices(rows: pl.DataFrame, splits: pl.DataFrame, source: str) -> dict[str, np.ndarray]:
    """Row indices (label order) of each split; raise if a row's subject has no split.

    >>> rows = pl.DataFrame({"subject_id": [3, 1, 2, 1]})
    >>> splits = pl.DataFrame({"subject_id": [1, 2, 3], "split": ["train", "tuning", "held_out"]})
    >>> {name: rows.tolist() for name, rows in split_indices(rows, splits, "labels").items()}
    {'train': [1, 3], 'tuning': [2], 'held_out': [0]}
    """
    assigned = rows.select(pl.col("subject_id").cast(pl.Int64)).join(
        splits.select(pl.col("subject_id").cast(pl.Int64), "split"),
        on="subject_id",
        how="left",
        maintain_order="left",
    )
    missing = assigned.filter(pl.col("split").is_null())["subject_id"].unique().sort()
    if missing.len():
        raise EhrbenchError(
            f"label table {source}: {missing.len()} subject(s) (e.g. {missing.head(5).to_list()}) "
            "have no row in the dataset's subject splits (metadata/subject_splits.parquet), so "
            "they cannot be placed in train, tuning or held_out."
        )
    split = assigned["split"].to_numpy()
    return {name: np.flatnonzero(split == name) for name in SPLIT_NAMES}


def check_split_sizes(indices: dict[str, np.ndarray], source: str) -> None:
    """Raise when the tuning or held_out split has no label row."""
    for name, purpose in (("tuning", "choose hyperparameters"), ("held_out", "score the model")):
        if indices[name].size == 0:
            sizes = ", ".join(f"{k} {v.size}" for k, v in indices.items())
            raise EhrbenchError(
                f"label table {source} has no row in the `{name}` split ({sizes}); a run needs "
                f"{name} rows to {purpose}. Check the cohort or the dataset's subject splits."
            )
