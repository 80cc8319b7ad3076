"""The audit log's hash chain: every entry gets a place in the chain, whose head is anchored with
the batches (``hybrid_store.audit_log``). Entries already in the log are queued to be chained.

A placed link never changes: a trigger refuses UPDATE of a placed row and every DELETE; checkpoints
are append-only; neither table can be truncated on PostgreSQL.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hybrid_store.db.triggers import create_append_only_trigger, drop_append_only_trigger

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", Id, nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("head", sa.LargeBinary(length=32), nullable=False),
        sa.Column("batch_id", Id, nullable=False),
        sa.Column("proof", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["anchor_batches.id"], name="fk_audit_checkpoints_batch_id_anchor_batches"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_audit_checkpoints"),
    )
    op.create_index("ix_audit_checkpoints_batch_id", "audit_checkpoints", ["batch_id"])
    op.create_table(
        "audit_chain",
        sa.Column("entry_id", Id, nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("entry_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("checkpoint_id", Id, nullable=True),
        sa.ForeignKeyConstraint(["entry_id"], ["audit_log.id"], name="fk_audit_chain_entry_id_audit_log"),
        sa.ForeignKeyConstraint(
            ["checkpoint_id"], ["audit_checkpoints.id"], name="fk_audit_chain_checkpoint_id_audit_checkpoints"
        ),
        sa.PrimaryKeyConstraint("entry_id", name="pk_audit_chain"),
        sa.UniqueConstraint("position", name="uq_audit_chain_position"),
    )
    op.create_index("ix_audit_chain_checkpoint_id", "audit_chain", ["checkpoint_id"])
    op.create_index(
        "ix_audit_chain_unplaced", "audit_chain", ["entry_id"],
        sqlite_where=sa.text("position IS NULL"), postgresql_where=sa.text("position IS NULL"),
    )  # fmt: skip
    op.execute("INSERT INTO audit_chain (entry_id) SELECT id FROM audit_log ORDER BY id")
    create_append_only_trigger("audit_checkpoints")
    _create_placed_once_trigger()
    if op.get_bind().dialect.name == "postgresql":  # the function exists since 0006
        for table in ("audit_chain", "audit_checkpoints"):
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION landreg_no_truncate()"
            )


def _create_placed_once_trigger() -> None:
    """UPDATE only places an unplaced link; DELETE never."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE OR REPLACE FUNCTION landreg_audit_chain_placed_once() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' OR OLD.position IS NOT NULL OR NEW.entry_id <> OLD.entry_id THEN
                    RAISE EXCEPTION 'landreg: audit_chain links are placed once (% refused)', TG_OP
                        USING ERRCODE = 'restrict_violation';
                END IF;
                RETURN NEW;
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER audit_chain_placed_once BEFORE UPDATE OR DELETE ON audit_chain "
            "FOR EACH ROW EXECUTE FUNCTION landreg_audit_chain_placed_once()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_chain_placed_once_update BEFORE UPDATE ON audit_chain "
            "WHEN OLD.position IS NOT NULL OR NEW.entry_id <> OLD.entry_id "
            "BEGIN SELECT RAISE(ABORT, 'landreg: audit_chain links are placed once (UPDATE refused)'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_chain_placed_once_delete BEFORE DELETE ON audit_chain "
            "BEGIN SELECT RAISE(ABORT, 'landreg: audit_chain links are placed once (DELETE refused)'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("audit_chain", "audit_checkpoints"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP TRIGGER IF EXISTS audit_chain_placed_once ON audit_chain")
        op.execute("DROP FUNCTION IF EXISTS landreg_audit_chain_placed_once()")
    else:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS audit_chain_placed_once_{action}")
    drop_append_only_trigger("audit_checkpoints")
    op.drop_table("audit_chain")
    op.drop_index("ix_audit_checkpoints_batch_id", table_name="audit_checkpoints")
    op.drop_table("audit_checkpoints")
