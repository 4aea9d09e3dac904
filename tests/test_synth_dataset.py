"""The synthetic dataset is a valid MEDS 0.4 folder, deterministic, and never overwrites."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import meds
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ehrbench.cli import main
from ehrbench.errors import EhrbenchError
from ehrbench.synth import generate_dataset, generate_events
from ehrbench.synth.vocabulary import CODES


def _check_meds_folder(root: Path, n_subjects: int) -> None:
    """Every MEDS 0.4 rule the generator promises, checked on the written files."""
    shards = sorted((root / "data").rglob("*.parquet"))
    assert shards
    seen: set[int] = set()
    for shard in shards:
        table = pq.read_table(shard)
        meds.DataSchema.validate(table)
        assert table.column_names == ["subject_id", "time", "code", "numeric_value"]
        frame = pl.from_arrow(table)
        subjects = set(frame["subject_id"].unique().to_list())
        assert not subjects & seen, f"a subject appears in two shards ({shard})"
        seen |= subjects
        assert shard.parent.name in {"train", "tuning", "held_out"}
        key = frame.select(
            "subject_id",
            pl.col("time").is_not_null().alias("timed"),
            pl.col("time").fill_null(pl.datetime(1, 1, 1)),
        )
        assert key.equals(key.sort("subject_id", "timed", "time")), f"{shard} is not sorted"
        assert frame["code"].null_count() == 0
    assert len(seen) == n_subjects
    codes = pl.read_parquet(root / "metadata" / "codes.parquet")
    meds.CodeMetadataSchema.validate(pq.read_table(root / "metadata" / "codes.parquet"))
    assert codes["description"].null_count() == 0
    assert set(codes["code"]) == set(CODES)
    splits = pl.read_parquet(root / "metadata" / "subject_splits.parquet")
    assert set(splits["subject_id"]) == seen
    assert set(splits["split"]) <= {"train", "tuning", "held_out"}
    for shard in shards:
        ids = pl.read_parquet(shard, columns=["subject_id"])["subject_id"].unique()
        in_split = splits.filter(pl.col("subject_id").is_in(ids.implode()))["split"].unique()
        assert in_split.to_list() == [shard.parent.name]
    metadata = json.loads((root / "metadata" / "dataset.json").read_text())
    assert metadata["dataset_name"] == "ehrbench-synthetic"
    assert metadata["meds_version"].startswith("0.4")
    for key in ("dataset_version", "created_at", "license"):
        assert metadata[key]


@settings(max_examples=6, deadline=None)
@given(
    n_subjects=st.integers(min_value=1, max_value=120),
    seed=st.integers(min_value=0, max_value=2**32),
    shards=st.integers(min_value=1, max_value=4),
)
def test_generated_folder_is_valid_meds(tmp_path_factory, n_subjects, seed, shards):
    shards = min(shards, n_subjects)
    root = tmp_path_factory.mktemp("synth") / "out"
    summary = generate_dataset(root, n_subjects, seed, n_shards=shards)
    assert summary.subjects == n_subjects and summary.shards == shards
    _check_meds_folder(root, n_subjects)


def test_a_subject_without_any_hospital_stay_still_gives_valid_meds(tmp_path):
    # Regression: a one-subject shard with no stay crashed the in-stay lookup (seed found by
    # the property test above).
    generate_dataset(tmp_path / "d", 1, 2, n_shards=1)
    _check_meds_folder(tmp_path / "d", 1)


def test_splits_are_70_15_15(tmp_path):
    generate_dataset(tmp_path / "d", 200, 3)
    sizes = dict(
        pl.read_parquet(tmp_path / "d" / "metadata" / "subject_splits.parquet")["split"]
        .value_counts()
        .iter_rows()
    )
    assert sizes == {"train": 140, "tuning": 30, "held_out": 30}


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_files(tmp_path):
    generate_dataset(tmp_path / "a", 150, 7, n_shards=2)
    generate_dataset(tmp_path / "b", 150, 7, n_shards=2)
    generate_dataset(tmp_path / "c", 150, 8, n_shards=2)
    a, b, c = (_digests(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert a["data/train/0.parquet"] != c["data/train/0.parquet"]


def test_generate_events_matches_a_single_shard_dataset(tmp_path):
    generate_dataset(tmp_path / "d", 80, 5, n_shards=1)
    written = pl.read_parquet(tmp_path / "d" / "data" / "*" / "0.parquet").sort(
        "subject_id", maintain_order=True
    )
    assert written.equals(generate_events(80, 5))


def test_cli_refuses_a_non_empty_folder(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    code = main(["synth", "--subjects", "10", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "refusing to replace" in err and str(out) in err
    assert "Traceback" not in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mine")]


def test_cli_writes_into_an_empty_folder(tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    assert main(["synth", "--subjects", "30", "--seed", "2", "--out", str(out)]) == 0
    assert "wrote 30 subjects" in capsys.readouterr().out
    _check_meds_folder(out, 30)


def test_refuses_a_file_as_output(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(EhrbenchError, match="is a file: expected a folder"):
        generate_dataset(target, 10, 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"n_subjects": 0, "seed": 0}, "--subjects must be at least 1"),
        ({"n_subjects": 10, "seed": -1}, "--seed must be a non-negative"),
        ({"n_subjects": 10, "seed": 0, "n_shards": 11}, "--shards must be between 1"),
        ({"n_subjects": 10, "seed": 0, "n_shards": 0}, "--shards must be between 1"),
    ],
)
def test_bad_requests_are_clear_errors(tmp_path, args, message):
    with pytest.raises(EhrbenchError, match=message):
        generate_dataset(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()


def test_cli_bad_request_has_no_traceback(tmp_path, capsys):
    assert main(["synth", "--subjects", "0", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--subjects must be at least 1" in err and "Traceback" not in err


def test_refuses_more_subjects_per_shard_than_the_sort_key_holds(tmp_path):
    with pytest.raises(EhrbenchError, match="use at least 2 shards"):
        generate_dataset(tmp_path / "out", 2_000_000, 0, n_shards=1)


@pytest.mark.parametrize(("n", "seed"), [(0, 1), (5, -2)])
def test_generate_events_rejects_bad_arguments(n, seed):
    with pytest.raises(EhrbenchError, match="at least 1 subject and a non-negative seed"):
        generate_events(n, seed)
