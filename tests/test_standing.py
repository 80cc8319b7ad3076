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


# --- a supersession is shown by the successor's history link, never by the tag alone -----------------
def hexed(b: bytes) -> str:
    return "0x" + b.hex()


@given(commitments, commitments, st.lists(st.sampled_from(["0223_1_1", "0223_1_2", "0223_2_9"]), min_size=1,
                                          max_size=3, unique=True))  # fmt: skip
def test_a_successor_whose_history_link_names_the_record_on_each_parcel_shows_it(old, new, parcels):
    if old == new:
        return
    prev = [[key, hexed(old)] for key in parcels]
    assert standing.supersession_problem(old, parcels, new[:28], new, prev) == ""
    # a later record between them on any one parcel: the link names that one, and nothing is shown
    later = [[key, hexed(bytes(32)) if i == 0 else link] for i, (key, link) in enumerate(prev)]
    assert "does not name this record on parcel" in standing.supersession_problem(old, parcels, new[:28], new, later)
    # a parcel the successor dropped is a parcel on which nothing shows it
    assert "does not name this record" in standing.supersession_problem(old, parcels, new[:28], new, prev[1:] or [])


@given(commitments, commitments, commitments)
def test_the_revocation_must_name_the_successor_given(old, new, named):
    prev = [["0223_1_1", hexed(old)]]
    problem = standing.supersession_problem(old, ["0223_1_1"], named[:28], new, prev)
    assert (problem == "") == (named[:28] == new[:28] and old != new)


def test_what_cannot_be_checked_is_never_shown():
    old, new = b"\x01" * 32, b"\x02" * 32
    prev = [["0223_1_1", hexed(old)]]
    assert "redacted" in standing.supersession_problem(old, None, new, new, prev)  # this record's parcels
    assert "redacted" in standing.supersession_problem(old, ["0223_1_1"], new, new, None)  # the link
    assert "this very record" in standing.supersession_problem(old, ["0223_1_1"], old, old, [["0223_1_1", hexed(old)]])
    assert standing.supersession_problem(old, ["0223_1_1"], new, new, [["0223_1_1"], "junk", 3]) != ""


def test_a_deletion_says_whose_word_it_is():
    said = standing.standing_of(7, standing.DELETED_IN_LEGACY).describe()
    assert "the registry says" in said and "not provable from the chain" in said
