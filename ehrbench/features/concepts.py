"""Concepts shared across datasets: a dataset's codes renamed to one vocabulary, in one unit each.

A model fitted on one dataset's codes cannot read another's (`LAB//50983//mEq/L` in MIMIC-IV is
`LAB//sodium//mmol/L` in eICU). A concept map (`cohorts/concepts/<dataset>.yaml`, beside the
predicates files) names, for each shared concept, the dataset codes that record it, written as a
predicate's `code:` is (a string, `{regex: ...}` or `{any: [...]}`), and the concept's unit:

    concepts:
      temperature:
        unit: °C                      # every value of the concept is in this unit
        codes:
          - {code: "LAB//223762//°C"}
          - {code: "LAB//223761//°F", multiply: 0.5555555555555556, add: -17.77777777777778}
      icu_admission:                  # no unit: an event, its values are dropped
        codes: [{code: {regex: "^ICU_ADMISSION//"}}]

A value is converted as `value * multiply + add` (defaults 1 and 0), so every dataset's values
of a concept are in the concept's stated unit. Under the feature setting `vocabulary: concepts`
the featurisers read a dataset through its map (`ConceptDataset`): each event whose code matches
a concept's entry becomes an event with the concept's name as its code (an event matching
several concepts, e.g. an ICD code and its chapter, becomes one event per concept; within one
concept the first matching entry converts it), and **every other code is dropped**, except the
MEDS codes `MEDS_BIRTH` (age) and `MEDS_DEATH`, which every MEDS dataset already shares. Events
keep their times, so the leakage rules are those of the features (nothing after a row's
prediction time; the vocabulary is fitted on the train rows only).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ehrbench.cohort.config import parse_code
from ehrbench.cohort.matching import code_test
from ehrbench.cohort.model import CodeMatch, PlainPredicate
from ehrbench.digest import file_digest
from ehrbench.errors import EhrbenchError
from ehrbench.meds import MedsDataset
from ehrbench.meds.validate import reading
from ehrbench.yaml_source import YamlSource, read_yaml

# Codes MEDS itself defines: the same in every dataset, so they pass through unmapped.
MEDS_CODES = ("MEDS_BIRTH", "MEDS_DEATH")
_ENTRY_KEYS = ("code", "multiply", "add")
_CONCEPT_KEYS = ("unit", "codes", "description")


@dataclass(frozen=True)
class ConceptEntry:
    """Dataset codes that record `concept`, and how their values convert to its unit."""

    concept: str
    code: CodeMatch
    multiply: float = 1.0
    add: float = 0.0
    has_unit: bool = True


@dataclass(frozen=True)
class ConceptMap:
    """A dataset's concept map: entries in file order, each concept's unit (None: an event)."""

    path: Path
    entries: tuple[ConceptEntry, ...]
    units: dict[str, str | None]

    def code_table(self, codes: list[str]) -> pl.DataFrame:
        """For each of `codes` and each concept it records: (code, concept, multiply, add,
        keep_value); MEDS codes map to themselves; codes of no concept are absent.

        >>> cmap = load_concept_map(concept_map_path("synthetic"))
        >>> cmap.code_table(["LAB//223761//°F", "OUTPATIENT_VISIT"])["concept"].to_list()
        ['temperature']
        """
        frame = pl.DataFrame({"code": codes}, schema={"code": pl.String})
        tests = frame.select(
            code_test(PlainPredicate(name=str(i), code=e.code)).alias(str(i))
            for i, e in enumerate(self.entries)
        )
        hits = tests.to_numpy() if self.entries else None
        rows: dict[str, list[Any]] = {k: [] for k in ("code", "concept", "multiply", "add")}
        rows["keep_value"] = []
        for position, code in enumerate(codes):
            seen: set[str] = set()
            matched: list[str | ConceptEntry] = [code] if code in MEDS_CODES else []
            for index, entry in enumerate(self.entries):
                if hits[position, index] and entry.concept not in seen:
                    seen.add(entry.concept)
                    matched.append(entry)
            for entry in matched:
                is_meds = isinstance(entry, str)
                rows["code"].append(code)
                rows["concept"].append(entry if is_meds else entry.concept)
                rows["multiply"].append(1.0 if is_meds else entry.multiply)
                rows["add"].append(0.0 if is_meds else entry.add)
                rows["keep_value"].append(is_meds or entry.has_unit)
        return pl.DataFrame(
            rows,
            schema={
                "code": pl.String,
                "concept": pl.String,
                "multiply": pl.Float64,
                "add": pl.Float64,
                "keep_value": pl.Boolean,
            },
        )


def concept_map_path(name: str, cohorts_root: str | Path | None = None) -> Path:
    """The library concept map of dataset `name` (`synthetic`, `mimic_iv`, `eicu`)."""
    from ehrbench.cohort.library import library_dir

    path = library_dir(cohorts_root) / "concepts" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise EhrbenchError(f"There is no concept map {path}: the library has {known}.")
    return path


def concepts_beside(predicates: str | Path) -> Path:
    """The concept map that goes with a predicates file: `../concepts/<same name>.yaml`."""
    predicates = Path(predicates)
    return predicates.parent.parent / "concepts" / predicates.name


def load_concept_map(path: str | Path) -> ConceptMap:
    """Read and check a concept map; errors name the file, the key, the line and what was
    expected.

    >>> cmap = load_concept_map(concept_map_path("eicu"))
    >>> cmap.units["sodium"]
    'mmol/L'
    """
    path = Path(path)
    if not path.is_file():
        raise EhrbenchError(f"The concept map {path} does not exist or is not a file.")
    raw, source = read_yaml(path, "concept map")
    if (
        not isinstance(raw, dict)
        or set(raw) - {"concepts"}
        or not isinstance(raw.get("concepts"), dict)
    ):
        source.fail(
            (), "a concept map is a mapping with one key, `concepts`: {NAME: {unit, codes}}"
        )
    entries: list[ConceptEntry] = []
    units: dict[str, str | None] = {}
    for name, spec in raw["concepts"].items():
        keys = ("concepts", str(name))
        units[str(name)] = _unit(spec, source, keys)
        entries += _entries(str(name), spec, units[str(name)] is not None, source, keys)
    if not entries:
        source.fail(("concepts",), "names no concept; expected {NAME: {unit, codes}}")
    return ConceptMap(path=path, entries=tuple(entries), units=units)


def _check_keys(mapping: dict, allowed: tuple[str, ...], source: YamlSource, keys) -> None:
    odd = sorted(str(k) for k in mapping if k not in allowed)
    if odd:
        source.fail(
            keys, f"unknown key(s) {odd}; expected {list(allowed)}", near=odd[0], known=allowed
        )


def _unit(spec: Any, source: YamlSource, keys: tuple[str, ...]) -> str | None:
    if not isinstance(spec, dict):
        source.fail(keys, f"expected a mapping with `codes` (and `unit`), got {spec!r}")
    _check_keys(spec, _CONCEPT_KEYS, source, keys)
    unit = spec.get("unit")
    if unit is not None and (not isinstance(unit, str) or not unit):
        source.fail((*keys, "unit"), f"expected the unit as text, got {unit!r}")
    return unit


def _entries(name, spec, has_unit, source: YamlSource, keys) -> list[ConceptEntry]:
    codes = spec.get("codes")
    if not isinstance(codes, list) or not codes:
        source.fail((*keys, "codes"), f"expected a non-empty list of {{code: ...}}, got {codes!r}")
    entries = []
    for index, item in enumerate(codes):
        where = (*keys, "codes", str(index))
        if not isinstance(item, dict) or "code" not in item:
            source.fail(where, f"expected {{code: ..., multiply: N, add: N}}, got {item!r}")
        _check_keys(item, _ENTRY_KEYS, source, where)
        factors = {
            k: _number(item, k, default, source, where)
            for k, default in (("multiply", 1.0), ("add", 0.0))
        }
        if not has_unit and factors != {"multiply": 1.0, "add": 0.0}:
            source.fail(
                where, f"converts values, but concept {name!r} has no `unit` to convert them to"
            )
        code = parse_code(item["code"], source, (*where, "code"))
        entries.append(ConceptEntry(name, code, has_unit=has_unit, **factors))
    return entries


def _number(item: dict, key: str, default: float, source: YamlSource, keys) -> float:
    value = item.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        source.fail((*keys, key), f"expected a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ConceptDataset(MedsDataset):
    """A MEDS dataset read through a concept map: `scan` gives concept events (see the module
    docstring), so every featuriser reads concepts without knowing it."""

    concepts: ConceptMap | None = None
    _tables: dict[Path, pl.DataFrame] = field(default_factory=dict, compare=False, repr=False)

    def scan(self, shard: Path) -> pl.LazyFrame:
        """Lazily read one event shard as concept events (codes outside the map dropped)."""
        raw = super().scan(shard)
        table = self._code_table(shard, raw)
        value = pl.col("numeric_value").cast(pl.Float64) * pl.col("multiply") + pl.col("add")
        return (
            raw.with_columns(pl.col("code").cast(pl.String))
            .join(table.lazy(), on="code", how="inner", maintain_order="left")
            .with_columns(
                pl.col("concept").alias("code"),
                pl.when(pl.col("keep_value")).then(value).cast(pl.Float32).alias("numeric_value"),
            )
            .drop("concept", "multiply", "add", "keep_value")
        )

    def read_shard(self, shard: Path) -> pl.DataFrame:
        """Read one event shard's concept events into memory."""
        return self.collect(shard, self.scan(shard))

    def _code_table(self, shard: Path, raw: pl.LazyFrame) -> pl.DataFrame:
        if shard not in self._tables:
            with reading(shard):
                codes = raw.select(pl.col("code").cast(pl.String).unique().sort()).collect()
            self._tables[shard] = self.concepts.code_table(codes["code"].drop_nulls().to_list())
        return self._tables[shard]

    def fingerprint(self) -> str:
        """The dataset's fingerprint with the concept map's digest (a new map, new features)."""
        return f"{super().fingerprint()}-{file_digest(self.concepts.path)[:8]}"


def concept_dataset(dataset: MedsDataset, concepts: str | Path | None = None) -> ConceptDataset:
    """`dataset` read through the concept map at `concepts`, by default the library map of the
    dataset's `metadata/dataset.json` `dataset_name` (as predicates files are chosen)."""
    if isinstance(dataset, ConceptDataset) and concepts is None:
        return dataset
    if concepts is None:
        from ehrbench.cohort.library import predicates_for_dataset

        name = dataset.metadata().get("dataset_name")
        if not name:
            raise EhrbenchError(
                f"{dataset.root}/metadata/dataset.json has no dataset_name to pick a concept map "
                "by (`vocabulary: concepts`): give the map's path."
            )
        concepts = concepts_beside(predicates_for_dataset(name))
    plain = {f.name: getattr(dataset, f.name) for f in dataclasses.fields(MedsDataset)}
    return ConceptDataset(**plain, concepts=load_concept_map(concepts))


def featurised_dataset(dataset: MedsDataset, config: Any) -> MedsDataset:
    """The dataset as features with `config` read it: through its concept map under
    `vocabulary: concepts` (`concept_dataset`), else as it is."""
    if getattr(config, "vocabulary", "codes") == "concepts":
        return concept_dataset(dataset)
    return dataset
