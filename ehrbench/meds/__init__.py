"""Reading, validating and writing MEDS 0.4 datasets and label tables."""

from ehrbench.meds.dataset import MedsDataset, open_dataset
from ehrbench.meds.labels import LABEL_SCHEMA, empty_labels, read_labels, write_labels
from ehrbench.meds.splits import DEFAULT_FRACTIONS, SPLIT_NAMES, hash_splits
from ehrbench.meds.validate import validate_dataset
from ehrbench.meds.writer import (
    write_codes,
    write_dataset_metadata,
    write_shard,
    write_subject_splits,
)

__all__ = [
    "DEFAULT_FRACTIONS",
    "LABEL_SCHEMA",
    "SPLIT_NAMES",
    "MedsDataset",
    "empty_labels",
    "hash_splits",
    "open_dataset",
    "read_labels",
    "validate_dataset",
    "write_codes",
    "write_dataset_metadata",
    "write_labels",
    "write_shard",
    "write_subject_splits",
]
