"""Subgroups by sex and age band, demographics from MEDS events, calibration, the run table."""

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from ehrbench.errors import EhrbenchError
from ehrbench.metrics.bootstrap import bootstrap_metrics, draw_resamples
from ehrbench.metrics.calibration import calibration_curve
from ehrbench.metrics.evaluate import check_predictions, evaluate_predictions
from ehrbench.metrics.scores import ece
from ehrbench.metrics.subgroups import (
    age_band_labels,
    assign_subgroups,
    demographics_from_events,
    subgroup_metrics,
)


def _events() -> pl.DataFrame:
    rows = [
        (1, None, "GENDER//F"),
        (1, dt.datetime(1950, 6, 1), "MEDS_BIRTH"),
        (2, None, "GENDER//M"),
        (2, dt.datetime(2000, 1, 1), "MEDS_BIRTH"),
        (3, None, "GENDER//F"),
        (3, None, "GENDER//M"),
        (4, dt.datetime(2010, 1, 1), "LAB//50912//mg/dL"),
    ]
    return pl.DataFrame(
        rows,
        schema={"subject_id": pl.Int64, "time": pl.Datetime("us"), "code": pl.String},
        orient="row",
    )


def test_demographics_from_events():
    demo = demographics_from_events(_events())
    assert demo["subject_id"].to_list() == [1, 2, 3, 4]
    # Subject 3 has both codes: unknown rather than a guess.
    assert demo["sex"].to_list() == ["F", "M", None, None]
    assert demo["birth_datetime"].to_list() == [
        dt.datetime(1950, 6, 1),
        dt.datetime(2000, 1, 1),
        None,
        None,
    ]


def test_age_band_labels_and_validation():
    assert age_band_labels() == ["<18", "18-44", "45-64", "65-79", "80+"]
    assert age_band_labels([40]) == ["<40", "40+"]
    with pytest.raises(EhrbenchError, match="strictly ascending positive whole years"):
        age_band_labels([45, 18])
    with pytest.raises(EhrbenchError, match="age_bands"):
        age_band_labels([])


def _predictions() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "subject_id": [1, 1, 2, 3, 4],
            "prediction_time": [
                dt.datetime(1995, 5, 31),  # subject 1 is 44 the day before the birthday
                dt.datetime(1995, 6, 1),  # and 45 on it
                dt.datetime(2017, 12, 31),
                dt.datetime(2020, 1, 1),
                dt.datetime(2020, 1, 1),
            ],
            "boolean_value": [True, False, True, False, True],
            "predicted_boolean_probability": [0.9, 0.2, 0.6, 0.4, 0.5],
        }
    )


def test_assign_subgroups_uses_age_at_prediction_time():
    rows = assign_subgroups(_predictions(), demographics_from_events(_events()))
    assert rows["sex"].to_list() == ["F", "F", "M", "unknown", "unknown"]
    assert rows["age_band"].to_list() == ["18-44", "45-64", "<18", "unknown", "unknown"]


def test_missing_demographics_columns_are_rejected():
    with pytest.raises(EhrbenchError, match=r"lacks column\(s\) \['birth_datetime'\]"):
        assign_subgroups(_predictions(), pl.DataFrame({"subject_id": [1], "sex": ["F"]}))


def test_subgroup_metrics_equal_metrics_on_the_subgroup_rows():
    rng = np.random.default_rng(0)
    n = 400
    subject = rng.integers(0, 150, n)
    demo = pl.DataFrame(
        {
            "subject_id": np.arange(150),
            "sex": np.where(np.arange(150) % 2 == 0, "F", "M"),
            "birth_datetime": [dt.datetime(1940 + int(a), 1, 1) for a in rng.integers(0, 60, 150)],
        }
    )
    y = rng.random(n) < 0.3
    preds = pl.DataFrame(
        {
            "subject_id": subject,
            "prediction_time": [dt.datetime(2020, 1, 1)] * n,
            "boolean_value": y,
            "predicted_boolean_probability": np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1),
        }
    )
    resamples = draw_resamples(subject, 100, seed=1)
    table = subgroup_metrics(preds, demo, resamples)
    female = preds.filter(pl.col("subject_id") % 2 == 0)
    direct = bootstrap_metrics(
        female["boolean_value"].to_numpy(),
        female["predicted_boolean_probability"].to_numpy(),
        female["subject_id"].to_numpy(),
        resamples,
    )
    got = table.filter(group="sex", level="F").drop("group", "level")
    assert got.equals(direct)
    assert table.filter(group="age_band")["level"].unique(maintain_order=True).to_list() == [
        "18-44",
        "45-64",
        "65-79",
        "80+",
    ]


def test_one_class_subgroup_has_nan_auroc():
    table = subgroup_metrics(
        _predictions(), demographics_from_events(_events()), draw_resamples([1, 2, 3, 4], 20)
    )
    male = table.filter(group="sex", level="M", metric="auroc").row(0, named=True)
    assert math.isnan(male["value"]) and math.isnan(male["ci_low"]) and math.isnan(male["ci_high"])


def test_evaluate_predictions_overall_then_subgroups():
    preds = _predictions()
    resamples = draw_resamples(preds["subject_id"], 30)
    plain = evaluate_predictions(preds, resamples)
    assert set(plain["group"]) == {"all"} and plain.height == 7
    full = evaluate_predictions(preds, resamples, demographics_from_events(_events()))
    assert full.head(7).equals(plain)
    assert set(full["group"]) == {"all", "sex", "age_band"}


def test_prediction_frame_checks():
    with pytest.raises(EhrbenchError, match=r"missing column\(s\) \['boolean_value'\]"):
        check_predictions(_predictions().drop("boolean_value"))
    with pytest.raises(
        EhrbenchError, match=r"column\(s\) \['predicted_boolean_probability'\] contain nulls"
    ):
        check_predictions(_predictions().with_columns(predicted_boolean_probability=None))


def test_calibration_curve_matches_ece_and_keeps_empty_bins():
    rng = np.random.default_rng(2)
    y = rng.random(300) < 0.4
    p = np.clip(rng.random(300) * 0.6, 0, 1)
    curve = calibration_curve(y, p)
    assert curve.height == 10 and curve["n"].sum() == 300
    filled = curve.filter(pl.col("n") > 0)
    gap = (filled["n"] * (filled["mean_predicted"] - filled["fraction_positive"]).abs()).sum() / 300
    assert gap == pytest.approx(ece(y, p))
    empty = curve.filter(pl.col("bin") >= 6)
    assert empty["n"].to_list() == [0, 0, 0, 0] and empty["mean_predicted"].null_count() == 4
    assert curve.row(3, named=True)["bin_low"] == pytest.approx(0.3)


def test_evaluate_scores_probabilities_as_stored_in_float32():
    rng = np.random.default_rng(5)
    prob = rng.random(50)
    preds = pl.DataFrame(
        {
            "subject_id": np.arange(50),
            "prediction_time": [dt.datetime(2020, 1, 1)] * 50,
            "boolean_value": rng.random(50) < 0.5,
            "predicted_boolean_probability": prob,
        }
    )
    resamples = draw_resamples(preds["subject_id"], 10)
    stored = preds.with_columns(pl.col("predicted_boolean_probability").cast(pl.Float32))
    assert evaluate_predictions(preds, resamples).equals(evaluate_predictions(stored, resamples))
    brier = evaluate_predictions(preds, resamples).filter(metric="brier")["value"][0]
    assert brier == np.mean(
        (prob.astype(np.float32).astype(np.float64) - preds["boolean_value"].to_numpy()) ** 2
    )
