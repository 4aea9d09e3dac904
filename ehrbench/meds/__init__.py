"""Reading, validating and writing MEDS 0.4 datasets and label tables."""

from ehrbench.meds.dataset import MedsDataset, open_dataset
from ehrbench.meds.labels import LABEL_SCHEMA, empty_labels, read_labels, write_labels

__all__ = [
    "LABEL_SCHEMA",
    "MedsDataset",
    "empty_labels",
    "open_dataset",
    "read_labels",
    "write_labels",
]
