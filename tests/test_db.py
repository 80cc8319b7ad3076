"""The deed database on SQLite and PostgreSQL: migrations, append-only records, one-transaction
filings, history links, numbering, and concurrent filings on one parcel."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from hybrid_store.core import commitment
from hybrid_store.core.hashing import to_hex
from hybrid_store.db.engine import Database
from hybrid_store.db.models import Commitment, Instrument, InstrumentParty, InstrumentTerm, OutboxEntry, Parcel
from hybrid_store.db.records import load_records
from hybrid_store.errors import Conflict, InvalidInstrument
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from migration_tools.synthetic import BergenBook
from tests.conftest import NOW, deed, head_revision, pg_admin


def count(db: Database, model) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def file(db: Database, *instruments, **kw):
    with db.write() as s:
        return record_instruments(s, [validate(i, now=NOW) for i in instruments], now=NOW, **kw)


def test_schema_migrates_down_and_up_again(db):
    assert db.current_revision() == head_revision()
    db.downgrade("base")
    assert db.current_revision() is None
    db.migrate()
    assert count(db, Instrument) == 0 and db.current_revision() == head_revision()
    with db.read() as s:
        assert s.scalar(text("select count(*) from municipalities")) == 70


def test_widening_document_types_keeps_every_row_reference_and_trigger(db):
    """0011 copies the instruments table on SQLite (a CHECK constraint cannot be altered there):
    every row, every reference to it and its append-only triggers survive, down and up again."""
    with db.write() as s:  # (filed at head: today's code writes today's columns; 0013 drops them on the way down)
        record_instruments(s, [validate(deed()), validate(deed(doc_type="MORTGAGE", grantees=["A BANK"]))])
    db.downgrade("0010")
    db.migrate()
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Instrument)) == 2
        assert s.scalar(select(func.count()).select_from(InstrumentParty)) == 6
    with pytest.raises(DBAPIError), db.write() as s:
        s.execute(text("UPDATE instruments SET book = '1'"))
    with db.write() as s:  # OTHER is now a type the database accepts
        s.execute(text("INSERT INTO instruments (instrument_number, book, page, doc_type, recorded_at, "
                       "legal_description, document_digest, salt_seed, source, created_at) VALUES "
                       "('X-1', '1', '1', 'OTHER', :t, '', :d, :seed, 'legacy', :t)"),
                  {"t": NOW, "d": "0" * 64, "seed": b"\0" * 32})  # fmt: skip


def test_revision_0022_gives_each_instrument_recorded_before_it_the_terms_a_filing_writes(db):
    """The backfill reads the keys 0021 wrote and the parcels' municipalities: an instrument loaded
    before the revision is found exactly as one filed after it."""
    two_places = deed(grantors=["SØREN KIERKEGAARD, JR."], grantees=["ÆRØ HOLDINGS LLC", "Patrick O'Brien"],
                      parcels=[{"municipality_code": "0223", "block": "1", "lot": "2"},
                               {"municipality_code": "0201", "block": "3", "lot": "4"}])  # fmt: skip
    with db.write() as s:
        record_instruments(s, [validate(i, now=NOW) for i in [two_places, *BergenBook(60, seed=4)]], now=NOW)

    def terms() -> set[tuple]:
        with db.read() as s:
            return set(s.execute(select(InstrumentTerm.term, InstrumentTerm.recorded_at, InstrumentTerm.instrument_id)))

    filed = terms()
    db.downgrade("0021")
    db.migrate()
    assert terms() == filed and len(filed) > 60 * 4
    with db.read() as s:
        first = s.scalar(select(func.min(Instrument.id)))
        assert set(s.scalars(select(InstrumentTerm.term).where(InstrumentTerm.instrument_id == first))) == {
            "SOREN", "KIERKEGAARD", "JR", "AERO", "HOLDINGS", "LLC", "PATRICK", "OBRIEN", "@0223", "@0201"}  # fmt: skip


def test_a_filing_writes_record_commitment_and_outbox_together(db):
    [made] = file(db, deed())
    assert made.instrument_number == f"{NOW.year}-0000001"
    assert (made.book, made.page) == ("1", "1")
    with db.read() as s:
        inst = s.get(Instrument, made.instrument_id)
        assert inst.names("grantor") == ["JOHN Q. SMITH", "MARY SMITH"]
        assert inst.names("grantee") == ["MARÍA GARCÍA"]
        assert [link.parcel.parcel_key for link in inst.parcel_links] == ["0223_100.01_5"]
        stored = s.get(Commitment, inst.id)
        assert stored.commitment == made.commitment
        assert s.scalar(select(OutboxEntry.batch_id).where(OutboxEntry.instrument_id == inst.id)) is None
        assert inst.recorded_at == NOW


def test_stored_commitments_recompute_from_the_rows(db):
    book = [validate(i, now=NOW + timedelta(days=20000)) for i in BergenBook(400, seed=11)]
    with db.write() as s:
        made = record_instruments(s, book, source="legacy")
    with db.read() as s:
        for stored in load_records(s.connection(), [r.instrument_id for r in made]):
            committed = s.get(Commitment, stored.instrument_id).commitment
            assert stored.scheme == commitment.SCHEME
            assert commitment.commit(stored.record, stored.seed, stored.scheme) == stored.commitment == committed


def test_each_record_links_to_the_previous_record_of_each_parcel(db):
    a, b = "0223_100.01_5", "0223_100.01_6"
    p5 = {"municipality_code": "0223", "block": "100.01", "lot": "5"}
    p6 = {"municipality_code": "0223", "block": "100.01", "lot": "6"}
    first = file(db, deed(parcels=[p5]))[0]
    second, third = file(db, deed(parcels=[p5, p6], doc_type="MORTGAGE"), deed(parcels=[p6]))
    with db.read() as s:
        prev = {r.instrument_number: s.get(Commitment, r.instrument_id).prev for r in (first, second, third)}
        heads = dict(s.execute(select(Parcel.parcel_key, Parcel.head_instrument_id)).all())
    assert prev[first.instrument_number] == [[a, None, None]]
    assert prev[second.instrument_number] == [[a, first.instrument_number, to_hex(first.commitment)], [b, None, None]]
    assert prev[third.instrument_number] == [[b, second.instrument_number, to_hex(second.commitment)]]
    assert heads == {a: second.instrument_id, b: third.instrument_id}


def test_recorded_instruments_are_append_only(db):
    [made] = file(db, deed())
    for statement in (
        "UPDATE instruments SET consideration_cents = 1",
        "DELETE FROM instrument_parties",
        "UPDATE commitments SET commitment = commitment",
        "DELETE FROM instrument_parcels",
    ):
        with pytest.raises((DBAPIError, IntegrityError), match="append-only"), db.write() as s:
            s.execute(text(statement))
    with db.read() as s:
        assert s.get(Instrument, made.instrument_id).consideration_cents == 35_000_000


def test_a_failing_filing_writes_nothing(db):
    file(db, deed(instrument_number="2026-0000100", book="9", page="9"))
    before = {m: count(db, m) for m in (Instrument, InstrumentParty, Commitment, OutboxEntry, Parcel)}
    new_parcel = {"municipality_code": "0201", "block": "3", "lot": "4"}
    with pytest.raises(Conflict, match="already recorded"):
        file(
            db,
            deed(instrument_number="2026-0000101", book="9", page="10", parcels=[new_parcel]),
            deed(instrument_number="2026-0000100", book="9", page="11"),  # taken
        )
    assert {m: count(db, m) for m in before} == before


def test_corrections_link_to_what_they_correct(db):
    [original] = file(db, deed())
    [fix] = file(
        db, deed(doc_type="CORRECTION", corrects=original.instrument_number, legal_description="Lot 5, not 6.")
    )
    with db.read() as s:
        inst = s.get(Instrument, fix.instrument_id)
        assert inst.corrects.instrument_number == original.instrument_number
        [stored] = load_records(s.connection(), [inst.id])
        assert stored.record.corrects == original.instrument_number
        assert s.get(Instrument, original.instrument_id).legal_description.startswith("ALL that")  # untouched
    with pytest.raises(InvalidInstrument, match="no recorded instrument numbered 1999-0000001"):
        file(db, deed(corrects="1999-0000001"))


def test_a_correction_can_follow_its_original_in_one_bulk_load(db):
    made = file(db, deed(instrument_number="1995-0000001", book="5", page="1"),
                deed(instrument_number="1995-0000002", book="5", page="2", doc_type="CORRECTION", corrects="1995-0000001"))  # fmt: skip
    with db.read() as s:
        assert s.get(Instrument, made[1].instrument_id).corrects_id == made[0].instrument_id


def test_numbers_books_and_pages_are_assigned_in_sequence(db):
    file(db, deed(instrument_number=f"{NOW.year}-0000041", book="12", page="5"))
    made = file(db, deed(), deed())
    assert [m.instrument_number for m in made] == [f"{NOW.year}-0000042", f"{NOW.year}-0000043"]
    assert [(m.book, m.page) for m in made] == [("13", "1"), ("13", "2")]
    with pytest.raises(InvalidInstrument, match="book and page are given together"):
        file(db, deed(book="12"))


def test_concurrent_filings_on_one_parcel_form_a_single_chain(db):
    file(db, deed())  # the parcel exists
    errors, made = [], []

    def clerk(i: int) -> None:
        try:
            made.extend(file(db, deed(grantees=[f"BUYER {i}"])))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=clerk, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with db.read() as s:
        rows = s.execute(select(Instrument.instrument_number, Commitment.commitment, Commitment.prev)
                         .join(Commitment, Commitment.instrument_id == Instrument.id).order_by(Instrument.id)).all()  # fmt: skip
    links = [prev[0][2] for _, _, prev in rows]
    assert links[0] is None
    # every record links to exactly the one recorded before it: no fork, no lost link
    assert links[1:] == [to_hex(c) for _, c, _ in rows[:-1]]
    assert len({n for n, _, _ in rows}) == 9


# --- chain of title ---------------------------------------------------------------------------------
def owner_of(db, key="0223_100.01_5") -> list[str]:
    with db.read() as s:
        owner_id = s.scalar(select(Parcel.owner_instrument_id).where(Parcel.parcel_key == key))
        return s.get(Instrument, owner_id).names("grantee") if owner_id else []


def flags_of(db, made) -> list[tuple[str, str]]:
    from hybrid_store.db.models import TitleFlag

    with db.read() as s:
        return [
            (f.kind, f.message)
            for f in s.scalars(select(TitleFlag).where(TitleFlag.instrument_id == made.instrument_id))
        ]


def test_a_deed_from_the_owner_of_record_extends_the_chain_of_title(db):
    file(db, deed(grantors=["PRIOR OWNER"], grantees=["ANNA A. ADAMS"]))
    [sale] = file(db, deed(grantors=["Anna A Adams"], grantees=["BEN BAKER", "CARLA BAKER"]))  # other spelling
    assert sale.flags == () and owner_of(db) == ["BEN BAKER", "CARLA BAKER"]
    [short] = file(db, deed(grantors=["BEN BAKER"], grantees=["DAN DOE"]))  # Carla did not sign
    assert [f.kind for f in short.flags] == ["grantor_not_owner"]
    assert "BEN BAKER; CARLA BAKER" in short.flags[0].message
    assert owner_of(db) == ["BEN BAKER", "CARLA BAKER"]  # a flagged deed is recorded but not linked
    assert flags_of(db, short) == [("grantor_not_owner", short.flags[0].message)]


def test_names_compare_without_case_accents_or_punctuation():
    from hybrid_store.core.title import name_key

    assert name_key("José García, Jr.") == name_key("JOSE GARCIA JR") == "JOSE GARCIA JR"
    assert name_key("JOSE GARCIA JR") != name_key("JOSE GARCIA SR")


def test_a_double_sale_is_flagged_as_a_conflicting_conveyance(db):
    file(db, deed(grantors=["PRIOR OWNER"], grantees=["ANNA ADAMS"]))
    [first] = file(db, deed(grantors=["ANNA ADAMS"], grantees=["BEN BAKER"]))
    [second] = file(db, deed(grantors=["ANNA ADAMS"], grantees=["CARL CLARK"]))
    assert first.flags == ()
    assert [f.kind for f in second.flags] == ["conflicting_conveyance"]
    assert owner_of(db) == ["BEN BAKER"]


def test_only_conveyances_are_checked(db):
    file(db, deed(grantors=["PRIOR OWNER"], grantees=["ANNA ADAMS"]))
    [mortgage] = file(db, deed(doc_type="MORTGAGE", grantors=["SOMEONE ELSE"], grantees=["BANK"]))
    assert mortgage.flags == () and owner_of(db) == ["ANNA ADAMS"]


def test_concurrent_transfers_from_one_owner_one_links_the_other_is_flagged(db):
    file(db, deed(grantors=["PRIOR OWNER"], grantees=["ANNA ADAMS"]))
    results, errors = [], []
    barrier = threading.Barrier(2)

    def transfer(buyer: str) -> None:
        barrier.wait()
        try:
            results.extend(file(db, deed(grantors=["ANNA ADAMS"], grantees=[buyer])))
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=transfer, args=(b,)) for b in ("BEN BAKER", "CARL CLARK")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 2  # both recorded: no lost update, no error
    linked = [r for r in results if not r.flags]
    flagged = [r for r in results if r.flags]
    assert len(linked) == 1 and len(flagged) == 1
    assert flagged[0].flags[0].kind == "conflicting_conveyance"
    with db.read() as s:
        owner = s.get(Instrument, s.scalar(select(Parcel.owner_instrument_id)))
    assert owner.instrument_number == linked[0].instrument_number


def test_models_and_migrations_agree(db):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from hybrid_store.db.models import Base

    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_numbering_started_by_several_processes_never_repeats(pg_db):
    """Each server process prepares numbering at its first filing; none may rewind another's, even
    when both start while the other's first filing is still uncommitted."""
    other = Database(pg_db.url)  # a second process's engine
    results: list = []
    try:
        with pg_db.write() as s1:
            [first] = record_instruments(s1, [validate(deed(), now=NOW)], now=NOW)  # not committed yet
            parcel = [{"municipality_code": "0201", "block": "1", "lot": "1"}]
            racer = threading.Thread(target=lambda: results.append(file(other, deed(parcels=parcel))))
            racer.start()  # the other process starts numbering meanwhile
            time.sleep(0.5)
        racer.join(60)
        assert results, "the second filing did not finish"
        numbers = [first.instrument_number, results[0][0].instrument_number]
        numbers += [file(pg_db if i % 2 else other, deed())[0].instrument_number for i in range(6)]
    finally:
        other.dispose()
    assert len(set(numbers)) == len(numbers) == 8


def test_sqlite_commits_survive_a_power_cut(sqlite_db):
    with sqlite_db.read() as s:
        assert s.connection().exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert s.connection().exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


@pytest.mark.postgres
def test_postgres_that_would_lose_acknowledged_commits_is_refused(pg_db):
    from hybrid_store.db.engine import NotDurable

    name = pg_db.engine.url.database
    with pg_db.read() as s:
        assert s.connection().exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
    pg_db.dispose()
    pg_admin(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    off = Database(pg_db.url)
    with pytest.raises(NotDurable, match="synchronous_commit=off"), off.read() as s:
        s.execute(text("SELECT 1"))
    off.dispose()


@pytest.mark.postgres
def test_the_runtime_role_cannot_rewrite_history_and_truncate_is_refused_to_anyone(pg_db):
    import uuid

    from sqlalchemy.exc import DBAPIError

    from hybrid_store.db.roles import grant_runtime
    from hybrid_store.filing import record_instruments
    from hybrid_store.intake import validate

    role = f"landreg_rt_{uuid.uuid4().hex[:8]}"
    pg_admin(f'CREATE ROLE "{role}" LOGIN')
    try:
        grant_runtime(pg_db, role)
        runtime = Database(pg_db.engine.url.set(username=role).render_as_string(hide_password=False))
        with runtime.write() as s:  # the service's own work goes through
            [made] = record_instruments(s, [validate(deed(), now=NOW)], now=NOW)
        for statement in (
            "TRUNCATE audit_log",
            "TRUNCATE instruments CASCADE",
            "CREATE TABLE sneaky (id int)",
            "ALTER TABLE instruments DISABLE TRIGGER ALL",
            "DROP TRIGGER instruments_append_only ON instruments",
            f"UPDATE instruments SET book = 'X' WHERE instrument_number = '{made.instrument_number}'",
            "DELETE FROM commitments",
            "DELETE FROM audit_log",
            "ALTER TABLE audit_log ADD COLUMN x int",
            "TRUNCATE audit_chain",
            "DELETE FROM audit_chain",
            "ALTER TABLE audit_chain DISABLE TRIGGER USER",
            "UPDATE audit_checkpoints SET entries = 0",
            "DELETE FROM audit_checkpoints",
        ):
            with pytest.raises(DBAPIError, match="permission denied|must be owner"), runtime.write() as s:
                s.execute(text(statement))
        runtime.dispose()
        # the owner (here even a superuser) cannot TRUNCATE history either: the statement trigger fires
        for table in ("audit_log", "audit_chain", "audit_checkpoints", "instruments", "commitments", "anchor_batches"):
            with pytest.raises(DBAPIError, match="TRUNCATE refused"), pg_db.write() as s:
                s.execute(text(f"TRUNCATE {table} CASCADE"))
        with pg_db.read() as s:
            assert s.scalar(text("SELECT count(*) FROM instruments")) == 1
    finally:
        with pg_db.engine.begin() as conn:  # its grants live in this test's database
            conn.execute(text(f'DROP OWNED BY "{role}"'))
        pg_db.dispose()
        pg_admin(f'DROP ROLE IF EXISTS "{role}"')


def test_the_numbering_floor_after_a_large_load_is_read_in_bounded_memory(sqlite_db):
    """After a load of millions the floor is the highest serial among them: read a few thousand at a
    time, not held whole (they were most of a large csv load's peak memory)."""
    import tracemalloc

    from hybrid_store.numbering import raise_numbering_floor

    rows = [(f"1999-{n:07d}", f"{n:064x}") for n in range(1, 150_001)]
    rows.append(("1999-0700000X", "ff" * 32))  # not a serial: never the floor
    with sqlite_db.write() as s:
        s.connection().exec_driver_sql(
            "INSERT INTO instruments (instrument_number, book, page, doc_type, recorded_at, legal_description,"
            " document_digest, salt_seed, source, created_at) VALUES (?, '1', '1', 'DEED', '2000-01-01 00:00:00',"
            " '', ?, x'00', 'legacy', '2000-01-01 00:00:00')",
            rows,
        )
    with sqlite_db.write() as s:
        tracemalloc.start()
        try:
            raise_numbering_floor(s)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    made = file(sqlite_db, deed())
    assert made[0].instrument_number == f"{NOW.year}-0150001"
    assert peak < 12_000_000, peak  # streamed: about 6 MB; the 150,000 numbers held whole: about 37 MB
