"""Dask scheduling: the same labels, features and results with `none`, `local` with 1 and with
2 workers; a worker killed mid-grid; a task that kills every worker it runs on; bad settings."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from protocol_helpers import COHORT, PREDICATES, captured_logs, tiny_dataset, tiny_suite

import ehrbench.scheduler as scheduler
from ehrbench.cli import main
from ehrbench.errors import EhrbenchError
from ehrbench.protocol.commands import run_suite
from ehrbench.protocol.runner import GridRunner
from ehrbench.protocol.store import ResultsStore
from ehrbench.protocol.suite import load_suite
from ehrbench.scheduler import Call, SchedulerSetting, use_scheduler

# 2 models x (k=4 with seeds 0 .. 2, k=all once) = 8 runs.
SEEDS = [0, 1, 2]
N_RUNS = 8


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("dask") / "meds", subjects=300)


def grid(tmp_path_factory, dataset, name: str, overrides: list[str]) -> Path:
    """Run the tiny suite into a fresh folder with `overrides`; return its output folder."""
    folder = tmp_path_factory.mktemp(name)
    run_suite(tiny_suite(folder, dataset, seeds=SEEDS), overrides)
    return folder / "out"


@pytest.fixture(scope="module")
def in_process(tmp_path_factory, dataset):
    return grid(tmp_path_factory, dataset, "none", [])


def files(out: Path, pattern: str) -> dict[str, bytes]:
    """Every file under `out` matching `pattern`, by path relative to `out`."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob(pattern))}


def feature_matrices(out: Path) -> list[sp.csr_matrix]:
    return [sp.load_npz(p) for p in sorted(out.glob("features/**/features.npz"))]


@pytest.mark.parametrize("workers", [1, 2])
def test_local_cluster_gives_the_in_process_outputs(
    tmp_path_factory, dataset, in_process, workers, caplog
):
    overrides = ["scheduler=local", f"workers={workers}"]
    with caplog.at_level(logging.INFO, logger="ehrbench"):
        out = grid(tmp_path_factory, dataset, f"local{workers}", overrides)
    assert f"a local Dask cluster of {workers} worker(s)" in caplog.text
    labels = f"cohorts/{COHORT}/*.parquet"
    assert files(out, labels) == files(in_process, labels) != {}
    matrices, expected = feature_matrices(out), feature_matrices(in_process)
    assert len(matrices) == len(expected) == 1
    assert (matrices[0] != expected[0]).nnz == 0 and matrices[0].dtype == expected[0].dtype
    for pattern in ("runs/*/predictions.parquet", "runs/*/metrics.parquet"):
        assert files(out, pattern) == files(in_process, pattern) != {}
    assert len(files(out, "runs/*/metrics.parquet")) == N_RUNS
    results = pl.read_parquet(out / "results.parquet")
    assert results.equals(pl.read_parquet(in_process / "results.parquet"))
    assert results["ci_low"].is_not_null().any()  # every metric and interval compared


def test_a_worker_killed_mid_grid_leaves_every_run_accounted_for(tmp_path, dataset, in_process):
    suite = load_suite(tiny_suite(tmp_path, dataset, seeds=SEEDS))
    killed = []
    with use_scheduler(SchedulerSetting("local", 2)) as executor:

        def kill_a_busy_worker(planned, status):
            if killed:
                return
            busy = [address for address, keys in executor.client.processing().items() if keys]
            pids = executor.client.run(os.getpid)
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])

        result = GridRunner(suite, on_run=kill_a_busy_worker).run()
    assert killed
    store = ResultsStore(suite.output)
    assert len(result.planned) == N_RUNS
    assert {p.key.run_id: store.status(p.key) for p in result.planned} == result.statuses
    assert set(result.statuses.values()) <= {"ok", "failed"}
    for planned in result.planned:
        folder = store.run_dir(planned.key)
        written = sorted(p.name for p in folder.iterdir())
        if result.statuses[planned.key.run_id] == "ok":
            assert written == ["metrics.parquet", "predictions.parquet", "run.json"]
            ours = folder / "metrics.parquet"
            theirs = in_process / "runs" / planned.key.run_id / "metrics.parquet"
            assert ours.read_bytes() == theirs.read_bytes()
        else:
            assert written == ["run.json"]
            assert "worker was lost" in store.record(planned.key)["error"]
    assert not list(suite.output.rglob("*.tmp"))


def test_a_task_that_kills_its_worker_is_run_twice_then_reported_lost():
    with use_scheduler(SchedulerSetting("local", 1)) as executor:
        calls = [Call(os._exit, (1,), "exits"), Call(np.add, (2, 3), "adds")]
        done = {d.call.tag: d for d in executor.results(calls)}
        assert "KilledWorker" in done["exits"].lost and done["adds"].value == 5
        with pytest.raises(EhrbenchError, match="a task \\(exits\\) was lost"):
            list(executor.ordered_values(calls[:1]))
        with pytest.raises(ZeroDivisionError):  # a task's own error comes back as it is
            list(executor.results([Call(divmod, (1, 0), "divides")]))


def test_local_workers_leave_ctrl_c_to_the_command():
    """A terminal's Ctrl-C reaches every process of the group: the workers ignore it (no
    traceback from each), the command keeps its own handler and closes the cluster."""
    own = signal.getsignal(signal.SIGINT)
    with use_scheduler(SchedulerSetting("local", 1)) as executor:
        done = next(iter(executor.results([Call(signal.getsignal, (signal.SIGINT,), "asks")])))
        assert done.value == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is own


def test_a_local_cluster_starts_off_the_main_thread_too():
    """Only the main thread may set signal handlers: elsewhere the workers keep Ctrl-C."""
    values = []

    def run():
        with use_scheduler(SchedulerSetting("local", 1)) as executor:
            values.extend(d.value for d in executor.results([Call(len, ("abc",), "counts")]))

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert values == [3]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--scheduler", "dask"], "--scheduler must be none, local or a Dask scheduler address"),
        (["--scheduler", "local", "--workers", "0"], "--workers must be a whole number >= 1"),
        (["--workers", "2"], "--workers sizes a local cluster and needs scheduler local"),
        (["--scheduler", "tcp://127.0.0.1:1"], "no Dask scheduler answers there"),
    ],
)
def test_bad_scheduler_options_exit_2_with_one_line(
    tmp_path, dataset, capsys, monkeypatch, argv, expected
):
    monkeypatch.setattr(scheduler, "CONNECT_TIMEOUT", "1s")
    command = ["cohorts", "extract", "--data", str(dataset), "--predicates", str(PREDICATES)]
    command += ["--out", str(tmp_path / "labels"), "--only", COHORT]
    assert main(command + argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err


def test_bad_suite_scheduler_keys_name_the_key(tmp_path, dataset, capsys):
    suite = tiny_suite(tmp_path, dataset, scheduler="cluster")
    assert main(["run", str(suite)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "`scheduler` (from the suite" in err
    assert main(["run", str(suite), "--scheduler", "local", "--workers", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "`workers` (from the command-line override)" in err


def test_the_count_of_tasks_in_flight_holds_across_nested_results():
    with use_scheduler(SchedulerSetting("local", 1)) as executor:
        outer = executor.results([Call(np.add, (n, 1), f"outer {n}") for n in range(3)])
        next(outer)
        assert executor.in_flight == 2
        assert [d.value for d in executor.results([Call(np.add, (5, 1), "inner")])] == [6]
        assert executor.load() == "1 worker, 2 in flight"
        assert len(list(outer)) == 2
        assert executor.in_flight == 0


def test_a_local_cluster_starts_at_most_four_workers_per_core(caplog, monkeypatch):
    monkeypatch.setattr(scheduler.os, "cpu_count", lambda: 2)
    assert scheduler.local_workers(None) == 2 and scheduler.local_workers(8) == 8
    with captured_logs(caplog):
        assert scheduler.local_workers(100_000) == 8
    assert "--workers 100000: this machine has 2 core(s); starting 8 workers" in caplog.text
