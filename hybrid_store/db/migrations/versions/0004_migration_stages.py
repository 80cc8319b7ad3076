"""Staged migration and reconciliation: stages, reconciliation runs, batch stage and supersession.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "migration_stages",
        sa.Column("id", Id, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("selector", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("records_done", sa.BigInteger(), nullable=False),
        sa.Column("batches_done", sa.Integer(), nullable=False),
        sa.Column("reconciled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reconciled_clean", sa.Boolean(), nullable=True),
        sa.Column("signed_off_by", sa.String(length=160), nullable=True),
        sa.Column("signed_off_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('planned', 'running', 'anchored', 'signed_off', 'rolled_back')",
            name=op.f("ck_migration_stages_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_migration_stages")),
        sa.UniqueConstraint("name", name=op.f("uq_migration_stages_name")),
    )
    op.create_table(
        "reconciliations",
        sa.Column("id", Id, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("stage_id", Id, nullable=True),
        sa.Column("clean", sa.Boolean(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stage_id"], ["migration_stages.id"], name=op.f("fk_reconciliations_stage_id_migration_stages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliations")),
    )
    # plain ADD COLUMNs: no table copy on SQLite, whose batches are referenced by records and parcels
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE anchor_batches ADD COLUMN stage_id INTEGER REFERENCES migration_stages (id)")
        op.execute("ALTER TABLE anchor_batches ADD COLUMN superseded_at DATETIME")
        op.execute("ALTER TABLE anchor_batches ADD COLUMN supersedes_batch_id INTEGER REFERENCES anchor_batches (id)")
    else:
        op.add_column("anchor_batches", sa.Column("stage_id", sa.BigInteger(), nullable=True))
        op.add_column("anchor_batches", sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True))
        op.add_column("anchor_batches", sa.Column("supersedes_batch_id", sa.BigInteger(), nullable=True))
        op.create_foreign_key(
            "fk_anchor_batches_stage_id_migration_stages", "anchor_batches", "migration_stages", ["stage_id"], ["id"]
        )
        op.create_foreign_key(
            "fk_anchor_batches_supersedes_batch_id_anchor_batches", "anchor_batches", "anchor_batches",
            ["supersedes_batch_id"], ["id"],
        )  # fmt: skip
    op.create_index("ix_anchor_batches_stage_id", "anchor_batches", ["stage_id"])


def downgrade() -> None:
    op.drop_index("ix_anchor_batches_stage_id", table_name="anchor_batches")
    if op.get_bind().dialect.name == "sqlite":
        for column in ("supersedes_batch_id", "superseded_at", "stage_id"):
            op.execute(f"ALTER TABLE anchor_batches DROP COLUMN {column}")
    else:
        op.drop_constraint("fk_anchor_batches_supersedes_batch_id_anchor_batches", "anchor_batches", type_="foreignkey")
        op.drop_constraint("fk_anchor_batches_stage_id_migration_stages", "anchor_batches", type_="foreignkey")
        for column in ("supersedes_batch_id", "superseded_at", "stage_id"):
            op.drop_column("anchor_batches", column)
    op.drop_table("reconciliations")
    op.drop_table("migration_stages")
