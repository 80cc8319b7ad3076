"""Numbers as a clerk types them: ASCII digits, nothing else. One rule for every reader of numbers
(the API, the web desk, the legacy files and databases), with one wording for its refusals.

Python's own parsers read far more than anyone types into a deed: ``int()``, ``Decimal()``,
``str.isdigit()`` and ``strptime()`` also take other scripts' digits (``'١٠٠٠'``, ``'１０００'``),
``'1_000'``, ``' 1000'``, ``'1000\\n'``, ``'+1000'`` and ``'1e3'``, and ``Decimal`` takes
``'NaN'`` and ``'Infinity'``. Each would be recorded as a number nobody wrote, so a number is
checked against these patterns before any of them parses it.
"""

from __future__ import annotations

import re

DIGITS = re.compile(r"[0-9]+")
#: dollars, optionally with a fraction ("$" and thousands separators are a reader's to drop first)
AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def is_digits(text: str) -> bool:
    return DIGITS.fullmatch(text) is not None


def is_amount(text: str) -> bool:
    return AMOUNT.fullmatch(text) is not None


def not_a_number(text: object) -> str:
    """How a refused whole number is described (the reader adds where it was)."""
    return f"{text!r} is not a number"


def not_an_amount(text: object) -> str:
    """How a refused amount is described (the reader adds where it was)."""
    return f"{text!r} is not an amount in dollars"
