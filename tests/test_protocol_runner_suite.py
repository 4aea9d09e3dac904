"""Task suites: loading, defaults, `key=value` overrides, path rules, hashes and every error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from protocol_helpers import COHORTS, PREDICATES

from ehrbench.errors import EhrbenchError
from ehrbench.protocol.fewshot import ALL, DEFAULT_SEEDS, K_VALUES
from ehrbench.protocol.suite import load_suite, parse_overrides

REPO_TASKS = Path(__file__).resolve().parents[1] / "tasks"


def write_suite(folder: Path, **settings) -> Path:
    base = {
        "dataset": {"synthetic": {"subjects": 100}},
        "predicates": str(PREDICATES),
        "cohorts_dir": str(COHORTS),
        "cohorts": ["mortality_in_hospital"],
        "models": ["logreg", "gru"],
        "output": "results",
    }
    base.update(settings)
    base = {k: v for k, v in base.items() if v is not None}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(base), encoding="utf-8")
    return path


def test_defaults_and_relative_paths(tmp_path):
    suite = load_suite(write_suite(tmp_path))
    assert suite.plan.ks == K_VALUES
    assert suite.plan.seeds == DEFAULT_SEEDS
    assert suite.baseline == "logreg"
    assert suite.resamples == 1000 and suite.bootstrap_seed == 0
    assert suite.output == (tmp_path / "results").resolve()  # relative to the suite file
    assert suite.dataset_path == suite.output / "dataset"
    assert suite.synthetic.subjects == 100 and suite.synthetic.shards == 1
    assert suite.needs_sequences
    assert suite.name == "suite"


def test_overrides_apply_and_command_line_paths_are_relative_to_cwd(tmp_path, monkeypatch):
    path = write_suite(tmp_path)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    suite = load_suite(
        path,
        [
            "k=[4,all]",
            "seeds=[3]",
            "models=[logreg]",
            "dataset.synthetic.subjects=500",
            "output=mine",
            "bootstrap.resamples=10",
            "features.tabular.windows=[1d,full]",
        ],
    )
    assert suite.plan.ks == (4, ALL)
    assert suite.plan.seeds == (3,)
    assert suite.models == ("logreg",)
    assert not suite.needs_sequences
    assert suite.synthetic.subjects == 500
    assert suite.output == (elsewhere / "mine").resolve()
    assert suite.resamples == 10
    assert suite.tabular.windows == ("1d", "full")


def test_settings_of_models_left_out_are_ignored(tmp_path):
    path = write_suite(tmp_path, model_params={"gru": {"max_epochs": 2}})
    assert load_suite(path).model_params == {"gru": {"max_epochs": 2}}
    assert load_suite(path, ["models=[logreg]"]).model_params == {}


def test_cohorts_all_lists_the_library(tmp_path):
    suite = load_suite(write_suite(tmp_path, cohorts="all"))
    assert suite.cohorts == tuple(sorted(p.stem for p in COHORTS.glob("*.yaml")))


def test_run_config_hash_follows_what_a_run_depends_on(tmp_path):
    path = write_suite(tmp_path)
    base = load_suite(path)
    grown = load_suite(path, ["k=[1,2,all]", "seeds=[0,9]", "models=[logreg,gru,lightgbm]"])
    assert base.run_config_hash("mortality_in_hospital", "logreg") == grown.run_config_hash(
        "mortality_in_hospital", "logreg"
    )
    assert base.config_hash() != grown.config_hash()
    for change in (
        "features.tabular.min_count=3",
        "bootstrap.seed=1",
        "model_params.logreg.max_iter=50",
    ):
        other = load_suite(path, [change])
        assert other.run_config_hash("mortality_in_hospital", "logreg") != base.run_config_hash(
            "mortality_in_hospital", "logreg"
        ), change
    # A sequence setting does not touch a tabular model's runs.
    seq = load_suite(path, ["features.sequence.max_events=32"])
    assert seq.run_config_hash("mortality_in_hospital", "logreg") == base.run_config_hash(
        "mortality_in_hospital", "logreg"
    )
    assert seq.run_config_hash("mortality_in_hospital", "gru") != base.run_config_hash(
        "mortality_in_hospital", "gru"
    )


def test_repository_suites_load():
    for name in ("demo", "synthetic", "mimic_iv_demo"):
        path = REPO_TASKS / f"{name}.yaml"
        overrides = ["dataset.path=."] if name == "mimic_iv_demo" else []
        suite = load_suite(path, overrides)
        assert suite.cohorts and suite.models and suite.plan.runs


@pytest.mark.parametrize(
    ("overrides", "settings", "expected"),
    [
        (["k"], {}, "is not `key=value`"),
        (["=3"], {}, "is not `key=value`"),
        (["k=[4,all"], {}, "cannot be read"),
        (["bootstrap.resampels=10"], {}, "Did you mean 'resamples'"),
        (["modles=[logreg]"], {}, "(from the command-line override)"),
        ([], {"modles": ["logreg"]}, "is not a suite setting"),
        ([], {"models": None}, "`models` (from the suite"),
        (["cohorts=[mortality_in_hospitl]"], {}, "Did you mean 'mortality_in_hospital'"),
        (["models=[xgboost]"], {}, "unknown model `xgboost`"),
        (["models=[]"], {}, "non-empty list"),
        (["models=[logreg,logreg]"], {}, "lists a name twice"),
        (["k=[0,4]"], {}, "`k` (from the command-line override) is not valid"),
        (["k=[4,200]"], {}, "from 1 to 128"),
        (["k=4"], {}, "must be a list"),
        (["seeds=[-1]"], {}, "`seeds`"),
        (["baseline=lightgbm"], {}, "not among the models"),
        (["model_params.logreg.alpha=1"], {}, "no hyperparameter(s) ['alpha']"),
        (["model_params.xgb.depth=4"], {}, "does not name a model: unknown model `xgb`"),
        (["grids.logreg=[]"], {}, "non-empty list of hyperparameter settings"),
        (["grids.logreg=[{D: 1}]"], {}, "no hyperparameter(s) ['D']"),
        (["features.tabular.windows=[3x]"], {}, "`features.tabular`"),
        (["features.sequence.max_events=0"], {}, "must be a whole number >= 1"),
        (["bootstrap.resamples=0"], {}, "`bootstrap.resamples`"),
        (["bootstrap.resamples=1000000000000"], {}, "from 1 to 10000"),
        ([], {"name": "../../evil", "output": None}, "must stay inside results/, got '../../evil'"),
        ([], {"name": "/tmp/elsewhere", "output": None}, "must stay inside results/"),
        (["bootstrap.seed=4294967296"], {}, "from 0 to 4294967295"),
        (["features.tabular.windows=[30]"], {}, "windows must be a list of names"),
        (["features.tabular.windows=30d"], {}, "windows must be a list of names"),
        (["features.sequence.max_events=100000000"], {}, "from 1 to 65536"),
        (["subgroups.age_bands=[65,18]"], {}, "strictly ascending"),
        (["dataset=foo"], {}, "`dataset` (from the command-line override) must be a mapping"),
        (["models.x=1"], {}, "do not fit the file"),
        (
            ["dataset.path.x=1"],
            {},
            "`dataset.path` (from the command-line override) must be a path",
        ),
        ([], {"dataset": {}}, "needs `path`"),
        ([], {"dataset": {"path": "nowhere"}}, "which is not a folder"),
        ([], {"dataset": {"synthetic": {"subjects": 2}}}, "`dataset.synthetic.subjects`"),
        ([], {"predicates": "missing.yaml"}, "does not exist or is not a file"),
        ([], {"cohorts_dir": "nowhere"}, "not a folder of cohort files"),
        ([], {"output": 5}, "must be a path"),
    ],
)
def test_errors_name_the_key_and_what_was_expected(tmp_path, overrides, settings, expected):
    path = write_suite(tmp_path, **settings)
    with pytest.raises(EhrbenchError) as info:
        load_suite(path, overrides)
    message = str(info.value)
    assert expected in message
    assert str(path) in message or "override" in message.lower()


def test_missing_and_malformed_suite_files(tmp_path):
    with pytest.raises(EhrbenchError, match="does not exist, and ehrbench ships no suite"):
        load_suite(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [logreg\n", encoding="utf-8")
    with pytest.raises(EhrbenchError, match=r"bad.yaml \(line 2\): not valid YAML"):
        load_suite(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(EhrbenchError, match="must be a mapping of settings"):
        load_suite(listed)


def test_parse_overrides_keeps_keys():
    tree, keys = parse_overrides(["a.b=1", "c=[x,2]"])
    assert tree == {"a": {"b": 1}, "c": ["x", 2]}
    assert keys == {"a.b", "c"}


def test_run_command_reports_suite_errors_without_traceback(tmp_path, capsys):
    from ehrbench.cli import main

    path = write_suite(tmp_path)
    assert main(["run", str(path), "k=[0]"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Task suite") and "Traceback" not in err


def test_run_refuses_a_foreign_output_folder(tmp_path, capsys):
    from ehrbench.cli import main

    path = write_suite(tmp_path)
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine", encoding="utf-8")
    assert main(["run", str(path), f"output={foreign}"]) == 2
    assert "did not write" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert os.listdir(foreign) == ["notes.txt"]


def test_a_shipped_suite_is_found_by_name_and_writes_beside_the_user(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("demo", "tasks/demo.yaml", "demo.yaml"):
        suite = load_suite(name)
        assert suite.source.resolve() == (REPO_TASKS / "demo.yaml").resolve()
        assert suite.output == tmp_path / "results" / "demo"
    assert load_suite("demo", ["output=elsewhere"]).output == tmp_path / "elsewhere"
    with pytest.raises(EhrbenchError, match="did you mean 'demo'"):
        load_suite("dmeo")


def test_a_large_suite_loads_and_an_alias_bomb_does_not(tmp_path):
    """Over 10,000 YAML nodes with no alias is fine; an alias bomb is refused before it grows."""
    base = (REPO_TASKS / "demo.yaml").read_text(encoding="utf-8")
    grid = "\n".join(f"    - {{C: {1 + i / 1000}}}" for i in range(3_500))  # 10,500+ nodes
    large = tmp_path / "tasks" / "large.yaml"
    large.parent.mkdir()
    (tmp_path / "cohorts").symlink_to(REPO_TASKS.parent / "cohorts")
    large.write_text(base.replace("grids:\n", f"grids:\n  random_forest:\n{grid}\n"), "utf-8")
    assert load_suite(large, ["models=[logreg]"]).name == "demo"
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(EhrbenchError, match="alias"):
        load_suite(bomb)
