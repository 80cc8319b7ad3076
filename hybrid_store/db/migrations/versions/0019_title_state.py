"""The title state (issue 23): ``title_nodes`` (the sparse Merkle tree's nodes, stored under their
own hash, written once) and ``title_versions`` (per batch: the state after it, the state it was
applied onto, its root and its marker's proof). Both append-only: a requeued batch or a rolled-back
stage makes a new branch of versions beside the old one, never a rewrite. Batches anchored before
this revision have no version: the first batch after it builds the state of every live batch's
records once (``hybrid_store.title_states``).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hybrid_store.db.triggers import create_append_only_trigger, drop_append_only_trigger

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLES = ("title_nodes", "title_versions")


def upgrade() -> None:
    op.create_table(
        "title_nodes",
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("node", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_title_nodes")),
    )
    op.create_table(
        "title_versions",
        sa.Column("batch_id", Id, nullable=False),
        sa.Column("base_batch_id", Id, nullable=True),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("parcels", sa.BigInteger(), nullable=False),
        sa.Column("touched", sa.Integer(), nullable=False),
        sa.Column("proof", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["anchor_batches.id"],
                                name=op.f("fk_title_versions_batch_id_anchor_batches")),
        sa.ForeignKeyConstraint(["base_batch_id"], ["anchor_batches.id"],
                                name=op.f("fk_title_versions_base_batch_id_anchor_batches")),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_title_versions")),
    )  # fmt: skip
    for table in TABLES:
        create_append_only_trigger(table)
        if op.get_bind().dialect.name == "postgresql":  # as 0006 did for the other history tables
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION landreg_no_truncate()"
            )


def downgrade() -> None:
    for table in reversed(TABLES):
        drop_append_only_trigger(table)
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.drop_table(table)
