"""Model plugins: the example package installed and run end to end; broken plugins stay contained.

The example (examples/ehrbench-plugin-example) is built and installed into a temporary folder,
never into the project's environment; the commands run in subprocesses with that folder on
PYTHONPATH, where entry points are discovered from its `*.dist-info`. The broken plugins are a
hand-written `*.dist-info` on `sys.path` in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pytest
from models_synthetic import tabular
from protocol_helpers import COHORT, COHORTS, REPO, tiny_dataset, tiny_suite

from ehrbench.cli import main
from ehrbench.errors import EhrbenchError
from ehrbench.meds.label_kinds import LabelTarget
from ehrbench.models import base, plugins
from ehrbench.models.base import Model, model_class, model_names, take_rows
from ehrbench.protocol.runner import GridRunner
from ehrbench.protocol.suite import load_suite

EXAMPLE = REPO / "examples" / "ehrbench-plugin-example"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("plugins") / "meds")


@pytest.fixture(scope="module")
def example_site(tmp_path_factory):
    """The example plugin built and installed into a fresh folder (not the project's venv)."""
    root = tmp_path_factory.mktemp("example_plugin")
    shutil.copytree(EXAMPLE, root / "src")  # building writes egg-info beside the sources
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    command += ["--no-build-isolation", "--target", str(root / "site"), str(root / "src")]
    subprocess.run(command, check=True, capture_output=True)
    return root / "site"


def _ehrbench(site, *args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    return subprocess.run(
        [sys.executable, "-m", "ehrbench.cli", "-q", *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_example_plugin_is_listed_run_in_a_suite_and_trained(example_site, dataset, tmp_path):
    listed = _ehrbench(example_site, "models", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if x.startswith("example_centroid"))
    assert "ehrbench-plugin-example 0.1.0" in line and "tabular" in line
    assert "4 settings: distance {euclidean, cosine} x temperature {0.1, 1.0}" in line
    assert "logreg" in listed.stdout and "unusable" not in listed.stdout

    suite = tiny_suite(tmp_path, dataset, models=["logreg", "example_centroid"], k=["all"])
    ran = _ehrbench(example_site, "run", suite, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    out = tmp_path / "out"
    runs = pl.read_csv(out / "runs.csv", schema_overrides={"k": pl.String})
    assert runs["status"].to_list() == ["ok"] * 2
    centroid = runs.filter(pl.col("model") == "example_centroid")
    assert (centroid["n_parameters"] > 0).all() and (centroid["fit_seconds"] > 0).all()
    paired = pl.read_parquet(out / "paired.parquet")
    assert set(paired["model"]) == {"example_centroid"}

    labels = out / "cohorts" / COHORT / "labels.parquet"
    args = ["--data", dataset, "--labels", labels, "--model", "example_centroid"]
    trained = _ehrbench(example_site, "train", *args, "--out", tmp_path / "run", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    record = json.loads((tmp_path / "run" / "hyperparameters.json").read_text())
    assert record["model"] == "example_centroid" and record["held_out_auroc"] > 0.5
    assert record["cost"]["n_parameters"] > 0
    assert (tmp_path / "run" / "model" / "centroids.npz").exists()


def test_example_plugin_keeps_the_contract(example_site, monkeypatch, tmp_path):
    _use_site(monkeypatch, example_site)
    features, y = tabular(240, seed=0)
    train, tuning, test = (take_rows(features, part) for part in np.split(np.arange(240), 3))
    y_train, y_tuning = np.split(y, 3)[:2]

    def fitted():
        return model_class("example_centroid")().fit(train, y_train, tuning, y_tuning, seed=0)

    model = fitted()
    p = base.predict(model, test)
    assert p.dtype == np.float64 and p.shape == (80,) and ((p >= 0) & (p <= 1)).all()
    assert base.predict(fitted(), test).tobytes() == p.tobytes()
    assert model.n_parameters() == 3 * features.matrix.shape[1]
    model.save(tmp_path / "m")
    assert Model.load(tmp_path / "m").predict_proba(test).tobytes() == p.tobytes()


BROKEN_MODULE = """
from dataclasses import dataclass

import numpy as np

from ehrbench.models.base import Model


@dataclass(frozen=True)
class Params:
    pass


class WrongShape(Model):
    name = "broken_shape"
    kind = "tabular"
    Hyperparameters = Params

    @classmethod
    def param_grid(cls):
        return [{}]

    def _fit(self, train, y_train, tuning, y_tuning, seed):
        pass

    def predict_proba(self, features):
        return np.full((features.rows.height, 2), 0.5)

    def n_parameters(self):
        return 0

    def _save_state(self, directory):
        return {}

    def _load_state(self, directory, extra):
        pass


class ExitsInFit(WrongShape):
    name = "exits_in_fit"

    def _fit(self, train, y_train, tuning, y_tuning, seed):
        raise SystemExit(0)


class NotAModel:
    name = "not_a_model"
"""
BROKEN_ENTRIES = """
[ehrbench.models]
broken_import = broken_models_missing:Model
broken_shape = broken_models:WrongShape
exits_in_fit = broken_models:ExitsInFit
not_a_model = broken_models:NotAModel
"""


@pytest.fixture(autouse=True)
def _forget_plugins():
    """Unregister the plugins a test loaded (built-in models stay registered)."""
    yield
    for name in set(base.MODELS) - set(base.BUILTIN_MODELS):
        del base.MODELS[name]


def _use_site(monkeypatch, site):
    """Put `site` on sys.path, with plugins discovered afresh on every lookup."""
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(plugins, "discovered", plugins.discovered.__wrapped__)


def _broken_site(tmp_path, monkeypatch, entries=BROKEN_ENTRIES):
    """A package `broken-models` 0.2 with the given entry points, on sys.path."""
    site = tmp_path / "site"
    dist = site / "broken_models-0.2.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-models\nVersion: 0.2\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(entries))
    (site / "broken_models.py").write_text(BROKEN_MODULE)
    monkeypatch.delitem(sys.modules, "broken_models", raising=False)
    _use_site(monkeypatch, site)


def test_listing_shows_broken_plugins_beside_the_others(tmp_path, monkeypatch, capsys):
    _broken_site(tmp_path, monkeypatch)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert any(x.startswith("logreg") and "built-in" in x for x in out.splitlines())
    assert (
        "broken_import: model plugin `broken_import` (entry point `broken_import = "
        "broken_models_missing:Model` in group `ehrbench.models`, package broken-models 0.2) "
        "failed to import: ModuleNotFoundError"
    ) in out
    assert "not a subclass of ehrbench.models.base.Model" in out


def test_listing_model_names_imports_no_plugin(tmp_path, monkeypatch):
    _broken_site(tmp_path, monkeypatch)
    assert {"broken_import", "broken_shape", "not_a_model", "logreg"} <= set(model_names())
    assert "broken_models" not in sys.modules


def test_a_broken_plugin_is_a_clear_error_naming_it(tmp_path, monkeypatch):
    _broken_site(tmp_path, monkeypatch)
    with pytest.raises(
        EhrbenchError, match=r"`broken_import`.*broken-models 0.2.*failed to import"
    ):
        model_class("broken_import")
    with pytest.raises(
        EhrbenchError, match=r"names a model that cannot be used: model plugin `broken_import`"
    ):
        load_suite(tiny_suite(tmp_path, tmp_path, models=["logreg", "broken_import"]))
    assert model_class("logreg").name == "logreg"


def test_wrong_shape_fails_its_runs_and_the_other_models_run(
    tmp_path, monkeypatch, dataset, capsys
):
    _broken_site(tmp_path, monkeypatch)
    path = tiny_suite(tmp_path, dataset, models=["logreg", "broken_shape"], k=["all"], seeds=[0])
    assert main(["-q", "run", str(path)]) == 1  # a failed run makes the grid exit non-zero
    suite = load_suite(path)
    result = GridRunner(suite).run()  # resumes: every run is already recorded
    statuses = {p.model: result.statuses[p.key.run_id] for p in result.planned}
    assert statuses == {"logreg": "ok", "broken_shape": "failed"}
    record = next(
        GridRunner(suite).store.record(p.key) for p in result.planned if p.model == "broken_shape"
    )
    assert (
        "package broken-models 0.2) breaks the model contract: predict_proba returned shape ("
        in (record["error"])
    )
    labels = suite.output / "cohorts" / COHORT / "labels.parquet"
    args = ["--data", str(dataset), "--labels", str(labels), "--model", "broken_shape"]
    assert main(["train", *args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "model plugin `broken_shape`" in err and "Traceback" not in err


def test_a_plugin_calling_sys_exit_is_a_clear_error_not_the_end_of_ehrbench(
    tmp_path, monkeypatch, dataset, capsys
):
    _broken_site(tmp_path, monkeypatch)
    labels = tmp_path / "labels.parquet"
    cohort = ["cohort", "extract", str(COHORTS / f"{COHORT}.yaml"), "--data", str(dataset)]
    predicates = ["--predicates", str(COHORTS / "predicates" / "synthetic.yaml")]
    assert main(["-q", *cohort, *predicates, "--out", str(labels)]) == 0
    args = ["--data", str(dataset), "--labels", str(labels), "--model", "exits_in_fit"]
    assert main(["-q", "train", *args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "model plugin `exits_in_fit`" in err and "raised while fitting: SystemExit" in err


def test_a_plugin_named_like_a_built_in_is_an_error_naming_both(tmp_path, monkeypatch):
    _broken_site(tmp_path, monkeypatch, "[ehrbench.models]\nlogreg = broken_models:WrongShape\n")
    with pytest.raises(EhrbenchError, match=r"plugin `logreg`.*broken-models 0.2.*built-in model"):
        model_class("logreg")
    assert model_class("lightgbm").name == "lightgbm"


def test_two_packages_registering_one_name_is_an_error_naming_both(tmp_path, monkeypatch):
    _broken_site(tmp_path, monkeypatch)
    other = tmp_path / "site" / "other_models-1.0.dist-info"
    other.mkdir()
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: other-models\nVersion: 1.0\n")
    (other / "entry_points.txt").write_text("[ehrbench.models]\nbroken_shape = other:Model\n")
    with pytest.raises(EhrbenchError, match="broken-models 0.2 and other-models 1.0"):
        model_class("broken_shape")


def test_a_binary_plugin_is_refused_another_label_kind(example_site, monkeypatch):
    _use_site(monkeypatch, example_site)
    features, y = tabular(60, seed=0)
    train, tuning = take_rows(features, np.arange(30)), take_rows(features, np.arange(30, 60))
    values = LabelTarget("regression", "float_value")
    with pytest.raises(EhrbenchError, match=r"`example_centroid` cannot fit a regression label"):
        model_class("example_centroid")().fit(
            train, y[:30].astype(float), tuning, y[30:].astype(float), 0, values
        )


def test_plugin_outputs_of_other_label_kinds_are_checked():
    plugin = plugins.Plugin("mine", "mine:Model", "mine 1.0", None)
    classes = LabelTarget("multiclass", "categorical_value", ("a", "b", "c"))
    with pytest.raises(EhrbenchError, match=r"shape \(3, 2\) for 3 rows \(expected \(3, 3\)\)"):
        plugins.check_output(plugin, np.full((3, 2), 0.5), 3, classes)
    with pytest.raises(EhrbenchError, match="do not sum to 1 on every row"):
        plugins.check_output(plugin, np.full((3, 3), 0.2), 3, classes)
    values = LabelTarget("regression", "float_value")
    out = np.array([5.0, -2.0, 1.0])  # any real value is a prediction
    assert plugins.check_output(plugin, out, 3, values) is out
    with pytest.raises(EhrbenchError, match="float64 predicted values, one per row"):
        plugins.check_output(plugin, out.astype(np.float32), 3, values)
