"""Types of command-line arguments, checked while argparse parses them: a value out of range is
a usage error naming the option (exit 2) before any work starts."""

from __future__ import annotations

import argparse
from collections.abc import Callable

# numpy's legacy generator and scikit-learn take 32-bit seeds.
SEED_MAX = 2**32 - 1


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `minimum` to `maximum` (None: no upper bound).

    >>> whole_number(1)("3"), whole_number(0, 9)("9")
    (3, 9)
    >>> whole_number(0, 9)("10")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: '10' must be from 0 to 9
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
            raise argparse.ArgumentTypeError(f"{text!r} must be {bound}")
        return value

    return parse


seed = whole_number(0, SEED_MAX)
