"""The built-in synthetic MEDS dataset: a vectorised, seeded model of a hospital system."""

from ehrbench.synth.dataset import SynthSummary, default_shards, generate_dataset
from ehrbench.synth.generator import SUBJECT_ID_BASE, generate_events

__all__ = [
    "SUBJECT_ID_BASE",
    "SynthSummary",
    "default_shards",
    "generate_dataset",
    "generate_events",
]
