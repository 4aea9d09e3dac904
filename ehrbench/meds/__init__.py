"""Reading, validating and writing MEDS 0.4 datasets and label tables."""

from ehrbench.meds.dataset import MedsDataset, open_dataset
from ehrbench.meds.labels import (
    LABEL_SCHEMA,
    empty_labels,
    label_values,
    read_labels,
    write_labels,
)
from ehrbench.meds.splits import (
    DEFAULT_FRACTIONS,
    SPLIT_NAMES,
    check_split_sizes,
    hash_splits,
    split_indices,
)
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
    "check_split_sizes",
    "empty_labels",
    "hash_splits",
    "label_values",
    "open_dataset",
    "read_labels",
    "split_indices",
    "validate_dataset",
    "write_codes",
    "write_dataset_metadata",
    "write_labels",
    "write_shard",
    "write_subject_splits",
]
