"""Submissions: a filing is examined before it is recorded (issue 21). ``submissions`` keeps every
filing as received, with its time of receipt, findings, the clerk's attestations and confirmations,
and the instrument it became; a rejected one stays with its grounds. Instruments get an index on
``document_digest``, so examination finds a twin of a recorded document without a scan (an index is
no rewrite of an append-only row).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "submissions",
        sa.Column("id", Id, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitter", sa.String(length=300), nullable=False),
        sa.Column("api_key_id", Id, nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("filing", sa.JSON(), nullable=False),
        sa.Column("doc_type", sa.String(length=24), nullable=False),
        sa.Column("document_digest", sa.String(length=64), nullable=False),
        sa.Column("parcel_keys", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("attestations", sa.JSON(), nullable=False),
        sa.Column("confirmations", sa.JSON(), nullable=False),
        sa.Column("instrument_id", Id, nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=300), nullable=True),
        sa.Column("resolution_reason", sa.Text(), nullable=True),
        sa.Column("form_token", sa.String(length=64), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.CheckConstraint("state IN ('examining', 'waiting', 'recorded', 'rejected', 'withdrawn')",
                           name=op.f("ck_submissions_state")),
        sa.CheckConstraint("channel IN ('api', 'desk')", name=op.f("ck_submissions_channel")),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"], name=op.f("fk_submissions_api_key_id_api_keys")),
        sa.ForeignKeyConstraint(["instrument_id"], ["instruments.id"],
                                name=op.f("fk_submissions_instrument_id_instruments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
        sa.UniqueConstraint("form_token", name=op.f("uq_submissions_form_token")),
        sa.UniqueConstraint("instrument_id", name=op.f("uq_submissions_instrument_id")),
    )  # fmt: skip
    with op.batch_alter_table("submissions") as batch:
        batch.create_index(batch.f("ix_submissions_received_at"), ["received_at"], unique=False)
        batch.create_index(batch.f("ix_submissions_document_digest"), ["document_digest"], unique=False)
        batch.create_index(batch.f("ix_submissions_state"), ["state"], unique=False)
    op.create_index(op.f("ix_instruments_document_digest"), "instruments", ["document_digest"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_instruments_document_digest"), table_name="instruments")
    op.drop_table("submissions")
