"""Paired comparisons use the same resamples for both models."""

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from ehrbench.errors import EhrbenchError
from ehrbench.metrics.bootstrap import bootstrap_distribution, draw_resamples
from ehrbench.metrics.paired import align_predictions, auroc_difference, paired_auroc, win_rate
from ehrbench.metrics.scores import auroc


def _two_models(seed: int = 0, n: int = 300):
    rng = np.random.default_rng(seed)
    subject = rng.integers(0, 100, n)
    y = rng.random(n) < 0.4
    noise = rng.random(n)
    strong = np.clip(0.5 * y + 0.5 * noise, 0, 1)
    weak = np.clip(0.1 * y + 0.9 * noise, 0, 1)
    return y, strong, weak, subject


def test_difference_distribution_is_the_per_resample_difference():
    y, a, b, subject = _two_models()
    resamples = draw_resamples(subject, 200, seed=5)
    result = auroc_difference(y, a, b, subject, resamples)
    per_a = bootstrap_distribution(y, a, subject, resamples)["auroc"]
    per_b = bootstrap_distribution(y, b, subject, resamples)["auroc"]
    assert np.allclose(result.distribution, per_a - per_b)
    assert result.difference == pytest.approx(auroc(y, a) - auroc(y, b))
    assert 0 < result.ci_low < result.difference < result.ci_high
    assert result.p_value < 0.01 and result.n_boot == 200


def test_shared_resamples_make_the_interval_narrower_than_unpaired():
    y, _, a, subject = _two_models()
    # B is A slightly perturbed: paired differences are tiny, unpaired ones are not.
    b = np.clip(a + np.random.default_rng(1).normal(0, 0.01, a.size), 0, 1)
    paired = auroc_difference(y, a, b, subject, draw_resamples(subject, 300, seed=0))
    unpaired = (
        bootstrap_distribution(y, a, subject, draw_resamples(subject, 300, seed=0))["auroc"]
        - bootstrap_distribution(y, b, subject, draw_resamples(subject, 300, seed=1))["auroc"]
    )
    assert paired.ci_high - paired.ci_low < 0.5 * (
        np.quantile(unpaired, 0.975) - np.quantile(unpaired, 0.025)
    )


def test_identical_models_have_zero_difference_and_p_value_one():
    y, a, _, subject = _two_models()
    result = auroc_difference(y, a, a, subject, draw_resamples(subject, 50))
    assert result.difference == 0.0 and result.p_value == 1.0
    assert result.ci_low == result.ci_high == 0.0


def test_single_class_difference_is_nan():
    subject = np.arange(6)
    result = auroc_difference(
        np.ones(6, bool), np.full(6, 0.3), np.full(6, 0.6), subject, draw_resamples(subject, 10)
    )
    assert math.isnan(result.difference) and math.isnan(result.ci_low) and result.n_boot == 0


def _frame(y, prob, subject):
    times = [dt.datetime(2020, 1, 1) + dt.timedelta(hours=i) for i in range(len(y))]
    return pl.DataFrame(
        {
            "subject_id": subject,
            "prediction_time": times,
            "boolean_value": y,
            "predicted_boolean_probability": prob,
        }
    )


def test_frames_are_aligned_by_label_row_not_by_position():
    y, a, b, subject = _two_models()
    frame_a = _frame(y, a, subject)
    frame_b = _frame(y, b, subject).sample(fraction=1.0, shuffle=True, seed=3)
    resamples = draw_resamples(subject, 100)
    from_frames = paired_auroc(frame_a, frame_b, resamples)
    from_arrays = auroc_difference(y, a, b, subject, resamples)
    assert from_frames.difference == pytest.approx(from_arrays.difference)
    assert np.allclose(from_frames.distribution, from_arrays.distribution)


def test_frames_with_different_rows_or_labels_are_rejected():
    y, a, b, subject = _two_models()
    frame_a = _frame(y, a, subject)
    with pytest.raises(EhrbenchError, match="do not hold the same rows"):
        align_predictions(frame_a, _frame(y, b, subject).head(299))
    with pytest.raises(EhrbenchError, match="disagree on `boolean_value`"):
        align_predictions(frame_a, _frame(~y, b, subject))
    with pytest.raises(
        EhrbenchError, match=r"model B lack column\(s\) \['predicted_boolean_probability'\]"
    ):
        align_predictions(frame_a, frame_a.drop("predicted_boolean_probability"))


def test_win_rate_counts_strict_wins_over_defined_tasks():
    assert win_rate([0.8, 0.7, 0.6, math.nan], [0.7, 0.7, 0.65, 0.5]) == pytest.approx(1 / 3)
    assert math.isnan(win_rate([math.nan], [0.5]))
    with pytest.raises(EhrbenchError, match="got 2 AUROCs for model A and 1 for B"):
        win_rate([0.5, 0.6], [0.5])
