"""Transaction attempts (replacements with bumped fees), anchoring holds, finality of batches.

Every existing batch gets its stored transaction as its first attempt.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("anchor_batches", recreate="never") as batch:  # plain ALTER: keeps the table as it is
        batch.add_column(sa.Column("error_kind", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "tx_attempts",
        sa.Column("id", Id, nullable=False),
        sa.Column("batch_id", Id, nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=False),
        sa.Column("max_fee_per_gas", sa.BigInteger(), nullable=False),
        sa.Column("max_priority_fee_per_gas", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at_block", sa.BigInteger(), nullable=True),
        sa.Column("sent_at_block", sa.BigInteger(), nullable=True),
        sa.Column("send_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["anchor_batches.id"], name="fk_tx_attempts_batch_id_anchor_batches"),
        sa.PrimaryKeyConstraint("id", name="pk_tx_attempts"),
        sa.UniqueConstraint("tx_hash", name="uq_tx_attempts_tx_hash"),
    )
    op.create_index("ix_tx_attempts_batch_id", "tx_attempts", ["batch_id"])
    # fees of the existing attempts are not known here; 0 only means "never bump from these"
    op.execute(
        "INSERT INTO tx_attempts (batch_id, nonce, tx_hash, raw_tx, max_fee_per_gas, max_priority_fee_per_gas, "
        "created_at) SELECT id, nonce, tx_hash, raw_tx, 0, 0, created_at FROM anchor_batches ORDER BY id"
    )
    op.create_table(
        "anchoring_holds",
        sa.Column("id", Id, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_by", sa.String(length=160), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_anchoring_holds"),
    )
    op.create_index(
        "uq_anchoring_holds_one_open", "anchoring_holds", ["kind"], unique=True,
        sqlite_where=sa.text("cleared_at IS NULL"), postgresql_where=sa.text("cleared_at IS NULL"),
    )  # fmt: skip
    if op.get_bind().dialect.name == "postgresql":  # the record of what was sent, and why anchoring held
        for table in ("tx_attempts", "anchoring_holds"):
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION landreg_no_truncate()"
            )


def downgrade() -> None:
    op.drop_index("uq_anchoring_holds_one_open", table_name="anchoring_holds")
    op.drop_table("anchoring_holds")
    op.drop_index("ix_tx_attempts_batch_id", table_name="tx_attempts")
    op.drop_table("tx_attempts")
    with op.batch_alter_table("anchor_batches", recreate="never") as batch:  # plain ALTER: keeps the table as it is
        batch.drop_column("finalized_at")
        batch.drop_column("error_kind")
