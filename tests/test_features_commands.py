"""`ehrbench featurize`, the feature cache, and window parsing."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from meds_builders import events_frame, write_meds_folder

import ehrbench.features.cache as cache_module
from ehrbench.cli import main
from ehrbench.errors import EhrbenchError
from ehrbench.features.cache import cache_key, cached, cached_files
from ehrbench.features.kinds import TABULAR
from ehrbench.features.tabular import TabularConfig
from ehrbench.features.windows import parse_duration_us, parse_window
from ehrbench.meds import open_dataset, write_labels

T0 = datetime(2021, 5, 5, 5, 0)
HOUR_US = 3600 * 1_000_000


@pytest.fixture
def folder(tmp_path):
    rows = []
    for s in range(1, 7):
        rows.append((s, None, "GENDER//F", None))
        rows.append((s, datetime(1970, 1, 1), "MEDS_BIRTH", None))
        rows += [(s, T0 - timedelta(hours=h), "LAB//1//u", float(h)) for h in range(1, 4)]
    splits = {s: "train" if s <= 4 else "held_out" for s in range(1, 7)}
    write_meds_folder(tmp_path / "meds", events_frame(rows), splits, shards=2)
    labels = pl.DataFrame({"subject_id": list(range(1, 7)), "prediction_time": [T0] * 6})
    write_labels(labels, tmp_path / "labels.parquet")
    return tmp_path


def _run(*argv: str) -> int:
    return main(["featurize", *argv])


def test_tabular_command_writes_outputs_and_uses_cache(folder, capsys):
    common = ["--data", str(folder / "meds"), "--labels", str(folder / "labels.parquet")]
    common += ["--cache", str(folder / "cache"), "--windows", "2h,full", "--min-count", "3"]
    out = folder / "out"
    assert _run("tabular", *common, "--out", str(out)) == 0
    assert "in " in capsys.readouterr().out
    matrix = sp.load_npz(out / "features.npz")
    names = pl.read_parquet(out / "feature_names.parquet")["feature"].to_list()
    rows = pl.read_parquet(out / "rows.parquet")
    assert matrix.shape == (6, len(names)) and rows.height == 6
    assert "LAB//1//u/value/max/2h" in names and (out / "vocabulary.json").exists()
    column = names.index("LAB//1//u/value/sum/2h")
    assert matrix.toarray()[:, column].tolist() == [1.0] * 6  # the events 1 h before
    again = folder / "again"
    assert _run("tabular", *common, "--out", str(again)) == 0
    assert "from the cache" in capsys.readouterr().out
    assert (again / "features.npz").read_bytes() == (out / "features.npz").read_bytes()


def test_an_interrupted_featurize_leaves_no_empty_cache_folder(folder, monkeypatch, capsys):
    def interrupted(**kwargs):
        raise KeyboardInterrupt  # Ctrl-C as the cache entry is about to be written

    monkeypatch.setattr(cache_module.tempfile, "mkdtemp", interrupted)
    out = folder / "out"
    common = ["--data", str(folder / "meds"), "--labels", str(folder / "labels.parquet")]
    assert _run("tabular", *common, "--out", str(out), "--min-count", "3") == 130
    assert "interrupted" in capsys.readouterr().err
    assert not out.exists()


# A flipped byte inside a parquet page can still decode (parquet pages carry no checksum here),
# so parquet damage is tested as a truncation.
@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("features.npz", "truncated"),
        ("features.npz", "flipped"),
        ("rows.parquet", "truncated"),
        ("vocabulary.json", "flipped"),
    ],
)
def test_a_damaged_cache_entry_is_refused_not_copied(folder, capsys, name, damage):
    common = ["--data", str(folder / "meds"), "--labels", str(folder / "labels.parquet")]
    common += ["--cache", str(folder / "cache"), "--min-count", "3"]
    assert _run("tabular", *common, "--out", str(folder / "first")) == 0
    (entry,) = (folder / "cache").iterdir()
    damaged = entry / name
    data = bytearray(damaged.read_bytes())
    if damage == "truncated":
        del data[len(data) // 2 :]
    else:
        data[len(data) // 3] ^= 0xFF  # inside the file's (compressed) content
    damaged.write_bytes(bytes(data))
    assert _run("tabular", *common, "--out", str(folder / "second")) == 2
    error = capsys.readouterr().err
    assert f"the feature cache entry {entry} cannot be read" in error and "delete" in error
    assert not (folder / "second" / "features.npz").exists()


def test_sequence_command(folder, capsys):
    common = ["--data", str(folder / "meds"), "--labels", str(folder / "labels.parquet")]
    assert _run("sequence", *common, "--out", str(folder / "seq"), "--max-events", "4") == 0
    with np.load(folder / "seq" / "sequences.npz") as archive:
        assert archive["codes"].shape == (6, 4)
        assert archive["lengths"].tolist() == [4] * 6
    assert (folder / "seq" / "sequences.json").exists()


def test_command_errors(folder, capsys):
    common = ["--data", str(folder / "meds"), "--labels", str(folder / "labels.parquet")]
    out = ["--out", str(folder / "out")]
    assert _run("tabular", *common, *out, "--windows", "1d,1 month") == 2
    assert "window '1 month' is not a lookback window" in capsys.readouterr().err
    assert _run("tabular", *common, *out, "--fit-on", "tuning") == 2
    assert "fitting split(s) ['tuning']" in capsys.readouterr().err
    assert _run("tabular", *common, *out) == 0
    assert _run("tabular", *common, *out) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert _run("tabular", *common, *out, "--overwrite") == 0
    write_labels(
        pl.DataFrame({"subject_id": [1, 42], "prediction_time": [T0, T0]}), folder / "bad.parquet"
    )
    bad = ["--data", str(folder / "meds"), "--labels", str(folder / "bad.parquet")]
    assert _run("tabular", *bad, "--out", str(folder / "o2")) == 2
    assert "not in the dataset" in capsys.readouterr().err
    write_labels(pl.DataFrame({"subject_id": [], "prediction_time": []}), folder / "empty.parquet")
    empty = ["--data", str(folder / "meds"), "--labels", str(folder / "empty.parquet")]
    assert _run("sequence", *empty, "--out", str(folder / "o3")) == 2
    assert "label table is empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _run("tabular", *common, *out, "--min-count", "0")
    assert "must be at least 1" in capsys.readouterr().err


def test_cache_invalidation(folder):
    dataset = open_dataset(folder / "meds")
    labels = pl.read_parquet(folder / "labels.parquet")
    config = TabularConfig(min_count=1)
    key = cache_key(TABULAR, dataset, labels, config, "train")
    assert key == cache_key(TABULAR, dataset, labels, config, ("train",))
    assert key != cache_key(TABULAR, dataset, labels, TabularConfig(min_count=2), "train")
    assert key != cache_key(TABULAR, dataset, labels, config, "train,tuning")
    assert key != cache_key(TABULAR, dataset, labels.head(5), config, "train")
    shifted = labels.with_columns(pl.col("prediction_time") + pl.duration(hours=1))
    assert key != cache_key(TABULAR, dataset, shifted, config, "train")
    first, hit = cached(TABULAR, dataset, labels, config, "train", folder / "cache")
    assert not hit
    second, hit = cached(TABULAR, dataset, labels, config, "train", folder / "cache")
    assert hit and (first.matrix != second.matrix).nnz == 0
    entries = [p for p in (folder / "cache").iterdir()]
    assert [p.name.startswith("tabular-") for p in entries] == [True]  # no temporary left
    entry, shape, hit = cached_files(TABULAR, dataset, labels, config, "train", folder / "cache")
    assert hit and entry == entries[0] and shape == first.shape
    entry, shape, hit = cached_files(TABULAR, dataset, labels, config, "train", folder / "other")
    assert not hit and shape == first.shape
    assert (entry / "features.npz").read_bytes() == (entries[0] / "features.npz").read_bytes()
    shard = dataset.shards[0]
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 10**9))
    _, hit = cached(
        TABULAR, open_dataset(folder / "meds"), labels, config, "train", folder / "cache"
    )
    assert not hit  # the dataset changed (its fingerprint did)


def test_window_parsing():
    assert parse_window("full").is_full
    assert parse_duration_us("1d") == 24 * HOUR_US
    assert parse_duration_us("1d12h") == 36 * HOUR_US
    assert parse_duration_us("30m") == HOUR_US // 2
    assert parse_duration_us("1.5h") == 90 * 60 * 1_000_000
    assert parse_duration_us("2 weeks") == 14 * 24 * HOUR_US
    assert parse_duration_us("1 day, 14:20:16") == (38 * 3600 + 20 * 60 + 16) * 1_000_000
    for bad in ("", "0d", "3y", "d", "12 parsecs", "1d x"):
        with pytest.raises(EhrbenchError, match="is not a lookback window"):
            parse_window(bad)


def test_fitting_on_held_out_is_allowed_with_a_warning(folder, capsys):
    # A benchmark never fits on held_out; the command says so when asked to.
    common = ["--data", str(folder / "meds"), "--labels", str(folder / "labels.parquet")]
    argv = ["tabular", *common, "--out", str(folder / "out"), "--fit-on", "train,held_out"]
    assert _run(*argv) == 0
    assert "fits the vocabulary and statistics on held_out rows too" in capsys.readouterr().err
