"""The grid runner: a full run, resume after an interrupt, failed runs, skipped cohorts."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import polars as pl
import pytest
from protocol_helpers import COHORT, COHORTS, captured_logs, tiny_dataset, tiny_suite

import ehrbench.protocol.runner as runner_module
from ehrbench.cli import main
from ehrbench.protocol.outputs import write_outputs
from ehrbench.protocol.runner import GridRunner
from ehrbench.protocol.store import ResultsStore
from ehrbench.protocol.suite import load_suite

# 2 models x (k=4 with seeds 0 and 1, k=all once) = 6 runs.
N_RUNS = 6


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("grid") / "meds")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, dataset):
    """One uninterrupted grid, its suite and its result tables."""
    folder = tmp_path_factory.mktemp("full")
    suite = load_suite(tiny_suite(folder, dataset))
    result = GridRunner(suite).run()
    write_outputs(result)
    return suite, result


def test_full_grid_writes_every_table(full_run):
    suite, result = full_run
    assert result.computed == N_RUNS and result.failed == 0
    assert set(result.statuses.values()) == {"ok"}
    out = suite.output
    results = pl.read_parquet(out / "results.parquet")
    assert results.select("model", "k", "seed").unique().height == N_RUNS
    assert set(results["group"]) == {"all", "sex", "age_band"}
    overall = results.filter((pl.col("group") == "all") & (pl.col("metric") == "auroc"))
    assert overall["ci_low"].le(overall["value"]).all()
    assert overall["value"].le(overall["ci_high"]).all()
    assert pl.read_csv(out / "results.csv").height == results.height
    paired = pl.read_parquet(out / "paired.parquet")
    assert set(paired["model"]) == {"lightgbm"} and set(paired["baseline"]) == {"logreg"}
    assert paired.height == 3  # k=4 seeds 0 and 1, k=all
    calibration = pl.read_parquet(out / "calibration.parquet")
    assert calibration.select("run_id").n_unique() == N_RUNS
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runs"] == {"total": N_RUNS, "ok": N_RUNS, "failed": 0}
    assert manifest["cohorts"][COHORT]["counts"]["held_out"]["rows"] > 0
    assert (out / "cohorts" / COHORT / "attrition.json").exists()


def test_k_shot_sets_come_from_train_and_tuning_only(full_run):
    suite, result = full_run
    store = ResultsStore(suite.output)
    for planned in result.planned:
        info = store.record(planned.key)["info"]
        if planned.run.k == 4:
            # 4 negatives and 4 positives from each of train and tuning.
            assert info["train_rows"] == 8 and info["train_positives"] == 4
            assert info["tuning_rows"] == 8 and info["tuning_positives"] == 4
        predictions = store.predictions(planned.key)
        labels = pl.read_parquet(suite.output / "cohorts" / COHORT / "labels.parquet")
        held_out = result.cohorts[COHORT].counts["held_out"]["rows"]
        assert predictions.height == held_out < labels.height
        assert set(predictions.columns) >= {
            "predicted_boolean_probability",
            "predicted_boolean_value",
        }


def test_interrupted_grid_resumes_and_matches_an_uninterrupted_run(tmp_path, dataset, full_run):
    _, full = full_run
    suite = load_suite(tiny_suite(tmp_path, dataset))
    finished = []

    def stop_after_two(planned, status):
        finished.append(planned.key.run_id)
        if len(finished) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        GridRunner(suite, on_run=stop_after_two).run()
    store = ResultsStore(suite.output)
    assert [store.status(p.key) for p in full.planned].count("ok") == 2
    stamps = {
        rid: (suite.output / "runs" / rid / "run.json").stat().st_mtime_ns for rid in finished
    }

    computed = []
    resumed = GridRunner(suite, on_run=lambda p, s: computed.append(p.key.run_id)).run()
    assert resumed.computed == N_RUNS - 2
    assert not set(computed) & set(finished)
    for rid, stamp in stamps.items():  # finished runs were not rewritten
        assert (suite.output / "runs" / rid / "run.json").stat().st_mtime_ns == stamp
    write_outputs(resumed)
    for table in ("results", "paired", "calibration"):
        mine = pl.read_parquet(suite.output / f"{table}.parquet")
        theirs = pl.read_parquet(full.suite.output / f"{table}.parquet")
        assert mine.equals(theirs), table
    # A third run has nothing left to do.
    assert GridRunner(suite).run().computed == 0


def test_a_failed_run_is_recorded_and_the_grid_goes_on(tmp_path, dataset, monkeypatch):
    suite = load_suite(tiny_suite(tmp_path, dataset))
    real = runner_module.fit_and_predict

    def flaky(name, *args, **kwargs):
        if name == "lightgbm" and kwargs["seed"] == 1:  # seed 1
            raise ValueError("boom on purpose")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(runner_module, "fit_and_predict", flaky)
    result = GridRunner(suite).run()
    assert result.computed == N_RUNS and result.failed == 1
    write_outputs(result)
    runs = pl.read_csv(suite.output / "runs.csv")
    failed = runs.filter(pl.col("status") == "failed").row(0, named=True)
    assert (failed["model"], failed["seed"]) == ("lightgbm", 1)
    assert failed["error"] == "ValueError: boom on purpose"
    manifest = json.loads((suite.output / "manifest.json").read_text())
    assert manifest["runs"] == {"total": N_RUNS, "ok": N_RUNS - 1, "failed": 1}

    monkeypatch.setattr(runner_module, "fit_and_predict", real)
    assert GridRunner(suite).run().computed == 0  # failed runs are kept ...
    retried = GridRunner(suite, retry_failed=True).run()  # ... unless asked
    assert retried.computed == 1 and retried.failed == 0


def test_ctrl_c_disguised_by_a_library_stops_the_grid_and_records_no_failure(
    tmp_path, dataset, monkeypatch, capsys
):
    """Polars has turned a KeyboardInterrupt landing in its code into a TypeError: after the
    user's Ctrl-C such an error is the interruption, not a failed run kept in the store."""
    path = tiny_suite(tmp_path, dataset)
    real = runner_module.fit_and_predict

    def interrupted_inside_a_library(name, *args, **kwargs):
        if name == "lightgbm":
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)  # the handler raises here, at once
            except KeyboardInterrupt:
                raise TypeError("'<unprintable str object>' is not a Polars data type") from None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(runner_module, "fit_and_predict", interrupted_inside_a_library)
    assert main(["run", str(path)]) == 130
    assert "interrupted: nothing partial was kept; rerun to resume." in capsys.readouterr().err
    store = ResultsStore(load_suite(path).output)
    assert "failed" not in store.runs()["status"].to_list()
    monkeypatch.setattr(runner_module, "fit_and_predict", real)
    assert main(["run", str(path)]) == 0  # the rerun resumes: every run ok, none failed
    assert set(pl.read_csv(load_suite(path).output / "runs.csv")["status"]) == {"ok"}


def test_a_broken_cohort_is_skipped_and_reported(tmp_path, dataset, caplog, capsys):
    cohorts = tmp_path / "cohorts"
    cohorts.mkdir()
    shutil.copy(COHORTS / f"{COHORT}.yaml", cohorts)
    (cohorts / "broken.yaml").write_text("trigger: nothing\npredicates: {}\n", encoding="utf-8")
    path = tiny_suite(
        tmp_path,
        dataset,
        cohorts_dir=str(cohorts),
        cohorts=["broken", COHORT],
        models=["logreg"],
        k=["all"],
    )
    with captured_logs(caplog):
        result = GridRunner(load_suite(path)).run()
    assert list(result.cohorts) == [COHORT]
    assert "broken" in result.skipped_cohorts
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("cohort broken skipped") for m in warnings)
    assert result.computed == 1
    assert any(m.startswith(f"{COHORT} logreg k=all seed=0: AUROC") for m in caplog.messages)
    err = capsys.readouterr().err
    assert "warning: cohort broken skipped" in err
    assert "runs:" in err and "1/1" in err  # the progress bar: runs done / total, time left
    # The command says so and exits 1, as for a failed run: not every run asked for was made.
    assert main(["-q", "run", str(path)]) == 1
    assert "1 of the suite's 2 cohorts were skipped" in capsys.readouterr().err


def test_a_logistic_regression_grid_never_imports_torch(tmp_path, dataset):
    # The suite also sets a GRU grid: naming a model must not import its module.
    path = tiny_suite(tmp_path, dataset, grids={"gru": [{"hidden": 16}]})
    argv = ["run", str(path), "models=[logreg]", "k=[all]", "seeds=[0]"]
    code = (
        f"import sys; from ehrbench.cli import main; assert main({argv!r}) == 0; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr
