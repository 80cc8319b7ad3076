"""The search's index in recording order (issue 24): ``instrument_terms``, each term an instrument
is found by (the folded words of its parties' names, ``@`` and the places its parcels lie in:
``hybrid_store.search_terms``) with the instrument's recording time, keyed (term, recorded_at,
instrument_id). The full-text index of 0021 answers which parties bear a name, but not which of
them are the newest: for a name thousands of parties bear, the search collected and sorted them all
for a page of 25. A term's instruments in this key's order are the newest first, and the walk stops
at the page. Append-only beside the append-only instruments; instruments recorded before this
revision get their terms here, from the keys 0021 wrote and the parcels' municipalities.

Revises 0021 (the party name keys).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hybrid_store.db.triggers import create_append_only_trigger, drop_append_only_trigger
from hybrid_store.search_terms import terms_of

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "instrument_terms"
BACKFILL_CHUNK = 5_000  # instruments


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    key = ["term", "recorded_at", "instrument_id"]
    op.create_table(
        TABLE,
        sa.Column("term", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("instrument_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(["instrument_id"], ["instruments.id"],
                                name=op.f("fk_instrument_terms_instrument_id_instruments")),
        # SQLite adds no primary key to a table that exists; PostgreSQL builds it after the backfill,
        # from the sorted rows: about half the size of an index grown a row at a time in id order
        *([] if postgres else [sa.PrimaryKeyConstraint(*key, name=op.f("pk_instrument_terms"))]),
    )  # fmt: skip
    _backfill(bind)
    if postgres:
        op.create_primary_key(op.f("pk_instrument_terms"), TABLE, key)
    create_append_only_trigger(TABLE)
    if postgres:  # as 0006 did for the other history tables
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION landreg_no_truncate()"
        )
        op.execute(f"ANALYZE {TABLE}")  # the search's first plans read its statistics


def _backfill(bind: sa.Connection) -> None:
    """Every instrument's terms, a chunk of instruments at a time (keyset on the id: bounded memory
    however large the book). The recording time is copied as stored, so the order is the instruments'."""
    terms = sa.table(TABLE, sa.column("term"), sa.column("recorded_at"), sa.column("instrument_id"))
    after = -1
    while True:
        instruments = bind.execute(
            sa.text("SELECT id, recorded_at FROM instruments WHERE id > :after ORDER BY id LIMIT :n"),
            {"after": after, "n": BACKFILL_CHUNK},
        ).all()
        if not instruments:
            return
        first, last = instruments[0][0], instruments[-1][0]
        keys: dict[int, list[str]] = {}
        for iid, key in bind.execute(
            sa.text("SELECT instrument_id, name_key FROM party_name_keys WHERE instrument_id BETWEEN :a AND :b"),
            {"a": first, "b": last},
        ):
            keys.setdefault(iid, []).append(key)
        places: dict[int, list[str]] = {}
        for iid, code in bind.execute(
            sa.text("SELECT l.instrument_id, p.municipality_code FROM instrument_parcels l "
                    "JOIN parcels p ON p.id = l.parcel_id WHERE l.instrument_id BETWEEN :a AND :b"),
            {"a": first, "b": last},
        ):  # fmt: skip
            places.setdefault(iid, []).append(code)
        rows = [{"term": term, "recorded_at": recorded_at, "instrument_id": iid}
                for iid, recorded_at in instruments
                for term in sorted(terms_of(keys.get(iid, []), places.get(iid, [])))]  # fmt: skip
        if rows:
            bind.execute(sa.insert(terms), rows)
        after = last


def downgrade() -> None:
    drop_append_only_trigger(TABLE)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE}")
    op.drop_table(TABLE)
