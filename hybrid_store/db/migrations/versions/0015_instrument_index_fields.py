"""The instrument a recorder really indexes: the date the instrument bears, its page count, the
grantee's mailing address, the preparer, the return-to address (personal data: stored, never
committed), structured cross-references (``instrument_references``: the mortgage an assignment,
satisfaction or release acts on, the lien a discharge discharges, the instrument a correction
corrects), and the deeds that convey without the owner's signature as document types of their own.

Instruments are append-only, so the new columns are nullable and no row is rewritten: instruments
recorded before this revision simply have none of them (and stay committed under
``landreg-commitment/v1``). The CHECK on ``doc_type`` is widened as 0011 did: SQLite copies the
table (Alembic's batch mode) and its append-only triggers are made again.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hybrid_store.db.triggers import create_append_only_trigger, drop_append_only_trigger

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
BEFORE = ("DEED", "MASTER_DEED", "MORTGAGE", "ASSIGNMENT", "SATISFACTION", "RELEASE", "SUBORDINATION", "LIEN",
          "DISCHARGE_OF_LIEN", "LIS_PENDENS", "EASEMENT", "CORRECTION", "POWER_OF_ATTORNEY", "OTHER")  # fmt: skip
AFTER = (*BEFORE, "SHERIFFS_DEED", "EXECUTORS_DEED", "ADMINISTRATORS_DEED", "TAX_SALE_DEED", "COURT_ORDER")
KINDS = ("acts_on_mortgage", "discharges_lien", "corrects")
COLUMNS = ("document_date", "page_count", "grantee_mailing_address", "preparer", "return_to")


def _check(types: Sequence[str]) -> str:
    return "doc_type IN (" + ", ".join(f"'{t}'" for t in types) + ")"


def _instruments(types: Sequence[str], *, add: bool) -> None:
    doc_type, page_count = op.f("ck_instruments_doc_type"), op.f("ck_instruments_page_count")
    postgres = op.get_bind().dialect.name == "postgresql"
    # foreign keys are off while SQLite migrates (Database.migrate), and checked after
    with op.batch_alter_table("instruments", recreate="auto" if postgres else "always") as batch:
        if add:
            batch.add_column(sa.Column("document_date", sa.Date(), nullable=True))
            batch.add_column(sa.Column("page_count", sa.Integer(), nullable=True))
            batch.add_column(sa.Column("grantee_mailing_address", sa.Text(), nullable=True))
            batch.add_column(sa.Column("preparer", sa.String(length=200), nullable=True))
            batch.add_column(sa.Column("return_to", sa.Text(), nullable=True))
            batch.create_check_constraint(page_count, "page_count IS NULL OR page_count > 0")
        else:
            batch.drop_constraint(page_count, type_="check")
            for column in reversed(COLUMNS):
                batch.drop_column(column)
        batch.drop_constraint(doc_type, type_="check")
        batch.create_check_constraint(doc_type, _check(types))
    if not postgres:
        drop_append_only_trigger("instruments")  # the copy has none; IF EXISTS makes this safe
        create_append_only_trigger("instruments")


def upgrade() -> None:
    _instruments(AFTER, add=True)
    op.create_table(
        "instrument_references",
        sa.Column("id", Id, nullable=False),
        sa.Column("instrument_id", Id, nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("target_number", sa.String(length=24), nullable=True),
        sa.Column("target_book", sa.String(length=6), nullable=True),
        sa.Column("target_page", sa.String(length=6), nullable=True),
        sa.CheckConstraint("kind IN (" + ", ".join(f"'{k}'" for k in KINDS) + ")",
                           name=op.f("ck_instrument_references_kind")),
        sa.CheckConstraint(
            "(target_number IS NOT NULL AND target_book IS NULL AND target_page IS NULL) OR "
            "(target_number IS NULL AND target_book IS NOT NULL AND target_page IS NOT NULL)",
            name=op.f("ck_instrument_references_target"),
        ),
        sa.ForeignKeyConstraint(["instrument_id"], ["instruments.id"],
                                name=op.f("fk_instrument_references_instrument_id_instruments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instrument_references")),
        sa.UniqueConstraint("instrument_id", "position", name=op.f("uq_instrument_references_instrument_id")),
    )  # fmt: skip
    with op.batch_alter_table("instrument_references") as batch:
        batch.create_index(batch.f("ix_instrument_references_target_number"), ["target_number"], unique=False)
    create_append_only_trigger("instrument_references")
    if op.get_bind().dialect.name == "postgresql":  # as 0006 did for the other history tables
        op.execute(
            "CREATE TRIGGER instrument_references_no_truncate BEFORE TRUNCATE ON instrument_references "
            "FOR EACH STATEMENT EXECUTE FUNCTION landreg_no_truncate()"
        )


def downgrade() -> None:
    drop_append_only_trigger("instrument_references")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS instrument_references_no_truncate ON instrument_references")
    op.drop_table("instrument_references")
    # refused by the constraint while any instrument of a new type exists (append-only: they stay)
    _instruments(BEFORE, add=False)
