"""Models behind one interface: fit on train (tuning for early stopping), predict probabilities
(binary, multiclass) or values (regression).

`get_model(name, **params)` builds a model by registry name (`logreg`, `lightgbm`,
`random_forest`, `ridge`, `gru`, `lstm`, `transformer`, or a plugin's: see `plugins`);
`select_and_fit` chooses its hyperparameters by the label kind's tuning score (AUROC for binary
labels); `fit_and_predict` does that on train/tuning rows and predicts the held_out rows. A
model's module (torch for the sequence models) is imported when that model is first used.
"""

from ehrbench.models.base import Model, get_model, model_class, model_names, take_rows
from ehrbench.models.grid import FitResult, expand_grid, select_and_fit
from ehrbench.models.predictions import make_predictions, write_predictions
from ehrbench.models.training import RunResult, fit_and_predict

__all__ = [
    "FitResult",
    "Model",
    "RunResult",
    "expand_grid",
    "fit_and_predict",
    "get_model",
    "make_predictions",
    "model_class",
    "model_names",
    "select_and_fit",
    "take_rows",
    "write_predictions",
]
