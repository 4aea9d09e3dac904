"""The `ehrbench` command line.

Each area of the package contributes its verbs through a `commands` module with a
`register(subparsers)` function; this module only assembles them and turns errors into
one-paragraph messages. A user never sees a traceback unless they pass `--debug`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from ehrbench import __version__
from ehrbench.errors import EhrbenchError

# Modules that add subcommands, in the order their verbs appear in `ehrbench --help`.
COMMAND_MODULES = [
    "ehrbench.synth.commands",
    "ehrbench.meds.commands",
    "ehrbench.cohort.commands",
    "ehrbench.cohort.library_commands",
    "ehrbench.features.commands",
    "ehrbench.models.commands",
    "ehrbench.protocol.commands",
    "ehrbench.report.commands",
]


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="ehrbench",
        description="Cohorts, features, models and honest benchmarks on MEDS event streams.",
    )
    parser.add_argument("--version", action="version", version=f"ehrbench {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of an unexpected error"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:  # a real import error inside the module
                raise
            continue  # that area has no commands yet
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `ehrbench` command; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        result = args.handler(args)
    except EhrbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader (`| head`) closed the pipe: stop quietly, as Unix tools do, and point
        # stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("interrupted: nothing partial was kept; rerun to resume.", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in ehrbench, not the user's input
        if args.debug:
            traceback.print_exc()
        print(
            f"internal error: {type(exc).__name__}: {exc}. This is a bug in ehrbench "
            f"{__version__}; rerun with --debug for the traceback and please report it.",
            file=sys.stderr,
        )
        return 3
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
