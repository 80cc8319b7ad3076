"""Append-only for real on PostgreSQL: statement-level triggers refuse TRUNCATE of every table
that holds the registry's history, whoever runs it (row triggers never see a TRUNCATE).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: every table whose rows are the registry's history (SQLite has no TRUNCATE: its row triggers
#: already refuse DELETE on the append-only ones)
HISTORY = (
    "instruments", "instrument_parties", "instrument_parcels", "commitments", "title_flags", "audit_log",
    "parcels", "anchor_batches", "batch_records", "chain_deployments", "signing_keys", "migration_stages",
    "reconciliations", "api_keys",
)  # fmt: skip


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION landreg_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'landreg: % holds the registry''s history (TRUNCATE refused)', TG_TABLE_NAME
                USING ERRCODE = 'restrict_violation';
        END $$
        """
    )
    for table in HISTORY:
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION landreg_no_truncate()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in HISTORY:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    op.execute("DROP FUNCTION IF EXISTS landreg_no_truncate()")
