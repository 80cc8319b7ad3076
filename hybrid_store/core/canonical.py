"""Canonical JSON (RFC 8785, JCS) for the value domain of committed fields.

Committed values are drawn from a small domain: ``None``, ``int`` (|n| < 2**53), ``str`` (valid
Unicode, NFC) and lists of these. For that domain RFC 8785 output equals Python's ``json.dumps`` with
sorted keys, no whitespace and no ASCII escaping; the fast path below uses it and the test suite
checks it against the ``rfc8785`` reference implementation on generated values.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1  # beyond this JCS (IEEE-754 doubles) cannot represent integers exactly

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False).encode


def check_domain(value: Any, path: str = "value") -> None:
    """Raise ``ValueError`` if ``value`` is outside the committed value domain."""
    kind = type(value)
    if kind is str and value.isascii():  # ASCII text is valid Unicode and in NFC (a bulk verification's
        return  # every field passes here: the general checks below cost more than hashing the field)
    if kind is list:
        for i, item in enumerate(value):
            if type(item) is not str or not item.isascii():
                check_domain(item, f"{path}[{i}]")
        return
    if value is None or isinstance(value, str):
        if isinstance(value, str):
            check_text(value, path)
        return
    if isinstance(value, bool):
        raise ValueError(f"{path}: booleans are not committed values")
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError(f"{path}: integer outside +/-2**53")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_domain(item, f"{path}[{i}]")
        return
    raise ValueError(f"{path}: {type(value).__name__} is not a committed value type")


def check_text(text: str, path: str = "value") -> None:
    """Valid Unicode (no lone surrogates) in NFC."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{path}: invalid Unicode (lone surrogate at index {exc.start})") from None
    if not unicodedata.is_normalized("NFC", text):
        raise ValueError(f"{path}: text is not in Unicode NFC")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON of a committed value, UTF-8 encoded. Callers validate the domain
    (``check_domain``) where values come from outside; records built by ``records`` already are."""
    return _text(value).encode("utf-8")


def _text(value: Any) -> str:
    # the committed domain's exact types directly (setting up the general encoder costs more than
    # encoding a short value); anything else, including subclasses, through ``_dumps``
    kind = type(value)
    if kind is str:
        return _string(value)
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    if kind is list or kind is tuple:  # tuples encode as arrays
        return "[" + ",".join([_string(v) if type(v) is str else _text(v) for v in value]) + "]"
    return _dumps(value)


canonical_text = _text  # the same, as text (e.g. for a JSON column)


_string = json.encoder.encode_basestring  # what _dumps uses for str with ensure_ascii=False
