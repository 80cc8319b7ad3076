"""The grantor-grantee index (issue 24): ``party_name_keys``, each party's name folded by the
registry's name rules (``hybrid_store.jurisdictions.names``), append-only beside the append-only
``instrument_parties``. On PostgreSQL a GIN full-text index over the words serves a search: each
word of a search is a prefix query (``JOHN:* & SMITH:*``), a suffix a whole word (``JR``). A
full-text index rather than pg_trgm's: the words of names repeat (JOHN, SMITH), so the trigrams of
a common name each list a large share of the book, while a word's posting list is only its own.
Parties recorded before this revision get their keys here, by the pinned jurisdiction's rules.

Revises 0020 (the commitments' field hashes).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hybrid_store.db.triggers import create_append_only_trigger, drop_append_only_trigger
from hybrid_store.jurisdictions import get_profile

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "party_name_keys"
INDEX = "ix_party_name_keys_words"
BACKFILL_CHUNK = 20_000


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    op.create_table(
        TABLE,
        sa.Column("instrument_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("name_key", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["instrument_id"], ["instruments.id"],
                                name=op.f("fk_party_name_keys_instrument_id_instruments")),
        sa.PrimaryKeyConstraint("instrument_id", "role", "position", name=op.f("pk_party_name_keys")),
    )  # fmt: skip
    _backfill(bind)
    if postgres:  # 'simple': no stemming or stop words (a name's words are its own)
        op.execute(f"CREATE INDEX {INDEX} ON {TABLE} USING gin (to_tsvector('simple'::regconfig, name_key))")
    create_append_only_trigger(TABLE)
    if postgres:  # as 0006 did for the other history tables
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION landreg_no_truncate()"
        )


def _backfill(bind: sa.Connection) -> None:
    pinned = bind.execute(sa.text("SELECT value FROM registry_pins WHERE name = 'jurisdiction'")).scalar()
    rules = get_profile(pinned or "bergen").name_rules
    keys = sa.table(TABLE, sa.column("instrument_id"), sa.column("role"), sa.column("position"),
                    sa.column("name_key"))  # fmt: skip
    after = (-1, "", -1)
    while True:  # keyset over the parties' unique key: bounded memory however large the book
        rows = bind.execute(
            sa.text("SELECT instrument_id, role, position, name FROM instrument_parties "
                    "WHERE (instrument_id, role, position) > (:i, :r, :p) "
                    "ORDER BY instrument_id, role, position LIMIT :n"),
            {"i": after[0], "r": after[1], "p": after[2], "n": BACKFILL_CHUNK},
        ).all()  # fmt: skip
        if not rows:
            return
        bind.execute(sa.insert(keys), [{"instrument_id": i, "role": r, "position": p, "name_key": rules.key(name)}
                                       for i, r, p, name in rows])  # fmt: skip
        after = tuple(rows[-1][:3])


def downgrade() -> None:
    drop_append_only_trigger(TABLE)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    op.drop_table(TABLE)
