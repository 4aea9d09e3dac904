"""The files ehrbench ships beside its code: the cohort library and the task suites.

In the source tree they are the top-level folders `cohorts/` and `tasks/`, and this package holds
links to them; building a wheel (or a plain `pip install .`) copies the linked files in, so an
editable install, a plain install and a wheel all find them here.

>>> (COHORTS / "mortality_in_hospital.yaml").is_file()
True
>>> suite_file("demo").name
'demo.yaml'
"""

from __future__ import annotations

from pathlib import Path

from ehrbench.errors import EhrbenchError, did_you_mean

HERE = Path(__file__).resolve().parent
COHORTS = HERE / "cohorts"
TASKS = HERE / "tasks"


def suite_names() -> list[str]:
    """The names of the task suites ehrbench ships (`demo`, `synthetic`, ...)."""
    return sorted(path.stem for path in TASKS.glob("*.yaml"))


def suite_file(name_or_path: str | Path) -> Path:
    """A suite file: `name_or_path` when it exists, else the shipped suite of that name.

    `demo`, `demo.yaml` and `tasks/demo.yaml` all name the shipped demo suite when no such file
    is in the current folder, so `ehrbench run tasks/demo.yaml` works from any install.
    """
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = TASKS / f"{path.stem}.yaml"
    named = path.parent in (Path("."), Path("tasks")) and path.suffix in ("", ".yaml")
    if named and shipped.is_file():
        return shipped
    hint = did_you_mean(path.stem, suite_names())
    raise EhrbenchError(
        f"The suite file {path} does not exist, and ehrbench ships no suite of that name (it "
        f"ships {', '.join(suite_names())}){'; ' + hint if hint else ''}."
    )
