"""Fees (issue 22): a submission keeps the fee statement worked out at its examination
(``submissions.fees``), and a recorded instrument its statement in ``instrument_fees``
(append-only, one per instrument, keyed by the recorder's day for the daily fee report).
Submissions and instruments recorded before this revision have no statement: none is invented.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hybrid_store.db.triggers import create_append_only_trigger, drop_append_only_trigger

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("fees", sa.JSON(), nullable=True))
    op.create_table(
        "instrument_fees",
        sa.Column("id", Id, nullable=False),
        sa.Column("instrument_id", Id, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=True),
        sa.Column("statement", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["instrument_id"], ["instruments.id"],
                                name=op.f("fk_instrument_fees_instrument_id_instruments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instrument_fees")),
        sa.UniqueConstraint("instrument_id", name=op.f("uq_instrument_fees_instrument_id")),
    )  # fmt: skip
    with op.batch_alter_table("instrument_fees") as batch:
        batch.create_index(batch.f("ix_instrument_fees_day"), ["day"], unique=False)
    create_append_only_trigger("instrument_fees")
    if op.get_bind().dialect.name == "postgresql":  # as 0006 did for the other history tables
        op.execute(
            "CREATE TRIGGER instrument_fees_no_truncate BEFORE TRUNCATE ON instrument_fees "
            "FOR EACH STATEMENT EXECUTE FUNCTION landreg_no_truncate()"
        )


def downgrade() -> None:
    drop_append_only_trigger("instrument_fees")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS instrument_fees_no_truncate ON instrument_fees")
    op.drop_table("instrument_fees")
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("fees")
