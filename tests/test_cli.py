"""The command-line shell: verb routing, help, and error handling without tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ehrbench import cli


def registered_verbs(parser) -> set[str]:
    """The verbs a built parser knows."""
    (subparsers,) = [a for a in parser._actions if a.dest == "command"]
    return set(subparsers.choices)


def test_every_verb_is_registered_by_the_module_the_table_names():
    assert registered_verbs(cli.build_parser()) == set(cli.VERB_MODULES)
    for verb in cli.VERB_MODULES:
        assert verb in registered_verbs(cli.build_parser(verb))


def test_chosen_verb_skips_top_level_options():
    assert cli.chosen_verb(["--debug", "cohort", "check", "x.yaml"]) == "cohort"
    assert cli.chosen_verb(["--version"]) is None


def test_a_verb_does_not_import_other_areas_dependencies():
    # `ehrbench info` must not pay for scikit-learn or torch (start-up time and memory).
    code = (
        "import sys; from ehrbench import cli; cli.build_parser('info'); "
        "print(sorted(m for m in ('sklearn', 'torch', 'lightgbm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_verb_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_verb_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
