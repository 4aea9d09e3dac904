"""Few-shot sampling, following the EHRSHOT protocol exactly.

For one label array (the `train` rows, or separately the `tuning` rows) and one replicate seed:

1. For each class present, in ascending order (negatives, then positives), a fresh
   `numpy.random.RandomState(seed)` (the legacy generator EHRSHOT seeds with `np.random.seed`)
   draws `choice(class_rows, size=min(n_class, MAX_K), replace=False)`: a random order over up
   to 128 of the class's rows.
2. If the class has fewer than `MAX_K` rows, the same generator then appends
   `choice(class_rows, size=MAX_K - n_class, replace=True)`. So the first n_class entries are a
   permutation of all the class's rows and the rest are draws with replacement.
3. The k-shot set is the first k entries of each class's list, negatives then positives.

Because every k reads a prefix of one fixed list of length `MAX_K`, a smaller k is always a
subset of a larger k (also when a class is short: k <= n_class takes distinct rows, larger k
adds replacement draws after all n_class rows). A class absent from the labels contributes no
rows. `k = "all"` is every row, and runs once (its result stands for every replicate seed), or
once per seed with `all_per_seed` (EHRSHOT's protocol: the seed then changes only the shuffle and
the models' random state).

Other label kinds (`ehrbench.meds.label_kinds`): a multiclass label draws k rows per class, each
class's list made as above, the classes in their order (class index ascending); a regression
label has no classes, so its k is the total number of examples: one list over all rows, made as
above, of which the first k are taken.

The sampler only ever sees the train or tuning labels it is given: held_out rows cannot enter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from ehrbench.arguments import SEED_MAX
from ehrbench.errors import EhrbenchError
from ehrbench.meds.label_kinds import BINARY, MULTICLASS, REGRESSION

MAX_K = 128
ALL: Literal["all"] = "all"
K_VALUES: tuple[int | str, ...] = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, ALL)
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
K = int | Literal["all"]


def parse_k(value: object) -> K:
    """A k value from a config: an int in 1..MAX_K (or its string) or "all"."""
    if isinstance(value, str) and value.strip().lower() == ALL:
        return ALL
    whole = isinstance(value, int | np.integer) and not isinstance(value, bool)
    digits = isinstance(value, str) and value.strip().isdigit()
    k = int(value) if whole or digits else None
    if k is None or not 1 <= k <= MAX_K:
        raise EhrbenchError(
            f"few-shot: k must be a whole number of examples per class from 1 to {MAX_K}, or "
            f'"all"; got {value!r}.'
        )
    return k


def _check_seed(seed: object) -> int:
    whole = isinstance(seed, int | np.integer) and not isinstance(seed, bool)
    if not (whole and 0 <= seed <= SEED_MAX):
        raise EhrbenchError(
            f"few-shot: a replicate seed must be a whole number from 0 to 2**32 - 1, got {seed!r}."
        )
    return int(seed)


def _as_labels(labels: ArrayLike) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or (y.dtype != np.bool_ and not np.isin(y, (0, 1)).all()):
        raise EhrbenchError(
            "few-shot: labels must be a 1-d array of booleans (or 0/1), one per train or "
            f"tuning row; got shape {y.shape} and dtype {y.dtype}."
        )
    return y.astype(bool)


def class_order(labels: ArrayLike, seed: int, positive: bool) -> np.ndarray:
    """The seeded list of `MAX_K` row indices of one class (step 1 and 2 of the protocol)."""
    y = _as_labels(labels)
    return _seeded_list(np.flatnonzero(y == positive), seed)


def _seeded_list(rows: np.ndarray, seed: int) -> np.ndarray:
    """The seeded list of `MAX_K` entries of `rows` (step 1 and 2), empty for no rows."""
    if not rows.size:
        return rows
    rng = np.random.RandomState(_check_seed(seed))
    order = rng.choice(rows, size=min(rows.size, MAX_K), replace=False)
    if rows.size < MAX_K:
        order = np.concatenate([order, rng.choice(rows, size=MAX_K - rows.size, replace=True)])
    return order.astype(np.int64)


def fewshot_indices(labels: ArrayLike, seed: int, k: K, kind: str = BINARY) -> np.ndarray:
    """Row indices (into `labels`) of the k-shot sample: k negatives then k positives (binary),
    k rows of each class in class order (multiclass, `labels` class indices), or k rows in all
    (regression).

    `labels` are the train (or tuning) labels only. Indices may repeat when a class (or, for
    regression, the set) has fewer than k rows. `k = "all"` returns every row in order.

    >>> fewshot_indices([0, 1, 2, 2, 1, 0], seed=0, k=1, kind="multiclass")
    array([5, 4, 3])
    """
    k = parse_k(k)
    if kind == BINARY:
        y = _as_labels(labels)
        if k == ALL:
            return np.arange(y.size, dtype=np.int64)
        return np.concatenate([class_order(y, seed, cls)[:k] for cls in (False, True)])
    y = np.asarray(labels)
    if k == ALL:
        return np.arange(y.size, dtype=np.int64)
    if kind == REGRESSION:
        return _seeded_list(np.arange(y.size, dtype=np.int64), seed)[:k]
    if kind != MULTICLASS:
        raise EhrbenchError(f"few-shot: unknown label kind {kind!r}.")
    parts = [_seeded_list(np.flatnonzero(y == c), seed)[:k] for c in np.unique(y)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class FewShotRun:
    """One cell of the few-shot grid: k examples per class, replicate `seed`."""

    k: K
    seed: int


@dataclass(frozen=True)
class FewShotPlan:
    """The (k, seed) runs of a few-shot grid; `all` runs once, with the first seed, unless
    `all_per_seed`."""

    ks: tuple[K, ...] = K_VALUES
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    all_per_seed: bool = False

    def __post_init__(self) -> None:
        ks = [parse_k(k) for k in self.ks]
        seeds = [_check_seed(s) for s in self.seeds]
        if not ks or len(set(ks)) != len(ks):
            raise EhrbenchError(f"few-shot: k values must be non-empty and distinct, got {ks}.")
        if not seeds or len(set(seeds)) != len(seeds):
            raise EhrbenchError(f"few-shot: seeds must be non-empty and distinct, got {seeds}.")
        numeric = sorted(k for k in ks if k != ALL)
        object.__setattr__(self, "ks", tuple(numeric + ([ALL] if ALL in ks else [])))
        object.__setattr__(self, "seeds", tuple(seeds))

    @classmethod
    def from_config(
        cls, ks: Sequence[object], seeds: Sequence[object], all_per_seed: bool = False
    ) -> FewShotPlan:
        """A plan from config values (k as int, digit string or "all")."""
        return cls(tuple(ks), tuple(seeds), all_per_seed)

    @property
    def runs(self) -> tuple[FewShotRun, ...]:
        """Every run, by ascending k then seed; `all` once with the first seed (unless
        `all_per_seed`)."""
        return tuple(
            FewShotRun(k, seed)
            for k in self.ks
            for seed in (self.seeds[:1] if self._shared(k) else self.seeds)
        )

    def replicates(self, run: FewShotRun) -> tuple[int, ...]:
        """The replicate seeds a run's result stands for (all of them for a shared `all`)."""
        return self.seeds if self._shared(run.k) else (run.seed,)

    def _shared(self, k: K) -> bool:
        """Whether one run of `k` stands for every seed."""
        return k == ALL and not self.all_per_seed

    def indices(
        self,
        run: FewShotRun,
        labels_train: ArrayLike,
        labels_tuning: ArrayLike,
        kind: str = BINARY,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(train indices, tuning indices) of `run`, each drawn from its own split's labels of
        label kind `kind`."""
        return (
            fewshot_indices(labels_train, run.seed, run.k, kind),
            fewshot_indices(labels_tuning, run.seed, run.k, kind),
        )
