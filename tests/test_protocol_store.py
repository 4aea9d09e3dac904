"""The results store: run ids, resume semantics, failures, exports."""

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from ehrbench.errors import EhrbenchError
from ehrbench.metrics.bootstrap import draw_resamples
from ehrbench.metrics.evaluate import evaluate_predictions
from ehrbench.protocol.store import RESULTS_SCHEMA, ResultsStore, RunKey


def _key(**changes) -> RunKey:
    fields = dict(
        dataset_fingerprint="fp1", cohort="mortality", model="logreg", k=4, seed=0, config_hash="c1"
    )
    return RunKey(**{**fields, **changes})


def _run(seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    n = 60
    y = rng.random(n) < 0.4
    prob = np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1)
    predictions = pl.DataFrame(
        {
            "subject_id": rng.integers(0, 30, n),
            "prediction_time": [dt.datetime(2020, 1, 1) + dt.timedelta(days=i) for i in range(n)],
            "boolean_value": y,
            "predicted_boolean_probability": prob,
            "predicted_boolean_value": prob >= 0.5,
        }
    )
    resamples = draw_resamples(predictions["subject_id"], 20)
    return evaluate_predictions(predictions, resamples), predictions


def test_run_id_is_stable_and_depends_on_every_key_field():
    base = _key()
    assert base.run_id == _key().run_id == _key(k="4").run_id
    assert len(base.run_id) == 16
    variants = [
        _key(dataset_fingerprint="fp2"),
        _key(cohort="x"),
        _key(model="gbm"),
        _key(k=8),
        _key(seed=1),
        _key(config_hash="c2"),
        _key(k="all"),
    ]
    assert len({v.run_id for v in variants} | {base.run_id}) == len(variants) + 1


def test_save_then_has_and_load(tmp_path):
    store = ResultsStore(tmp_path)
    key = _key()
    assert not store.has(key) and store.status(key) is None
    metrics, predictions = _run()
    store.save(key, metrics, predictions, info={"C": 0.1})
    assert store.has(key) and store.status(key) == "ok"
    assert store.record(key)["info"] == {"C": 0.1}
    stored = store.predictions(key)
    assert stored["predicted_boolean_probability"].dtype == pl.Float32
    assert stored.height == predictions.height
    results = store.load_all()
    assert results.schema == pl.Schema(RESULTS_SCHEMA)
    assert results.height == metrics.height
    assert results["run_id"].unique().to_list() == [key.run_id]
    assert results.select(metrics.columns).equals(metrics)


def test_failed_run_is_recorded_skipped_and_retried_only_when_asked(tmp_path):
    store = ResultsStore(tmp_path)
    key = _key(model="gru")
    store.save(key, status="failed", error="ValueError: no positive rows in tuning")
    assert store.status(key) == "failed"
    assert store.has(key)  # skipped on resume by default
    assert not store.has(key, retry_failed=True)
    runs = store.runs()
    assert runs["status"].to_list() == ["failed"]
    assert runs["error"].to_list() == ["ValueError: no positive rows in tuning"]
    assert store.load_all().height == 0  # no metrics from a failed run
    metrics, predictions = _run()
    store.save(key, metrics, predictions)  # a retry that succeeds replaces the failure
    assert store.status(key) == "ok" and store.record(key)["error"] is None


def test_finished_run_is_not_overwritten_unless_asked(tmp_path):
    store = ResultsStore(tmp_path)
    key = _key()
    metrics, predictions = _run()
    store.save(key, metrics, predictions)
    with pytest.raises(EhrbenchError, match="already finished .* not overwritten unless asked"):
        store.save(key, metrics, predictions)
    with pytest.raises(EhrbenchError, match="already finished"):
        store.save(key, status="failed", error="late failure")
    store.save(key, status="failed", error="rerun failed", overwrite=True)
    assert store.status(key) == "failed"
    assert not (store.run_dir(key) / "metrics.parquet").exists()


def test_interrupted_save_leaves_no_record(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    key = _key()
    metrics, predictions = _run()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("ehrbench.protocol.store.write_text_atomic", crash)
    with pytest.raises(KeyboardInterrupt):
        store.save(key, metrics, predictions)
    monkeypatch.undo()
    assert not store.has(key)  # the parquet files alone do not make a finished run
    store.save(key, metrics, predictions)
    assert store.has(key)


def test_resume_gives_the_same_results_as_one_pass(tmp_path):
    keys = [_key(k=k, seed=s) for k in (1, 8, "all") for s in (0, 1)]
    one_pass = ResultsStore(tmp_path / "a")
    for i, key in enumerate(keys):
        one_pass.save(key, *_run(i))
    resumed = ResultsStore(tmp_path / "b")
    for i, key in enumerate(keys[:3]):
        resumed.save(key, *_run(i))
    computed = []
    for i, key in enumerate(keys):
        if not resumed.has(key):
            computed.append(key)
            resumed.save(key, *_run(i))
    assert computed == keys[3:]
    assert resumed.load_all().equals(one_pass.load_all())
    # Sorted by k numerically, `all` last.
    assert resumed.runs()["k"].to_list() == ["1", "1", "8", "8", "all", "all"]


def test_save_validation(tmp_path):
    store = ResultsStore(tmp_path)
    metrics, predictions = _run()
    with pytest.raises(EhrbenchError, match="status must be one of"):
        store.save(_key(), metrics, predictions, status="done")
    with pytest.raises(EhrbenchError, match="failed run is saved with its `error`"):
        store.save(_key(), status="failed")
    with pytest.raises(EhrbenchError, match="ok run is saved with both metrics and predictions"):
        store.save(_key(), metrics)
    with pytest.raises(EhrbenchError, match=r"lack column\(s\) \['n_boot'\]"):
        store.save(_key(), metrics.drop("n_boot"), predictions)
    with pytest.raises(EhrbenchError, match="lack column `predicted_boolean_value`"):
        store.save(_key(), metrics, predictions.drop("predicted_boolean_value"))
    assert store.runs().height == 0
    store.save(_key(), status="failed", error="first failure")
    with pytest.raises(EhrbenchError, match="not JSON-ready"):
        store.save(_key(), metrics, predictions, info={"x": float("nan")})
    assert store.record(_key())["error"] == "first failure"  # the old record survives


def test_corrupt_record_is_reported(tmp_path):
    store = ResultsStore(tmp_path)
    key = _key()
    store.save(key, status="failed", error="x")
    (store.run_dir(key) / "run.json").write_text("{not json")
    with pytest.raises(EhrbenchError, match="run.json is not a readable run record"):
        store.load_all()
    (store.run_dir(key) / "run.json").write_text(json.dumps({"status": "weird"}))
    with pytest.raises(EhrbenchError, match="has no valid `status`"):
        store.status(key)
