"""The canonical JSON fast path equals RFC 8785 (the rfc8785 reference) on the committed value domain."""

from __future__ import annotations

import unicodedata

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from hybrid_store.core.canonical import MAX_SAFE_INTEGER, canonical_json, check_domain

nfc_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40).map(
    lambda s: unicodedata.normalize("NFC", s)
)
scalars = st.none() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | nfc_text
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5), max_leaves=20)


@given(values)
def test_fast_path_is_rfc8785(value):
    check_domain(value)
    assert canonical_json(value) == rfc8785.dumps(value)


@given(st.lists(nfc_text, max_size=5))
def test_tuples_and_lists_encode_alike(items):
    assert canonical_json(tuple(items)) == canonical_json(list(items))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1.5, "float is not a committed value type"),
        (True, "booleans are not committed values"),
        (2**53, "integer outside"),
        ("e\u0301", "not in Unicode NFC"),
        ("\ud800", "lone surrogate"),
        ({"a": 1}, "dict is not a committed value type"),
        (["ok", 1.0], r"value\[1\]: float"),
    ],
)
def test_values_outside_the_domain_are_refused(value, message):
    with pytest.raises(ValueError, match=message):
        check_domain(value)


def test_control_characters_are_escaped_as_jcs_does():
    text = "line\nbreak\ttab\x01"
    assert canonical_json(text) == rfc8785.dumps(text) == b'"line\\nbreak\\ttab\\u0001"'
