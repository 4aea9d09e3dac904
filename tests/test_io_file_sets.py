"""Several files written as one unit: a kill between their renames never passes for a whole set."""

from __future__ import annotations

import errno
import shutil

import polars as pl
import pytest
from protocol_helpers import COHORT, COHORTS, tiny_dataset

from ehrbench.cli import main
from ehrbench.cohort.artifact import Extraction, ExtractionFiles
from ehrbench.errors import EhrbenchError
from ehrbench.features.kinds import TABULAR
from ehrbench.io import atomic_path, check_file_set, file_set, write_parquet_atomic


def test_a_file_set_is_checked_against_its_manifest(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    manifest = tmp_path / "set.json"
    with file_set([a, b], manifest) as tmp:
        tmp[a].write_text("one")
        tmp[b].write_text("two")
    check_file_set(manifest)
    b.write_text("another run's")  # as if a kill came between two renames of a later write
    with pytest.raises(EhrbenchError, match="b.txt is not the file"):
        check_file_set(manifest)
    manifest.write_text("not json")
    with pytest.raises(EhrbenchError, match="set.json is not a manifest ehrbench wrote"):
        check_file_set(manifest)
    manifest.unlink()  # a kill after the old manifest went and before the new one came
    with pytest.raises(EhrbenchError, match="set.json is missing"):
        check_file_set(manifest)


def test_a_failed_write_leaves_the_old_set_whole_and_no_temporary_file(tmp_path):
    a = tmp_path / "a.txt"
    manifest = tmp_path / "set.json"
    with file_set([a], manifest) as tmp:
        tmp[a].write_text("old")
    with pytest.raises(RuntimeError), file_set([a], manifest) as tmp:
        tmp[a].write_text("new")
        raise RuntimeError("killed while writing")
    check_file_set(manifest)
    assert a.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "set.json"]


def test_a_set_that_cannot_be_written_leaves_no_folder_it_made(tmp_path):
    (tmp_path / "kept").mkdir()
    (tmp_path / "a_file").write_text("the user's")
    labels, audit = tmp_path / "kept/new/deeper/labels.txt", tmp_path / "a_file/audit.txt"
    with pytest.raises(OSError), file_set([labels, audit], tmp_path / "kept/new/set.json"):
        pass
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a_file", "kept"]
    assert (tmp_path / "a_file").read_text() == "the user's"
    with file_set([labels], tmp_path / "kept/new/set.json") as tmp:
        tmp[labels].write_text("written")
    assert labels.read_text() == "written"


def test_a_parquet_write_the_disk_refuses_is_an_os_error_naming_the_file(tmp_path, monkeypatch):
    def full_disk(frame, path):
        raise pl.exceptions.ComputeError(
            "parquet: File out of specification: underlying IO error: No space left on device "
            "(os error 28)"
        )

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full_disk)
    with pytest.raises(OSError, match="No space left on device") as refused:
        write_parquet_atomic(pl.DataFrame({"a": [1]}), tmp_path / "labels.parquet")
    assert refused.value.errno == errno.ENOSPC
    assert refused.value.filename == str(tmp_path / "labels.parquet")
    assert list(tmp_path.iterdir()) == []

    def other_error(frame, path):
        raise pl.exceptions.ComputeError("cannot write a column of type Object")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", other_error)
    with pytest.raises(pl.exceptions.ComputeError, match="Object"):  # raised as it is
        write_parquet_atomic(pl.DataFrame({"a": [1]}), tmp_path / "labels.parquet")


def test_a_write_refused_without_a_file_name_names_the_file_being_written(tmp_path):
    target = tmp_path / "features.npz"
    with pytest.raises(OSError) as refused, atomic_path(target) as tmp, tmp.open("wb") as stream:
        stream.write(b"x")
        raise OSError(errno.ENOSPC, "No space left on device")  # as a full disk's write() does
    assert refused.value.errno == errno.ENOSPC and refused.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("data"))


def test_mixed_extraction_files_are_refused_on_reading(dataset, tmp_path):
    out = tmp_path / "labels.parquet"
    cohort = str(COHORTS / f"{COHORT}.yaml")
    predicates = str(COHORTS / "predicates" / "synthetic.yaml")
    argv = ["cohort", "extract", cohort, "--predicates", predicates, "--data", str(dataset)]
    assert main([*argv, "--out", str(out)]) == 0
    files = ExtractionFiles.beside(out)
    assert Extraction.read(files).labels.height > 0
    other = tmp_path / "other.parquet"
    mortality = str(COHORTS / "mortality_in_hospital.yaml")
    assert main(["cohort", "extract", mortality, "--predicates", predicates, "--data",
                 str(dataset), "--out", str(other)]) == 0  # fmt: skip
    shutil.copyfile(other, out)  # new labels beside the old attrition
    with pytest.raises(EhrbenchError, match="labels.parquet is not the file"):
        Extraction.read(files)


def test_mixed_feature_files_are_refused_on_loading(dataset, tmp_path):
    labels = tmp_path / "labels.parquet"
    cohort = str(COHORTS / f"{COHORT}.yaml")
    predicates = str(COHORTS / "predicates" / "synthetic.yaml")
    assert main(["cohort", "extract", cohort, "--predicates", predicates, "--data",
                 str(dataset), "--out", str(labels)]) == 0  # fmt: skip
    common = ["featurize", "tabular", "--data", str(dataset), "--labels", str(labels)]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--out", str(tmp_path / "b"), "--windows", "1d,full"]) == 0
    assert TABULAR.load(tmp_path / "a").shape[0] > 0
    shutil.copyfile(tmp_path / "b" / "features.npz", tmp_path / "a" / "features.npz")
    with pytest.raises(EhrbenchError, match="features.npz is not the file"):
        TABULAR.load(tmp_path / "a")
