"""What a cohort extraction leaves: labels, attrition and, when asked, the audit table.

`Extraction` writes itself as one unit (every file to a temporary name first, all renamed into
place only once all are written) and reads itself back. Labels are a MEDS label table, or plain
parquet when the cohort sets no `index_timestamp` (null prediction times, as ACES writes them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ehrbench.cohort.attrition import Attrition
from ehrbench.errors import EhrbenchError
from ehrbench.io import check_file_set, check_listed, file_set, write_parquet
from ehrbench.meds import MedsDataset, read_labels, write_labels


@dataclass(frozen=True)
class ExtractionFiles:
    """Where an extraction's files go: labels, attrition JSON and, optionally, text and audit."""

    labels: Path
    attrition: Path
    attrition_text: Path | None = None
    audit: Path | None = None

    @classmethod
    def beside(
        cls, labels: str | os.PathLike, audit: str | os.PathLike | None = None
    ) -> ExtractionFiles:
        """The command line's layout: `X.parquet` and `X.attrition.json` beside it.

        >>> ExtractionFiles.beside("out/mortality.parquet").attrition.name
        'mortality.attrition.json'
        """
        path = Path(labels)
        return cls(
            labels=path,
            attrition=path.with_name(path.stem + ".attrition.json"),
            audit=None if audit is None else Path(audit),
        )

    @property
    def manifest(self) -> Path:
        """The file set's manifest, written last: `X.parquet` -> `X.manifest.json`."""
        return self.labels.with_name(self.labels.stem + ".manifest.json")

    @property
    def paths(self) -> list[Path]:
        """Every file of the layout."""
        return list(self.named.values())

    @property
    def named(self) -> dict[str, Path]:
        """Every file of the layout by what it is, for messages (`--out`: the labels)."""
        names = {
            "--out": self.labels,
            "the attrition file": self.attrition,
            "the attrition text": self.attrition_text,
            "--audit": self.audit,
        }
        return {name: path for name, path in names.items() if path is not None}


def read_label_file(path: str | os.PathLike, dataset: MedsDataset | None = None) -> pl.DataFrame:
    """A label file named on the command line, read and checked (`read_labels`); when the
    manifest of an extraction lies beside it (`X.manifest.json`), also checked against the
    manifest's entry for it, so a label file replaced or left by an interrupted --overwrite is
    refused (the set's other files, an audit perhaps deleted, are not needed). A label file
    without one (written by another tool) is read as it is. With `dataset`, every label subject
    must have events there."""
    manifest = ExtractionFiles.beside(path).manifest
    if manifest.exists():
        check_listed(manifest, Path(path))
    labels = read_labels(path)
    if dataset is not None:
        _check_subjects_in(labels, dataset, path)
    return labels


def _check_subjects_in(labels: pl.DataFrame, dataset: MedsDataset, source) -> None:
    """Raise when some label subjects have no events in the dataset."""
    present = dataset.subject_ids().cast(pl.Int64)
    wanted = labels["subject_id"].cast(pl.Int64).unique().sort()
    missing = wanted.filter(~wanted.is_in(present.implode()))
    if missing.len():
        raise EhrbenchError(
            f"label table {source}: {missing.len()} of {wanted.len()} subject(s) (e.g. "
            f"{missing.head(5).to_list()}) are not in the dataset {dataset.root}. Were the labels "
            "extracted from another dataset?"
        )


@dataclass(frozen=True)
class Extraction:
    """The result of extracting a cohort: labels, attrition, optional audit table, warnings.

    `prediction_times` is False when the cohort sets no `index_timestamp`: every
    prediction_time is then null, and the labels are not a MEDS label table.
    """

    labels: pl.DataFrame
    attrition: Attrition
    audit: pl.DataFrame | None = None
    warnings: tuple[str, ...] = ()
    prediction_times: bool = True

    def write(self, files: ExtractionFiles) -> None:
        """Write the files of `files` as one unit, with their manifest (`ehrbench.io.file_set`)."""
        if files.audit is not None and self.audit is None:
            raise ValueError("this extraction has no audit table: extract with audit=True")
        with file_set(files.paths, files.manifest) as tmp:
            if self.prediction_times:
                write_labels(self.labels, tmp[files.labels])
            else:
                write_parquet(self.labels, tmp[files.labels])
            tmp[files.attrition].write_text(self.attrition.to_json(), encoding="utf-8")
            if files.attrition_text is not None:
                tmp[files.attrition_text].write_text(self.attrition.render(), encoding="utf-8")
            if files.audit is not None:
                write_parquet(self.audit, tmp[files.audit])

    @classmethod
    def read(cls, files: ExtractionFiles) -> Extraction:
        """Read back an extraction with prediction times (its labels a MEDS label table).

        Raises `EhrbenchError` when the files were not written together (see `file_set`).
        """
        check_file_set(files.manifest)
        audit = None if files.audit is None else pl.read_parquet(files.audit)
        return cls(read_labels(files.labels), Attrition.read(files.attrition), audit)
