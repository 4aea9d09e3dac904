"""EHRSHOT's evaluation protocol (`protocol: ehrshot` in a suite): everything it changes.

Read from EHRSHOT's code (`ehrshot-benchmark` `7_eval_finetune.py`, `utils.py`, `7_eval.sh`);
the sampler, the test set and the selection by tuning AUROC are already ehrbench's own.

- Grids: EHRSHOT's, listed in scikit-learn `ParameterGrid` order (keys sorted by name, the last
  varying fastest), so a tie goes to the setting EHRSHOT's `GridSearchCV` would pick. Fixed in
  every setting: LightGBM 100 trees, no early stopping, `min_child_samples` 1; logistic
  regression `max_iter` 1000 in the search (lbfgs, L2, MaxAbs-scaled as ehrbench already does).
- Refit: EHRSHOT refits the chosen setting on the k-shot train rows with its grid keys only, so
  logistic regression refits with scikit-learn's default `max_iter=100` (`REFIT`). Its refit
  also drops `random_state`; ehrbench keeps `random_state` = the replicate seed (deterministic:
  for LightGBM without bagging that changes nothing, for random forest it is a deviation).
- The k-shot train rows are shuffled by the replicate seed before fitting (`shuffle_rows`).
- `k = all` runs once per replicate seed; k defaults to the list EHRSHOT evaluates.
- Tabular models read EHRSHOT's count features (`ehrbench.features.ehrshot_counts`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ehrbench.protocol.fewshot import ALL, K

DEFAULT_PROTOCOL = "ehrbench"
EHRSHOT = "ehrshot"
PROTOCOLS = (DEFAULT_PROTOCOL, EHRSHOT)
# `7_eval.sh`: the k values EHRSHOT evaluates (12, 24 and 48 are sampled but not evaluated).
K_VALUES: tuple[K, ...] = (1, 2, 4, 8, 16, 32, 64, 128, ALL)
GRIDS: dict[str, list[dict[str, Any]]] = {
    "lightgbm": [
        {"learning_rate": rate, "max_depth": depth, "num_leaves": leaves}
        for rate in (0.02, 0.1, 0.5)
        for depth in (3, 6, -1)
        for leaves in (10, 25, 100)
    ],
    "logreg": [{"C": c} for c in (1e-8, 1e-6, 1e-4, 1e-2, 1e-1, 1.0, 1e2, 1e4)],
    "random_forest": [
        {"max_depth": depth, "n_estimators": trees}
        for depth in (3, 5, 10, 20, 50)
        for trees in (10, 20, 50, 100, 300)
    ],
}
FIXED: dict[str, dict[str, Any]] = {
    "lightgbm": {"n_estimators": 100, "early_stopping": False, "min_data_in_leaf": 1},
    "logreg": {"max_iter": 1000},
    "random_forest": {"min_samples_leaf": 1, "max_features": "sqrt"},
}
REFIT: dict[str, dict[str, Any]] = {"logreg": {"max_iter": 100}}


def shuffle_rows(rows: np.ndarray, seed: int) -> np.ndarray:
    """`rows` permuted as EHRSHOT does: `np.random.seed(seed); np.random.shuffle(idx)`.

    >>> shuffle_rows(np.array([10, 11, 12, 13]), 0).tolist()
    [12, 13, 11, 10]
    """
    order = np.arange(rows.size)
    np.random.RandomState(seed).shuffle(order)
    return rows[order]
