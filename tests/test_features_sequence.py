"""Sequence features: hand-computed layout, normalisation, truncation, save/load, subset."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from meds_builders import events_frame, write_meds_folder

from ehrbench.errors import EhrbenchError
from ehrbench.features.sequence import SequenceConfig, SequenceFeatures, build_sequences
from ehrbench.meds import open_dataset

T0 = datetime(2020, 6, 1, 8, 0)
K = "LAB//50971//mEq/L"


@pytest.fixture
def dataset(tmp_path):
    events = events_frame(
        [
            (1, None, "GENDER//F", None),
            (1, datetime(2000, 6, 1, 8, 0), "MEDS_BIRTH", None),
            (1, T0 - timedelta(hours=10), K, 4.0),
            (1, T0 - timedelta(hours=5), "RARE", 1.0),  # below min_count: unknown
            (1, T0 - timedelta(hours=2), K, 6.0),
            (1, T0 - timedelta(hours=2), "DX", None),  # same time as K: file order kept
            (1, T0, K, 5.0),  # at prediction time: included
            (1, T0 + timedelta(minutes=1), K, 50.0),  # after: excluded
            (2, None, "GENDER//F", None),
            (2, T0 - timedelta(hours=3), K, 5.0),
            (2, T0 - timedelta(hours=1), "DX", None),
        ]
    )
    return open_dataset(write_meds_folder(tmp_path / "meds", events, {1: "train", 2: "train"}))


def _labels(pairs):
    return pl.DataFrame(
        {"subject_id": [p[0] for p in pairs], "prediction_time": [p[1] for p in pairs]},
        schema={"subject_id": pl.Int64, "prediction_time": pl.Datetime("us")},
    )


def test_hand_computed_sequences(dataset):
    labels = _labels([(1, T0), (2, T0)])
    seq = build_sequences(dataset, labels, SequenceConfig(max_events=8, min_count=2))
    # Fitting history: subject 1 up to T0 (K: 4, 6, 5), subject 2 up to T0 (K: 5).
    assert seq.vocabulary == ["<pad>", "<unk>", "DX", K]
    assert seq.static_codes == ["GENDER//F"]
    values = np.array([4.0, 6.0, 5.0, 5.0])
    mean, std = values.mean(), values.std()
    z = lambda v: (v - mean) / std  # noqa: E731
    assert seq.lengths.tolist() == [6, 2]
    assert seq.codes[0].tolist() == [1, 3, 1, 3, 2, 3, 0, 0]  # birth & RARE unknown
    assert seq.value_mask[0].tolist() == [False, True, False, True, False, True, False, False]
    np.testing.assert_allclose(
        seq.values[0], [0, z(4.0), 0, z(6.0), 0, z(5.0), 0, 0], rtol=1e-6, atol=1e-7
    )
    hours_birth = (T0 - datetime(2000, 6, 1, 8, 0)).total_seconds() / 3600
    np.testing.assert_allclose(seq.hours_before[0], [hours_birth, 10, 5, 2, 2, 0, 0, 0])
    assert seq.codes[1].tolist()[:3] == [3, 2, 0]
    np.testing.assert_allclose(seq.hours_before[1][:2], [3, 1])
    assert seq.static.tolist() == [[1.0], [1.0]]
    assert seq.age_years[0] == pytest.approx(7305 / 365.25)  # 2000-06-01 to 2020-06-01
    assert seq.age_years[1] == 0.0  # no MEDS_BIRTH
    assert seq.codes.dtype == np.int32 and seq.values.dtype == np.float32
    assert seq.hours_before.dtype == np.float32 and seq.lengths.dtype == np.int32
    assert (seq.hours_before >= 0).all()


def test_truncation_keeps_the_most_recent(dataset):
    labels = _labels([(1, T0)])
    seq = build_sequences(dataset, labels, SequenceConfig(max_events=2, min_count=1))
    assert seq.lengths.tolist() == [2]
    names = [seq.vocabulary[i] for i in seq.codes[0]]
    assert names == ["DX", K]
    np.testing.assert_allclose(seq.hours_before[0], [2, 0])


def test_save_load_and_subset(dataset, tmp_path):
    labels = _labels([(1, T0), (2, T0), (1, T0 - timedelta(hours=3))])
    seq = build_sequences(dataset, labels, SequenceConfig(max_events=4, min_count=1))
    for target in (tmp_path / "dir", tmp_path / "x.npz"):
        seq.save(target)
        loaded = SequenceFeatures.load(target)
        for name in ("codes", "values", "value_mask", "hours_before", "lengths", "static"):
            assert np.array_equal(getattr(loaded, name), getattr(seq, name)), name
        assert loaded.vocabulary == seq.vocabulary
        assert loaded.rows.equals(seq.rows)
    assert (tmp_path / "x.json").exists() and (tmp_path / "dir" / "sequences.json").exists()
    first = (tmp_path / "x.npz").read_bytes()
    seq.save(tmp_path / "x.npz")
    assert (tmp_path / "x.npz").read_bytes() == first
    part = seq.subset([2, 0])
    assert part.rows["subject_id"].to_list() == [1, 1]
    assert np.array_equal(part.codes, seq.codes[[2, 0]])
    assert part.lengths.tolist() == [seq.lengths[2], seq.lengths[0]]
    masked = seq.subset(np.array([False, True, False]))
    assert masked.rows["subject_id"].to_list() == [2]


def test_sequence_errors(dataset):
    with pytest.raises(EhrbenchError, match="max_events is 0"):
        SequenceConfig(max_events=0)
    with pytest.raises(EhrbenchError, match="label table is empty"):
        build_sequences(dataset, _labels([]), SequenceConfig())
    with pytest.raises(EhrbenchError, match=r"fitting split\(s\) \['tuning'\]"):
        build_sequences(dataset, _labels([(1, T0)]), SequenceConfig(), fit_split="tuning")
