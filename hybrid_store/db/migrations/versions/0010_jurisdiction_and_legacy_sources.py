"""The registry's pinned facts (its jurisdiction), and the county recorder databases it follows.

``registry_pins`` holds facts fixed at first use: a registry that already holds parcels was a
Bergen County registry (the only jurisdiction before this revision), so it is pinned to ``bergen``
here; an empty one is pinned when it is first used. ``legacy_sources`` and ``legacy_documents``
are the attachments of ``landreg legacy attach`` and what each legacy document became.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hybrid_store.db.triggers import create_append_only_trigger, drop_append_only_trigger

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "registry_pins",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("pinned_at", When, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_registry_pins")),
    )
    op.execute(
        "INSERT INTO registry_pins (name, value, pinned_at) "
        "SELECT 'jurisdiction', 'bergen', CURRENT_TIMESTAMP WHERE EXISTS (SELECT 1 FROM parcels)"
    )
    create_append_only_trigger("registry_pins")  # a pin is never changed, only refused
    op.create_table(
        "legacy_sources",
        sa.Column("id", Id, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("layout_name", sa.String(length=64), nullable=False),
        sa.Column("layout_text", sa.Text(), nullable=False),
        sa.Column("layout_sha256", sa.String(length=64), nullable=False),
        sa.Column("url_env", sa.String(length=128), nullable=True),
        sa.Column("url_file", sa.String(length=1024), nullable=True),
        sa.Column("dialect", sa.String(length=32), nullable=False),
        sa.Column("jurisdiction", sa.String(length=32), nullable=False),
        sa.Column("attached_at", When, nullable=False),
        sa.Column("attached_by", sa.String(length=160), nullable=False),
        sa.Column("last_sync_at", When, nullable=True),
        sa.Column("last_sync", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legacy_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_legacy_sources_name")),
    )
    op.create_table(
        "legacy_documents",
        sa.Column("id", Id, nullable=False),
        sa.Column("source_id", Id, nullable=False),
        sa.Column("legacy_key", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(length=32), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("instrument_id", Id, nullable=True),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("first_seen_at", When, nullable=False),
        sa.Column("synced_at", When, nullable=False),
        sa.CheckConstraint("state IN ('loaded', 'quarantined')", name=op.f("ck_legacy_documents_state")),
        sa.ForeignKeyConstraint(
            ["instrument_id"], ["instruments.id"], name=op.f("fk_legacy_documents_instrument_id_instruments")
        ),  # fmt: skip
        sa.ForeignKeyConstraint(
            ["source_id"], ["legacy_sources.id"], name=op.f("fk_legacy_documents_source_id_legacy_sources")
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legacy_documents")),
        sa.UniqueConstraint("source_id", "legacy_key", name="uq_legacy_documents_key"),
    )


def downgrade() -> None:
    op.drop_table("legacy_documents")
    op.drop_table("legacy_sources")
    drop_append_only_trigger("registry_pins")
    op.drop_table("registry_pins")
