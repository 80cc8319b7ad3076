"""A record's standing from its revocation on the chain: superseded (naming its successor),
deleted in the legacy system, or revoked for any other reason (not valid, as before)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hybrid_store.core import standing

commitments = st.binary(min_size=32, max_size=32)


@given(commitments, st.integers(1, 2**40))
def test_a_superseded_record_names_its_successor_and_no_other(successor, block):
    now = standing.standing_of(block, standing.revocation_reason(successor))
    assert now.kind == standing.SUPERSEDED and now.at_block == block and not now.current
    assert now.names_successor(successor)
    other = bytes([successor[0] ^ 1]) + successor[1:]
    assert not now.names_successor(other)


@given(st.integers(1, 2**40))
def test_a_deleted_record_says_so(block):
    assert standing.standing_of(block, standing.revocation_reason(None)).kind == standing.DELETED


@given(st.binary(min_size=0, max_size=40), st.integers(1, 2**40))
def test_any_other_reason_is_a_plain_revocation(reason, block):
    if reason == standing.DELETED_IN_LEGACY or (len(reason) == 32 and reason[:4] == standing.SUPERSEDED_TAG):
        return
    assert standing.standing_of(block, reason).kind == standing.REVOKED
    assert standing.standing_of(block, None).kind == standing.REVOKED  # a node without the event


def test_a_record_never_revoked_is_current():
    assert standing.standing_of(0, None).current and standing.standing_of(0, b"LRS1" + bytes(28)).current
