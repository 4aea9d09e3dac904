"""Tabular models on the sparse feature matrix: logistic regression, LightGBM, random forest.

Each reads `features.matrix` (scipy CSR, float32, one row per label) and never densifies it.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler

from ehrbench.io import atomic_path, write_text_atomic
from ehrbench.models.base import Model, register

PICKLE_FILE = "model.pkl"
BOOSTER_FILE = "booster.txt"


class _SklearnModel(Model):
    """Shared saving and prediction for the scikit-learn models (stored with pickle)."""

    kind = "tabular"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.estimator: Any = None

    def predict_proba(self, features: Any) -> np.ndarray:
        """The probability of the positive class for each row."""
        return self.estimator.predict_proba(features.matrix)[:, 1].astype(np.float64)

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
    defaults = {"C": 1.0, "max_iter": 1000}

    @classmethod
    def param_grid(cls) -> list[dict[str, Any]]:
        """C over seven decades."""
        return [{"C": c} for c in (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)]

    def fit(
        self, train: Any, y_train: np.ndarray, tuning: Any, y_tuning: np.ndarray, seed: int
    ) -> Self:
        """Fit on the training rows; lbfgs is deterministic, so `seed` is only recorded."""
        classifier = LogisticRegression(
            C=float(self.params["C"]),
            l1_ratio=0.0,
            solver="lbfgs",
            max_iter=int(self.params["max_iter"]),
            random_state=seed,
        )
        self.estimator = make_pipeline(MaxAbsScaler(), classifier)
        # Weak regularisation on few rows may stop at max_iter; the grid then judges the result.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.estimator.fit(train.matrix, np.asarray(y_train, dtype=bool))
        self.fitted = True
        return self


@register
class RandomForestModel(_SklearnModel):
    """A scikit-learn random forest; it has no early stopping, so tuning rows only choose it."""

    name = "random_forest"
    defaults = {
        "n_estimators": 200,
        "max_depth": None,
        "min_samples_leaf": 1,
        "max_features": "sqrt",
        "n_jobs": 1,
    }

    @classmethod
    def param_grid(cls) -> list[dict[str, Any]]:
        """Tree depth and leaf size."""
        return [
            {"max_depth": depth, "min_samples_leaf": leaf} for depth in (None, 8) for leaf in (1, 5)
        ]

    def fit(
        self, train: Any, y_train: np.ndarray, tuning: Any, y_tuning: np.ndarray, seed: int
    ) -> Self:
        """Fit the forest on the training rows with `random_state=seed`."""
        self.estimator = RandomForestClassifier(
            n_estimators=int(self.params["n_estimators"]),
            max_depth=self.params["max_depth"],
            min_samples_leaf=int(self.params["min_samples_leaf"]),
            max_features=self.params["max_features"],
            n_jobs=int(self.params["n_jobs"]),
            random_state=seed,
        )
        self.estimator.fit(train.matrix, np.asarray(y_train, dtype=bool))
        self.fitted = True
        return self


@register
class LightGBMModel(Model):
    """Gradient-boosted trees (LightGBM), early-stopped on the tuning rows' log loss.

    `min_data_in_leaf` is capped at a quarter of the training rows (at least 1) so that tiny
    k-shot sets can still split; deterministic mode with a fixed thread count makes the same
    seed give byte-identical predictions.
    """

    name = "lightgbm"
    kind = "tabular"
    defaults = {
        "learning_rate": 0.1,
        "num_leaves": 31,
        "max_depth": -1,
        "min_data_in_leaf": 20,
        "feature_fraction": 1.0,
        "lambda_l2": 0.0,
        "n_estimators": 500,
        "early_stopping_rounds": 25,
        "num_threads": 1,
    }

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
        p = self.params
        return {
            "objective": "binary",
            "metric": "binary_logloss",
            "learning_rate": float(p["learning_rate"]),
            "num_leaves": int(p["num_leaves"]),
            "max_depth": int(p["max_depth"]),
            "min_data_in_leaf": max(1, min(int(p["min_data_in_leaf"]), n_train // 4)),
            "feature_fraction": float(p["feature_fraction"]),
            "lambda_l2": float(p["lambda_l2"]),
            "num_threads": int(p["num_threads"]),
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }

    def fit(
        self, train: Any, y_train: np.ndarray, tuning: Any, y_tuning: np.ndarray, seed: int
    ) -> Self:
        """Boost on the training rows; stop when the tuning log loss stops improving."""
        params = self._train_params(train.matrix.shape[0], seed)
        train_set = lgb.Dataset(
            train.matrix, label=np.asarray(y_train, dtype=np.float32), params=params
        )
        # The tuning set reuses the training bins, so nothing is fitted on tuning rows.
        tuning_set = lgb.Dataset(
            tuning.matrix, label=np.asarray(y_tuning, dtype=np.float32), reference=train_set
        )
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=int(self.params["n_estimators"]),
            valid_sets=[tuning_set],
            callbacks=[
                lgb.early_stopping(int(self.params["early_stopping_rounds"]), verbose=False)
            ],
        )
        # Keep only the trees up to the best tuning iteration.
        self.booster = lgb.Booster(
            model_str=booster.model_to_string(num_iteration=booster.best_iteration)
        )
        self.fitted = True
        return self

    def predict_proba(self, features: Any) -> np.ndarray:
        """The probability of the positive class for each row."""
        return np.asarray(self.booster.predict(features.matrix), dtype=np.float64)

    def _save_state(self, directory: Path) -> dict[str, Any]:
        write_text_atomic(self.booster.model_to_string(), directory / BOOSTER_FILE)
        return {"num_trees": self.booster.num_trees(), "lightgbm_version": lgb.__version__}

    def _load_state(self, directory: Path, extra: dict[str, Any]) -> None:
        self.booster = lgb.Booster(model_file=str(directory / BOOSTER_FILE))
