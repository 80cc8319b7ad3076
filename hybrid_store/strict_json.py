"""JSON from outside, parsed strictly and within bounds: the one parser for request bodies,
uploaded bundles and receipts, trust roots and CLI inputs; and the bounds every other document
landreg parses whole is held to (``read_file``; ``check_toml_bounds`` for layout files).

* **Bounded before parsing.** Size and nesting depth are checked by a cheap scan before the
  parser runs: chain libraries raise Python's recursion limit to 100,000 at import, and then a
  200 KB body of ``[[[[…`` overflows the C stack inside ``json.loads`` (a segfault, not an
  exception). No document landreg reads is nested more than a few levels.
* **One meaning per document.** A member given twice, ``NaN`` and ``Infinity`` are errors, not
  "last one wins" or a float that has no JSON spelling.
"""

from __future__ import annotations

import json
import os
import re
from itertools import accumulate
from typing import Any

from hybrid_store.errors import LandregError

#: deeper than any document landreg reads (a bundle is 4 levels, a trust root 5)
MAX_DEPTH = 32
#: a bundle, a receipt or a trust root is a few KB
MAX_DOCUMENT_BYTES = 1_000_000

# the only bytes that matter for nesting: brackets and quotes, once backslash escapes are taken out
_ESCAPE = re.compile(rb"\\.", re.S)
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}.__getitem__
_PARENS = bytes.maketrans(b"[{]}", b"(())")


class InvalidJSON(LandregError, ValueError):
    """Input that is not one strict, bounded JSON document; the message says why."""


def check_bounds(raw: bytes, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_DOCUMENT_BYTES) -> None:
    """Raise ``InvalidJSON`` if ``raw`` is longer than ``max_bytes`` or nests deeper than ``max_depth``
    (counting ``[`` and ``{`` outside strings, ``]`` and ``}`` back down). Linear, and every step a
    C loop: an escape pair (``\\`` and the byte after it, inside a string or not) never counts, a
    quote opens or closes a string, and what lies outside the strings is the brackets that nest. A
    bulk verification scans every bundle with it, and a Python loop over the tokens was most of a
    bundle's time (``tests/test_bounded_input.py`` holds it to that loop, kept there as the reference)."""
    if len(raw) > max_bytes:
        raise InvalidJSON(f"larger than {max_bytes} bytes")
    unescaped = _ESCAPE.sub(b"", raw) if b"\\" in raw else raw
    structure = unescaped.translate(None, _NOT_STRUCTURE)
    # what lies outside the strings: if taking out adjacent quote pairs, from the left, leaves no
    # quote, each pair was a string (the first quote could only pair with the second, and so on)
    # with no bracket in it; else split at the quotes, where the even pieces lie outside strings
    brackets = structure.replace(b'""', b"")
    if b'"' in brackets:
        brackets = b"".join(structure.split(b'"')[::2])  # (an unclosed string's tail is an odd piece)
    # taking out the innermost pairs lowers the depth by one at most, and what is left nests no
    # deeper than it has openers: once passes + openers left fit, the document does
    pairs = brackets.translate(_PARENS)
    for passes in range(max_depth + 1):
        if pairs.count(b"(") <= max_depth - passes:
            return
        pairs = pairs.replace(b"()", b"")
    if max(accumulate(map(_STEP, brackets))) > max_depth:
        raise InvalidJSON(f"nested deeper than {max_depth} levels")


_FIRST_READ = 64 * 1024


def read_file(path: str | os.PathLike[str], *, max_bytes: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The bytes of ``path``, or ``InvalidJSON`` if it holds more than ``max_bytes``: at most one
    byte more than the bound is ever read, so a huge file costs nothing. ``OSError`` as ``open``."""
    # the file's descriptor itself, read a bundle's size at a time: a folder of many small bundles
    # is read here, and Python's file objects (and a buffer of ``max_bytes`` asked for at once)
    # cost more than reading a file does
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks, size = [], 0
        while size <= max_bytes and (chunk := os.read(fd, min(max_bytes + 1 - size, _FIRST_READ))):
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if len(raw) > max_bytes:
        raise InvalidJSON(f"larger than {max_bytes} bytes")
    return raw


# TOML nests through brackets and braces, and through dotted keys (``a.b.c = 1``, which tomllib
# takes time quadratic in the number of parts to build); strings and comments hold neither. One
# pass, no backtracking: the alternatives of each string pattern start with different characters.
_TOML_TOKEN = re.compile(r"""\"\"\"|'''|["'#\[\]{}.=,\n]""")
_TOML_STRING = {
    '"""': re.compile(r'(?:[^"\\]|\\.|"(?!""))*"""(?:"{0,2})', re.S),  # a closing may carry 1-2 more quotes
    "'''": re.compile(r"(?:[^']|'(?!''))*'''(?:'{0,2})", re.S),
    '"': re.compile(r'(?:[^"\\\n]|\\.)*"'),
    "'": re.compile(r"[^'\n]*'"),
}


def check_toml_bounds(text: str, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise ``InvalidJSON`` if TOML ``text`` nests arrays and inline tables deeper than
    ``max_depth`` or has a dotted key of more than ``max_depth`` parts. Linear; a string that does
    not end ends the check, as it ends the parser."""
    depth = dots = 0
    at = 0
    while (token := _TOML_TOKEN.search(text, at)) is not None:
        kind, at = token.group(), token.end()
        if kind in _TOML_STRING:
            string = _TOML_STRING[kind].match(text, at)
            if string is None:
                return
            at = string.end()
        elif kind == "#":
            at = text.find("\n", at)
            if at < 0:
                return
        elif kind == ".":
            dots += 1
            if dots >= max_depth:
                raise InvalidJSON(f"has a dotted key of more than {max_depth} parts")
        else:
            dots = 0
            if kind in "[{":
                depth += 1
                if depth > max_depth:
                    raise InvalidJSON(f"nested deeper than {max_depth} levels")
            elif kind in "]}":
                depth = max(0, depth - 1)


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"member {key!r} appears twice")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


#: one decoder for every document (``json.loads`` with hooks builds a new one per call)
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_members, parse_constant=_no_constants)


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """Parse one strict JSON document within bounds, or raise ``InvalidJSON`` saying why."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    check_bounds(data, max_depth=max_depth, max_bytes=max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJSON(f"not UTF-8 text (byte {exc.start})") from None
    try:
        return _DECODER.decode(text)
    except RecursionError:  # unreachable within MAX_DEPTH; kept so it can never escape as a crash
        raise InvalidJSON(f"nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise InvalidJSON(f"not JSON: {where_it_breaks(exc)}") from None
    except ValueError as exc:  # our own hooks' reasons: a member twice, NaN or Infinity
        raise InvalidJSON(f"not JSON: {exc}") from None


def where_it_breaks(exc: json.JSONDecodeError) -> str:
    """Where a text stops being JSON, in words: the parser's own phrases ("Expecting value: line 1
    column 1 (char 0)") name its grammar, not what a person can look for in the file."""
    if not exc.doc.strip():
        return "it is empty"
    if exc.pos == len(exc.doc.rstrip()) or exc.pos >= len(exc.doc):
        return "it ends before the JSON is complete (cut short?)"
    if exc.lineno == 1 and exc.colno == 1:
        return "it does not begin as JSON does, with { or ["
    return f"it stops being JSON at line {exc.lineno:,}, character {exc.colno:,}"


#: Python's default; chain libraries (py-evm, py_ecc) raise the limit to 100,000 at import, past
#: what the C stack holds. Entry points put it back after importing them (defence in depth: the
#: depth bound above already keeps parsing shallow).
SAFE_RECURSION_LIMIT = 5_000


def restore_recursion_limit() -> None:
    import sys

    if sys.getrecursionlimit() > SAFE_RECURSION_LIMIT:
        sys.setrecursionlimit(SAFE_RECURSION_LIMIT)
