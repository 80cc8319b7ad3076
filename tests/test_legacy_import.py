"""Loading legacy books: SR1A (both widths, both date orders), the multi-table CSV export with
messy data, the synthetic book; bad records quarantined with their reasons, never fatal."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from hybrid_store.db.models import Commitment, Instrument, InstrumentTerm, OutboxEntry
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from migration_tools.legacy import csv_export, sr1a
from migration_tools.legacy.importer import import_records, synthetic_source
from migration_tools.synthetic import BergenBook
from tests.conftest import NOW, deed


def count(db, model) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def quarantine_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def deeds(n: int, seed: int = 3) -> list[dict]:
    """Deeds of the synthetic book whose names an 8-bit SR1A file can hold."""

    def latin1(item: dict) -> bool:
        try:
            "".join(item["grantors"] + item["grantees"]).encode("latin-1")
        except UnicodeEncodeError:
            return False
        return True

    out = [i for i in BergenBook(n * 8, seed=seed) if i["doc_type"] == "DEED" and latin1(i)][:n]
    assert len(out) == n
    return out


# --- SR1A -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("width", "order"), [(663, "MMDDYY"), (662, "MMDDYY"), (663, "YYMMDD")])
def test_sr1a_records_load_with_their_fields(db, tmp_path, width, order):
    records = deeds(40)
    path = tmp_path / "sr1a.txt"
    path.write_text("\n".join(sr1a.format_line(r, width=width, date_order=order) for r in records) + "\n", "latin-1")
    report = import_records(db, sr1a.read(path, date_order=order, pivot=30), name="sr1a", quarantine=tmp_path / "q.csv")
    assert (report.records, report.loaded, report.quarantined) == (40, 40, 0)
    first = records[0]
    with db.read() as s:
        inst = s.scalar(
            select(Instrument).where(Instrument.instrument_number == f"SR1A-{first['book']}-{first['page']}")
        )
        assert inst is not None and inst.doc_type == "DEED" and inst.source == "legacy"
        assert inst.names("grantor") == [first["grantors"][0][:35]]
        assert inst.consideration_cents == int(first["consideration"]) * 100
        keys = [link.parcel.parcel_key for link in inst.parcel_links]
        p = first["parcels"][0]
        assert keys[0] == "_".join(x for x in (p["municipality_code"], p["block"], p["lot"], p["qualifier"]) if x)
        assert len(keys) == len(first["parcels"][:6])
        assert inst.recorded_at.date() == first["recorded_at"].astimezone(sr1a.EASTERN).date()
        assert s.scalar(select(func.count()).select_from(Commitment)) == 0  # waiting for a migration stage
        assert s.scalar(select(func.count()).select_from(OutboxEntry)) == 0


def test_sr1a_bad_lines_are_quarantined_with_line_and_column(db, tmp_path):
    good = [sr1a.format_line(r) for r in deeds(5)]
    bad_date = good[0][:344] + "023024" + good[0][350:]  # 02/30/24: no such day
    bad_price = good[1][:37] + "12AB56789" + good[1][46:]
    short = good[2][:600]
    unknown_muni = "99" + good[3][2:]
    lines = [*good, bad_date, bad_price, short, unknown_muni, ""]
    path = tmp_path / "sr1a.txt"
    path.write_text("\n".join(lines) + "\n", "latin-1")
    report = import_records(
        db, sr1a.read(path, date_order="MMDDYY", pivot=30), name="sr1a", quarantine=tmp_path / "q.csv"
    )
    assert report.records == 9 and report.loaded + report.quarantined == report.records
    assert (report.loaded, report.quarantined) == (5, 4)
    rows = {r["where"]: r for r in quarantine_rows(tmp_path / "q.csv")}
    assert rows["line 6"]["column"] == "345-350" and "'023024' is not a date in MMDDYY form" in rows["line 6"]["reason"]
    assert rows["line 7"]["column"] == "38-46"
    assert "600 characters" in rows["line 8"]["reason"]
    assert (
        rows["line 9"]["field"] == "parcels[0].municipality_code" and "unknown_municipality" in rows["line 9"]["reason"]
    )


def test_sr1a_date_order_is_never_guessed(tmp_path):
    line = sr1a.format_line(deeds(1)[0] | {"recorded_at": datetime(2024, 12, 31, 15, tzinfo=UTC)}, date_order="MMDDYY")
    assert sr1a.parse_line(line, 1, date_order="MMDDYY", pivot=30).data is not None
    wrong = sr1a.parse_line(line, 1, date_order="YYMMDD", pivot=30)  # 12/31/24 read as 2012, month 31
    assert wrong.data is None and "not a date in YYMMDD form" in wrong.problem


# --- multi-table CSV --------------------------------------------------------------------------------
def write_export(folder: Path, documents, parties, parcels, xrefs) -> None:
    folder.mkdir()
    for name, header, rows in (
        ("documents.csv", ["doc_id", "instrument_number", "doc_type", "book", "page", "recorded_at", "consideration",
                           "legal_description", "document_sha256"], documents),
        ("parties.csv", ["doc_id", "role", "seq", "name", "address"], parties),
        ("parcels.csv", ["doc_id", "seq", "municipality_code", "block", "lot", "qualifier"], parcels),
        ("xrefs.csv", ["doc_id", "ref_doc_id", "kind"], xrefs),
    ):  # fmt: skip
        with open(folder / name, "w", encoding="utf-8-sig", newline="") as f:  # with a byte-order mark
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)


def test_csv_export_with_messy_real_world_data(db, tmp_path):
    sha = "ab" * 32
    documents = [
        ["D1", "1998-0001234", "Deed", "7301", "0112", "1998-03-02 10:15:00", "$350,000.00", "Lot 5 in Block 100.01", sha],
        ["D2", "1998-0001235", "MTG", "20411", "7", "03/02/1998 10:20", "280000", "", sha],
        ["D3", "1999-0000099", "CORRECTIVE DEED", "7310", "4", "1999-01-05", "1", "Lot 5, not 6.", sha],
        ["D4", "1999-0000100", "Deed", "7311", "9", "the day after", "10", "", sha],
        ["D5", "1999-0000101", "GIFT OF LAND", "7311", "10", "1999-02-01", "0", "", sha],
    ]  # fmt: skip
    parties = [
        ["D1", "GRANTOR", "1", "SMITH,  JOHN Q., JR.", ""],
        ["D1", "GRANTOR", "2", "SMITH, MARY", ""],
        ["D1", "GRANTEE", "1", "GARCÍA,\tMARÍA", "12 MAIN ST"],
        ["D2", "1", "1", "GARCÍA, MARÍA", ""],
        ["D2", "2", "1", "WELLS FARGO BANK, N.A.", ""],
        ["D3", "GRANTOR", "1", "SMITH, JOHN Q., JR.", ""],
        ["D3", "GRANTEE", "1", "ОLGA\u00a0PETROVA", ""],  # Cyrillic О in an otherwise Latin name, a NBSP
        ["D4", "GRANTOR", "1", "A", ""], ["D4", "GRANTEE", "1", "B", ""],
        ["D5", "GRANTOR", "1", "A", ""], ["D5", "GRANTEE", "1", "B", ""],
        ["D9", "GRANTOR", "1", "NOBODY", ""],  # a party of a document that does not exist
    ]  # fmt: skip
    parcels = [
        ["D1", "1", "223", "100.01", "5", ""], ["D1", "2", "0223", "100.01", "6", ""],  # 3-digit code, 2 parcels
        ["D2", "1", "0223", "100.01", "5", ""], ["D3", "1", "0223", "100.01", "5", ""],
        ["D4", "1", "0223", "1", "1", ""], ["D5", "1", "0223", "1", "1", ""],
    ]  # fmt: skip
    write_export(tmp_path / "export", documents, parties, parcels, [["D3", "D1", "CORRECTS"]])
    report = import_records(db, csv_export.read(tmp_path / "export"), name="csv", quarantine=tmp_path / "q.csv")
    assert report.records == 6 and report.loaded + report.quarantined == report.records
    assert (report.loaded, report.quarantined) == (3, 3)
    reasons = {r["where"]: r for r in quarantine_rows(tmp_path / "q.csv")}
    assert "party of unknown document 'D9'" in reasons["parties.csv row 13"]["reason"]
    assert reasons["documents.csv row 5 (doc_id D4)"]["column"] == "recorded_at"
    assert "unknown document type 'GIFT OF LAND'" in reasons["documents.csv row 6 (doc_id D5)"]["reason"]
    with db.read() as s:
        deed_ = s.scalar(select(Instrument).where(Instrument.instrument_number == "1998-0001234"))
        assert deed_.names("grantor") == ["JOHN Q. SMITH JR.", "MARY SMITH"]
        assert deed_.names("grantee") == ["MARÍA GARCÍA"]
        assert [link.parcel.parcel_key for link in deed_.parcel_links] == ["0223_100.01_5", "0223_100.01_6"]
        assert deed_.consideration_cents == 35_000_000 and (deed_.book, deed_.page) == ("7301", "112")
        mortgage = s.scalar(select(Instrument).where(Instrument.instrument_number == "1998-0001235"))
        assert mortgage.doc_type == "MORTGAGE" and mortgage.names("grantee") == ["WELLS FARGO BANK, N.A."]
        fix = s.scalar(select(Instrument).where(Instrument.instrument_number == "1999-0000099"))
        assert fix.corrects.instrument_number == "1998-0001234"
        assert fix.names("grantee") == ["OLGA PETROVA"] and fix.names("grantee")[0].isascii()


def test_person_names():
    from migration_tools.legacy.cleaning import fold_lookalikes, person_name

    assert person_name("DOE, JANE A.") == "JANE A. DOE"
    assert person_name("O'BRIEN, SEAN, III") == "SEAN O'BRIEN III"
    assert person_name("SMITH JR, JOHN") == "JOHN SMITH JR"  # the suffix on the last name's side
    assert person_name("  TAYLOR,\u00a0 EMILY ") == "EMILY TAYLOR"
    assert person_name("ACME HOLDINGS, LLC") == "ACME HOLDINGS, LLC"
    assert person_name("JPMORGAN CHASE BANK, N.A.") == "JPMORGAN CHASE BANK, N.A."
    assert person_name("JOHN SMITH") == "JOHN SMITH"
    assert fold_lookalikes("СОНЯ") == "СОНЯ"  # a Cyrillic name stays Cyrillic


# --- synthetic and bookkeeping ------------------------------------------------------------------------
def test_synthetic_book_loads_and_a_reload_changes_nothing(db, tmp_path):
    first = import_records(db, synthetic_source(300, 8), name="s", quarantine=tmp_path / "q1.csv")
    assert (first.loaded, first.quarantined) == (300, 0)
    again = import_records(db, synthetic_source(300, 8), name="s", quarantine=tmp_path / "q2.csv")
    assert (again.loaded, again.quarantined) == (0, 300)  # every record already recorded: quarantined, not doubled
    assert count(db, Instrument) == 300
    assert "already recorded" in quarantine_rows(tmp_path / "q2.csv")[0]["reason"]


@pytest.mark.postgres
def test_a_load_leaves_the_planner_statistics_of_what_it_wrote(pg_db, tmp_path):
    """Without them the planner guessed: a search's 25 rows were read by a parallel scan of every party."""
    import_records(pg_db, synthetic_source(300, 8), name="s", quarantine=tmp_path / "q.csv")
    with pg_db.read() as s:
        stats = {name: (tuples, visible) for name, tuples, visible in s.execute(text(
            "SELECT relname, reltuples, relallvisible FROM pg_class WHERE relname IN ('instruments', 'instrument_terms')"
        ))}  # fmt: skip
        terms = s.scalar(select(func.count()).select_from(InstrumentTerm))
    (instruments, instruments_visible), (terms_counted, terms_visible) = stats["instruments"], stats["instrument_terms"]
    assert (instruments, terms_counted) == (300, terms)  # analyzed: the planner knows the sizes
    assert instruments_visible > 0 and terms_visible > 0  # vacuumed: an index-only scan stays in the index


def test_a_filing_after_a_load_gets_a_fresh_number(db, tmp_path):
    loaded = [i | {"recorded_at": NOW, "instrument_number": f"{NOW.year}-{n:07d}"} for n, i in enumerate(deeds(3), 1)]
    source = (
        __import__("migration_tools.legacy.importer", fromlist=["SourceRecord"]).SourceRecord(f"r{i}", "", data=d)
        for i, d in enumerate(loaded)
    )
    import_records(db, source, name="x", quarantine=tmp_path / "q.csv", now=NOW)
    with db.write() as s:
        [made] = record_instruments(s, [validate(deed(), now=NOW)], now=NOW)
    assert made.instrument_number == f"{NOW.year}-0000004"


# --- what the file formats hold of the index fields (issue 21) ---------------------------------------
def test_sr1a_gives_the_deed_date_and_the_grantees_address(db, tmp_path):
    from datetime import date

    first, second = deeds(2)
    lines = [
        sr1a.format_line(first | {"deed_date": date(2019, 4, 30), "grantee_street": "12 ELM ST",
                                  "grantee_city_state": "HACKENSACK NJ", "grantee_zip": "07601"}),
        sr1a.format_line(second | {"grantee_street": "1 BAD\x90ST"}),  # a C1 control: the address is left out
    ]  # fmt: skip
    path = tmp_path / "sr1a.txt"
    path.write_text("\n".join(lines) + "\n", "latin-1")
    report = import_records(
        db, sr1a.read(path, date_order="MMDDYY", pivot=30), name="sr1a", quarantine=tmp_path / "q.csv"
    )
    assert (report.loaded, report.quarantined) == (2, 0)  # an unreadable address never costs the deed
    with db.read() as s:
        one = s.scalar(
            select(Instrument).where(Instrument.instrument_number == f"SR1A-{first['book']}-{first['page']}")
        )
        two = s.scalar(
            select(Instrument).where(Instrument.instrument_number == f"SR1A-{second['book']}-{second['page']}")
        )
    assert one.document_date == date(2019, 4, 30) and "deed dated 2019-04-30" in one.legal_description
    assert one.grantee_mailing_address == "12 ELM ST\nHACKENSACK NJ 07601"
    assert two.grantee_mailing_address is None and two.document_date is not None
    assert one.page_count is None and one.preparer is None  # SR1A holds neither


def test_csv_export_gives_the_grantees_address_and_the_cross_references(db, tmp_path):
    sha = "cd" * 32
    documents = [
        ["M1", "2001-0000001", "MTG", "100", "1", "2001-01-02", "100000", "", sha],
        ["S1", "2001-0000002", "SAT", "100", "2", "2001-06-02", "", "", sha],
        ["L1", "2001-0000003", "CONSTRUCTION LIEN", "100", "3", "2001-07-02", "5000", "", sha],
        ["X1", "2001-0000004", "DISCHARGE OF LIEN", "100", "4", "2001-08-02", "", "", sha],
        ["A1", "2001-0000005", "AM", "100", "5", "2001-09-02", "", "", sha],
    ]  # fmt: skip
    parties = [
        ["M1", "MORTGAGOR", "1", "DOE, JANE", ""], ["M1", "MORTGAGEE", "2", "A BANK", "PO BOX 1\nTRENTON NJ"],
        ["M1", "MORTGAGEE", "1", "ANOTHER BANK", "9 FIRST AVE"],  # the first grantee by seq gives the address
        ["S1", "GRANTOR", "1", "A BANK", ""], ["S1", "GRANTEE", "1", "DOE, JANE", "5 OAK \ufffd ST"],
        ["L1", "GRANTOR", "1", "A BUILDER", ""], ["L1", "GRANTEE", "1", "DOE, JANE", ""],
        ["X1", "GRANTOR", "1", "A BUILDER", ""], ["X1", "GRANTEE", "1", "DOE, JANE", ""],
        ["A1", "GRANTOR", "1", "A BANK", ""], ["A1", "GRANTEE", "1", "B BANK", ""],
    ]  # fmt: skip
    parcels = [[d[0], "1", "0223", "7", "1", ""] for d in documents]
    xrefs = [["S1", "M1", "SATISFIES"], ["X1", "L1", "DISCHARGES"], ["A1", "M0", "ASSIGNS"], ["A1", "M1", "NOTE"]]
    write_export(tmp_path / "export", documents, parties, parcels, xrefs)
    report = import_records(db, csv_export.read(tmp_path / "export"), name="csv", quarantine=tmp_path / "q.csv")
    assert (report.loaded, report.quarantined) == (5, 0)
    from hybrid_store.db.records import load_records

    with db.read() as s:
        ids = dict(s.execute(select(Instrument.instrument_number, Instrument.id)).all())
        records = {r.number: r.record for r in load_records(s.connection(), list(ids.values()))}
    assert records["2001-0000001"].grantee_mailing_address == "9 FIRST AVE"
    assert records["2001-0000002"].grantee_mailing_address is None  # U+FFFD: left out, the document loaded
    assert [r.value() for r in records["2001-0000002"].references] == [["acts_on_mortgage", "2001-0000001", None, None]]
    assert [r.value() for r in records["2001-0000004"].references] == [["discharges_lien", "2001-0000003", None, None]]
    assert records["2001-0000005"].references == ()  # M0 is not in the export; NOTE is no reference kind
