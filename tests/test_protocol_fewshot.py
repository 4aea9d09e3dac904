"""The EHRSHOT few-shot sampler: nesting, counts, replacement, determinism, the grid."""

import numpy as np
import pytest

from ehrbench.errors import EhrbenchError
from ehrbench.protocol.fewshot import (
    K_VALUES,
    MAX_K,
    FewShotPlan,
    FewShotRun,
    class_order,
    fewshot_indices,
    parse_k,
)

NUMERIC_K = [k for k in K_VALUES if k != "all"]


def _labels(n_pos: int, n_neg: int, seed: int = 0) -> np.ndarray:
    y = np.array([True] * n_pos + [False] * n_neg)
    return np.random.default_rng(seed).permutation(y)


def test_k_shot_has_k_rows_of_each_class_negatives_first():
    y = _labels(300, 700)
    for k in NUMERIC_K:
        idx = fewshot_indices(y, seed=0, k=k)
        assert idx.size == 2 * k
        assert not y[idx[:k]].any() and y[idx[k:]].all()
        assert np.unique(idx).size == 2 * k  # plenty of rows: no repeats


def test_smaller_k_is_a_subset_of_larger_k_per_class():
    y = _labels(200, 500)
    for seed in range(3):
        for small, large in zip(NUMERIC_K[:-1], NUMERIC_K[1:], strict=True):
            a, b = fewshot_indices(y, seed, small), fewshot_indices(y, seed, large)
            # Per class, the small set is the prefix of the large one.
            assert np.array_equal(a[:small], b[:small])
            assert np.array_equal(a[small:], b[large : large + small])


def test_matches_the_legacy_seeded_numpy_draw():
    # EHRSHOT seeds numpy's legacy global generator once per class and draws MAX_K rows.
    y = _labels(50, 400, seed=4)
    for seed in (0, 3):
        rows = np.flatnonzero(~y)
        np.random.seed(seed)
        legacy = np.random.choice(rows, size=MAX_K, replace=False)
        assert np.array_equal(class_order(y, seed, positive=False), legacy)
        assert np.array_equal(fewshot_indices(y, seed, 16)[:16], legacy[:16])


def test_short_class_takes_all_rows_first_then_draws_with_replacement():
    y = _labels(5, 400)
    positives = set(np.flatnonzero(y).tolist())
    order = class_order(y, seed=1, positive=True)
    assert order.size == MAX_K
    assert set(order[:5].tolist()) == positives  # a permutation of all 5 before any repeat
    assert set(order[5:].tolist()) <= positives
    idx = fewshot_indices(y, seed=1, k=32)
    assert idx.size == 64 and y[idx[32:]].all()
    assert np.unique(idx[32:]).size == 5  # repeats, only from the 5 positives
    # Nesting still holds: k=4 draws 4 distinct positives, the prefix of k=32's.
    small = fewshot_indices(y, seed=1, k=4)
    assert np.array_equal(small[4:], idx[32:36]) and np.unique(small[4:]).size == 4


def test_absent_class_contributes_nothing():
    y = np.zeros(20, dtype=bool)
    idx = fewshot_indices(y, 0, 4)
    assert idx.size == 4 and not y[idx].any()


def test_deterministic_and_seed_dependent():
    y = _labels(100, 100)
    assert np.array_equal(fewshot_indices(y, 2, 8), fewshot_indices(y.copy(), 2, 8))
    assert not np.array_equal(fewshot_indices(y, 2, 8), fewshot_indices(y, 3, 8))


def test_all_is_every_row_and_runs_once():
    y = _labels(3, 10)
    assert np.array_equal(fewshot_indices(y, 4, "all"), np.arange(13))
    plan = FewShotPlan()
    all_runs = [r for r in plan.runs if r.k == "all"]
    assert all_runs == [FewShotRun("all", 0)]
    assert plan.replicates(all_runs[0]) == (0, 1, 2, 3, 4)
    assert plan.replicates(FewShotRun(8, 2)) == (2,)
    assert len(plan.runs) == 11 * 5 + 1


def test_plan_draws_train_and_tuning_separately_and_never_sees_held_out():
    # Row positions are per split: the indices returned refer to the arrays passed in, so a
    # held-out row (absent from both arrays) cannot be selected.
    rng = np.random.default_rng(0)
    split = rng.choice(["train", "tuning", "held_out"], size=900, p=[0.6, 0.2, 0.2])
    labels = rng.random(900) < 0.2
    row_ids = np.arange(900)
    plan = FewShotPlan(ks=(4, 128, "all"), seeds=(0, 1))
    train_rows, tuning_rows = row_ids[split == "train"], row_ids[split == "tuning"]
    held_out = set(row_ids[split == "held_out"].tolist())
    for run in plan.runs:
        train_idx, tuning_idx = plan.indices(run, labels[train_rows], labels[tuning_rows])
        chosen = set(train_rows[train_idx].tolist()) | set(tuning_rows[tuning_idx].tolist())
        assert not chosen & held_out
        assert set(train_rows[train_idx].tolist()) <= set(train_rows.tolist())
        if run.k != "all":
            assert train_idx.size == tuning_idx.size == 2 * run.k


def test_plan_orders_and_validates():
    plan = FewShotPlan.from_config(["all", "8", 1], [1, 0])
    assert plan.ks == (1, 8, "all") and plan.seeds == (1, 0)
    assert [(r.k, r.seed) for r in plan.runs] == [(1, 1), (1, 0), (8, 1), (8, 0), ("all", 1)]
    with pytest.raises(EhrbenchError, match="k values must be non-empty and distinct"):
        FewShotPlan(ks=(4, "4"))
    with pytest.raises(EhrbenchError, match="seeds must be non-empty and distinct"):
        FewShotPlan(seeds=())


@pytest.mark.parametrize("bad", [0, 129, "many", 2.5, True, None])
def test_bad_k_is_rejected(bad):
    with pytest.raises(EhrbenchError, match='from 1 to 128, or "all"'):
        parse_k(bad)


def test_bad_seed_and_labels_are_rejected():
    with pytest.raises(EhrbenchError, match="replicate seed must be a whole number"):
        fewshot_indices(np.array([True, False]), -1, 1)
    with pytest.raises(EhrbenchError, match="labels must be a 1-d array of booleans"):
        fewshot_indices(np.array([0, 2]), 0, 1)
