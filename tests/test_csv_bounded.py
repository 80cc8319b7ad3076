"""``legacy import csv`` in bounded memory (issue 25): the reader that joins the export's tables by
sorting them on disk yields exactly what the in-memory join before it yielded (commit bc72f2f,
kept verbatim in ``tests/legacy_csv_reference.py``), record for record and in the same order,
quarantined rows included; loads of the two are the same rows, quarantine file, commitments and
proofs, byte for byte. Tiny sort limits make every path spill, merge in rounds and re-read."""

from __future__ import annotations

import csv
import hashlib
import itertools
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migration_tools.external_sort import LIMITS, ExternalSort, Limits
from migration_tools.legacy import csv_export
from migration_tools.legacy.importer import SourceRecord, import_records
from migration_tools.synthetic import EXPORT_COLUMNS, write_csv_export
from tests import legacy_csv_reference as reference
from tests.conftest import NOW, make_sqlite

TINY = Limits(items=2, chars=10_000, fan_in=2)  # a run every two items; runs merged two at a time, in rounds
SMALL = Limits(items=40, chars=100_000, fan_in=3)
SHA = "ab" * 32
LONG = "Lot 5 " * 12_000  # 72,000 characters: a record over the readers' bound of 65,536


def shown(records: list[SourceRecord]) -> list[tuple]:
    """Everything a record carries, as text: equal data of other types (1 and 1.0, a zone by
    another name) would still differ here."""
    return [(r.where, r.raw, r.problem, r.column, r.key, repr(r.data)) for r in records]


def assert_same(folder: Path, limits: Limits, scratch: Path | None = None) -> list[SourceRecord]:
    old = list(reference.read(folder))
    new = list(csv_export.read(folder, limits=limits, scratch=scratch))
    assert shown(new) == shown(old)
    assert new == old
    return new


def write_tables(folder: Path, tables: dict[str, list[list[str]]]) -> None:
    folder.mkdir(parents=True)
    for name, rows in tables.items():
        with open(folder / name, "w", encoding="utf-8-sig", newline="") as f:
            csv.writer(f).writerows([EXPORT_COLUMNS[name], *rows])


def messy_tables() -> dict[str, list[list[str]]]:
    """One of each thing the reader decides: listed out of every order it could rely on."""
    documents = [
        ["D5", "2001-0000005", "SAT", "100", "5", "2001-09-02", "", "", SHA],  # recorded after D1..D4, listed first
        ["D1", "2001-0000001", "MTG", "100", "1", "2001-01-02", "100000", "", SHA],
        ["D3", "2001-0000003", "Deed", "100", "3", "2001-05-02 10:15", "$350,000.00", "Lot 5", SHA],
        ["D2", "2001-0000002", "DEED", "100", "2", "2001-05-02 10:15", "1", "", SHA],  # the same time as D3
        ["D4", "2001-0000004", "CORRECTIVE DEED", "100", "4", "06/01/2001", "1", "", SHA],
        ["D6", "2001-0000006", "GIFT OF LAND", "100", "6", "2001-03-02", "", "", SHA],  # unknown type
        ["D7", "2001-0000007", "DEED", "100", "7", "the day after", "", "", SHA],  # not a date
        ["D8", "2001-0000008", "DEED", "100", "8", "2001-03-02", "1_000", "", SHA],  # not an amount
        ["D9", "2001-0000009", "DEED", "100", "9", "2001-03-02", "", LONG, SHA],  # too long to read
        ["D2", "2001-0000012", "DEED", "100", "12", "2001-04-02", "", "", SHA],  # D2 again: both get its number
        ["", "2001-0000013", "DEED", "100", "13", "2001-04-03", "", "", SHA],  # a blank doc_id
        [" d10 ", "", "DEED", "100", "14", "2001-04-04", "", "", SHA],  # no instrument number
    ]  # fmt: skip
    parties = [
        ["D3", "GRANTEE", "2", "SMITH, MARY", "2 ELM ST"],
        ["D1", "MORTGAGEE", "1", "A BANK", "PO BOX 1\nTRENTON NJ"],
        ["D99", "GRANTOR", "1", "NOBODY", ""],  # a party of a document that does not exist
        ["D3", "GRANTOR", "1", "DOE, JOHN, JR.", ""],
        ["D3", "GRANTEE", "1", "SMITH, JOHN", "1 ELM ST"],  # seq 1: the deed's mailing address
        ["D3", "BUYER", "1", "ROE, RICHARD", ""],  # an unknown role
        ["D1", "MORTGAGOR", "1", "DOE, JANE", ""],
        ["D2", "GRANTOR", "²", "A", ""], ["D2", "GRANTEE", "", "B", "9 OAK\x07 ST"],  # seq not a number
        ["D3", "GRANTEE", "1", "ZED, ZOE", "0 ELM ST"],  # the same seq again: the smaller address wins
        ["D9", "GRANTOR", "1", "A", ""],  # of a document too long to read: an orphan
        ["D2", "GRANTOR", "1", "Z" * 70_000, ""],  # too long to read
        ["", "GRANTOR", "1", "BLANK", ""], ["", "GRANTEE", "1", "BLANKER", ""],
        ["d10", "GRANTOR", "1", "ОLGA\u00a0PETROVA", ""], ["d10", "GRANTEE", "1", "X", ""],
        ["D4", "GRANTOR", "1", "A", ""], ["D4", "GRANTEE", "1", "B", ""], ["D5", "1", "1", "A BANK", ""],
        ["D5", "2", "1", "DOE, JANE", ""], ["D1", "GRANTOR", "1", "", ""],
    ]  # fmt: skip
    parcels = [
        ["D3", "2", "223", "100.01", "6", ""], ["D3", "1", "0223", "100.01", "5", ""],
        ["D1", "", "0223", "7", "1", ""], ["D1", "x", "0223", "7", "2", ""],  # no seq: by row number
        ["D77", "1", "0223", "1", "1", ""],  # a parcel of a document that does not exist
        ["D2", "1", "0223", "1", "1", ""], ["D4", "1", "0223", "100.01", "5", ""], ["D5", "1", "0223", "7", "1", ""],
        ["", "1", "0223", "1", "2", ""], ["d10", "1", "0223", "1", "3", "C0001"],
        ["D6", "1", "0223", "1", "1", LONG],  # too long to read
    ]  # fmt: skip
    xrefs = [
        ["D5", "D1", "SATISFIES"], ["D4", "D3", "CORRECTS"], ["D4", "D2", "CORRECTION"],  # the last CORRECTS wins
        ["D5", "D404", "ASSIGNS"],  # a document the export does not hold: left out
        ["D5", "D2", "RELEASES"],  # D2 listed twice: its last row's number
        ["D5", "D9", "SUBORDINATES"], ["D5", "d10", "DISCHARGES"],  # too long to read; no number
        ["D5", "D1", "NOTE"], ["D66", "D1", "SATISFIES"],  # not a reference kind; cited by nothing read
        ["D3", "D3", "ASSIGNS"], ["D5", "D1", "SATISFIES"], ["D1", "D404", "CORRECTS"],
        ["D5", "D1", LONG],  # too long to read
    ]  # fmt: skip
    return {"documents.csv": documents, "parties.csv": parties, "parcels.csv": parcels, "xrefs.csv": xrefs}


def variants() -> dict[str, dict[str, list[list[str]]]]:
    tables = messy_tables()
    without_parcels = {k: v for k, v in tables.items() if k != "parcels.csv"}
    without_documents = {k: v for k, v in tables.items() if k != "documents.csv"}
    return {"messy": tables, "no parcels.csv": without_parcels, "no documents.csv": without_documents}


@pytest.mark.parametrize("limits", [LIMITS, SMALL, TINY], ids=["in memory", "small runs", "tiny runs"])
@pytest.mark.parametrize("variant", sorted(variants()))
def test_the_reader_yields_what_the_in_memory_join_yielded(tmp_path, variant, limits):
    write_tables(tmp_path / "export", variants()[variant])
    records = assert_same(tmp_path / "export", limits)
    assert records  # (the comparison compared something)
    if variant == "messy":  # every decision the export asks for was taken, by both
        problems = [r.problem for r in records if r.problem]
        for expected in ("party of unknown document 'D99'", "parcel of unknown document 'D77'", "unknown party role",
                         "a record longer than 65,536", "unknown document type", "is not a date", "consideration",
                         "party of unknown document 'D9'"):  # fmt: skip
            assert any(expected in p for p in problems), expected
        loaded = {r.where: r.data for r in records if r.data}
        assert [r.where for r in records if r.data][:2] == ["documents.csv row 3 (doc_id D1)",
                                                            "documents.csv row 11 (doc_id D2)"]  # fmt: skip
        assert loaded["documents.csv row 6 (doc_id D4)"]["corrects"] == "2001-0000012"


def test_a_header_too_long_to_read(tmp_path):
    tables = messy_tables()
    write_tables(tmp_path / "export", tables)
    (tmp_path / "export" / "xrefs.csv").write_text(",".join(["doc_id"] * 20_000) + "\nD5,D1,SATISFIES\n", "utf-8")
    records = assert_same(tmp_path / "export", TINY)
    assert any(r.where == "xrefs.csv header" for r in records)


# --- any small export ---------------------------------------------------------------------------------
DOC_IDS = st.sampled_from(["D1", "D2", "D3", " D1", "d2", "", "D9"])
CELL = {
    "doc_type": st.sampled_from(["DEED", "MTG", "SAT", "CORRECTIVE DEED", "GIFT"]),
    "recorded_at": st.sampled_from(["2001-03-02", "2001-03-02 12:00", "2000-01-01 09:30", "03/02/2001", "soon", ""]),
    "consideration": st.sampled_from(["", "100", "$1,250,000.00", "1_000"]),
    "role": st.sampled_from(["GRANTOR", "GRANTEE", "1", "2", "MORTGAGEE", "BUYER", ""]),
    "seq": st.sampled_from(["1", "2", "", "²", "10"]),
    "name": st.sampled_from(["SMITH, JOHN", "A BANK", "DOE, JANE, JR.", "", "ОLGA PETROVA"]),
    "address": st.sampled_from(["", "1 MAIN ST", "2 ELM ST", "3 OAK\x07 ST"]),
    "kind": st.sampled_from(["CORRECTS", "SATISFIES", "ASSIGNS", "NOTE", ""]),
    "legal_description": st.sampled_from(["", "Lot 5", LONG]),
}


def row_of(columns: list[str]) -> st.SearchStrategy[list[str]]:
    cells = CELL | {"doc_id": DOC_IDS, "ref_doc_id": DOC_IDS, "instrument_number": st.sampled_from(["2001-1", ""])}
    other = st.sampled_from(["1", "0223", "7"])
    return st.tuples(*(cells.get(c, other) for c in columns)).map(list)


EXPORTS = st.fixed_dictionaries(
    {name: st.lists(row_of(columns), max_size=8) for name, columns in EXPORT_COLUMNS.items()}
)
SEEN = itertools.count()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tables=EXPORTS, items=st.integers(1, 6), fan_in=st.integers(2, 3))
def test_any_small_export_reads_as_the_in_memory_join_read_it(tmp_path, tables, items, fan_in):
    folder = tmp_path / f"export-{next(SEEN)}"
    write_tables(folder, tables)
    assert_same(folder, Limits(items=items, chars=100_000, fan_in=fan_in))


# --- a synthetic book ---------------------------------------------------------------------------------
# sha256 of ``shown(records)`` (one repr per record, newline-separated) of ``write_csv_export(folder,
# 2_000, 11, messy=True)``, read by migration_tools/legacy/csv_export.py of commit bc72f2f (main
# before issue 25), run from `git archive bc72f2f` on the export this tree writes, with ``digest_of``
BOOK_DIGEST = "57e2df8ac942e592beef46ace92f47c3021cfd18b94bf81588b7c89d054039db"


def digest_of(records: list[SourceRecord]) -> str:
    return hashlib.sha256("\n".join(map(repr, shown(records))).encode()).hexdigest()


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("book") / "export"
    write_csv_export(folder, 2_000, 11, messy=True)
    return folder


@pytest.mark.parametrize("limits", [LIMITS, Limits(items=150, fan_in=4)], ids=["default", "runs of 150"])
def test_a_messy_synthetic_book_reads_as_before(book, limits, tmp_path):
    records = assert_same(book, limits)
    assert digest_of(records) == BOOK_DIGEST
    reasons = {(r.problem or "").split(" '")[0].split(" {")[0] for r in records if r.problem}
    assert {"party of unknown document", "parcel of unknown document", "unknown party role"} <= reasons


def test_the_sorted_runs_are_on_disk_while_reading_and_gone_after(book, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    reading = csv_export.read(book, scratch=scratch, limits=Limits(items=100))
    first = next(reading)
    runs = list(scratch.glob("landreg-csv-import-*/*.run"))
    assert first.where and len(runs) > 10  # the book waits on disk in sorted runs, not in memory
    assert sum(1 for _ in reading) > 1_900
    assert list(scratch.iterdir()) == []
    abandoned = csv_export.read(book, scratch=scratch, limits=Limits(items=100))
    next(abandoned)
    abandoned.close()  # a load stopped part way (an error, ^C): nothing left behind either
    assert list(scratch.iterdir()) == []


# --- loaded: the rows, the quarantine, the commitments and the proofs ----------------------------------
def fixed_seeds():
    counter = itertools.count()
    return lambda: hashlib.sha256(f"salt seed {next(counter)}".encode()).digest()


# what two loads of the same records differ in by design: the time each row was written, and the
# hashes of blocks (each test chain's genesis block holds the time the chain was made)
OF_THE_RUN = {"created_at", "pinned_at", "at", "enqueued_at", "since", "started_at", "finished_at", "mined_at",
              "confirmed_at", "finalized_at", "block_hash", "genesis_hash"}  # fmt: skip


def rows_of(path: Path) -> dict[str, list[tuple]]:
    """Every table's rows in the order they were written, but for the columns ``OF_THE_RUN``."""
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out = {}
        for table in tables:
            columns = [c[1] for c in conn.execute(f"PRAGMA table_info({table})") if c[1] not in OF_THE_RUN]
            out[table] = conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid").fetchall()
        return out


def test_a_load_is_the_same_rows_quarantine_commitments_and_proofs(book, tmp_path):
    from sqlalchemy import select

    from hybrid_store.chain.connect import eth_tester_chain
    from hybrid_store.db.models import Instrument
    from hybrid_store.deployment import attach
    from hybrid_store.proofs import export_bundle
    from migration_tools.stages import Selector, StageRunner, plan_stage

    loads = {}
    for name, source in (("before", reference.read(book)), ("after", csv_export.read(book, limits=SMALL))):
        (tmp_path / name).mkdir()
        db = make_sqlite(tmp_path / name)
        report = import_records(db, source, name="csv", quarantine=tmp_path / name / "q.csv", now=NOW,
                                seed=fixed_seeds())  # fmt: skip
        chain = eth_tester_chain()
        deployment = attach(db, chain)
        plan_stage(db, chain, "all", Selector(), batch_size=500, actor="it")
        StageRunner(db, chain, deployment, manifest_dir=tmp_path / name / "manifests", workers=1).run("all")
        with db.read() as s:
            numbers = s.scalars(select(Instrument.instrument_number).order_by(Instrument.id)).all()
            bundles = [export_bundle(s, n).to_json() for n in numbers[::50]]
        db.dispose()
        loads[name] = (report.to_json() | {"seconds": 0, "quarantine_file": None}, rows_of(tmp_path / name / "landreg.db"),
                       (tmp_path / name / "q.csv").read_bytes(), bundles)  # fmt: skip
    (report_b, rows_b, quarantine_b, bundles_b), (report_a, rows_a, quarantine_a, bundles_a) = loads.values()
    assert report_a == report_b and report_a["quarantined"] > 20 and report_a["loaded"] > 1_900
    assert quarantine_a == quarantine_b
    assert rows_a.keys() == rows_b.keys() and len(rows_a["commitments"]) == report_a["loaded"]
    for table, rows in rows_a.items():
        assert rows == rows_b[table], table
    assert bundles_a == bundles_b and len(bundles_a) == len(range(0, report_a["loaded"], 50))


# --- the sorter itself ----------------------------------------------------------------------------------
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keys=st.lists(st.tuples(st.text(max_size=3), st.integers(-5, 5)), unique=True, max_size=60),
    items=st.integers(1, 7),
    chars=st.integers(1, 50),
    fan_in=st.integers(2, 4),
)
def test_the_external_sort_gives_every_item_once_in_key_order(tmp_path, keys, items, chars, fan_in):
    folder = tmp_path / f"sort-{next(SEEN)}"
    folder.mkdir()
    sorter = ExternalSort(folder, "t", Limits(items=items, chars=chars, fan_in=fan_in))
    for key in keys:
        sorter.add(key, {"payload": key}, chars=len(key[0]))  # dict payloads: never compared
    expected = [(k, {"payload": k}) for k in sorted(keys)]
    assert list(sorter.sorted(again=True)) == expected
    assert list(sorter.sorted()) == expected
    assert list(folder.iterdir()) == []


def test_limits_are_checked():
    with pytest.raises(ValueError, match="at least one item"):
        Limits(items=0)
    with pytest.raises(ValueError, match="two runs"):
        Limits(fan_in=1)
