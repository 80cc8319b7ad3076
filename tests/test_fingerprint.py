"""A legacy document's fingerprint is stored and compared on every later sync, sweep and three-way
check: if its definition drifted, every document of the book would look changed in the legacy
system. The vectors below were computed by the first released definition (e76a5f3)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from migration_tools.legacy.layout import load_layout
from migration_tools.legacy.mapping import LegacyRows, fingerprint

LAYOUT, _ = load_layout("landreg-export")
DOC = {"doc_id": "D-1", "instrument_number": "2001-0000001", "doc_type": "DEED", "recorded_at": "2001-03-02 15:30",
       "book": "7001", "page": "12", "consideration": "350000.00", "document_sha256": "ab" * 32,
       "legal_description": "LOT 5  BLOCK 100.01"}  # fmt: skip

VECTORS = [
    ("95a9e23310cc51840b721b509e903d5565f80bf7cf06b4efd4768ab5bbcf1830", LegacyRows(
        "D-1", DOC, parties=[{"doc_id": "D-1", "role": "grantor", "name": "SMITH, JOHN Q JR", "seq": 1}],
        parcels=[{"doc_id": "D-1", "municipality_code": "0223", "block": "100.01", "lot": "5", "qualifier": None,
                  "seq": 1}])),
    ("2fcd9a541b7cf4f235fb08c2b512cc9abf605820a6e369dceac41218874edc73", LegacyRows(  # several rows, unsorted, gaps
        "D-2", {"doc_id": "D-2", "instrument_number": "2001-0000002", "doc_type": " mortgage ", "recorded_at": None,
                "book": "", "page": None, "consideration": None, "document_sha256": None, "legal_description": "MARÍA"},
        parties=[{"doc_id": "D-2", "role": "grantee", "name": "VALLEY NATIONAL BANK", "seq": 2},
                 {"doc_id": "D-2", "role": "grantor", "name": "GARCIA, LUIS", "seq": 1},
                 {"doc_id": "D-2", "role": "grantor", "name": None, "seq": 3}],
        parcels=[{"doc_id": "D-2", "municipality_code": "0223", "block": "7", "lot": "2", "qualifier": "C0002", "seq": 2},
                 {"doc_id": "D-2", "municipality_code": "0223", "block": "7", "lot": "1", "qualifier": None, "seq": 1}],
        references=[{"doc_id": "D-2", "kind": "corrects", "ref_doc_id": "D-1"}])),
    ("a34a4a17baec469955072aab5e4e46b70a883df4147a1e5af53824be9c011614", LegacyRows(  # typed columns
        "D-3", {"doc_id": "D-3", "instrument_number": 20010000003, "doc_type": "DEED",
                "recorded_at": datetime(2001, 4, 11, 16, 0), "book": 7001, "page": True,
                "consideration": Decimal("1.50"), "document_sha256": b"\xffraw", "legal_description": date(2001, 4, 11)},
        parties=[{"doc_id": "D-3", "role": "grantor", "name": "A", "seq": 1.5}])),
    ("044ceec5f7f9c45166247c984a73636f7178fe243a61486a3a0aaeb4a0f64d67", LegacyRows(  # rows without their document
        "D-4", None, parties=[{"doc_id": "D-4", "role": "grantee", "name": "ORPHAN", "seq": 1}])),
]  # fmt: skip


def test_fingerprints_keep_their_first_definition() -> None:
    assert [fingerprint(LAYOUT, rows).hex() for _, rows in VECTORS] == [want for want, _ in VECTORS]


values = st.one_of(st.none(), st.text(max_size=6), st.integers(-5, 10**12), st.booleans(),
                   st.decimals(allow_nan=False, allow_infinity=False, places=2))  # fmt: skip
party_rows = st.lists(st.fixed_dictionaries({"doc_id": st.just("D-9"), "role": st.sampled_from(["grantor", "grantee"]),
                                             "name": values, "seq": values}), max_size=4)  # fmt: skip


@given(parties=party_rows, order=st.randoms(use_true_random=False), column=st.sampled_from(sorted(DOC)))
def test_row_order_does_not_matter_and_every_read_column_does(parties, order, column) -> None:
    rows = LegacyRows("D-1", DOC, parties=parties)
    shuffled = list(parties)
    order.shuffle(shuffled)
    assert fingerprint(LAYOUT, LegacyRows("D-1", DOC, parties=shuffled)) == fingerprint(LAYOUT, rows)
    edited = {**DOC, column: f"{DOC[column]} "}  # even trailing whitespace: the fingerprint sees rows as stored
    assert fingerprint(LAYOUT, LegacyRows("D-1", edited, parties=parties)) != fingerprint(LAYOUT, rows)
