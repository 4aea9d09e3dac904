"""The benchmark protocol: few-shot sampling and the resumable results store."""

from ehrbench.protocol.fewshot import (
    ALL,
    DEFAULT_SEEDS,
    K_VALUES,
    MAX_K,
    FewShotPlan,
    FewShotRun,
    class_order,
    fewshot_indices,
    parse_k,
)
from ehrbench.protocol.store import ResultsStore, RunKey

__all__ = [
    "ALL",
    "DEFAULT_SEEDS",
    "K_VALUES",
    "MAX_K",
    "FewShotPlan",
    "FewShotRun",
    "ResultsStore",
    "RunKey",
    "class_order",
    "fewshot_indices",
    "parse_k",
]
