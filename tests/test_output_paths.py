"""Where commands may write: checked before any work, never an input, never two outputs in one."""

from __future__ import annotations

import os
import signal
import time

import pytest
import yaml
from protocol_helpers import COHORT, COHORTS, tiny_dataset, tiny_suite

from ehrbench import cli, interrupts
from ehrbench.cli import main
from ehrbench.errors import EhrbenchError
from ehrbench.io import atomic_path
from ehrbench.output_paths import check_writable, exclusive_folder
from ehrbench.protocol import runner


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("data"))


def extract(dataset, tmp_path, *options: str) -> tuple[int, str]:
    cohort = str(COHORTS / f"{COHORT}.yaml")
    predicates = str(COHORTS / "predicates" / "synthetic.yaml")
    argv = ["cohort", "extract", cohort, "--predicates", predicates, "--data", str(dataset)]
    return main([*argv, *options]), tmp_path


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("", "--out is empty"),
        ("/", "is a folder"),
        ("{tmp}/file.txt/labels.parquet", "is a file, not a folder"),
        ("{tmp}/\udcff.parquet", "not valid UTF-8"),
        ("{data}/data/train/0.parquet", "inside the dataset's data folder"),
        ("{data}/metadata/subject_splits.parquet", "inside the dataset's metadata folder"),
        ("{data}/data/new.parquet", "inside the dataset's data folder"),
    ],
)
def test_extract_refuses_an_output_it_cannot_or_must_not_write(
    dataset, tmp_path, capsys, out, message
):
    (tmp_path / "file.txt").write_text("x")
    before = sorted(p.name for p in (dataset / "data").rglob("*"))
    out = out.format(tmp=tmp_path, data=dataset)
    code, _ = extract(dataset, tmp_path, "--out", out, "--overwrite")
    err = capsys.readouterr().err
    assert code == 2 and message in err and "internal error" not in err
    assert sorted(p.name for p in (dataset / "data").rglob("*")) == before


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_folder_the_file_system_refuses_is_a_clear_error(dataset, tmp_path, capsys):
    # As root, /proc passes the checks made before the work (its mode lets root write), then
    # refuses the file; as another user the checks refuse it. Either way the error names it.
    code, _ = extract(dataset, tmp_path, "--out", "/proc/labels.parquet")
    err = capsys.readouterr().err
    assert code == 2 and "/proc" in err and "internal error" not in err
    assert not list(tmp_path.iterdir())


def test_extract_refuses_two_outputs_on_one_file(dataset, tmp_path, capsys):
    labels = tmp_path / "l.parquet"
    code, _ = extract(dataset, tmp_path, "--out", str(labels), "--audit", str(labels))
    assert code == 2 and "are the same file" in capsys.readouterr().err
    code, _ = extract(
        dataset, tmp_path, "--out", str(labels), "--audit", str(tmp_path / "l.attrition.json")
    )
    assert (
        code == 2 and "--audit and the attrition file are the same file" in capsys.readouterr().err
    )
    code, _ = extract(
        dataset, tmp_path, "--out", str(labels), "--audit", str(tmp_path / "l.manifest.json")
    )
    assert code == 2 and "the manifest and --audit are the same file" in capsys.readouterr().err
    assert not labels.exists()


@pytest.mark.parametrize("audit", ["{tmp}/out", "{tmp}/out/l.parquet/audit.parquet"])
def test_extract_refuses_an_output_inside_another(dataset, tmp_path, capsys, audit):
    # The audit path as the folder of --out (or inside the --out file's path) would leave a
    # partial set behind, written before the last file failed.
    labels = tmp_path / "out" / "l.parquet"
    code, _ = extract(
        dataset, tmp_path, "--out", str(labels), "--audit", audit.format(tmp=tmp_path)
    )
    err = capsys.readouterr().err
    assert code == 2 and "lies inside" in err and "internal error" not in err
    assert not (tmp_path / "out").exists()


def test_extract_refuses_to_write_over_its_cohort_file(dataset, tmp_path, capsys):
    cohort = tmp_path / "cohort.yaml"
    cohort.write_text((COHORTS / f"{COHORT}.yaml").read_text())
    text = cohort.read_bytes()
    predicates = str(COHORTS / "predicates" / "synthetic.yaml")
    argv = ["cohort", "extract", str(cohort), "--predicates", predicates, "--data", str(dataset)]
    assert main([*argv, "--out", str(cohort), "--overwrite"]) == 2
    assert "is the cohort file" in capsys.readouterr().err
    assert cohort.read_bytes() == text


def test_extract_refuses_to_write_over_a_cohort_file_its_cohort_names(dataset, tmp_path, capsys):
    for name in ("mortality_in_hospital", "mortality_in_hospital_icu_first_day"):
        (tmp_path / f"{name}.yaml").write_text((COHORTS / f"{name}.yaml").read_text())
    named = tmp_path / "mortality_in_hospital.yaml"
    text = named.read_bytes()
    predicates = str(COHORTS / "predicates" / "synthetic.yaml")
    cohort = str(tmp_path / "mortality_in_hospital_icu_first_day.yaml")
    argv = ["cohort", "extract", cohort, "--predicates", predicates, "--data", str(dataset)]
    assert main([*argv, "--out", str(named), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "is the cohort file mortality_in_hospital.yaml that" in err
    assert named.read_bytes() == text


def test_featurize_and_train_refuse_an_output_inside_the_dataset(dataset, tmp_path, capsys):
    labels = tmp_path / "labels.parquet"
    assert extract(dataset, tmp_path, "--out", str(labels))[0] == 0
    inside = str(dataset / "data" / "features")
    common = ["--data", str(dataset), "--labels", str(labels), "--out", inside]
    assert main(["featurize", "tabular", *common]) == 2
    assert "inside the dataset's data folder" in capsys.readouterr().err
    assert main(["train", *common, "--model", "logreg"]) == 2
    assert "inside the dataset's data folder" in capsys.readouterr().err
    assert not (dataset / "data" / "features").exists()


def test_no_command_writes_inside_a_dataset_it_does_not_read(dataset, tmp_path, capsys):
    before = sorted(p.relative_to(dataset) for p in dataset.rglob("*"))
    for inside in (dataset / "data" / "site_b", dataset / "metadata" / "more"):
        assert main(["synth", "--out", str(inside), "--subjects", "20", "--site", "B"]) == 2
        err = capsys.readouterr().err
        assert f"inside the dataset's {inside.parent.name} folder" in err
    assert sorted(p.relative_to(dataset) for p in dataset.rglob("*")) == before


def test_an_out_of_range_hyperparameter_is_refused_before_any_work(dataset, tmp_path, capsys):
    labels = tmp_path / "labels.parquet"
    assert extract(dataset, tmp_path, "--out", str(labels))[0] == 0
    common = [
        "train",
        "--data",
        str(dataset),
        "--labels",
        str(labels),
        "--out",
        str(tmp_path / "r"),
    ]
    assert main([*common, "--model", "gru", "max_epochs=-1"]) == 2
    assert "`max_epochs` must be at least 1, not -1" in capsys.readouterr().err
    assert main([*common, "--model", "logreg", "C=0"]) == 2
    assert "`C` must be greater than 0, not 0" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_grid_of_invalid_settings_is_a_load_error(dataset, tmp_path, capsys):
    path = tiny_suite(tmp_path, dataset, models=["logreg"], k=["all"])
    assert main(["run", str(path), "grids={logreg: [{C: -1}]}"]) == 2
    assert "`C` must be greater than 0" in capsys.readouterr().err


def test_run_exits_non_zero_and_says_how_many_runs_failed(dataset, tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("this run breaks")

    monkeypatch.setattr(runner, "execute_run", broken)
    path = tiny_suite(tmp_path, dataset, models=["logreg"], k=["all"])
    assert main(["run", str(path)]) == 1
    assert "1 of 1 runs failed" in capsys.readouterr().err


def test_a_second_run_into_the_same_folder_is_refused_with_who_holds_it(tmp_path):
    held = r"in use by .*ehrbench run a.yaml.*\"pid\""
    with (
        exclusive_folder(tmp_path, "`ehrbench run a.yaml`"),
        pytest.raises(EhrbenchError, match=held),
        exclusive_folder(tmp_path, "`ehrbench run b.yaml`"),
    ):
        pass
    with exclusive_folder(tmp_path, "`ehrbench run b.yaml`"):  # released when the first ends
        with (
            pytest.raises(EhrbenchError, match=r"in use by .*ehrbench run b.yaml"),
            exclusive_folder(tmp_path, "`ehrbench run c.yaml`"),
        ):
            pass
        assert (tmp_path / ".lock").exists(), "the refused command removed the holder's lock"


def test_a_command_that_writes_nothing_leaves_no_folder_behind(tmp_path):
    out = tmp_path / "new" / "out"
    with pytest.raises(ValueError, match="fails early"), exclusive_folder(out, "`ehrbench run`"):
        raise ValueError("fails early")
    assert list(tmp_path.iterdir()) == []
    kept = tmp_path / "kept"
    with exclusive_folder(kept, "`ehrbench run`"):
        (kept / "runs").mkdir()
    assert sorted(p.name for p in kept.iterdir()) == [".lock", "runs"]
    mine = tmp_path / "mine"
    mine.mkdir()
    with exclusive_folder(mine, "`ehrbench run`"):  # a folder the user had stays, empty
        pass
    assert list(mine.iterdir()) == []


def test_sigterm_unwinds_like_ctrl_c_and_leaves_no_temporary_file(tmp_path, monkeypatch, capsys):
    target = tmp_path / "out.txt"

    def handler(args):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            os.kill(os.getpid(), signal.SIGTERM)
        return 0

    monkeypatch.setattr(cli, "build_parser", _parser_running(handler))
    previous = signal.getsignal(signal.SIGTERM)
    assert main(["anything"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    # The command's handlers are put back and its stop forgotten (main is a library call too).
    assert signal.getsignal(signal.SIGTERM) is previous and not interrupts.stopping()


def test_ctrl_c_ignored_when_the_command_starts_stays_ignored(monkeypatch):
    seen = []
    monkeypatch.setattr(
        cli,
        "build_parser",
        _parser_running(lambda args: seen.append(signal.getsignal(signal.SIGINT))),
    )
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `nohup` or `cmd &` start it
    try:
        assert main(["anything"]) == 0
        assert seen == [signal.SIG_IGN] and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_error_raised_after_the_users_stop_is_the_interruption(monkeypatch, capsys):
    def handler(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here, at once
        except KeyboardInterrupt:  # wrapped, as a reader of a file would wrap polars' error
            raise EhrbenchError("labels.parquet cannot be read: damaged") from None

    monkeypatch.setattr(cli, "build_parser", _parser_running(handler))
    assert main(["anything"]) == 130
    assert capsys.readouterr().err == "interrupted: nothing partial was kept.\n"


def test_ctrl_c_while_the_verb_is_imported_is_one_line_not_a_traceback(monkeypatch, capsys):
    def importing(verb=None):
        raise KeyboardInterrupt  # Ctrl-C in the first second, while scikit-learn loads

    monkeypatch.setattr(cli, "build_parser", importing)
    assert main(["cohorts", "extract"]) == 130
    assert capsys.readouterr().err == "interrupted: nothing partial was kept.\n"


def _parser_running(handler):
    """A `build_parser` whose only verb runs `handler`."""
    import argparse

    def build(verb=None):
        parser = argparse.ArgumentParser()
        for flag in ("--debug", "--quiet", "--verbose"):
            parser.add_argument(flag, action="store_true")
        parser.add_argument("verb")
        parser.set_defaults(handler=handler)
        return parser

    return build


def test_check_writable_accepts_a_new_path_in_a_new_folder(tmp_path):
    assert check_writable(tmp_path / "a" / "b" / "c.parquet", "--out").name == "c.parquet"
    with pytest.raises(EhrbenchError, match="is a file: expected a folder"):
        (tmp_path / "f").write_text("x")
        check_writable(tmp_path / "f", "--out", folder=True)


def test_a_run_removes_what_a_killed_run_left_behind(dataset, tmp_path):
    path = tiny_suite(tmp_path, dataset, models=["logreg"], k=["all"])
    output = tmp_path / "out"
    (output / "features" / ".tabular-abc.x1y2.tmp").mkdir(parents=True)
    (output / "runs").mkdir()
    (output / "runs" / ".run.json.k3j.tmp").write_text("half")
    assert main(["run", str(path)]) == 0
    assert not list(output.rglob(".*.tmp"))


@pytest.mark.parametrize("synthetic", [False, True], ids=["given dataset", "synthetic spec"])
def test_a_suite_output_inside_its_dataset_is_refused_before_anything_is_written(
    dataset, tmp_path, capsys, synthetic
):
    spec = {"path": str(dataset)}
    if synthetic:  # a dataset the suite would generate, already there at `dataset.path`
        spec["synthetic"] = {"subjects": 400, "seed": 0, "shards": 2}
    path = tiny_suite(tmp_path, dataset, models=["logreg"], k=["all"])
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "dataset": spec}))
    before = sorted(p.relative_to(dataset) for p in dataset.rglob("*"))
    assert main(["run", str(path), f"output={dataset / 'data' / 'run'}"]) == 2
    assert "inside the dataset's data folder" in capsys.readouterr().err
    assert sorted(p.relative_to(dataset) for p in dataset.rglob("*")) == before


def test_a_panic_in_a_rust_library_is_an_internal_error_not_a_traceback(monkeypatch, capsys):
    # polars' PanicException derives from BaseException, past `except Exception`.
    from polars.exceptions import PanicException

    def handler(args):
        raise PanicException("index out of bounds")

    monkeypatch.setattr(cli, "build_parser", _parser_running(handler))
    assert main(["anything"]) == 3
    err = capsys.readouterr().err
    assert "internal error: PanicException: index out of bounds" in err
    assert "Traceback" not in err
