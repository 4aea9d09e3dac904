"""Task suites: one YAML file (OmegaConf) naming a dataset, cohorts, models and the few-shot grid.

A suite file looks like this (every key but `dataset`, `predicates`, `cohorts` and `models` has
a default):

    name: synthetic
    dataset:
      synthetic: {subjects: 2000, seed: 0, shards: 2}   # or: path: /data/mimic_meds
    predicates: ../cohorts/predicates/synthetic.yaml
    cohorts_dir: ../cohorts                               # default: ../cohorts
    cohorts: all                                          # or a list of names from cohorts_dir
    models: [logreg, lightgbm, gru]
    baseline: logreg                                      # paired comparisons against it
    k: [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, all]
    seeds: [0, 1, 2, 3, 4]
    features:
      tabular: {windows: [1d, 7d, 30d, 365d, full], min_count: 10, max_codes: null}
      sequence: {max_events: 512, min_count: 10, max_codes: null}
    model_params: {gru: {max_epochs: 10}}    # fixed in every grid setting of that model
    grids: {lightgbm: [{num_leaves: 8}]}     # replaces that model's hyperparameter grid
    representations: {clmbr: embeddings/clmbr_{cohort}.parquet}   # frozen embeddings
    pretrained: {mine: {epochs: 1, hidden: 32}}   # pretrained here (`ehrbench pretrain` settings)
    bootstrap: {resamples: 1000, seed: 0}
    subgroups: {age_bands: [18, 45, 65, 80]}
    protocol: ehrbench                       # or ehrshot: EHRSHOT's evaluation, see below
    output: ../results/synthetic                          # default: results/<name>
    external:                                # also score every model on other datasets
      - {name: site_b, synthetic: {subjects: 2000, seed: 1, site: B},
         predicates: ../cohorts/predicates/synthetic.yaml}
    scheduler: local                         # or none (default), or tcp://host:8786
    workers: 2                               # local only (default: one per core)

Relative paths written in the file are resolved against the file's folder; relative paths given
as `key=value` overrides on the command line are resolved against the current directory, as a
user typing them expects. Without `output`, results go to `results/<name>` in the current
folder (the shipped suites say no more, so they never write into an installed package); a suite
path that does not exist names a shipped suite (`demo`, `tasks/demo.yaml`: `ehrbench.bundled`).
Each entry of `representations` names a file of frozen embeddings (one per label row;
`{cohort}` in the path is replaced by the cohort's name) and makes the models `HEAD@NAME` (e.g.
`logreg@clmbr`): the tabular model HEAD trained on those embeddings, with HEAD's grid and
model_params unless `HEAD@NAME` has its own. Each entry of `pretrained` (settings as
`ehrbench pretrain` takes them; `{}` for the defaults) is pretrained on the suite's dataset and
embeds every cohort, once, in `<output>/pretrained/` (`ehrbench.protocol.pretrained`); its
`HEAD@NAME` models then read those embeddings like a `representations` entry. With
`dataset.synthetic`, the dataset is generated into `dataset.path` (default: `<output>/dataset`)
when that folder does not exist yet.

`dataset.synthetic.site` picks the synthetic hospital (`A`, the default, or `B`:
`ehrbench.synth.sites`). `external:` lists datasets every model is also scored on, whole, as a
test set (spelling and rules in `ehrbench.protocol.external`).

`scheduler` and `workers` say where the runs go (`ehrbench.scheduler`; `ehrbench run
--scheduler/--workers` replace them): they change no result and no hash.

`protocol: ehrshot` evaluates as EHRSHOT does (`ehrbench.protocol.ehrshot`): its grids and fixed
model settings (a suite's own `grids` and `model_params` still win), its k list by default,
`all` once per seed, the k-shot train rows shuffled by the seed, and EHRSHOT's count features for
the tabular models.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ehrbench.arguments import SEED_MAX
from ehrbench.bundled import suite_file
from ehrbench.digest import file_digest, json_digest
from ehrbench.errors import EhrbenchError, did_you_mean
from ehrbench.features.config import (
    EhrshotCountsConfig,
    SequenceConfig,
    TabularConfig,
    config_record,
)
from ehrbench.features.kinds import (
    EHRSHOT_COUNTS,
    REPRESENTATION,
    SEQUENCE,
    TABULAR,
    FeatureKind,
    feature_kind,
)
from ehrbench.features.representation import check_head
from ehrbench.metrics.subgroups import DEFAULT_AGE_BANDS, age_band_labels
from ehrbench.models.base import check_model_name, model_class
from ehrbench.models.grid import expand_grid
from ehrbench.overrides import parse_dotlist
from ehrbench.pretrain.settings import PretrainSettings, settings_from
from ehrbench.protocol import ehrshot
from ehrbench.protocol.external import ExternalDataset, parse_external
from ehrbench.protocol.fewshot import DEFAULT_SEEDS, K_VALUES, FewShotPlan
from ehrbench.scheduler import NONE, SchedulerSetting, checked_setting
from ehrbench.synth.sites import DEFAULT_SITE, SITES
from ehrbench.yaml_source import read_yaml

# Allowed keys, nested as in the file; a leaf is None, a section a dict of its keys.
SCHEMA: dict[str, Any] = {
    "name": None,
    "description": None,
    "dataset": {
        "path": None,
        "synthetic": {"subjects": None, "seed": None, "shards": None, "site": None},
    },
    "predicates": None,
    "cohorts_dir": None,
    "cohorts": None,
    "models": None,
    "baseline": None,
    "k": None,
    "seeds": None,
    "features": {
        "tabular": {"windows": None, "min_count": None, "max_codes": None, "vocabulary": None},
        "sequence": {"max_events": None, "min_count": None, "max_codes": None, "vocabulary": None},
    },
    "model_params": None,
    "grids": None,
    "representations": None,
    "pretrained": None,
    "bootstrap": {"resamples": None, "seed": None},
    "subgroups": {"age_bands": None},
    "protocol": None,
    "output": None,
    "external": None,
    "scheduler": None,
    "workers": None,
}
COHORT_PLACEHOLDER = "{cohort}"
REQUIRED = ("dataset", "predicates", "cohorts", "models")
PATH_KEYS = ("dataset.path", "predicates", "cohorts_dir", "output")
DEFAULT_COHORTS_DIR = "../cohorts"
# Where the work runs changes no result, nor what the manifest records of the suite.
PLACEMENT = ("scheduler", "workers")
# Nor does where the results go (the protocol is hashed apart).
UNHASHED = ("output", "protocol", *PLACEMENT)
DEFAULT_RESAMPLES = 1000
# The bootstrap holds a [resamples x held-out subjects] count table per cohort: 10,000 resamples
# of 10,000 subjects are 400 MB, ten times the protocol's own 1,000.
MAX_RESAMPLES = 10_000
# Bump when a change in ehrbench makes earlier run results incomparable.
RUN_FORMAT = 1


@dataclass(frozen=True)
class SyntheticSpec:
    """A synthetic dataset to generate when the dataset folder is absent."""

    subjects: int
    seed: int
    shards: int
    site: str = DEFAULT_SITE

    def as_dict(self) -> dict[str, int | str]:
        """The spec as JSON-ready fields (`site` only when not the default hospital, as
        `ehrbench synth` records it)."""
        spec: dict[str, int | str] = {
            "subjects": self.subjects,
            "seed": self.seed,
            "shards": self.shards,
        }
        return spec if self.site == DEFAULT_SITE else spec | {"site": self.site}


@dataclass(frozen=True)
class Suite:
    """A checked task suite with absolute paths; see the module docstring for the file format."""

    source: Path
    name: str
    description: str | None
    dataset_path: Path
    synthetic: SyntheticSpec | None
    predicates: Path
    cohorts_dir: Path
    cohorts: tuple[str, ...]
    models: tuple[str, ...]
    baseline: str | None
    plan: FewShotPlan
    tabular: TabularConfig
    sequence: SequenceConfig
    model_params: dict[str, dict[str, Any]]
    grids: dict[str, list[dict[str, Any]]]
    resamples: int
    bootstrap_seed: int
    age_bands: tuple[int, ...]
    output: Path
    overrides: tuple[str, ...] = ()
    resolved: dict[str, Any] = field(default_factory=dict, repr=False)
    representations: dict[str, Path] = field(default_factory=dict)
    pretrained: dict[str, PretrainSettings] = field(default_factory=dict)
    protocol: str = ehrshot.DEFAULT_PROTOCOL
    ehrshot_counts: EhrshotCountsConfig = field(default_factory=EhrshotCountsConfig)
    external: tuple[ExternalDataset, ...] = ()
    scheduler: SchedulerSetting = field(default_factory=SchedulerSetting)

    def cohort_path(self, cohort: str) -> Path:
        """The cohort file of `cohort`."""
        return self.cohorts_dir / f"{cohort}.yaml"

    def model_kind(self, model: str) -> FeatureKind:
        """The kind of features the model reads: `HEAD@NAME` reads a representation; under
        `protocol: ehrshot`, tabular models read EHRSHOT's count features."""
        if representation_name(model) is not None:
            return REPRESENTATION
        kind = feature_kind(model_class(model).kind)
        return EHRSHOT_COUNTS if kind is TABULAR and self.protocol == ehrshot.EHRSHOT else kind

    def representation_file(self, model: str, cohort: str) -> Path:
        """The embeddings file a `HEAD@NAME` model reads for `cohort` (for a pretrained NAME,
        once `ehrbench.protocol.pretrained.with_pretrained` has named it)."""
        pattern = self.representations[representation_name(model)]
        return Path(str(pattern).replace(COHORT_PLACEHOLDER, cohort))

    def _representation_digests(self) -> dict[str, str]:
        """The digest of every embeddings file given in `representations` that the suite's
        models read, by file (a pretrained model is covered by its settings instead)."""
        return {
            str(self.representation_file(model, cohort)): file_digest(
                self.representation_file(model, cohort)
            )
            for model in self.models
            if representation_name(model) not in (None, *self.pretrained)
            for cohort in self.cohorts
        }

    def train_order(self, rows: np.ndarray, seed: int) -> np.ndarray:
        """The k-shot train rows in the order the model sees them (shuffled by EHRSHOT)."""
        return ehrshot.shuffle_rows(rows, seed) if self.protocol == ehrshot.EHRSHOT else rows

    def refit_settings(self, model: str) -> dict[str, Any] | None:
        """Settings the chosen hyperparameters are refitted with, or None (keep the fit)."""
        return ehrshot.REFIT.get(model) if self.protocol == ehrshot.EHRSHOT else None

    def feature_config(
        self, kind: FeatureKind
    ) -> TabularConfig | SequenceConfig | EhrshotCountsConfig:
        """The suite's settings of `kind` (section `features.<kind name>`, field of that name)."""
        return getattr(self, kind.name)

    @property
    def needs_sequences(self) -> bool:
        """Whether any model of the suite reads sequence features."""
        return any(self.model_kind(m) is SEQUENCE for m in self.models)

    def config_hash(self) -> str:
        """A hash of everything in the suite that can change a result (the output path aside)."""
        settings = {k: v for k, v in self.resolved.items() if k not in UNHASHED}
        if self.protocol != ehrshot.DEFAULT_PROTOCOL:  # the default keeps the hashes it had
            settings["protocol"] = self.protocol
        settings["cohort_files"] = {c: file_digest(self.cohort_path(c)) for c in self.cohorts}
        settings["predicates_file"] = file_digest(self.predicates)
        representations = self._representation_digests()
        if representations:  # absent otherwise, so the hash of a suite without any is unchanged
            settings["representation_files"] = representations
        return json_digest(settings)

    def run_config_hash(self, cohort: str, model: str) -> str:
        """A hash of exactly what one (cohort, model) run depends on besides data, k and seed.

        Covers the cohort and predicates files, the model's feature settings (for `HEAD@NAME`,
        the digest of its embeddings file, and of its settings when NAME is pretrained), its
        fixed hyperparameters and grid, and the bootstrap and subgroup settings; not the list of
        models, cohorts, k values or seeds, so growing a grid keeps the runs already done.
        """
        kind = self.model_kind(model)
        if kind is REPRESENTATION:
            features = {"file": file_digest(self.representation_file(model, cohort))}
            if representation_name(model) in self.pretrained:
                settings = self.pretrained[representation_name(model)]
                features["pretrained"] = json_digest(dataclasses.asdict(settings))
        else:
            features = config_record(self.feature_config(kind))
        protocol = {} if self.protocol == ehrshot.DEFAULT_PROTOCOL else {"protocol": self.protocol}
        return json_digest(
            {
                **protocol,
                "format": RUN_FORMAT,
                "cohort_file": file_digest(self.cohort_path(cohort)),
                "predicates_file": file_digest(self.predicates),
                "features": {"kind": kind.name, **features},
                "model_params": self.model_params.get(model, {}),
                "grid": self.grids.get(model),
                "bootstrap": {"resamples": self.resamples, "seed": self.bootstrap_seed},
                "age_bands": list(self.age_bands),
                # absent without `external:`, so the hashes of other suites are unchanged
                **({"external": self._external_digests()} if self.external else {}),
            }
        )

    def _external_digests(self) -> list[dict[str, Any]]:
        """Each external dataset and the digests of its predicates and concept map files."""
        return [
            {
                **dataset.as_dict(),
                "predicates_file": file_digest(dataset.predicates),
                "concepts_file": file_digest(dataset.concepts)
                if dataset.concepts.is_file()
                else None,
            }
            for dataset in self.external
        ]


def representation_name(model: str) -> str | None:
    """The representation a `HEAD@NAME` model reads, or None for one of ehrbench's own.

    >>> representation_name("logreg@clmbr"), representation_name("logreg")
    ('clmbr', None)
    """
    return model.partition("@")[2] or None


def head_model(model: str) -> str:
    """The registered model that is trained: HEAD of `HEAD@NAME`, else the model itself.

    >>> head_model("logreg@clmbr"), head_model("gru")
    ('logreg', 'gru')
    """
    return model.partition("@")[0]


class _Reader:
    """Knows where each setting came from, to name it in error messages."""

    def __init__(self, path: Path, override_keys: set[str]) -> None:
        self.path = path
        self.override_keys = override_keys

    def from_command_line(self, key: str) -> bool:
        """Whether `key`, a section holding it, or a key inside it came from the command line."""
        return any(
            key == given or key.startswith(f"{given}.") or given.startswith(f"{key}.")
            for given in self.override_keys
        )

    def fail(self, key: str, message: str) -> NoReturn:
        where = (
            "the command-line override" if self.from_command_line(key) else f"the suite {self.path}"
        )
        raise EhrbenchError(f"Task suite {self.path}: `{key}` (from {where}) {message}")

    def base_dir(self, key: str) -> Path:
        return Path.cwd() if self.from_command_line(key) else self.path.parent


def _hint(name: str, known: Sequence[str]) -> str:
    """` Did you mean 'x'?` to end a sentence, or ""."""
    hint = did_you_mean(name, known)
    return f" {hint[0].upper()}{hint[1:]}" if hint else ""


def parse_overrides(items: Sequence[str]) -> tuple[dict[str, Any], set[str]]:
    """`key=value` items (OmegaConf dotlist, values parsed as YAML) -> (tree, dotted keys)."""
    tree = parse_dotlist(
        items,
        "`k=[4,all]`, `models=[logreg]`, `dataset.synthetic.subjects=500`, `output=results/x`",
    )
    return tree, {_override_key(item) for item in items}


def _override_key(item: str) -> str:
    """The dotted key of a `key=value` override."""
    return item.partition("=")[0].strip()


def _read_file(path: Path) -> dict[str, Any]:
    """The suite file's settings, read with the cohort configs' YAML limits and messages."""
    value, _ = read_yaml(path, "task suite")
    if not isinstance(value, dict):
        raise EhrbenchError(
            f"Task suite {path} must be a mapping of settings (dataset, cohorts, models, ...)."
        )
    try:  # `${...}` interpolations between settings, as OmegaConf resolves them
        config = OmegaConf.to_container(OmegaConf.create(value), resolve=True)
    except OmegaConfBaseException as exc:
        first = str(exc).splitlines()[0]
        raise EhrbenchError(f"Task suite {path}: {first}.") from exc
    if not isinstance(config, dict):
        raise EhrbenchError(
            f"Task suite {path} must be a mapping of settings (dataset, cohorts, models, ...)."
        )
    return config


def _merge(path: Path, config: dict, overrides: dict) -> dict[str, Any]:
    try:
        merged = OmegaConf.merge(OmegaConf.create(config), OmegaConf.create(overrides))
        return OmegaConf.to_container(merged, resolve=True)
    except (OmegaConfBaseException, TypeError, ValueError) as exc:
        first = str(exc).splitlines()[0]
        raise EhrbenchError(
            f"Task suite {path}: the command-line overrides do not fit the file ({first}); "
            "override a section key by key, e.g. `dataset.path=DIR`."
        ) from exc


def _check_keys(tree: Any, schema: dict, reader: _Reader, prefix: str = "") -> None:
    if not isinstance(tree, dict):
        reader.fail(prefix.rstrip("."), f"must be a mapping with keys {sorted(schema)}.")
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            reader.fail(
                dotted,
                f"is not a suite setting; expected one of {sorted(schema)}.{_hint(key, schema)}",
            )
        if isinstance(schema[key], dict) and value is not None:
            _check_keys(value, schema[key], reader, f"{dotted}.")


def load_suite(
    path: str | Path, overrides: Sequence[str] = (), output: str | Path | None = None
) -> Suite:
    """Read a suite file, apply `key=value` overrides and check everything; return a `Suite`.

    `output`, when given, replaces the suite's output folder (relative to the current folder).
    Raises `EhrbenchError` naming the file, the key, whether it came from the command line, and
    what was expected.
    """
    path = suite_file(path)
    override_tree, override_keys = parse_overrides(overrides)
    if output is not None:
        override_tree["output"] = str(output)
        override_keys.add("output")
    reader = _Reader(path, override_keys)
    config = _merge(path, _read_file(path), override_tree)
    _check_keys(config, SCHEMA, reader)
    for key in REQUIRED:
        if config.get(key) is None:
            reader.fail(key, "is required (see the suite format in `ehrbench run --help`).")
    name = _text(config, "name", reader, path.stem) or path.stem
    output = _output(config, reader, name)
    cohorts_dir = _path(config, "cohorts_dir", reader, DEFAULT_COHORTS_DIR)
    cohorts = _cohorts(config, reader, cohorts_dir)
    representations = _representations(config, reader)
    pretrained = _pretrained(config, reader, representations)
    models = _models(config, reader, representations, pretrained, cohorts)
    protocol = _protocol(config, reader)
    return Suite(
        source=path,
        name=name,
        description=_text(config, "description", reader, None),
        dataset_path=_dataset_path(config, reader, output),
        synthetic=_synthetic(config, reader),
        predicates=_existing_file(config, "predicates", reader),
        cohorts_dir=cohorts_dir,
        cohorts=cohorts,
        models=models,
        baseline=_baseline(config, reader, models),
        plan=_plan(config, reader, protocol),
        tabular=_feature_config(config, TABULAR, reader),
        sequence=_feature_config(config, SEQUENCE, reader),
        model_params=_protocol_defaults(
            protocol, ehrshot.FIXED, _model_params(config, reader, models), models, merge=True
        ),
        grids=_protocol_defaults(protocol, ehrshot.GRIDS, _grids(config, reader, models), models),
        resamples=_int(
            config.get("bootstrap") or {},
            "resamples",
            "bootstrap",
            reader,
            DEFAULT_RESAMPLES,
            1,
            MAX_RESAMPLES,
        ),
        bootstrap_seed=_int(
            config.get("bootstrap") or {}, "seed", "bootstrap", reader, 0, maximum=SEED_MAX
        ),
        age_bands=_age_bands(config, reader),
        output=output,
        overrides=tuple(o for o in overrides if _override_key(o) not in PLACEMENT),
        resolved=config,
        representations=representations,
        pretrained=pretrained,
        protocol=protocol,
        external=parse_external(
            config.get("external"),
            reader.fail,
            reader.base_dir,
            output,
            lambda spec, prefix: _synthetic_spec(spec, prefix, reader),
        ),
        scheduler=_scheduler(config, reader),
    )


def _scheduler(config: dict, reader: _Reader) -> SchedulerSetting:
    """`scheduler` (none, local or an address) and `workers` (local only), checked."""
    return checked_setting(config.get("scheduler", NONE), config.get("workers"), reader.fail)


def _text(config: dict, key: str, reader: _Reader, default: str | None) -> str | None:
    value = config.get(key, default)
    if value is not None and not isinstance(value, str):
        reader.fail(key, f"must be text, got {value!r}.")
    return value


def _path(config: dict, key: str, reader: _Reader, default: str | None = None) -> Path:
    value = config.get(key)
    if value is None:
        value, base = default, reader.path.parent
    else:
        base = reader.base_dir(key)
    if not isinstance(value, str) or not value.strip():
        reader.fail(key, f"must be a path, got {value!r}.")
    return (base / Path(value).expanduser()).resolve()


def _output(config: dict, reader: _Reader, name: str) -> Path:
    """The output folder as written, else `results/<suite name>` under the current folder.

    The shipped suites name no output, so they write beside the user, never into the install.
    """
    if config.get("output") is not None:
        return _path(config, "output", reader)
    results = (Path.cwd() / "results").resolve()
    output = (results / name).resolve()
    # The name then names a folder under results/: one leading elsewhere is refused.
    if output == results or not output.is_relative_to(results):
        reader.fail(
            "name",
            f"names the folder results/<name> when `output` is not set, so it must stay inside "
            f"results/, got {name!r}; set `output` to write elsewhere.",
        )
    return output


def _existing_file(config: dict, key: str, reader: _Reader) -> Path:
    path = _path(config, key, reader)
    if not path.is_file():
        reader.fail(key, f"names {path}, which does not exist or is not a file.")
    return path


def _dataset_path(config: dict, reader: _Reader, output: Path) -> Path:
    dataset = config["dataset"]
    if dataset.get("path") is None and dataset.get("synthetic") is None:
        reader.fail(
            "dataset",
            "needs `path` (a MEDS dataset folder) or `synthetic: {subjects, seed, shards}`.",
        )
    if dataset.get("path") is None:
        return output / "dataset"
    value = dataset["path"]
    if not isinstance(value, str) or not value.strip():
        reader.fail("dataset.path", f"must be a path, got {value!r}.")
    path = (reader.base_dir("dataset.path") / Path(value).expanduser()).resolve()
    if dataset.get("synthetic") is None and not path.is_dir():
        reader.fail("dataset.path", f"names {path}, which is not a folder (a MEDS dataset).")
    return path


def _synthetic(config: dict, reader: _Reader) -> SyntheticSpec | None:
    spec = config["dataset"].get("synthetic")
    if spec is None:
        return None
    return _synthetic_spec(spec, "dataset.synthetic", reader)


def _synthetic_spec(spec: dict, prefix: str, reader: _Reader) -> SyntheticSpec:
    site = spec.get("site", DEFAULT_SITE)
    if site not in SITES:
        reader.fail(
            f"{prefix}.site", f"must be one of the synthetic sites {sorted(SITES)}, got {site!r}."
        )
    return SyntheticSpec(
        subjects=_int(spec, "subjects", prefix, reader, None, minimum=10),
        seed=_int(spec, "seed", prefix, reader, 0, maximum=SEED_MAX),
        shards=_int(spec, "shards", prefix, reader, 1, minimum=1),
        site=site,
    )


def _int(
    section: dict,
    key: str,
    prefix: str,
    reader: _Reader,
    default: int | None,
    minimum: int = 0,
    maximum: int | None = None,
) -> int:
    value = section.get(key, default)
    in_range = isinstance(value, int) and value >= minimum and (maximum is None or value <= maximum)
    if isinstance(value, bool) or not in_range:
        bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        reader.fail(f"{prefix}.{key}", f"must be a whole number {bound}, got {value!r}.")
    return value


def _names(config: dict, key: str, reader: _Reader) -> list[str]:
    value = config[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        reader.fail(key, f"must be a non-empty list of names, got {value!r}.")
    if len(set(value)) != len(value):
        reader.fail(key, f"lists a name twice: {value}.")
    return value


def _cohorts(config: dict, reader: _Reader, cohorts_dir: Path) -> tuple[str, ...]:
    if not cohorts_dir.is_dir():
        reader.fail("cohorts_dir", f"names {cohorts_dir}, which is not a folder of cohort files.")
    available = sorted(p.stem for p in cohorts_dir.glob("*.yaml"))
    names = _names(config, "cohorts", reader)
    if names == ["all"]:
        if not available:
            reader.fail("cohorts", f"is `all` but {cohorts_dir} holds no *.yaml cohort file.")
        return tuple(available)
    for name in names:
        if name not in available:
            reader.fail(
                "cohorts",
                f"names `{name}`, which is not a cohort file in {cohorts_dir}; available: "
                f"{available} (or `all`).{_hint(name, available)}",
            )
    return tuple(names)


def _named_entries(
    config: dict, section: str, reader: _Reader, expected: str
) -> list[tuple[str, str, Any]]:
    """(dotted key, name, value) of each entry of `section`, a mapping of names (without `@`:
    models are written HEAD@NAME) to `expected`."""
    value = config.get(section) or {}
    if not isinstance(value, dict):
        reader.fail(section, f"must map names to {expected}, got {value!r}.")
    entries = []
    for name, entry in value.items():
        key = f"{section}.{name}"
        if not isinstance(name, str) or not name or "@" in name:
            reader.fail(key, "needs a name without `@` (models are written HEAD@NAME).")
        entries.append((key, name, entry))
    return entries


def _representations(config: dict, reader: _Reader) -> dict[str, Path]:
    """Each representation's name and absolute path (pattern), checked for its form."""
    expected = "embedding files, e.g. `{clmbr: clmbr_{cohort}.parquet}`"
    paths = {}
    for key, name, pattern in _named_entries(config, "representations", reader, expected):
        if not isinstance(pattern, str) or not pattern.strip():
            reader.fail(
                key, f"must be a path (`{{cohort}}` stands for the cohort), got {pattern!r}."
            )
        paths[name] = (reader.base_dir(key) / Path(pattern).expanduser()).resolve()
    return paths


def _pretrained(
    config: dict, reader: _Reader, representations: dict[str, Path]
) -> dict[str, PretrainSettings]:
    """Each model to pretrain: its name (not a `representations` name) and checked settings."""
    expected = "pretraining settings, e.g. `{mine: {epochs: 1}}`"
    models = {}
    for key, name, settings in _named_entries(config, "pretrained", reader, expected):
        if name in representations:
            reader.fail(key, f"has the name of `representations.{name}`; give it another name.")
        if settings is not None and not isinstance(settings, dict):
            reader.fail(key, f"must map pretraining settings to values, got {settings!r}.")
        try:
            models[name] = settings_from(settings or {})
        except EhrbenchError as exc:
            reader.fail(key, f"is not valid: {exc}")
    return models


def _models(
    config: dict,
    reader: _Reader,
    representations: dict[str, Path],
    pretrained: dict[str, PretrainSettings],
    cohorts: tuple[str, ...],
) -> tuple[str, ...]:
    names = _names(config, "models", reader)
    for name in names:
        try:
            model_cls = model_class(head_model(name))
        except EhrbenchError as exc:
            reader.fail("models", f"names a model that cannot be used: {exc}")
        if "@" in name:
            _check_head_model(name, model_cls.kind, reader, representations, pretrained, cohorts)
    return tuple(names)


def _check_head_model(
    name: str,
    kind: str,
    reader: _Reader,
    representations: dict[str, Path],
    pretrained: dict[str, PretrainSettings],
    cohorts: tuple[str, ...],
) -> None:
    """A `HEAD@NAME` model: HEAD is tabular, NAME a representation with a file per cohort or a
    model the suite pretrains (its files are made when the grid runs)."""
    representation = name.partition("@")[2]
    if representation not in representations and representation not in pretrained:
        among = f"`representations` {sorted(representations)}" + (
            f" or `pretrained` {sorted(pretrained)}" if pretrained else ""
        )
        known = [*representations, *pretrained]
        reader.fail(
            "models",
            f"names `{name}`, but `{representation}` is not among the suite's {among}."
            f"{_hint(representation, known)}",
        )
    try:
        check_head(head_model(name), kind, f"model `{name}`")
    except EhrbenchError as exc:
        reader.fail("models", f"is not valid: {exc}")
    if representation in pretrained:
        return
    pattern = str(representations[representation])
    for cohort in cohorts:
        path = Path(pattern.replace(COHORT_PLACEHOLDER, cohort))
        if not path.is_file():
            reader.fail(
                f"representations.{representation}",
                f"gives {path} for cohort `{cohort}`, which does not exist or is not a file.",
            )


def _baseline(config: dict, reader: _Reader, models: tuple[str, ...]) -> str | None:
    baseline = config.get("baseline", "logreg" if "logreg" in models else models[0])
    if baseline is not None and baseline not in models:
        reader.fail("baseline", f"is `{baseline}`, which is not among the models {list(models)}.")
    return baseline


def _protocol(config: dict, reader: _Reader) -> str:
    value = config.get("protocol", ehrshot.DEFAULT_PROTOCOL)
    if value not in ehrshot.PROTOCOLS:
        reader.fail(
            "protocol",
            f"must be one of {list(ehrshot.PROTOCOLS)}, got {value!r}."
            + (_hint(value, ehrshot.PROTOCOLS) if isinstance(value, str) else ""),
        )
    return value


def _protocol_defaults(
    protocol: str, defaults: dict, given: dict, models: tuple[str, ...], merge: bool = False
) -> dict:
    """Under `protocol: ehrshot`, its per-model `defaults` for the suite's models, under what
    the suite `given` (merged key by key with `merge`, else replaced); else `given` as it is."""
    if protocol != ehrshot.EHRSHOT:
        return given
    out = {m: copy.deepcopy(defaults[m]) for m in models if m in defaults}
    for model, value in given.items():
        out[model] = {**out.get(model, {}), **value} if merge else value
    return out


def _plan(config: dict, reader: _Reader, protocol: str) -> FewShotPlan:
    is_ehrshot = protocol == ehrshot.EHRSHOT
    ks = config.get("k", list(ehrshot.K_VALUES if is_ehrshot else K_VALUES))
    seeds = config.get("seeds", list(DEFAULT_SEEDS))
    for key, value in (("k", ks), ("seeds", seeds)):
        if not isinstance(value, list):
            reader.fail(key, f"must be a list, e.g. `{key}=[4,all]`, got {value!r}.")
    try:
        FewShotPlan.from_config(ks, DEFAULT_SEEDS)
    except EhrbenchError as exc:
        reader.fail("k", f"is not valid: {exc}")
    try:
        return FewShotPlan.from_config(ks, seeds, all_per_seed=is_ehrshot)
    except EhrbenchError as exc:
        reader.fail("seeds", f"is not valid: {exc}")


def _feature_config(config: dict, kind: FeatureKind, reader: _Reader):
    section = f"features.{kind.name}"
    settings = dict(((config.get("features") or {}).get(kind.name)) or {})
    for key in ("min_count", "max_events"):
        if key in settings:
            _int(settings, key, section, reader, None, minimum=1)
    try:
        return kind.config(settings)
    except (EhrbenchError, TypeError, ValueError) as exc:
        reader.fail(section, f"is not valid: {exc}")


def _per_model(config: dict, key: str, reader: _Reader, models: tuple[str, ...]) -> dict:
    """The entries of a per-model section for the suite's models.

    Entries for other known models are dropped, so `models=[logreg]` on the command line works
    with a suite that sets GRU hyperparameters; an unknown model name is an error (a typo). A
    `HEAD@NAME` model takes its own entry, or else HEAD's.
    """
    value = config.get(key) or {}
    if not isinstance(value, dict):
        reader.fail(key, f"must map model names to settings, got {value!r}.")
    for name in value:
        try:
            check_model_name(head_model(name))  # not `model_class`: that imports the module
        except EhrbenchError as exc:
            reader.fail(f"{key}.{name}", f"does not name a model: {exc}")
    chosen = {model: value.get(model, value.get(head_model(model))) for model in models}
    return {model: settings for model, settings in chosen.items() if settings is not None}


def _model_params(config: dict, reader: _Reader, models: tuple[str, ...]) -> dict:
    params = _per_model(config, "model_params", reader, models)
    for name, fixed in params.items():
        if not isinstance(fixed, dict):
            reader.fail(f"model_params.{name}", f"must map hyperparameters to values: {fixed!r}.")
        try:
            expand_grid(head_model(name), overrides=fixed)
        except EhrbenchError as exc:
            reader.fail(f"model_params.{name}", f"is not valid: {exc}")
    return {name: dict(fixed) for name, fixed in params.items()}


def _grids(config: dict, reader: _Reader, models: tuple[str, ...]) -> dict:
    grids = _per_model(config, "grids", reader, models)
    for name, grid in grids.items():
        if not isinstance(grid, list) or not grid or not all(isinstance(g, dict) for g in grid):
            reader.fail(
                f"grids.{name}",
                f"must be a non-empty list of hyperparameter settings, got {grid!r}.",
            )
        try:
            expand_grid(head_model(name), grid=grid)
        except EhrbenchError as exc:
            reader.fail(f"grids.{name}", f"is not valid: {exc}")
    return {name: [dict(g) for g in grid] for name, grid in grids.items()}


def _age_bands(config: dict, reader: _Reader) -> tuple[int, ...]:
    bands = (config.get("subgroups") or {}).get("age_bands", list(DEFAULT_AGE_BANDS))
    try:
        age_band_labels(bands)
    except EhrbenchError as exc:
        reader.fail("subgroups.age_bands", f"is not valid: {exc}")
    return tuple(bands)
