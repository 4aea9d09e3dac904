"""A nearest-centroid classifier on ehrbench's tabular features, registered as `example_centroid`.

Columns are scaled by their largest absolute value on the training rows (so the CSR matrix stays
sparse), each class's centroid is the mean of its scaled training rows, and the probability of
the positive class is a softmax over the negative distances to the two centroids:
p = 1 / (1 + exp((d_positive - d_negative) / temperature)). There is nothing random in it, so
every seed gives the same model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

from ehrbench.errors import EhrbenchError
from ehrbench.io import atomic_path
from ehrbench.models.base import Model

STATE_FILE = "centroids.npz"


@dataclass(frozen=True)
class CentroidParams:
    """`distance`: "euclidean" or "cosine"; `temperature` (> 0) softens the probabilities."""

    distance: str = "euclidean"
    temperature: float = 1.0


class NearestCentroidModel(Model):
    """The class whose centroid is nearer wins; the distances give the probability."""

    name = "example_centroid"
    kind = "tabular"
    Hyperparameters = CentroidParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.hyperparameters.distance not in ("euclidean", "cosine"):
            raise EhrbenchError(
                f"model `{self.name}`: hyperparameter `distance` must be euclidean or cosine, "
                f"not {self.hyperparameters.distance!r}."
            )
        self.scale: np.ndarray | None = None
        self.centroids: np.ndarray | None = None  # [2, n_features]: negative, positive

    @classmethod
    def param_grid(cls) -> list[dict[str, Any]]:
        """Both distances, each at two temperatures."""
        return [
            {"distance": distance, "temperature": temperature}
            for distance in ("euclidean", "cosine")
            for temperature in (0.1, 1.0)
        ]

    def _fit(
        self, train: Any, y_train: np.ndarray, tuning: Any, y_tuning: np.ndarray, seed: int
    ) -> None:
        """Centroids of the scaled training rows; no early stopping, so tuning rows are unused."""
        matrix = sp.csr_matrix(train.matrix, dtype=np.float64)
        largest = abs(matrix).max(axis=0).toarray().ravel()
        self.scale = np.where(largest > 0, largest, 1.0)
        scaled = self._scaled(matrix)
        self.centroids = np.vstack(
            [np.asarray(scaled[y_train == label].mean(axis=0)).ravel() for label in (False, True)]
        )

    def _scaled(self, matrix: Any) -> sp.csr_matrix:
        return sp.csr_matrix(matrix, dtype=np.float64) @ sp.diags(1.0 / self.scale)

    def _distances(self, matrix: Any) -> np.ndarray:
        """[n, 2] distances from each row to the negative and the positive centroid."""
        rows = self._scaled(matrix)
        dots = np.asarray(rows @ self.centroids.T)
        row_norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
        centroid_norms = np.linalg.norm(self.centroids, axis=1)
        if self.hyperparameters.distance == "euclidean":
            squared = row_norms[:, None] ** 2 - 2 * dots + centroid_norms[None, :] ** 2
            return np.sqrt(np.maximum(squared, 0.0))
        norms = row_norms[:, None] * centroid_norms[None, :]
        # A row (or centroid) of zeros is equally far from both: cosine distance 1.
        similarity = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
        return 1.0 - similarity

    def predict_proba(self, features: Any) -> np.ndarray:
        """Softmax of the negative distances to the two centroids, as float64 of shape [n]."""
        distances = self._distances(features.matrix)
        margin = (distances[:, 0] - distances[:, 1]) / self.hyperparameters.temperature
        return expit(margin).astype(np.float64)

    def n_parameters(self) -> int:
        """The two centroids and the column scales."""
        return int(self.centroids.size + self.scale.size)

    def _save_state(self, directory: Path) -> dict[str, Any]:
        with atomic_path(directory / STATE_FILE) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, scale=self.scale, centroids=self.centroids)
        return {"n_features": int(self.scale.size)}

    def _load_state(self, directory: Path, extra: dict[str, Any]) -> None:
        with np.load(directory / STATE_FILE) as state:
            self.scale, self.centroids = state["scale"], state["centroids"]
