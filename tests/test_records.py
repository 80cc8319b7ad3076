"""Validation of instruments: every rule names the field and the rule; good input normalises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hybrid_store.core.records import InstrumentRecord, build_record
from hybrid_store.errors import InvalidInstrument
from hybrid_store.intake import validate
from hybrid_store.jurisdictions import get_profile
from hybrid_store.jurisdictions.bergen import parcel_key
from tests.conftest import NOW, deed

BERGEN = get_profile("bergen")


def errors_of(data, now=NOW):
    with pytest.raises(InvalidInstrument) as exc:
        validate(data, profile=BERGEN, now=now)
    return {(e.field, e.rule) for e in exc.value.errors}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({k: v for k, v in deed().items() if k != "grantees"}, ("grantees", "missing")),
        ({k: v for k, v in deed().items() if k != "document_digest"}, ("document_digest", "missing")),
        (deed(parcels=[{"municipality_code": "0299", "block": "1", "lot": "1"}]),
         ("parcels[0].municipality_code", "unknown_municipality")),
        (deed(parcels=[{"municipality_code": "223", "block": "1", "lot": "1"}]),
         ("parcels[0].municipality_code", "string_too_short")),
        (deed(parcels=[{"municipality_code": "0223", "block": "0", "lot": "1"}]), ("parcels[0].block", "block_lot_format")),
        (deed(parcels=[{"municipality_code": "0223", "block": "1", "lot": "5/6"}]), ("parcels[0].lot", "block_lot_format")),
        (deed(parcels=[{"municipality_code": "0223", "block": "1", "lot": "1", "qualifier": "C-1"}]),
         ("parcels[0].qualifier", "qualifier_format")),
        (deed(parcels=[]), ("parcels", "too_short")),
        (deed(parcels=[{"municipality_code": "0223", "block": "1", "lot": "1"}] * 2), ("(instrument)", "duplicate_parcel")),
        (deed(recorded_at="2026-02-30T10:00:00Z"), ("recorded_at", "datetime_from_date_parsing")),
        (deed(recorded_at="2026-01-05T10:00:00"), ("recorded_at", "timezone_aware")),
        (deed(recorded_at="1650-01-05T10:00:00Z"), ("recorded_at", "before_earliest")),
        (deed(recorded_at=(NOW + timedelta(days=1)).isoformat()), ("recorded_at", "in_future")),
        (deed(consideration="-1.00"), ("consideration", "greater_than_equal")),
        (deed(consideration="12.345"), ("consideration", "decimal_max_places")),
        (deed(consideration="100000000000.00"), ("consideration", "less_than_equal")),
        (deed(consideration="a lot"), ("consideration", "amount_format")),
        (deed(legal_description="x" * 20_001), ("legal_description", "string_too_long")),
        (deed(grantors=["x" * 201]), ("grantors[0]", "string_too_long")),
        (deed(grantors=["   "]), ("grantors[0]", "blank")),
        (deed(grantors=["JOHN\x00SMITH"]), ("grantors[0]", "control_character")),
        (deed(grantors=["JOHN \ud800 SMITH"]), ("grantors[0]", "string_unicode")),
        (deed(grantees=["MAR\ufffdA"]), ("grantees[0]", "replacement_character")),
        (deed(legal_description="bad \x07 bell"), ("legal_description", "control_character")),
        (deed(grantors=["A"] * 51), ("grantors", "too_long")),
        (deed(doc_type="QUITCLAIM"), ("doc_type", "enum")),
        (deed(document_digest="ABC"), ("document_digest", "sha256_format")),
        (deed(instrument_number="2026/1"), ("instrument_number", "instrument_number_format")),
        (deed(book="12", page="A1"), ("page", "book_page_format")),
        (deed(owner="ME"), ("owner", "extra_forbidden")),
        (deed(parcels=[{"municipality_code": "0223", "block": "1", "lot": "1", "unit": "2"}]),
         ("parcels[0].unit", "extra_forbidden")),
        (deed(instrument_number="2026-0000009", corrects="2026-0000009"), ("(instrument)", "corrects_itself")),
    ],
)  # fmt: skip
def test_bad_input_names_the_field_and_the_rule(data, expected):
    assert expected in errors_of(data)


def test_all_errors_are_reported_at_once():
    found = errors_of(
        deed(consideration="-5", grantors=[], parcels=[{"municipality_code": "9999", "block": "1", "lot": "1"}])
    )
    assert {f for f, _ in found} == {"consideration", "grantors", "parcels[0].municipality_code"}


def test_good_input_is_normalised():
    inst = validate(
        deed(
            grantors=["  John   Q.\tSmith "],
            grantees=["MARI\u0301A GARCI\u0301A"],  # decomposed accents
            parcels=[{"municipality_code": "0223", "block": "0100.01", "lot": "005", "qualifier": "c0001"}],
            recorded_at="2026-01-05T10:00:00.999-05:00",
            legal_description="line one   \r\nline two\r\n\r\n",
        ),
        profile=BERGEN,
        now=NOW,
    )
    assert inst.grantors == ["John Q. Smith"]
    assert inst.grantees == ["MARÍA GARCÍA"]  # NFC
    assert inst.parcels[0].key == "0223_100.01_5_C0001"
    assert inst.recorded_at == datetime(2026, 1, 5, 15, 0, 0, tzinfo=UTC)
    assert inst.legal_description == "line one\nline two"
    assert inst.consideration_cents == 35_000_000


def test_parcel_keys_round_trip():
    assert parcel_key("0223", "100.01", "5", "C0001") == "0223_100.01_5_C0001"
    assert BERGEN.parse_parcel_key("0223_100.01_5_C0001").key == "0223_100.01_5_C0001"
    assert BERGEN.parse_parcel_key("0201_3_4").qualifier == ""
    for bad in ("0223-100-5", "0223_100_5_C0001_X", "0299_1_1"):  # 0299 is no Bergen municipality
        with pytest.raises(ValueError):
            BERGEN.parse_parcel_key(bad) if bad != "0299_1_1" else validate(
                deed(parcels=[BERGEN.key_columns(bad)]), profile=BERGEN)  # fmt: skip


@pytest.mark.parametrize(
    ("parcels", "prev", "error"),
    [
        (("0223_1_1",), (), "one link per parcel"),
        (("0223_1_1",), (("0223_1_2", None),), "one link per parcel"),
        (("0223_1_1", "0223_1_2"), (("0223_1_2", None), ("0223_1_1", None)), "one link per parcel"),
        (("0223_1_2", "0223_1_1"), (("0223_1_2", None), ("0223_1_1", None)), "distinct and sorted"),
        (("0223_1_1", "0223_1_1"), (("0223_1_1", None), ("0223_1_1", None)), "distinct and sorted"),
    ],
)
def test_records_refuse_unsorted_parcels_and_inconsistent_history_links(parcels, prev, error):
    with pytest.raises(ValueError, match=error):
        InstrumentRecord("1", "DEED", "2026-01-01T00:00:00Z", "1", "1", ("A",), ("B",), None, "", "a" * 64,
                         parcels, None, prev)  # fmt: skip


def test_records_refuse_inconsistent_history_links():
    record = build_record(
        instrument_number="1", doc_type="DEED", recorded_at=NOW, book="1", page="1", grantors=["A"], grantees=["B"],
        consideration_cents=None, legal_description="", document_digest="a" * 64, parcels=["0223_1_2", "0223_1_1"],
        corrects=None, prev={},
    )  # fmt: skip
    assert record.parcels == ("0223_1_1", "0223_1_2")
    assert record.prev == (("0223_1_1", None), ("0223_1_2", None))
    assert record.recorded_at == "2026-11-01T15:00:00Z"


def test_the_packaged_municipalities_are_bergens_70():
    import csv

    from tests.conftest import REPO

    reference = REPO.parent / "shared" / "reference" / "bergen_municipalities.csv"
    codes = BERGEN.place_codes()
    assert len(codes) == 70 and "0223" in codes and "0270" in codes
    if reference.exists():  # the product ships its own copy; it must not drift from the reference
        with reference.open() as f:
            assert {row["nj_muni_code"] for row in csv.DictReader(f)} == codes


def test_the_control_character_check_is_unicodes_category_cc_exactly():
    """The fast check (two ranges) refuses exactly Unicode's control characters, over every code point."""
    import unicodedata

    from hybrid_store import intake

    for code in range(0x110000):
        ch = chr(code)
        is_cc = unicodedata.category(ch) == "Cc"
        assert bool(intake.CONTROL.search(ch)) == is_cc, hex(code)
        assert bool(intake.CONTROL_BUT_LINES.search(ch)) == (is_cc and ch not in "\n\t"), hex(code)
