"""The `ehrbench` command line.

Each area of the package contributes its verbs through a `commands` module with a
`register(subparsers)` function; this module only assembles them (importing just the module of
the verb being run) and turns errors into one-paragraph messages. A user never sees a
traceback unless they pass `--debug`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from ehrbench import __version__, interrupts
from ehrbench.errors import EhrbenchError
from ehrbench.logs import configure as configure_logging

# Each verb and the module that registers it. Only the chosen verb's module is imported, so a
# command pays for its own dependencies (scikit-learn, torch, scipy) and not for the others';
# `ehrbench --help` imports them all to list every verb.
VERB_MODULES = {
    "synth": "ehrbench.synth.commands",
    "info": "ehrbench.meds.commands",
    "validate": "ehrbench.meds.commands",
    "splits": "ehrbench.meds.commands",
    "meds-from-events": "ehrbench.meds.commands",
    "import-mimic-demo": "ehrbench.meds.commands",
    "import-eicu-demo": "ehrbench.meds.commands",
    "cohort": "ehrbench.cohort.commands",
    "cohorts": "ehrbench.cohort.library_commands",
    "featurize": "ehrbench.features.commands",
    "train": "ehrbench.models.commands",
    "pretrain": "ehrbench.pretrain.commands",
    "represent": "ehrbench.pretrain.commands",
    "models": "ehrbench.models.catalog",
    "run": "ehrbench.protocol.commands",
    "evaluate": "ehrbench.protocol.outside_commands",
    "demo": "ehrbench.demo",
    "report": "ehrbench.report.commands",
}

# The verbs whose rerun picks up where an interrupted one stopped (the results store,
# pretraining's checkpoint); the others write their outputs again (with --overwrite).
RESUMING_VERBS = frozenset({"run", "pretrain"})


def chosen_verb(argv: list[str]) -> str | None:
    """The verb in `argv` (its first word that is not an option), or None."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser with `verb`'s subcommands, or every verb's when it is unknown."""
    parser = argparse.ArgumentParser(
        prog="ehrbench",
        description="Cohorts, features, models and honest benchmarks on MEDS event streams.",
    )
    parser.add_argument("--version", action="version", version=f"ehrbench {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of an unexpected error"
    )
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "--quiet", "-q", action="store_true", help="print warnings and errors only, no progress"
    )
    loudness.add_argument("--verbose", "-v", action="store_true", help="print details too")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [VERB_MODULES[verb]] if verb in VERB_MODULES else VERB_MODULES.values()
    for module_name in dict.fromkeys(modules):
        importlib.import_module(module_name).register(subparsers)
    return parser


def _os_error_text(exc: OSError) -> str:
    """One line on a refused file operation, naming the path(s).

    >>> _os_error_text(FileNotFoundError(2, "No such file or directory", "/proc/x"))
    'cannot use /proc/x: No such file or directory (check the path, its permissions and space).'
    """
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    reason = exc.strerror or str(exc)
    return f"cannot use {paths or 'a file'}: {reason} (check the path, its permissions and space)."


def main(argv: list[str] | None = None) -> int:
    """Run one `ehrbench` command; return the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    verb = chosen_verb(argv)
    with interrupts.handling():
        try:
            return _command(argv, verb)
        except KeyboardInterrupt:  # in the first second, while the verb's module imports
            return _interrupted(verb)


def _command(argv: list[str], verb: str | None) -> int:
    """Parse `argv` and run its verb; every error ends in one paragraph and an exit code."""
    parser = build_parser(verb)
    args = parser.parse_args(argv)
    configure_logging(-1 if args.quiet else 1 if args.verbose else 0)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        result = args.handler(args)
    except BrokenPipeError:
        # The reader (`| head`) closed the pipe: stop quietly, as Unix tools do, and point
        # stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        return _interrupted(verb)
    except BaseException as exc:
        # After the user's stop, an error is the interruption disguised by the library it
        # landed in (polars has raised a TypeError): not bad input, not a bug.
        if interrupts.stopping() and not isinstance(exc, SystemExit):
            return _interrupted(verb)
        return _failure(exc, args.debug)
    return int(result or 0)


def _failure(exc: BaseException, debug: bool) -> int:
    """Report `exc` in one paragraph; return the exit code (2: the input or the file system,
    the user's to fix; 3: a bug). Anything else (SystemExit) goes on as it is."""
    if isinstance(exc, EhrbenchError):
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, OSError):
        # The file system refused an operation the checks before the work could not foresee
        # (a special or full file system, a permission lost meanwhile).
        print(f"error: {_os_error_text(exc)}", file=sys.stderr)
        return 2
    # A panic inside a Rust extension (polars) derives from BaseException, so that it passes
    # `except Exception`; it is a bug too, reported alike, never as a traceback.
    if isinstance(exc, Exception) or type(exc).__module__ == "pyo3_runtime":
        return _internal_error(exc, debug)
    raise exc


def _interrupted(verb: str | None) -> int:
    """Say the command stopped on the user's Ctrl-C (or SIGTERM); exit code 130."""
    resume = "; rerun to resume" if verb in RESUMING_VERBS else ""
    print(f"interrupted: nothing partial was kept{resume}.", file=sys.stderr)
    return 130


def _internal_error(exc: BaseException, debug: bool) -> int:
    """Report `exc`, a bug in ehrbench or a library it calls, in one paragraph; exit code 3."""
    if debug:
        traceback.print_exc()
    print(
        f"internal error: {type(exc).__name__}: {exc}. This is a bug in ehrbench "
        f"{__version__}; rerun with --debug for the traceback and please report it.",
        file=sys.stderr,
    )
    return 3


if __name__ == "__main__":
    sys.exit(main())
