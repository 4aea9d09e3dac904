"""Models behind one interface: fit on train (tuning for early stopping), predict probabilities.

`get_model(name, **params)` builds a model by registry name (`logreg`, `lightgbm`,
`random_forest`, `gru`, `lstm`, `transformer`); `select_and_fit` chooses its hyperparameters by
tuning-set AUROC. The model modules (and torch) are imported on first use.
"""

from ehrbench.models.base import Model, get_model, model_class, model_names, take_rows
from ehrbench.models.grid import FitResult, expand_grid, select_and_fit
from ehrbench.models.predictions import make_predictions, write_predictions

__all__ = [
    "FitResult",
    "Model",
    "expand_grid",
    "get_model",
    "make_predictions",
    "model_class",
    "model_names",
    "select_and_fit",
    "take_rows",
    "write_predictions",
]
