"""Tabular models on the sparse feature matrix: logistic regression, ridge, LightGBM, random
forest.

Each reads `features.matrix` (scipy CSR, float32, one row per label); only the random forest
fits and predicts from a dense copy, and only when that is at most twice the sparse matrix's
size (`forest_input`).
Label kinds: logistic regression (multinomial for multiclass) and the random forest classify;
ridge regresses; LightGBM does all three (binary, multiclass or regression objective).
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import warnings
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler

from ehrbench.io import atomic_path, write_text_atomic
from ehrbench.meds.label_kinds import BINARY, MULTICLASS, REGRESSION
from ehrbench.models.base import Model, above, at_least, register

PICKLE_FILE = "model.pkl"
BOOSTER_FILE = "booster.txt"
# A search keeps its random forests fitted on fewer rows for its later settings (see
# `RandomForestModel._fit`): up to 2 x 49 - 1 nodes a tree, small beside the rows' features.
SHARED_FOREST_ROWS = 50
# The (model, hyperparameters) settings a scikit-learn fit of this process has validated.
_VALIDATED_SETTINGS: set[Hashable] = set()


def lean_sklearn(matrix: Any, validated: bool) -> sklearn.config_context:
    """scikit-learn's documented speed switches, only where they cannot change an outcome:
    finiteness checks are skipped for a `matrix` (sparse or dense) whose values are all finite
    (checked here, in one pass), and parameter validation once the same parameters have passed
    it (`validated`). On a k-shot run these checks cost more than the fits themselves
    (logistic regression: about 2x).

    >>> import scipy.sparse as sp
    >>> with lean_sklearn(sp.csr_matrix(np.array([[1.0, np.inf]])), validated=True):
    ...     sklearn.get_config()["assume_finite"], sklearn.get_config()["skip_parameter_validation"]
    (False, True)
    """
    values = matrix.data if sp.issparse(matrix) else np.asarray(matrix)
    finite = bool(np.isfinite(values).all())
    return sklearn.config_context(assume_finite=finite, skip_parameter_validation=validated)


# LightGBM settings that shape the trees but not the binned datasets: settings of a search
# that differ only in these boost on the same datasets, binned once rather than once per setting
# (its own grid varies nothing else). Any other setting (min_data_in_leaf, which pre-filters
# features) gets datasets of its own.
BOOSTING_ONLY = frozenset(
    {"learning_rate", "num_leaves", "max_depth", "feature_fraction", "lambda_l2"}
)


@dataclass(frozen=True)
class LogisticRegressionParams:
    """Inverse L2 strength and the lbfgs iteration cap."""

    C: float = above(1.0, 0)
    max_iter: int = at_least(1000, 1)


@dataclass(frozen=True)
class RidgeParams:
    """The L2 strength of ridge regression."""

    alpha: float = above(1.0, 0)


@dataclass(frozen=True)
class RandomForestParams:
    """scikit-learn's forest settings (`max_features`: "sqrt", "log2", a share or a count)."""

    n_estimators: int = at_least(200, 1)
    max_depth: int | None = at_least(None, 1)
    min_samples_leaf: int = at_least(1, 1)
    max_features: str | float | None = "sqrt"
    n_jobs: int = 1


@dataclass(frozen=True)
class LightGBMParams:
    """Boosting settings; `n_estimators` is the most rounds before early stopping, or exactly
    the rounds without it (`early_stopping: false`, EHRSHOT's way)."""

    learning_rate: float = above(0.1, 0)
    num_leaves: int = at_least(31, 2)
    max_depth: int = -1  # -1: no limit
    min_data_in_leaf: int = at_least(20, 0)
    feature_fraction: float = above(1.0, 0)
    lambda_l2: float = at_least(0.0, 0)
    n_estimators: int = at_least(500, 1)
    early_stopping_rounds: int = at_least(25, 1)
    num_threads: int = at_least(1, 1)
    early_stopping: bool = True


class _SklearnModel(Model):
    """Shared saving and prediction for the scikit-learn models (stored with pickle)."""

    kind = "tabular"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.estimator: Any = None

    def _fit_estimator(
        self, estimator: Any, matrix: Any, y: np.ndarray, settings: Any = None
    ) -> Any:
        """`estimator`, made from `settings` (default: this model's hyperparameters), fitted;
        scikit-learn validates its parameters on the first fit of those settings in the
        process, and later fits of them skip that."""
        setting = (self.name, settings or self.hyperparameters)
        with lean_sklearn(matrix, validated=setting in _VALIDATED_SETTINGS):
            estimator.fit(matrix, y)
        _VALIDATED_SETTINGS.add(setting)
        return estimator

    def _fit_scaled(self, estimator: Any, train: Any, y: np.ndarray) -> None:
        """Set `self.estimator` to the pipeline (max-abs scaler, `estimator`) fitted on the
        training rows. Every setting of a search would fit the same scaler and scale the same
        rows, so that is done once per search (`reuse`): 9% of a binary logistic regression search
        on all training rows, 4% of a 4-class one."""
        scaler, scaled = self.reuse("max-abs scaled rows", lambda: _max_abs_scaled(train.matrix))
        self.estimator = make_pipeline(scaler, self._fit_estimator(estimator, scaled, y))

    def _predicted(self, method: str, features: Any) -> np.ndarray:
        """`self.estimator.<method>` of the rows' matrix, as float64 (prediction takes no
        parameters, so none are validated)."""
        # The sparse matrix holds the same non-zero values in fewer cells: checked there.
        with lean_sklearn(features.matrix, validated=True):
            rows = self._prediction_input(features.matrix)
            return getattr(self.estimator, method)(rows).astype(np.float64)

    def _prediction_input(self, matrix: Any) -> Any:
        """The rows' matrix as the estimator predicts from it (here: as it is)."""
        return matrix

    def predict_proba(self, features: Any) -> np.ndarray:
        """The probability of the positive class for each row (binary), or of each class of
        the target (multiclass; a class absent from the training rows gets 0)."""
        fitted = self._predicted("predict_proba", features)
        if self.target.kind == BINARY:
            return fitted[:, 1]
        probabilities = np.zeros((fitted.shape[0], len(self.target.classes)))
        probabilities[:, self.estimator.classes_] = fitted
        return probabilities

    def _save_state(self, directory: Path) -> dict[str, Any]:
        with atomic_path(directory / PICKLE_FILE) as tmp:
            tmp.write_bytes(pickle.dumps(self.estimator))
        return {"sklearn_version": sklearn.__version__}

    def _load_state(self, directory: Path, extra: dict[str, Any]) -> None:
        # Only files this package wrote are loaded; pickle is scikit-learn's own save format.
        self.estimator = pickle.loads((directory / PICKLE_FILE).read_bytes())


@register
class LogisticRegressionModel(_SklearnModel):
    """L2 logistic regression on max-abs scaled features (scaling keeps the matrix sparse).

    The scaler is fitted on the training rows only. The grid spans C from 1e-4 to 1e2.
    """

    name = "logreg"
    Hyperparameters = LogisticRegressionParams
    label_kinds = (BINARY, MULTICLASS)

    @classmethod
    def param_grid(cls) -> list[dict[str, Any]]:
        """C over seven decades."""
        return [{"C": c} for c in (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)]

    def n_parameters(self) -> int:
        """The coefficients and the intercept."""
        classifier = self.estimator[-1]
        return int(classifier.coef_.size + classifier.intercept_.size)

    def _fit(
        self, train: Any, y_train: np.ndarray, tuning: Any, y_tuning: np.ndarray, seed: int
    ) -> None:
        """Fit on the training rows; lbfgs is deterministic, so `seed` is only recorded."""
        classifier = LogisticRegression(
            C=float(self.hyperparameters.C),
            l1_ratio=0.0,
            solver="lbfgs",
            max_iter=self.hyperparameters.max_iter,
            random_state=seed,
        )
        # Weak regularisation on few rows may stop at max_iter; the grid then judges the result.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self._fit_scaled(classifier, train, y_train)


@register
class RidgeModel(_SklearnModel):
    """Ridge regression on max-abs scaled features: the regression twin of `logreg`.

    The scaler is fitted on the training rows only. The grid spans alpha from 1e-2 to 1e4.
    """

    name = "ridge"
    Hyperparameters = RidgeParams
    label_kinds = (REGRESSION,)

    @classmethod
    def param_grid(cls) -> list[dict[str, Any]]:
        """alpha over seven decades."""
        return [{"alpha": alpha} for alpha in (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)]

    def n_parameters(self) -> int:
        """The coefficients and the intercept."""
        return int(self.estimator[-1].coef_.size + 1)

    def _fit(
        self, train: Any, y_train: np.ndarray, tuning: Any, y_tuning: np.ndarray, seed: int
    ) -> None:
        """Fit on the training rows; the solver is deterministic, so `seed` is only recorded."""
        regressor = Ridge(alpha=float(self.hyperparameters.alpha), solver="sparse_cg")
        self._fit_scaled(regressor, train, y_train)

    def predict_proba(self, features: Any) -> np.ndarray:
        """The predicted value of each row."""
        return self._predicted("predict", features)


@register
class RandomForestModel(_SklearnModel):
    """A scikit-learn random forest; it has no early stopping, so tuning rows only choose it."""

    name = "random_forest"
    Hyperparameters = RandomForestParams
    label_kinds = (BINARY, MULTICLASS)

    @classmethod
    def param_grid(cls) -> list[dict[str, Any]]:
        """Tree depth and leaf size."""
        return [
            {"max_depth": depth, "min_samples_leaf": leaf} for depth in (None, 8) for leaf in (1, 5)
        ]

    def n_parameters(self) -> int:
        """The nodes of every tree (a split or a leaf value each)."""
        return int(sum(tree.tree_.node_count for tree in self.estimator.estimators_))

    def _fit(
        self, train: Any, y_train: np.ndarray, tuning: Any, y_tuning: np.ndarray, seed: int
    ) -> None:
        """Fit the forest on the training rows with `random_state=seed`.

        A setting whose `max_depth` cannot bind on these rows (`binding_depth`) grows the very
        trees of the unlimited setting. A search keeps its forests on fewer than
        `SHARED_FOREST_ROWS` rows (small ones) for its later settings, so those trees are grown
        once; the model keeps its own settings on a copy that shares the trees.
        """
        hp = self.hyperparameters
        n_rows = train.matrix.shape[0]
        depth = binding_depth(hp.max_depth, hp.min_samples_leaf, n_rows)
        grown = dataclasses.replace(hp, max_depth=depth)
        if n_rows < SHARED_FOREST_ROWS:
            forest = self.reuse(("forest", grown), lambda: self._grown(grown, train, y_train, seed))
        else:
            forest = self._grown(grown, train, y_train, seed)
        self.estimator = forest if depth == hp.max_depth else _relabelled(forest, hp.max_depth)

    def _grown(
        self, hp: RandomForestParams, train: Any, y_train: np.ndarray, seed: int
    ) -> RandomForestClassifier:
        """A forest of settings `hp` fitted on the training rows."""
        forest = RandomForestClassifier(
            n_estimators=hp.n_estimators,
            max_depth=hp.max_depth,
            min_samples_leaf=hp.min_samples_leaf,
            max_features=hp.max_features,
            n_jobs=hp.n_jobs,
            random_state=seed,
        )
        # Column-major: the order the splitter reads.
        rows = self.reuse("forest input", lambda: forest_input(train.matrix, order="F"))
        return self._fit_estimator(forest, rows, y_train, settings=hp)

    def _prediction_input(self, matrix: Any) -> Any:
        """A dense row-major copy when compact: each tree walks a row's values from its root,
        and reads a dense row faster than a sparse one (the same values, so the same leaves)."""
        return forest_input(matrix, order="C")


def binding_depth(max_depth: int | None, min_samples_leaf: int, n_rows: int) -> int | None:
    """`max_depth`, or None when no tree grown on `n_rows` rows can have a node at that depth
    that would still split: then the limit changes nothing, not even the random draws.

    Each split leaves at least `min_samples_leaf` rows on either side, so a node at depth d holds
    at most n_rows - d x min_samples_leaf rows; scikit-learn's depth-first builder splits a node
    only from max(min_samples_split, 2 x min_samples_leaf) rows, and decides that before drawing
    any feature. This holds for `RandomForestParams`: min_samples_split 2, no weight fraction
    per leaf, no max_leaf_nodes (which would choose the best-first builder).

    >>> binding_depth(8, 1, 9), binding_depth(8, 1, 10), binding_depth(8, 5, 49)
    (None, 8, None)
    """
    if max_depth is None or n_rows - max_depth * min_samples_leaf >= max(2, 2 * min_samples_leaf):
        return max_depth
    return None


def _relabelled(forest: RandomForestClassifier, max_depth: int | None) -> RandomForestClassifier:
    """A shallow copy of `forest` (and of each tree) whose settings say `max_depth`: the fitted
    tree structures are shared, not copied."""
    copied = copy.copy(forest)
    copied.max_depth = max_depth
    copied.estimators_ = [copy.copy(tree) for tree in forest.estimators_]
    for tree in copied.estimators_:
        tree.max_depth = max_depth
    return copied


@register
class LightGBMModel(Model):
    """Gradient-boosted trees (LightGBM), early-stopped on the tuning rows' loss (log loss,
    multiclass log loss or RMSE, by label kind).

    `min_data_in_leaf` is capped at a quarter of the training rows (at least 1) so that tiny
    k-shot sets can still split; deterministic mode with a fixed thread count makes the same
    seed give byte-identical predictions.
    """

    name = "lightgbm"
    kind = "tabular"
    Hyperparameters = LightGBMParams
    label_kinds = (BINARY, MULTICLASS, REGRESSION)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.booster: lgb.Booster | None = None

    @classmethod
    def param_grid(cls) -> list[dict[str, Any]]:
        """Depth, number of leaves and learning rate."""
        return [
            {"max_depth": depth, "num_leaves": leaves, "learning_rate": rate}
            for depth in (4, -1)
            for leaves in (8, 32)
            for rate in (0.05, 0.2)
        ]

    def _train_params(self, n_train: int, seed: int) -> dict[str, Any]:
        hp = self.hyperparameters
        return {
            **self._objective(),
            "learning_rate": float(hp.learning_rate),
            "num_leaves": hp.num_leaves,
            "max_depth": hp.max_depth,
            "min_data_in_leaf": max(1, min(hp.min_data_in_leaf, n_train // 4)),
            "feature_fraction": float(hp.feature_fraction),
            "lambda_l2": float(hp.lambda_l2),
            "num_threads": hp.num_threads,
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }

    def _objective(self) -> dict[str, Any]:
        """The objective and early-stopping metric of the target's label kind."""
        if self.target.kind == MULTICLASS:
            return {
                "objective": "multiclass",
                "metric": "multi_logloss",
                "num_class": len(self.target.classes),
            }
        if self.target.kind == REGRESSION:
            return {"objective": "regression", "metric": "rmse"}
        return {"objective": "binary", "metric": "binary_logloss"}

    def _fit(
        self, train: Any, y_train: np.ndarray, tuning: Any, y_tuning: np.ndarray, seed: int
    ) -> None:
        """Boost on the training rows; stop when the tuning loss stops improving (or run
        every round, tuning rows unused, without early stopping)."""
        params = self._train_params(train.matrix.shape[0], seed)
        binning = tuple(sorted((k, v) for k, v in params.items() if k not in BOOSTING_ONLY))
        train_set, tuning_set = self.reuse(
            ("lightgbm datasets", binning),
            lambda: _binned_sets(train.matrix, y_train, tuning.matrix, y_tuning, params),
        )
        if not self.hyperparameters.early_stopping:
            self.booster = lgb.train(
                params, train_set, num_boost_round=self.hyperparameters.n_estimators
            )
            return
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=self.hyperparameters.n_estimators,
            valid_sets=[tuning_set],
            callbacks=[
                lgb.early_stopping(self.hyperparameters.early_stopping_rounds, verbose=False)
            ],
        )
        # Keep only the trees up to the best tuning iteration.
        self.booster = lgb.Booster(
            model_str=booster.model_to_string(num_iteration=booster.best_iteration)
        )

    def predict_proba(self, features: Any) -> np.ndarray:
        """The probability of the positive class (binary) or of each class (multiclass), or the
        predicted value (regression), for each row."""
        return np.asarray(self.booster.predict(features.matrix), dtype=np.float64)

    def n_parameters(self) -> int:
        """The nodes of every tree (a split or a leaf value each): 2 x leaves - 1 per tree."""
        trees = self.booster.dump_model()["tree_info"]
        return int(sum(2 * tree["num_leaves"] - 1 for tree in trees))

    def _save_state(self, directory: Path) -> dict[str, Any]:
        write_text_atomic(self.booster.model_to_string(), directory / BOOSTER_FILE)
        return {"num_trees": self.booster.num_trees(), "lightgbm_version": lgb.__version__}

    def _load_state(self, directory: Path, extra: dict[str, Any]) -> None:
        try:
            self.booster = lgb.Booster(model_file=str(directory / BOOSTER_FILE))
        except lgb.basic.LightGBMError as exc:  # a damaged file: reported by `Model.load`
            raise ValueError(str(exc)) from exc


def _max_abs_scaled(matrix: Any) -> tuple[MaxAbsScaler, Any]:
    """A `MaxAbsScaler` fitted on `matrix`, and `matrix` scaled by it (what a pipeline's
    `fit_transform` hands its estimator; the estimator converts the dtype as it needs)."""
    with lean_sklearn(matrix, validated=False):
        scaler = MaxAbsScaler()
        return scaler, scaler.fit_transform(matrix)


def _binned_sets(
    train: Any, y_train: np.ndarray, tuning: Any, y_tuning: np.ndarray, params: dict[str, Any]
) -> tuple[lgb.Dataset, lgb.Dataset]:
    """LightGBM's datasets of the training and tuning rows, binned (on `lgb.train`'s first use)
    by the training rows: the tuning set reuses the training bins, so nothing is fitted on
    tuning rows."""
    train_set = lgb.Dataset(train, label=np.asarray(y_train, dtype=np.float32), params=params)
    tuning_set = lgb.Dataset(
        tuning, label=np.asarray(y_tuning, dtype=np.float32), reference=train_set
    )
    return train_set, tuning_set


def forest_input(matrix: Any, order: str) -> Any:
    """`matrix` as the forest reads it: a dense float32 copy in `order` ("F": column-major, the
    order the splitter reads; "C": row-major, the order prediction reads) when it takes at most
    twice the memory of the sparse matrix, else the sparse matrix itself.

    scikit-learn grows the same trees from either (its dense and sparse splitters see the same
    values; `tests/test_models_search_reuse.py` checks it on real features). On the windowed
    counts, about three quarters non-zero, the dense splitter takes half the time of the sparse
    one; a matrix that is mostly zeros stays sparse.

    >>> import scipy.sparse as sp
    >>> type(forest_input(sp.csr_matrix(np.ones((3, 2), dtype=np.float32)), "F")).__name__
    'ndarray'
    >>> sp.issparse(forest_input(sp.eye(1000, format="csr", dtype=np.float32), "C"))
    True
    """
    dense_bytes = matrix.shape[0] * matrix.shape[1] * np.dtype(np.float32).itemsize
    sparse_bytes = matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
    return (
        matrix.toarray(order=order).astype(np.float32, copy=False)
        if dense_bytes <= 2 * sparse_bytes
        else matrix
    )
