"""Short content digests: what the caches, the results store and run keys are keyed by.

One JSON digest (canonical JSON: sorted keys, no spaces, tuples as lists) and one file digest, so
two places that key on the same facts always agree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def json_digest(payload: Any, length: int = 16) -> str:
    """The first `length` hex digits of the SHA-256 of `payload` as canonical JSON.

    >>> json_digest({"b": 1, "a": (2, 3)}) == json_digest({"a": [2, 3], "b": 1})
    True
    >>> len(json_digest({"a": 1}, length=24))
    24
    """
    text = json.dumps(_plain(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def file_digest(path: str | Path) -> str:
    """A short SHA-256 of a file's bytes (what a run's config hash records of its inputs)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """`value` with mapping keys as strings and tuples as lists (canonical JSON input)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
