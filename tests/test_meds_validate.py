"""Every MEDS validation error, triggered by a folder broken in exactly that way."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from meds_builders import events_frame, write_meds_folder

from ehrbench.errors import EhrbenchError
from ehrbench.meds import open_dataset, validate_dataset


def _good_events() -> pl.DataFrame:
    t = datetime
    return events_frame(
        [
            (1, None, "GENDER//F", None),
            (1, t(2000, 1, 1), "MEDS_BIRTH", None),
            (1, t(2020, 5, 1, 8), "LAB//50912//mg/dL", 1.1),
            (1, t(2020, 5, 1, 9), "LAB//50912//mg/dL", 1.4),
            (2, None, "GENDER//M", None),
            (2, t(1950, 1, 1), "MEDS_BIRTH", None),
            (2, t(2019, 3, 2), "HOSPITAL_ADMISSION//EMERGENCY", None),
            (3, None, "GENDER//F", None),
            (3, t(1970, 1, 1), "MEDS_BIRTH", None),
            (4, t(1980, 6, 1), "MEDS_BIRTH", None),
        ]
    )


def _error(path, **kwargs) -> str:
    with pytest.raises(EhrbenchError) as info:
        open_dataset(path, **kwargs)
    return str(info.value)


def test_good_folder_validates(tmp_path):
    root = write_meds_folder(tmp_path / "ds", _good_events(), shards=2)
    dataset = open_dataset(root)
    assert [p.name for p in dataset.shards] == ["0.parquet", "1.parquet"]


def test_polars_large_strings_are_accepted(tmp_path):
    root = write_meds_folder(tmp_path / "ds", _good_events())
    _good_events().write_parquet(root / "data" / "0.parquet")  # code as large_string
    assert pq.read_schema(root / "data" / "0.parquet").field("code").type == pa.large_string()
    open_dataset(root)


def test_wrong_column_type_names_file_column_and_type(tmp_path):
    events = _good_events().with_columns(pl.col("subject_id").cast(pl.Int32))
    root = write_meds_folder(tmp_path / "ds", events)
    msg = _error(root)
    assert "0.parquet" in msg and "`subject_id`" in msg and "int32" in msg and "int64" in msg


def test_timezone_aware_time_is_rejected(tmp_path):
    events = _good_events().with_columns(pl.col("time").dt.replace_time_zone("UTC"))
    msg = _error(write_meds_folder(tmp_path / "ds", events))
    assert "`time`" in msg and "timestamp[us, tz=UTC]" in msg and "expected timestamp[us]" in msg


def test_missing_column_names_file_column_and_type(tmp_path):
    root = write_meds_folder(tmp_path / "ds", _good_events().drop("code"), sort=False)
    msg = _error(root)
    assert "0.parquet" in msg and "required column `code` is missing" in msg and "string" in msg


def test_null_code_is_rejected(tmp_path):
    events = _good_events().with_columns(
        code=pl.when(pl.int_range(pl.len()) == 2).then(None).otherwise(pl.col("code"))
    )
    root = write_meds_folder(tmp_path / "ds", events.filter(pl.col("code").is_not_null()))
    pq.write_table(
        events.to_arrow().cast(pq.read_schema(root / "data/0.parquet")), root / "data/0.parquet"
    )
    msg = _error(root)
    assert "`code`" in msg and "1 null" in msg


def test_subjects_out_of_order_name_the_subject(tmp_path):
    events = _good_events()
    swapped = pl.concat(
        [events.filter(pl.col("subject_id") == 2), events.filter(pl.col("subject_id") != 2)]
    )
    root = write_meds_folder(tmp_path / "ds", swapped, sort=False)
    msg = _error(root)
    assert "not sorted by `subject_id`" in msg and "subject 1 (row 3)" in msg and "subject 2" in msg


def test_times_out_of_order_name_the_subject(tmp_path):
    events = _good_events()
    rows = events.rows()
    rows[2], rows[3] = rows[3], rows[2]
    root = write_meds_folder(tmp_path / "ds", events_frame(rows), sort=False)
    msg = _error(root)
    assert "rows of subject 1 are not sorted by `time`" in msg and "0.parquet" in msg


def test_static_row_after_timed_row(tmp_path):
    rows = _good_events().rows()
    rows[4], rows[5] = rows[5], rows[4]  # subject 2: birth, then the static GENDER row
    msg = _error(write_meds_folder(tmp_path / "ds", events_frame(rows), sort=False))
    assert "subject 2 has a static row (null `time`" in msg and "static rows first" in msg


def test_deep_checks_can_be_skipped(tmp_path):
    rows = _good_events().rows()
    rows[4], rows[5] = rows[5], rows[4]
    root = write_meds_folder(tmp_path / "ds", events_frame(rows), sort=False)
    open_dataset(root, deep=False)
    with pytest.raises(EhrbenchError, match="static row"):
        validate_dataset(open_dataset(root, validate=False))


def test_subject_in_two_shards(tmp_path):
    root = write_meds_folder(tmp_path / "ds", _good_events(), shards=2)
    extra = pl.read_parquet(root / "data" / "0.parquet").filter(pl.col("subject_id") == 2)
    second = pl.concat([extra, pl.read_parquet(root / "data" / "1.parquet")])
    pq.write_table(
        second.to_arrow().cast(pq.read_schema(root / "data/1.parquet")), root / "data/1.parquet"
    )
    msg = _error(root)
    assert "subject 2 appears in more than one shard" in msg
    assert "0.parquet" in msg and "1.parquet" in msg


def test_no_data_folder(tmp_path):
    (tmp_path / "ds" / "metadata").mkdir(parents=True)
    assert "expected a `data/` subfolder" in _error(tmp_path / "ds")


def test_missing_folder(tmp_path):
    assert "does not exist" in _error(tmp_path / "nowhere")


def test_data_folder_without_shards(tmp_path):
    (tmp_path / "ds" / "data").mkdir(parents=True)
    assert "holds no parquet shards" in _error(tmp_path / "ds")


def test_unreadable_parquet(tmp_path):
    root = write_meds_folder(tmp_path / "ds", _good_events())
    (root / "data" / "0.parquet").write_bytes(b"not a parquet file")
    msg = _error(root)
    assert "0.parquet is not a readable parquet file" in msg


def test_dataset_json_wrong_type(tmp_path):
    root = write_meds_folder(tmp_path / "ds", _good_events(), dataset_json={"dataset_name": 7})
    msg = _error(root)
    assert "dataset.json" in msg and "key `dataset_name`" in msg and "not of type 'string'" in msg


def test_dataset_json_not_json(tmp_path):
    root = write_meds_folder(tmp_path / "ds", _good_events())
    (root / "metadata" / "dataset.json").write_text("{oops")
    assert "dataset.json is not a readable JSON file" in _error(root)


def test_code_missing_from_codes_parquet(tmp_path):
    root = write_meds_folder(tmp_path / "ds", _good_events())
    codes = pq.read_table(root / "metadata" / "codes.parquet")
    pq.write_table(
        codes.filter(pa.compute.field("code") != "MEDS_BIRTH"), root / "metadata/codes.parquet"
    )
    msg = _error(root)
    assert "code 'MEDS_BIRTH'" in msg and "codes.parquet" in msg


def test_codes_parquet_wrong_type(tmp_path):
    root = write_meds_folder(tmp_path / "ds", _good_events())
    pq.write_table(pa.table({"code": [1, 2]}), root / "metadata" / "codes.parquet")
    msg = _error(root)
    assert "codes.parquet" in msg and "column `code` has type int64, expected string" in msg


def test_subject_without_split(tmp_path):
    root = write_meds_folder(
        tmp_path / "ds", _good_events(), splits={1: "train", 2: "tuning", 3: "held_out"}
    )
    msg = _error(root)
    assert "subject_splits.parquet" in msg and "subject 4 of the data has no row" in msg


def test_subject_with_two_splits(tmp_path):
    root = write_meds_folder(tmp_path / "ds", _good_events(), splits={1: "train", 2: "tuning"})
    splits = pa.table(
        {"subject_id": [1, 2, 3, 4, 2], "split": ["train", "tuning", "train", "train", "held_out"]}
    )
    pq.write_table(splits, root / "metadata" / "subject_splits.parquet")
    assert "subject 2 has more than one row" in _error(root)


def test_split_file_extra_column(tmp_path):
    root = write_meds_folder(tmp_path / "ds", _good_events())
    table = pa.table({"subject_id": [1, 2, 3, 4], "split": ["train"] * 4, "fold": [0, 1, 2, 3]})
    pq.write_table(table, root / "metadata" / "subject_splits.parquet")
    assert "column `fold` is not allowed" in _error(root)
