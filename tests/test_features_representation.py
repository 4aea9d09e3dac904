"""Frozen representations: reading and aligning an embeddings file, and every malformed one."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
import pytest

from ehrbench.errors import EhrbenchError
from ehrbench.features.kinds import REPRESENTATION, feature_kind
from ehrbench.features.representation import read_representation
from ehrbench.models.training import fit_and_predict

TIME = datetime(2020, 1, 1)


def _labels(n: int = 6) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "subject_id": np.arange(n, dtype=np.int64),
            "prediction_time": [TIME] * n,
            "boolean_value": [i % 2 == 0 for i in range(n)],
        }
    )


def _embeddings(labels: pl.DataFrame, values: list[list[float]] | None = None) -> pl.DataFrame:
    values = values or [[float(i), 1.0] for i in range(labels.height)]
    return labels.select("subject_id", "prediction_time").with_columns(
        pl.Series("embedding", values, dtype=pl.Array(pl.Float32, len(values[0])))
    )


def _write(frame: pl.DataFrame, tmp_path) -> str:
    path = tmp_path / "embeddings.parquet"
    frame.write_parquet(path)
    return str(path)


def test_rows_are_aligned_to_label_order(tmp_path):
    labels = _labels()
    path = _write(_embeddings(labels).reverse(), tmp_path)
    features = read_representation(path, labels)
    assert features.matrix.dtype == np.float32
    assert features.matrix[:, 0].tolist() == list(range(6))
    assert features.rows["subject_id"].to_list() == list(range(6))


def test_a_variable_list_of_equal_lengths_is_read(tmp_path):
    labels = _labels()
    frame = _embeddings(labels).with_columns(
        pl.col("embedding").cast(pl.List(pl.Float64)).alias("embedding")
    )
    features = read_representation(_write(frame, tmp_path), labels)
    assert features.shape == (6, 2)


def test_the_kind_builds_saves_and_loads(tmp_path):
    labels = _labels()
    path = _write(_embeddings(labels), tmp_path)
    kind = feature_kind("representation")
    assert kind is REPRESENTATION
    features = kind.build(None, labels, kind.config({"file": path}))
    features.save(tmp_path / "saved")
    again = kind.load(tmp_path / "saved")
    assert np.array_equal(again.matrix, features.matrix)
    assert again.rows.equals(features.rows)


def _null_at(frame: pl.DataFrame, column: str, subject: int) -> pl.DataFrame:
    """`frame` with `column` null on the row of `subject`."""
    value = pl.when(pl.col("subject_id") == subject).then(None).otherwise(pl.col(column))
    return frame.with_columns(value.alias(column))


def _malformed(labels: pl.DataFrame) -> dict[str, tuple[pl.DataFrame, str]]:
    good = _embeddings(labels)
    ragged = good.with_columns(
        pl.Series("embedding", [[1.0, 2.0]] * 3 + [[1.0]] + [[1.0, 2.0]] * 2)
    )
    nan = _embeddings(labels, [[1.0, 2.0]] * 4 + [[float("nan"), 1.0], [1.0, 1.0]])
    inf = _embeddings(labels, [[1.0, 2.0]] * 2 + [[float("inf"), 1.0]] + [[1.0, 1.0]] * 3)
    return {
        "missing": (
            good.head(4),
            "2 of 6 label row(s) have no embedding row; the first is label row 4 (subject_id 4",
        ),
        "duplicated": (
            pl.concat([good, good.slice(3, 1)]),
            "1 embedding row(s) repeat the "
            "(subject_id, prediction_time) of an earlier row; the first is row 6 "
            "(subject_id 3",
        ),
        "extra": (
            pl.concat([good, good.head(1).with_columns(pl.lit(99, pl.Int64).alias("subject_id"))]),
            "1 embedding row(s) match no label row; the first is row 6 (subject_id 99",
        ),
        "ragged": (ragged, "row 0 has 2 values but row 3 has 1"),
        "nan": (
            nan,
            "1 embedding(s) hold NaN, infinite or null values (or values too large "
            "for float32); the first is row 4",
        ),
        "inf": (inf, "the first is row 2"),
        "no column": (good.drop("embedding"), "missing column(s) ['embedding']"),
        "string subject": (
            good.with_columns(pl.col("subject_id").cast(pl.String)),
            "column `subject_id` is String, expected an integer",
        ),
        "string embedding": (
            good.with_columns(pl.lit("x").alias("embedding")),
            "column `embedding` is String, expected a fixed-size list of float32",
        ),
        "null embedding": (
            _null_at(good, "embedding", 2),
            "1 row(s) have a null `embedding`; the first is row 2",
        ),
        "null time": (
            _null_at(good, "prediction_time", 1),
            "1 row(s) have a null `prediction_time`; the first is row 1",
        ),
    }


@pytest.mark.parametrize("case", list(_malformed(_labels())))
def test_every_malformed_file_is_a_clear_error(tmp_path, case):
    labels = _labels()
    frame, expected = _malformed(labels)[case]
    path = _write(frame, tmp_path)
    with pytest.raises(EhrbenchError) as caught:
        read_representation(path, labels)
    assert f"representation file {path}" in str(caught.value)
    assert expected in str(caught.value)


def test_a_missing_or_unreadable_file_is_a_clear_error(tmp_path):
    with pytest.raises(EhrbenchError, match="does not exist"):
        read_representation(tmp_path / "absent.parquet", _labels())
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(EhrbenchError, match="not a readable parquet file"):
        read_representation(tmp_path / "bad.parquet", _labels())


def _head_auroc(tmp_path, informative: bool) -> float:
    """held_out AUROC of logreg on a 16-wide representation of 3000 rows."""
    rng = np.random.default_rng(1)
    n = 3000
    y = rng.random(n) < 0.3
    labels = pl.DataFrame(
        {"subject_id": np.arange(n), "prediction_time": [TIME] * n, "boolean_value": y}
    )
    values = rng.normal(size=(n, 16))
    if informative:
        values[:, 0] = y + rng.normal(scale=0.1, size=n)
    path = _write(_embeddings(labels, values.tolist()), tmp_path)
    features = read_representation(path, labels)
    rows = np.arange(n)
    result = fit_and_predict(
        "logreg",
        features,
        labels,
        train=rows[:1000],
        tuning=rows[1000:2000],
        held_out=rows[2000:],
        seed=0,
    )
    return result.held_out_score


def test_a_head_on_a_representation_that_encodes_the_label_scores_near_one(tmp_path):
    assert _head_auroc(tmp_path, informative=True) > 0.95


def test_a_head_on_a_random_representation_scores_near_one_half(tmp_path):
    assert 0.35 < _head_auroc(tmp_path, informative=False) < 0.65
