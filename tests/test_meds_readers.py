"""Every reader verb refuses a broken dataset with validate's message (exit 2), never a crash.

Each case breaks a copy of a small synthetic dataset in one way; each reader verb (`info`,
`validate`, `cohort extract`, `cohort explain`, `cohorts --data`, `cohorts extract`,
`featurize tabular`) must exit 2 with a message naming the offending file, and no "internal
error" or traceback.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import polars as pl
import pytest

from ehrbench.cli import main

REPO = Path(__file__).resolve().parents[1]
COHORT = str(REPO / "cohorts" / "mortality_in_hospital.yaml")
PREDICATES = str(REPO / "cohorts" / "predicates" / "synthetic.yaml")
SHARD = Path("data") / "train" / "0.parquet"


@pytest.fixture
def good(synthetic_with_labels) -> tuple[Path, Path]:
    """The shared valid dataset and its labels (tests break copies of them)."""
    return synthetic_with_labels


def _rewrite(root: Path, change) -> Path:
    """Rewrite the train shard through `change(frame) -> frame`."""
    path = root / SHARD
    change(pl.read_parquet(path)).write_parquet(path)
    return path


def _garbage(root: Path) -> Path:
    (root / SHARD).write_bytes(b"PAR1 this is not parquet at all")
    return root / SHARD


def _truncated(root: Path) -> Path:
    data = (root / SHARD).read_bytes()
    (root / SHARD).write_bytes(data[: len(data) // 2])
    return root / SHARD


def _zero_bytes(root: Path) -> Path:
    (root / SHARD).write_bytes(b"")
    return root / SHARD


def _corrupt_footer(root: Path) -> Path:
    data = bytearray((root / SHARD).read_bytes())
    data[-40:-8] = b"\xff" * 32
    (root / SHARD).write_bytes(bytes(data))
    return root / SHARD


def _dangling_link(root: Path) -> Path:
    link = root / "data" / "extra.parquet"
    os.symlink(root / "nowhere.parquet", link)
    return link


def _directory_shard(root: Path) -> Path:
    folder = root / "data" / "more.parquet"
    folder.mkdir()
    return folder


def _stray_file(root: Path) -> Path:
    stray = root / "data" / "train" / "1.csv"
    stray.write_text("subject_id,time,code\n")
    return stray


def _integer_code(root: Path) -> Path:
    return _rewrite(root, lambda f: f.with_columns(pl.col("code").rank("dense").cast(pl.Int64)))


def _null_in(column: str):
    """A change setting `column` to null on the fourth row of the train shard."""

    def change(root: Path) -> Path:
        row = pl.int_range(pl.len()) == 3
        return _rewrite(
            root,
            lambda f: f.with_columns(
                pl.when(row).then(None).otherwise(pl.col(column)).alias(column)
            ),
        )

    return change


def _infinite_value(root: Path) -> Path:
    return _rewrite(
        root,
        lambda f: f.with_columns(
            pl.when(pl.col("numeric_value").is_not_null())
            .then(float("-inf"))
            .otherwise(None)
            .cast(pl.Float32)
            .alias("numeric_value")
        ),
    )


def _mixed_schema(root: Path) -> Path:
    """One shard whose `time` is a string: the others are right."""
    return _rewrite(root, lambda f: f.with_columns(pl.col("time").cast(pl.String)))


CASES = {
    "garbage": (_garbage, "is not a readable parquet file"),
    "truncated": (_truncated, "is not a readable parquet file"),
    "zero-byte": (_zero_bytes, "is not a readable parquet file"),
    "corrupt footer": (_corrupt_footer, "is not a readable parquet file"),
    "dangling link": (_dangling_link, "which does not exist"),
    "directory named parquet": (_directory_shard, "is a folder, not a parquet event shard"),
    "non-parquet file beside shards": (_stray_file, "is not a parquet event shard"),
    "integer code": (_integer_code, "column `code` has type int64"),
    "null subject_id": (_null_in("subject_id"), "column `subject_id` has 1 null value"),
    "null code": (_null_in("code"), "column `code` has 1 null value"),
    "infinite numeric_value": (_infinite_value, "column `numeric_value` has"),
    "mixed schema": (_mixed_schema, "column `time` has type"),
}


def _verbs(root: Path, labels: Path, out: Path) -> dict[str, list[str]]:
    data = str(root)
    return {
        "info": ["info", data],
        "validate": ["validate", data],
        "cohort extract": ["cohort", "extract", COHORT, "--predicates", PREDICATES,
                           "--data", data, "--out", str(out / "labels.parquet")],
        "cohort explain": ["cohort", "explain", COHORT, "--predicates", PREDICATES,
                           "--data", data, "--subject", "10000001"],
        "cohort check": ["cohort", "check", COHORT, "--predicates", PREDICATES, "--data", data],
        "cohorts": ["cohorts", "--data", data, "--predicates", "synthetic"],
        "cohorts extract": ["cohorts", "extract", "--data", data, "--predicates", "synthetic",
                            "--out", str(out / "library")],
        "featurize": ["featurize", "tabular", "--data", data, "--labels", str(labels),
                      "--out", str(out / "features")],
    }  # fmt: skip


VERBS = list(_verbs(Path(), Path(), Path()))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("verb", VERBS)
def test_a_broken_shard_is_refused_by_every_reader(good, tmp_path, capsys, case, verb):
    root = tmp_path / "meds"
    shutil.copytree(good[0], root, symlinks=True)
    make, expected = CASES[case]
    offender = make(root)
    capsys.readouterr()
    code = main(["-q", *_verbs(root, good[1], tmp_path)[verb]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert str(offender) in err and expected in err, err
    assert "internal error" not in err and "Traceback" not in err


def test_splits_naming_subjects_without_data_are_refused(good, tmp_path, capsys):
    root = tmp_path / "meds"
    shutil.copytree(good[0], root)
    splits = root / "metadata" / "subject_splits.parquet"
    table = pl.read_parquet(splits)
    extra = pl.DataFrame({"subject_id": [1, 2], "split": ["train", "train"]}, schema=table.schema)
    pl.concat([table, extra]).write_parquet(splits)
    assert main(["validate", str(root)]) == 2
    err = capsys.readouterr().err
    assert str(splits) in err and "subject 1, which has no event" in err and "(2 such" in err


def test_implausible_times_are_a_warning_with_a_count(good, tmp_path, capsys):
    root = tmp_path / "meds"
    shutil.copytree(good[0], root)
    path = _rewrite(
        root,
        lambda f: f.with_columns(
            pl.when(pl.col("code") == "MEDS_BIRTH")
            .then(pl.col("time"))
            .otherwise(pl.col("time").dt.offset_by("-400y"))
            .alias("time")
        ).sort("subject_id", "time", nulls_last=False),
    )
    assert main(["validate", str(root)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if str(path) in line]
    assert any("event(s) in column `time` are before 1800-01-01" in w for w in warnings)
    assert any("in column `time` are before the subject's MEDS_BIRTH" in w for w in warnings)


def test_a_shard_without_statistics_is_still_checked(good, tmp_path, capsys):
    root = tmp_path / "meds"
    shutil.copytree(good[0], root)
    path = root / SHARD
    frame = pl.read_parquet(path).with_columns(pl.lit(float("inf")).alias("numeric_value"))
    frame.with_columns(pl.col("numeric_value").cast(pl.Float32)).write_parquet(
        path, statistics=False
    )
    assert main(["cohort", "check", COHORT, "--predicates", PREDICATES, "--data", str(root)]) == 2
    assert "column `numeric_value` has" in capsys.readouterr().err


def _damaged_pages(root: Path) -> Path:
    """Garble the data pages of the train shard, leaving its footer intact."""
    path = root / SHARD
    data = bytearray(path.read_bytes())
    for i in range(100, len(data) // 2):
        data[i] = (data[i] * 7 + 13) % 256
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("verb", ["info", "validate", "cohort extract", "featurize"])
def test_a_damaged_data_page_names_the_shard(good, tmp_path, capsys, verb):
    root = tmp_path / "meds"
    shutil.copytree(good[0], root)
    path = _damaged_pages(root)
    code = main(["-q", *_verbs(root, good[1], tmp_path)[verb]])
    err = capsys.readouterr().err
    assert code == 2 and f"{path} is not a readable parquet" in err, err
