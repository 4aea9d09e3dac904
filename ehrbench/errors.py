"""The one exception type whose message is meant for a user.

Every check on user input (a config, a MEDS folder, a label table) raises `EhrbenchError` with a
one-paragraph message that names the file, the key or column, and what was expected. The command
line prints that message without a traceback; any other exception is a bug in ehrbench.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EhrbenchError(Exception):
    """A problem with the user's input or request, explained in the message."""


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """`did you mean 'x'?` for the known name closest to `name`, or "" when none is close.

    >>> did_you_mean("widnows", ["windows", "trigger"])
    "did you mean 'windows'?"
    >>> did_you_mean("zzz", ["windows"])
    ''
    """
    if name is None:
        return ""
    close = difflib.get_close_matches(str(name), sorted(known), n=1)
    return f"did you mean {close[0]!r}?" if close else ""
