"""The kinds of features, in one place: what each is called, configured by, built and saved as.

A kind's `name` is its public spelling: the `features.<name>` section of a suite, the cache
folder `<name>-<key>`, and `Model.kind`, the kind of features a model reads. Callers look the
kind up by that name (`feature_kind`) and let it do the work instead of switching on the
string. This module imports no builder (they pull in polars, scipy and the featurisation
stages); a kind imports its own when it first builds or loads.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ehrbench.errors import EhrbenchError, did_you_mean
from ehrbench.features.config import (
    EhrshotCountsConfig,
    RepresentationConfig,
    SequenceConfig,
    TabularConfig,
)


@dataclass(frozen=True)
class FeatureKind:
    """One kind of features.

    `config_class` holds its settings; `outputs` are the files its features' `save(folder)`
    writes; `builder` (`build(dataset, labels, config, fit_split)`) and `features` (the class
    whose `load(folder)` reads them back) are named as `module:attribute`, imported on first use,
    and so are, where a kind has them, `writer` (`writer(dataset, labels, config, fit_split,
    folder)` writes the files `save` would without holding the features whole) and
    `shape_reader` (`shape_reader(folder)` reads their shape without loading them).
    """

    name: str
    config_class: type
    outputs: tuple[str, ...]
    builder: str
    features: str
    writer: str | None = None
    shape_reader: str | None = None

    def config(self, settings: Mapping[str, Any] | None = None) -> Any:
        """The config with `settings` applied (lists become tuples); raises EhrbenchError naming
        any setting the kind does not have.

        >>> TABULAR.config({"windows": ["1d", "full"]}).windows
        ('1d', 'full')
        """
        settings = dict(settings or {})
        known = {field.name for field in dataclasses.fields(self.config_class)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise EhrbenchError(
                f"unknown feature setting(s) {['features.' + k for k in unknown]}: the settings "
                f"of {self.config_class.__name__} are {sorted(known)}."
            )
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
        return self.config_class(**values)

    def build(self, dataset, labels, config: Any = None, fit_split: str | Iterable[str] = "train"):
        """Fit on the label rows of `fit_split` and featurise every label row."""
        return _resolve(self.builder)(dataset, labels, config or self.config_class(), fit_split)

    def write(
        self, dataset, labels, config: Any, fit_split: str | Iterable[str], folder: str | Path
    ) -> tuple[int, ...]:
        """Build the features of the label rows into `folder` (the files `save` writes) and
        return their shape; through the kind's `writer`, when it has one."""
        if self.writer is not None:
            config = config or self.config_class()
            return _resolve(self.writer)(dataset, labels, config, fit_split, folder)
        features = self.build(dataset, labels, config, fit_split)
        features.save(folder)
        return features.shape

    def shape(self, folder: str | Path) -> tuple[int, ...]:
        """The shape of the features `save(folder)` wrote: through the kind's `shape_reader`,
        when it has one, else by loading them."""
        if self.shape_reader is not None:
            return _resolve(self.shape_reader)(folder)
        return self.load(folder).shape

    def manifest(self, folder: str | Path) -> Path:
        """The manifest `ehrbench featurize` writes beside this kind's files in `folder`."""
        return Path(folder) / f"{self.name}.manifest.json"

    def load(self, folder: str | Path) -> Any:
        """Read the features that `save(folder)` or `ehrbench featurize` wrote.

        A folder `ehrbench featurize` wrote is checked against its manifest first, so files of
        two different runs are never read as one set.
        """
        from ehrbench.io import check_file_set  # polars: kept out of this light module

        if self.manifest(folder).exists():
            check_file_set(self.manifest(folder))
        return _resolve(self.features).load(folder)


def _resolve(target: str) -> Any:
    """The attribute named by `module:attribute`."""
    module, attribute = target.split(":")
    return getattr(importlib.import_module(module), attribute)


TABULAR = FeatureKind(
    name="tabular",
    config_class=TabularConfig,
    outputs=("features.npz", "rows.parquet", "feature_names.parquet", "vocabulary.json"),
    builder="ehrbench.features.tabular:build_tabular",
    features="ehrbench.features.tabular:TabularFeatures",
    writer="ehrbench.features.tabular:write_tabular",
    shape_reader="ehrbench.features.tabular:stored_shape",
)
SEQUENCE = FeatureKind(
    name="sequence",
    config_class=SequenceConfig,
    outputs=("sequences.npz", "sequences.json"),
    builder="ehrbench.features.sequence:build_sequences",
    features="ehrbench.features.sequence:SequenceFeatures",
)
# Embeddings computed by an outside model, read from a file; tabular models are its heads.
REPRESENTATION = FeatureKind(
    name="representation",
    config_class=RepresentationConfig,
    outputs=("embeddings.npz", "rows.parquet"),
    builder="ehrbench.features.representation:build_representation",
    features="ehrbench.features.representation:RepresentationFeatures",
)
# `protocol: ehrshot`'s features for the tabular models (see `ehrbench.features.ehrshot_counts`).
EHRSHOT_COUNTS = FeatureKind(
    name="ehrshot_counts",
    config_class=EhrshotCountsConfig,
    outputs=("features.npz", "rows.parquet", "feature_names.parquet"),
    builder="ehrbench.features.ehrshot_counts:build_ehrshot_counts",
    features="ehrbench.features.tabular:TabularFeatures",
    shape_reader="ehrbench.features.tabular:stored_shape",
)
FEATURE_KINDS = (TABULAR, SEQUENCE, REPRESENTATION, EHRSHOT_COUNTS)


def feature_kind(name: str) -> FeatureKind:
    """The kind called `name`; raises EhrbenchError for an unknown name.

    >>> feature_kind("sequence") is SEQUENCE
    True
    """
    for kind in FEATURE_KINDS:
        if kind.name == name:
            return kind
    names = [kind.name for kind in FEATURE_KINDS]
    hint = did_you_mean(name, names)
    raise EhrbenchError(
        f"unknown feature kind {name!r}: the kinds are {names}" + (f"; {hint}" if hint else ".")
    )
