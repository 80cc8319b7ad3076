"""What an instrument is found by, in the order a clerk reads a result list: ``instrument_terms``
(revision 0022), one row per term of an instrument with the instrument's recording time.

A term is a word of one of its parties' names as the grantor-grantee index folds it (``JOHN``,
``SMITH``, ``JR``: the words of ``party_name_keys``), or a place its parcels lie in (``@0223``; a
folded word is ``[0-9A-Z]+``, so a place never reads as a word). The table's key is (term,
recorded_at, instrument_id): each term's instruments in recording order, so a search for a common
name reads the newest 25 of its thousands by walking one term's instruments from the newest and
stopping at the page, instead of collecting every match to sort it.

Pure: no database. The words come from the keys, so a folding rule that changes rebuilds both.
"""

from __future__ import annotations

from collections.abc import Iterable

#: what marks a place's term apart from a name's words
PLACE = "@"


def place_term(code: str) -> str:
    """The term of a place (a municipality's code, a borough's)."""
    return PLACE + code


def terms_of(keys: Iterable[str], places: Iterable[str]) -> set[str]:
    """One instrument's terms: each word of its parties' folded names (``keys`` as
    ``NameRules.key`` gives them) and each place its parcels lie in."""
    return {word for key in keys for word in key.split()} | {place_term(code) for code in places}


def prefix_range(prefix: str) -> tuple[str, str]:
    """The terms that begin with ``prefix`` lie in [low, high) in byte order (the table's collation)."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)
