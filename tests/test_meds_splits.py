"""The stable hash split, the split fallback, and `ehrbench splits`."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from meds_builders import events_frame, write_meds_folder
from protocol_helpers import captured_logs

from ehrbench.cli import main
from ehrbench.errors import EhrbenchError
from ehrbench.meds import hash_splits, open_dataset
from ehrbench.meds.splits import parse_fractions

# Pinned: if the hash or the cut points ever change, every saved benchmark split would move.
PINNED = [
    (1, "held_out"),
    (2, "train"),
    (3, "held_out"),
    (4, "train"),
    (5, "train"),
    (6, "held_out"),
    (7, "held_out"),
    (8, "held_out"),
    (9, "train"),
    (10, "tuning"),
    (10000032, "train"),
    (10040025, "tuning"),
]


def test_hash_split_is_pinned():
    ids = [i for i, _ in PINNED]
    assert hash_splits(ids).rows() == PINNED
    assert hash_splits(list(reversed(ids)) + ids).rows() == PINNED  # order and repeats ignored


def test_hash_split_fractions_are_respected():
    splits = hash_splits(range(20_000), (0.6, 0.1, 0.3))
    shares = splits.get_column("split").value_counts(normalize=True)
    share = dict(shares.iter_rows())
    assert share["train"] == pytest.approx(0.6, abs=0.015)
    assert share["tuning"] == pytest.approx(0.1, abs=0.015)
    assert share["held_out"] == pytest.approx(0.3, abs=0.015)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=50, unique=True))
def test_a_subject_keeps_its_split_in_any_company(ids):
    alone = {i: hash_splits([i]).item(0, "split") for i in ids}
    together = dict(hash_splits(ids).iter_rows())
    assert together == alone


def test_growing_train_only_moves_subjects_into_train():
    small = dict(hash_splits(range(2000), (0.5, 0.25, 0.25)).iter_rows())
    large = dict(hash_splits(range(2000), (0.8, 0.1, 0.1)).iter_rows())
    assert all(large[i] == "train" for i, s in small.items() if s == "train")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.7,0.3", "three non-negative"),
        ("0.7,0.2,0.2", "sum to 1.1"),
        ("a,b,c", "comma-separated"),
    ],
)
def test_bad_fractions(text, message):
    with pytest.raises(EhrbenchError, match=message):
        parse_fractions(text)


def _dataset(tmp_path, write_splits: bool):
    rows = [(i, datetime(2000, 1, 1), "MEDS_BIRTH", None) for i in range(1, 41)]
    return write_meds_folder(tmp_path / "ds", events_frame(rows), write_splits=write_splits)


def test_missing_split_file_falls_back_to_hash_split_with_warning(tmp_path, caplog):
    root = _dataset(tmp_path, write_splits=False)
    with captured_logs(caplog):
        splits = open_dataset(root).subject_splits()
    assert splits.equals(hash_splits(range(1, 41)))
    assert "subject_splits.parquet does not exist" in caplog.text
    assert not (root / "metadata" / "subject_splits.parquet").exists()


def test_splits_command_prints_and_writes_only_with_write(tmp_path, capsys):
    root = _dataset(tmp_path, write_splits=False)
    assert main(["splits", str(root)]) == 0
    out = capsys.readouterr().out
    expected = dict(hash_splits(range(1, 41)).group_by("split").len().iter_rows())
    assert f"train {expected['train']}" in out and "not written" in out
    assert not (root / "metadata" / "subject_splits.parquet").exists()
    assert main(["splits", str(root), "--write"]) == 0
    written = pl.read_parquet(root / "metadata" / "subject_splits.parquet")
    assert written.equals(hash_splits(range(1, 41)))
    assert open_dataset(root).subject_splits().equals(written)


def test_splits_command_refuses_to_overwrite_a_different_file(tmp_path, capsys):
    root = _dataset(tmp_path, write_splits=True)
    before = (root / "metadata" / "subject_splits.parquet").read_bytes()
    assert main(["splits", str(root), "--write"]) == 0  # identical: accepted, not rewritten
    code = main(["splits", str(root), "--write", "--fractions", "0.5,0.25,0.25"])
    err = capsys.readouterr().err
    assert code == 2 and "refusing to overwrite" in err and "Traceback" not in err
    assert (root / "metadata" / "subject_splits.parquet").read_bytes() == before
