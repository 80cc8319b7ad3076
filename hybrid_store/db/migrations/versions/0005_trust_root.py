"""Trust root: deployment block ranges and code hashes; signing keys with validity windows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("chain_deployments") as batch:
        batch.add_column(sa.Column("code_hash", sa.String(length=66), nullable=True))
        batch.add_column(sa.Column("registry_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("active_from_block", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("active_until_block", sa.BigInteger(), nullable=True))
    op.create_table(
        "signing_keys",
        sa.Column("id", Id, nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.String(length=128), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("purpose IN ('receipt', 'trust-root')", name="ck_signing_keys_purpose"),
        sa.CheckConstraint("status IN ('active', 'retired', 'compromised')", name="ck_signing_keys_status"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kid"),
    )
    # one active key per purpose, even when several server processes create one at once
    op.create_index(
        "uq_signing_keys_one_active", "signing_keys", ["purpose"], unique=True,
        sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("uq_signing_keys_one_active", table_name="signing_keys")
    op.drop_table("signing_keys")
    with op.batch_alter_table("chain_deployments") as batch:
        for column in ("active_until_block", "active_from_block", "registry_version", "code_hash"):
            batch.drop_column(column)
