"""The cohort library: the standard cohorts in the repository's `cohorts/` folder.

Each `cohorts/<name>.yaml` is a dataset-agnostic cohort whose dataset-specific predicates are
left as `???`; each `cohorts/predicates/<dataset>.yaml` fills them in for one dataset's code
vocabulary. Every cohort file opens with a header comment: a title line, then fields written
`# Field: text` (continued on lines indented under it), among them `Prediction time` and
`Label`.

Where the library is: `cohorts/` sits beside the `ehrbench/` package in the source tree and ships
inside the package as `ehrbench.bundled.COHORTS` (a link in the source tree, a copy in a wheel),
so every install finds it. Any folder of the same layout can be used instead with `root=` (the
command line's `--library DIR`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from ehrbench.bundled import COHORTS
from ehrbench.errors import EhrbenchError, did_you_mean
from ehrbench.yaml_source import read_text, read_yaml

if TYPE_CHECKING:
    from ehrbench.cohort.model import Cohort

HEADER_FIELD = re.compile(r"^#\s?([A-Z][A-Za-z ]*):\s*(.*)$")
COUNT_SCHEMA = {
    "cohort": pl.String,
    "rows": pl.Int64,
    "positives": pl.Int64,
    "prevalence": pl.Float64,
}


@dataclass(frozen=True)
class LibraryCohort:
    """One library cohort: its file and what its header comment says."""

    name: str
    path: Path
    title: str
    fields: dict[str, str]
    description: str | None

    @property
    def prediction_time(self) -> str:
        """The header's `Prediction time` (or the description when the header lacks it)."""
        return self.fields.get("Prediction time") or self.description or ""

    @property
    def label(self) -> str:
        """The header's `Label` (or the title when the header lacks it)."""
        return self.fields.get("Label") or self.title


def library_dir(root: str | Path | None = None) -> Path:
    """The library folder: `root` when given, else the library ehrbench ships."""
    path = Path(root) if root is not None else COHORTS
    if not path.is_dir():
        raise EhrbenchError(
            f"The cohort library folder {path} does not exist: pass a folder that holds cohort "
            "YAML files (--library DIR), or reinstall ehrbench (it ships the library)."
        )
    return path


def cohort_paths(root: str | Path | None = None) -> list[Path]:
    """The library's cohort files, sorted by name."""
    return sorted(library_dir(root).glob("*.yaml"))


def cohort_path(name: str, root: str | Path | None = None) -> Path:
    """The file of the library cohort called `name` (e.g. `mortality_in_hospital`)."""
    known = {path.stem: path for path in cohort_paths(root)}
    if name in known:
        return known[name]
    hint = did_you_mean(name, known)
    hint = f"; {hint}" if hint else ""
    raise EhrbenchError(
        f"The cohort library ({library_dir(root)}) has no cohort {name!r}: expected one of "
        f"{', '.join(known) or '(none)'}{hint}"
    )


def predicates_paths(root: str | Path | None = None) -> dict[str, Path]:
    """The library's predicates files by dataset name (`synthetic`, `mimic_iv`, ...)."""
    folder = library_dir(root) / "predicates"
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))}


def resolve_predicates(name_or_path: str | Path, root: str | Path | None = None) -> Path:
    """A predicates file from a library dataset name (`mimic_iv`) or a path to a YAML file."""
    known = predicates_paths(root)
    if str(name_or_path) in known:
        return known[str(name_or_path)]
    path = Path(name_or_path)
    if path.is_file():
        return path
    raise EhrbenchError(
        f"The predicates file {name_or_path!r} is neither a file nor a library predicates name; "
        f"expected a path to a predicates YAML or one of: {', '.join(known) or '(none)'}."
    )


def predicates_for_dataset(dataset_name: str, root: str | Path | None = None) -> Path:
    """The library predicates file whose name appears in a dataset's `dataset_name`.

    The name is lower-cased with non-alphanumerics as `_`, so `MIMIC-IV-demo` picks `mimic_iv`.
    Raises `EhrbenchError` unless exactly one predicates file matches.
    """
    normal = re.sub(r"[^a-z0-9]+", "_", dataset_name.lower())
    known = predicates_paths(root)
    matches = [path for name, path in known.items() if name in normal]
    if len(matches) != 1:
        raise EhrbenchError(
            f"Cannot tell which predicates file fits the dataset named {dataset_name!r} "
            f"(metadata/dataset.json dataset_name): {len(matches)} of the library's predicates "
            f"files ({', '.join(known) or 'none'}) match it. Pass --predicates NAME or a path."
        )
    return matches[0]


def dataset_predicates(
    predicates: str | Path | None, data: str | Path, root: str | Path | None = None
) -> Path:
    """The predicates file `predicates` names, else the one `data`'s `dataset_name` picks.

    >>> dataset_predicates("synthetic", "data/unused").name
    'synthetic.yaml'
    """
    if predicates:
        return resolve_predicates(predicates, root)
    from ehrbench.meds import open_dataset

    name = open_dataset(data, deep=False).metadata().get("dataset_name")
    if not name:
        raise EhrbenchError(
            f"{data}/metadata/dataset.json has no dataset_name to pick a predicates file "
            "by: pass --predicates NAME (a file of cohorts/predicates/) or a path."
        )
    return predicates_for_dataset(name, root)


@dataclass(frozen=True)
class DatasetNotes:
    """What a predicates file says of the library cohorts on its dataset, by cohort name.

    `not_expressible`: cohorts the dataset cannot express, with the reason (their predicates stay
    `???`); `not_meaningful`: cohorts that extract but whose label the data fixes, with the
    reason. Both come from the file's `metadata:` section.
    """

    not_expressible: dict[str, str]
    not_meaningful: dict[str, str]

    @classmethod
    def read(cls, predicates: str | Path) -> DatasetNotes:
        """The notes of a predicates file (empty when it has no `metadata:` section)."""
        raw, _ = read_yaml(Path(predicates), "predicates")
        metadata = _mapping(raw.get("metadata") if isinstance(raw, dict) else None)
        return cls(
            not_expressible=_mapping(metadata.get("not_expressible")),
            not_meaningful=_mapping(metadata.get("not_meaningful")),
        )


def _mapping(value: object) -> dict:
    """`value` when it is a mapping, else empty (a malformed `metadata:` section is ignored)."""
    return dict(value) if isinstance(value, dict) else {}


def parse_header(text: str) -> tuple[str, dict[str, str]]:
    """The title line and the `# Field: text` fields of a cohort file's leading comment block.

    A comment line indented past `# ` continues the field above it; lines are joined with
    single spaces.
    """
    title = ""
    fields: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        match = HEADER_FIELD.match(line)
        body = line.lstrip("#").strip()
        if match and not line.startswith("#  "):
            current = match.group(1)
            fields[current] = match.group(2).strip()
        elif current is not None and line.startswith("#  "):
            fields[current] = f"{fields[current]} {body}".strip()
        elif not title and current is None:
            title = body
        else:
            current = None  # a free comment paragraph ends the field above it
    return title, fields


def describe(path: str | Path) -> LibraryCohort:
    """Read one cohort file's header comment and `description`."""
    path = Path(path)
    text = read_text(path, "cohort")
    title, fields = parse_header(text)
    match = re.search(r"^description:\s*(.+)$", text, flags=re.MULTILINE)
    description = match.group(1).strip().strip("\"'") if match else None
    return LibraryCohort(path.stem, path, title, fields, description)


def list_cohorts(root: str | Path | None = None) -> list[LibraryCohort]:
    """Every library cohort, sorted by name, with its header."""
    return [describe(path) for path in cohort_paths(root)]


def cohort_counts(
    cohorts: list[LibraryCohort], data: str | Path, predicates: str | Path
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Extract the cohorts on a MEDS dataset in one read: rows, positives and prevalence of each.

    Returns the table (one row per cohort that extracted, columns of `COUNT_SCHEMA`) and, by
    cohort name, the message of each cohort that failed to load or extract.
    """
    from ehrbench.cohort.one_pass import extract_many
    from ehrbench.meds import open_dataset

    dataset = open_dataset(data, deep=False)
    loaded, failures = load_library(cohorts, predicates)
    try:
        results, unextracted = extract_many(loaded, dataset)
    except EhrbenchError as exc:
        results, unextracted = {}, dict.fromkeys(loaded, str(exc))
    failures |= unextracted
    rows = []
    for name, result in results.items():
        # Its warnings are left out: an empty or one-class cohort shows in the table itself.
        labels = result.labels
        if loaded[name].label_column != "boolean_value":
            # A count, duration, value or class label has no positives.
            rows.append((name, labels.height, None, float("nan")))
            continue
        positives = int(labels["boolean_value"].sum()) if labels.height else 0
        prevalence = positives / labels.height if labels.height else float("nan")
        rows.append((name, labels.height, positives, prevalence))
    order = [c.name for c in cohorts]
    failures = {name: failures[name] for name in order if name in failures}
    return pl.DataFrame(rows, schema=COUNT_SCHEMA, orient="row"), failures


def load_library(
    cohorts: list[LibraryCohort], predicates: str | Path
) -> tuple[dict[str, Cohort], dict[str, str]]:
    """Load each library cohort with `predicates`: (cohorts by name, messages of failures).

    >>> loaded, failures = load_library(list_cohorts()[:1], predicates_paths()["synthetic"])
    >>> list(loaded), failures
    (['icu_transfer'], {})
    """
    from ehrbench.cohort.config import load_cohort

    loaded, failures = {}, {}
    for item in cohorts:
        try:
            loaded[item.name] = load_cohort(item.path, predicates)
        except EhrbenchError as exc:
            failures[item.name] = str(exc)
    return loaded, failures
