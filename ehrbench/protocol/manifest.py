"""`manifest.json`: what a results folder's report header and cohort sections show.

`write_outputs` writes it once a grid is done; `ehrbench report` reads it back. Both go through
`Manifest`, so the file's fields are named and typed in one place.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from ehrbench.errors import EhrbenchError
from ehrbench.io import write_text_atomic
from ehrbench.meds.label_kinds import BINARY_TARGET, LabelTarget

MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class SuiteInfo:
    """The suite file that was run and the `key=value` overrides it was run with."""

    name: str
    description: str | None
    file: str
    overrides: tuple[str, ...]


@dataclass(frozen=True)
class DatasetInfo:
    """The dataset's folder, its fingerprint and, for a generated one, its settings."""

    path: str
    fingerprint: str
    synthetic: dict[str, int] | None


@dataclass(frozen=True)
class BootstrapInfo:
    """The subject bootstrap behind every interval."""

    resamples: int
    seed: int


@dataclass(frozen=True)
class CohortInfo:
    """A cohort's rows, subjects and label counts per split, its attrition and, for a label
    other than binary, its `LabelTarget` as a dict (None: binary)."""

    counts: dict[str, Any]
    attrition: dict[str, Any]
    label_target: dict[str, Any] | None = None

    @property
    def target(self) -> LabelTarget:
        """The cohort's label kind and classes."""
        return (
            BINARY_TARGET if self.label_target is None else LabelTarget.from_dict(self.label_target)
        )


@dataclass(frozen=True)
class RunCounts:
    """How many runs the grid has, and how many of them are ok or failed."""

    total: int
    ok: int
    failed: int


@dataclass(frozen=True)
class Manifest:
    """The facts of a finished grid that are not in its tables."""

    suite: SuiteInfo
    ehrbench_version: str
    config_hash: str
    dataset: DatasetInfo
    date: str
    models: tuple[str, ...]
    baseline: str | None
    k: tuple[str, ...]
    seeds: tuple[int, ...]
    bootstrap: BootstrapInfo
    age_bands: tuple[int, ...]
    features: dict[str, dict[str, Any]]
    cohorts: dict[str, CohortInfo]
    cohort_order: tuple[str, ...]  # JSON objects are written with sorted keys
    skipped_cohorts: dict[str, str]
    runs: RunCounts
    protocol: str = "ehrbench"

    def write(self, folder: str | Path) -> Path:
        """Write `manifest.json` into `folder` (atomically); return its path."""
        path = Path(folder) / MANIFEST_FILE
        text = json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"
        write_text_atomic(text, path)
        return path

    @classmethod
    def read(cls, folder: str | Path) -> Self:
        """Read the `manifest.json` of `folder`; raise `EhrbenchError` naming a missing field."""
        path = Path(folder) / MANIFEST_FILE
        data = json.loads(path.read_text(encoding="utf-8"))
        try:
            return cls(
                suite=SuiteInfo(
                    **{**data["suite"], "overrides": tuple(data["suite"]["overrides"])}
                ),
                ehrbench_version=data["ehrbench_version"],
                config_hash=data["config_hash"],
                dataset=DatasetInfo(**data["dataset"]),
                date=data["date"],
                models=tuple(data["models"]),
                baseline=data["baseline"],
                k=tuple(data["k"]),
                seeds=tuple(data["seeds"]),
                bootstrap=BootstrapInfo(**data["bootstrap"]),
                age_bands=tuple(data["age_bands"]),
                features=data["features"],
                cohorts={name: CohortInfo(**info) for name, info in data["cohorts"].items()},
                cohort_order=tuple(data["cohort_order"]),
                skipped_cohorts=data["skipped_cohorts"],
                runs=RunCounts(**data["runs"]),
                protocol=data.get("protocol", "ehrbench"),  # older manifests: the default
            )
        # A field of the wrong JSON type (a list where an object is meant) fails as one of these.
        except (KeyError, TypeError, AttributeError) as exc:
            raise EhrbenchError(
                f"{path} is not a manifest this ehrbench can read ({type(exc).__name__}: {exc}); "
                "rerun the suite with this version to write it again."
            ) from exc
