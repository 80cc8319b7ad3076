"""Registry service: API keys, the audit log, idempotency records, title flags, owner of record.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hybrid_store.db.triggers import create_append_only_trigger, drop_append_only_trigger

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("role", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=120), nullable=True),
        sa.CheckConstraint("role IN ('clerk', 'auditor', 'operator', 'admin')", name=op.f("ck_api_keys_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_api_keys_key_id")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("role", sa.String(length=12), nullable=False),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("target", sa.String(length=160), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)

    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("api_key_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"], name=op.f("fk_idempotency_keys_api_key_id_api_keys")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("api_key_id", "key", name=op.f("uq_idempotency_keys_api_key_id")),
    )
    op.create_table(
        "title_flags",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("instrument_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("parcel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('grantor_not_owner', 'conflicting_conveyance')", name=op.f("ck_title_flags_kind")),
        sa.ForeignKeyConstraint(
            ["instrument_id"], ["instruments.id"], name=op.f("fk_title_flags_instrument_id_instruments")
        ),
        sa.ForeignKeyConstraint(["parcel_id"], ["parcels.id"], name=op.f("fk_title_flags_parcel_id_parcels")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_title_flags")),
    )
    with op.batch_alter_table("title_flags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_title_flags_instrument_id"), ["instrument_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_title_flags_parcel_id"), ["parcel_id"], unique=False)

    # a plain ADD COLUMN: no table copy on SQLite, whose parcels are referenced by recorded instruments
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE parcels ADD COLUMN owner_instrument_id INTEGER REFERENCES instruments (id)")
    else:
        op.add_column("parcels", sa.Column("owner_instrument_id", sa.BigInteger(), nullable=True))
        op.create_foreign_key(
            "fk_parcels_owner_instrument_id_instruments", "parcels", "instruments", ["owner_instrument_id"], ["id"]
        )
    for table in ("title_flags", "audit_log"):
        create_append_only_trigger(table)


def downgrade() -> None:
    for table in ("title_flags", "audit_log"):
        drop_append_only_trigger(table)
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE parcels DROP COLUMN owner_instrument_id")
    else:
        op.drop_constraint("fk_parcels_owner_instrument_id_instruments", "parcels", type_="foreignkey")
        op.drop_column("parcels", "owner_instrument_id")

    with op.batch_alter_table("title_flags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_title_flags_parcel_id"))
        batch_op.drop_index(batch_op.f("ix_title_flags_instrument_id"))

    op.drop_table("title_flags")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
    op.drop_table("api_keys")
