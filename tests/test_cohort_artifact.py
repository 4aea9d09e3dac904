"""An extraction writes its files as one unit and reads them back."""

from __future__ import annotations

import polars as pl
import pytest
from cohort_reference import at, cohort, frame, plain, rows, window

from ehrbench.cohort.artifact import Extraction, ExtractionFiles, read_label_file
from ehrbench.cohort.attrition import Attrition
from ehrbench.cohort.extract import extract_events
from ehrbench.errors import EhrbenchError

ADM = plain("adm", "ADM")
LAB = plain("lab", "LAB")
DATA = rows((1, 0, "ADM"), (1, 1, "LAB"), (2, 0, "ADM"))


def files_in(folder) -> ExtractionFiles:
    return ExtractionFiles(
        labels=folder / "labels.parquet",
        attrition=folder / "attrition.json",
        attrition_text=folder / "attrition.txt",
        audit=folder / "audit.parquet",
    )


def labelled():
    c = cohort([ADM, LAB], "adm", [window("w", "trigger", "start + 2h", label="lab", index="end")])
    return extract_events(c, frame(DATA), audit=True)


def test_an_extraction_reads_back_what_it_wrote(tmp_path):
    extraction = labelled()
    files = files_in(tmp_path)
    extraction.write(files)
    back = Extraction.read(files)
    assert back.labels.equals(extraction.labels)
    assert back.attrition == extraction.attrition
    assert back.audit.equals(extraction.audit)
    assert files.attrition_text.read_text() == extraction.attrition.render()
    assert Attrition.read(files.attrition).to_json() == files.attrition.read_text()


def test_without_index_timestamp_labels_are_plain_parquet_with_null_times(tmp_path):
    c = cohort([ADM], "adm", [window("w", "trigger", "start + 2h")])
    extraction = extract_events(c, frame(DATA))
    assert not extraction.prediction_times
    extraction.write(ExtractionFiles.beside(tmp_path / "x.parquet"))
    assert pl.read_parquet(tmp_path / "x.parquet")["prediction_time"].to_list() == [None, None]
    assert (tmp_path / "x.attrition.json").exists()


def test_a_failed_write_leaves_the_earlier_files_as_they_were(tmp_path, monkeypatch):
    files = files_in(tmp_path)
    labelled().write(files)
    before = {path: path.read_bytes() for path in files.paths}
    c = cohort([ADM], "adm", [window("w", "trigger", "start", index="end")])
    newer = extract_events(c, frame(rows((7, 0, "ADM"))), audit=True)
    assert newer.labels["prediction_time"].to_list() == [at(0)]

    def fail(self):
        raise OSError("disk full")

    # The labels and attrition JSON are written before the text fails.
    monkeypatch.setattr(Attrition, "render", fail)
    with pytest.raises(OSError, match="disk full"):
        newer.write(files)
    assert {path: path.read_bytes() for path in files.paths} == before
    written = [*files.paths, files.manifest]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)
    assert Extraction.read(files).labels.height == labelled().labels.height


def test_an_audit_in_another_folder_keeps_its_own_manifest_entry(tmp_path):
    # The audit takes the labels' file name in another folder; later it is deleted. The labels
    # stay readable, checked against their own entry; a swapped label file is refused.
    extraction = labelled()
    files = ExtractionFiles.beside(
        tmp_path / "labels" / "b.parquet", tmp_path / "audits" / "b.parquet"
    )
    extraction.write(files)
    assert Extraction.read(files).audit.equals(extraction.audit)
    files.audit.unlink()
    assert read_label_file(files.labels).equals(extraction.labels)
    extraction.labels.head(1).write_parquet(files.labels)
    with pytest.raises(EhrbenchError, match=r"b.parquet is not the file .*b.manifest.json"):
        read_label_file(files.labels)
