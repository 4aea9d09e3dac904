"""Tabular features: hand-computed values for every aggregation, window edge and extra feature."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from meds_builders import events_frame, write_meds_folder

from ehrbench.errors import EhrbenchError
from ehrbench.features import shard_events as events_module
from ehrbench.features.tabular import (
    TabularConfig,
    TabularFeatures,
    build_tabular,
    fit_tabular,
    transform_tabular,
    write_tabular,
)
from ehrbench.meds import open_dataset

T0 = datetime(2020, 3, 10, 12, 0)
K = "LAB//50971//mEq/L"
DX = "DIAGNOSIS//ICD//10//I10"


def _labels(pairs) -> pl.DataFrame:
    return pl.DataFrame(
        {"subject_id": [p[0] for p in pairs], "prediction_time": [p[1] for p in pairs]},
        schema={"subject_id": pl.Int64, "prediction_time": pl.Datetime("us")},
    )


def _as_dict(features: TabularFeatures, row: int) -> dict[str, float]:
    dense = features.matrix[row].toarray().ravel()
    return {n: float(v) for n, v in zip(features.feature_names, dense, strict=True) if v != 0}


def _hand_events() -> pl.DataFrame:
    return events_frame(
        [
            (1, None, "GENDER//F", None),
            (1, datetime(1980, 3, 10, 12, 0), "MEDS_BIRTH", None),
            (1, T0 - timedelta(days=400), K, 9.0),  # only in full
            (1, T0 - timedelta(days=30), K, 2.0),  # exactly 30d before: out of 30d, in 365d
            (1, T0 - timedelta(days=7), K, 6.0),  # exactly 7d before: out of 7d, in 30d
            (1, T0 - timedelta(days=3), K, 5.0),  # in 7d
            (1, T0 - timedelta(days=3), K, None),  # a K row without value: code count only
            (1, T0 - timedelta(days=1), DX, None),  # exactly 1d before: out of 1d
            (1, T0 - timedelta(hours=2), K, 4.0),  # in 1d
            (1, T0, K, 3.0),  # exactly at prediction time: counts everywhere
            (1, T0 + timedelta(seconds=1), K, 100.0),  # after: never counts
            (1, T0 + timedelta(seconds=1), "LATE", None),
            (2, None, "GENDER//M", None),
            (2, datetime(1950, 1, 1), "MEDS_BIRTH", None),
            (2, T0 - timedelta(days=2), DX, None),
        ]
    )


@pytest.fixture
def hand_dataset(tmp_path):
    root = write_meds_folder(tmp_path / "meds", _hand_events(), {1: "train", 2: "train"}, shards=2)
    return open_dataset(root)


def test_every_aggregation_and_window_edge(hand_dataset):
    config = TabularConfig(windows=("1d", "7d", "30d", "365d", "full"), min_count=1)
    features = build_tabular(hand_dataset, _labels([(1, T0)]), config)
    got = _as_dict(features, 0)

    def value_block(window, values):
        arr = np.asarray(values)
        return {
            f"{K}/value/count/{window}": len(arr),
            f"{K}/value/sum/{window}": arr.sum(),
            f"{K}/value/sum_sq/{window}": (arr**2).sum(),
            f"{K}/value/min/{window}": arr.min(),
            f"{K}/value/max/{window}": arr.max(),
            f"{K}/value/last/{window}": arr[-1],
        }

    expected = {
        "static/GENDER//F": 1.0,
        "age/years": 40 * 365 + 10,  # days from 1980-03-10 to 2020-03-10, converted below
        # the K event at T0 is the latest event, so the time since the last event is 0 (absent)
        f"{K}/count/1d": 2,
        **value_block("1d", [4.0, 3.0]),
        f"{K}/count/7d": 4,
        f"{DX}/count/7d": 1,
        **value_block("7d", [5.0, 4.0, 3.0]),
        f"{K}/count/30d": 5,
        f"{DX}/count/30d": 1,
        **value_block("30d", [6.0, 5.0, 4.0, 3.0]),
        f"{K}/count/365d": 6,
        f"{DX}/count/365d": 1,
        **value_block("365d", [2.0, 6.0, 5.0, 4.0, 3.0]),
        f"{K}/count/full": 7,
        f"{DX}/count/full": 1,
        "MEDS_BIRTH/count/full": 1,
        **value_block("full", [9.0, 2.0, 6.0, 5.0, 4.0, 3.0]),
    }
    expected["age/years"] = (40 * 365 + 10) / 365.25  # 10 leap days between the two dates
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-6), name


def test_time_since_last_event_and_second_subject(hand_dataset):
    config = TabularConfig(windows=("1d", "full"), min_count=1)
    labels = _labels([(2, T0), (1, T0 - timedelta(hours=1))])
    features = build_tabular(hand_dataset, labels, config)
    two = _as_dict(features, 0)
    assert two == pytest.approx(
        {
            "static/GENDER//M": 1.0,
            "age/years": (datetime(2020, 3, 10, 12) - datetime(1950, 1, 1)).days / 365.25
            + 12 / 24 / 365.25,
            "time_since_last_event/hours": 48.0,
            f"{DX}/count/full": 1.0,
            "MEDS_BIRTH/count/full": 1.0,
        }
    )
    one = _as_dict(features, 1)
    assert one["time_since_last_event/hours"] == pytest.approx(1.0)  # K at T0 - 2h is latest
    assert one[f"{K}/value/last/1d"] == 4.0
    assert f"{K}/count/1d" in one and one[f"{K}/count/1d"] == 1.0


def test_rows_in_label_order_and_names(hand_dataset):
    labels = _labels([(2, T0), (1, T0), (2, T0 - timedelta(days=5))])
    features = build_tabular(hand_dataset, labels, TabularConfig(min_count=1))
    assert features.rows["subject_id"].to_list() == [2, 1, 2]
    assert features.rows["prediction_time"].to_list() == labels["prediction_time"].to_list()
    assert features.matrix.dtype == np.float32
    assert features.matrix.shape == (3, len(features.feature_names))
    assert f"{K}/value/max/30d" in features.feature_names
    assert f"{K}/count/7d" in features.feature_names
    assert features.matrix[2].nnz > 0 and _as_dict(features, 2)["age/years"] > 70


def test_min_count_and_max_codes_drop_codes(hand_dataset):
    labels = _labels([(1, T0), (2, T0)])
    # K: 7 events up to T0; DX: 2 (one per subject); MEDS_BIRTH: 2; LATE: after every row.
    vocab = fit_tabular(hand_dataset, labels, [1, 2], TabularConfig(min_count=2))
    assert vocab.codes == (DX, K, "MEDS_BIRTH")
    assert vocab.value_codes == (False, True, False)
    assert vocab.static_codes == ()  # each gender appears once
    capped = fit_tabular(hand_dataset, labels, [1, 2], TabularConfig(min_count=1, max_codes=1))
    assert capped.codes == (K,)
    assert capped.static_codes == ("GENDER//F",)  # tie at 1 broken by code
    features = transform_tabular(hand_dataset, labels, capped)
    assert not any(DX in name for name in features.feature_names)


def test_fit_only_on_fitting_subjects(hand_dataset):
    labels = _labels([(1, T0), (2, T0)])
    vocab = fit_tabular(hand_dataset, labels, np.array([False, True]), TabularConfig(min_count=1))
    assert vocab.codes == (DX, "MEDS_BIRTH")
    assert vocab.static_codes == ("GENDER//M",)
    features = transform_tabular(hand_dataset, labels, vocab)
    assert not any(K in name for name in features.feature_names)
    assert _as_dict(features, 0)[f"{DX}/count/full"] == 1.0


def test_save_load_roundtrip(hand_dataset, tmp_path):
    features = build_tabular(hand_dataset, _labels([(1, T0), (2, T0)]), TabularConfig(min_count=1))
    features.save(tmp_path / "out")
    first = (tmp_path / "out" / "features.npz").read_bytes()
    loaded = TabularFeatures.load(tmp_path / "out")
    assert (loaded.matrix != features.matrix).nnz == 0
    assert loaded.feature_names == features.feature_names
    assert loaded.rows.equals(features.rows)
    assert loaded.vocabulary == features.vocabulary
    features.save(tmp_path / "out")
    assert (tmp_path / "out" / "features.npz").read_bytes() == first  # byte-identical


def test_written_features_are_the_saved_features_byte_for_byte(hand_dataset, tmp_path):
    labels = _labels([(1, T0), (2, T0), (1, T0 - timedelta(days=2))])
    config = TabularConfig(min_count=1)
    features = build_tabular(hand_dataset, labels, config)
    features.save(tmp_path / "saved")
    (tmp_path / "written").mkdir()
    shape = write_tabular(hand_dataset, labels, config, "train", tmp_path / "written")
    assert shape == features.shape
    for name in ("features.npz", "rows.parquet", "feature_names.parquet", "vocabulary.json"):
        saved = (tmp_path / "saved" / name).read_bytes()
        assert (tmp_path / "written" / name).read_bytes() == saved, name


def test_errors(hand_dataset):
    with pytest.raises(EhrbenchError, match="label table is empty"):
        build_tabular(hand_dataset, _labels([]), TabularConfig(min_count=1))
    with pytest.raises(EhrbenchError, match=r"not in the dataset.*subject_id \[99\]"):
        build_tabular(hand_dataset, _labels([(1, T0), (99, T0)]), TabularConfig(min_count=1))
    with pytest.raises(EhrbenchError, match="window '3 months' is not a lookback window"):
        TabularConfig(windows=("1d", "3 months"))
    with pytest.raises(EhrbenchError, match="names a window twice"):
        TabularConfig(windows=("1d", "1d"))
    with pytest.raises(EhrbenchError, match=r"fitting split\(s\) \['held_out'\]"):
        build_tabular(hand_dataset, _labels([(1, T0)]), TabularConfig(), fit_split="held_out")
    with pytest.raises(EhrbenchError, match="no label row falls in the fitting split"):
        fit_tabular(hand_dataset, _labels([(1, T0)]), [2], TabularConfig())
    with pytest.raises(EhrbenchError, match="mask has 2 entries"):
        fit_tabular(hand_dataset, _labels([(1, T0)]), np.array([True, True]), TabularConfig())


def test_subject_batches_give_the_same_features(tmp_path, monkeypatch):
    root = write_meds_folder(tmp_path / "one", _hand_events(), {1: "train", 2: "train"}, shards=1)
    hand_dataset = open_dataset(root)
    labels = _labels([(1, T0), (2, T0), (1, T0 - timedelta(days=2))])
    config = TabularConfig(min_count=1)
    whole = build_tabular(hand_dataset, labels, config)
    monkeypatch.setattr(events_module, "BATCH_EVENTS", 1)  # one subject per pass
    batched = build_tabular(hand_dataset, labels, config)
    assert (whole.matrix != batched.matrix).nnz == 0
    assert whole.feature_names == batched.feature_names
