"""ehrbench installed from a wheel (not editable) carries its cohort library and task suites.

The wheel is built from this source tree and installed into a temporary folder; the commands run
from another folder, so nothing can be found through the source tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The folder a wheel of this tree was installed into (`pip install --target`)."""
    root = tmp_path_factory.mktemp("install")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", root / "wheel", REPO]
    subprocess.run(build, check=True, capture_output=True)
    wheel = next((root / "wheel").glob("ehrbench-*.whl"))
    install = [*pip, "install", "--no-deps", "--target", root / "site", wheel]
    subprocess.run(install, check=True, capture_output=True)
    return root / "site"


def ehrbench(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the installed ehrbench (its dependencies come from this environment)."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    command = [sys.executable, "-m", "ehrbench.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)


def test_the_wheel_holds_real_files_not_links(installed):
    shipped = installed / "ehrbench" / "bundled"
    assert not (shipped / "cohorts").is_symlink()
    assert (shipped / "cohorts" / "predicates" / "synthetic.yaml").is_file()
    assert (shipped / "tasks" / "demo.yaml").is_file()


def test_the_installed_copy_lists_its_library(installed, tmp_path):
    result = ehrbench(installed, tmp_path, "cohorts")
    assert result.returncode == 0, result.stderr
    assert "mortality_in_hospital" in result.stdout and "readmission_30d" in result.stdout
    located = ehrbench(installed, tmp_path, "cohorts", "--help")
    assert located.returncode == 0


def test_the_installed_copy_is_the_one_that_runs(installed, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(installed)}
    where = subprocess.run(
        [sys.executable, "-c", "import ehrbench; print(ehrbench.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(installed)


def test_the_installed_copy_runs_a_shipped_suite_from_any_folder(installed, tmp_path):
    tiny = [
        "dataset.synthetic.subjects=300",
        "cohorts=[mortality_in_hospital]",
        "models=[logreg]",
        "k=[all]",
        "seeds=[0]",
        "bootstrap.resamples=20",
    ]
    result = ehrbench(installed, tmp_path, "run", "tasks/demo.yaml", *tiny)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "results" / "demo" / "results.csv").is_file()
    assert not list(installed.rglob("results.csv"))  # nothing written into the install
