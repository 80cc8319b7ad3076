"""The live mirror of a legacy database: how it is followed, what each legacy document became
(now also ``deleted``, and its version), and the flags a divergence raises.

``legacy_sources`` gains the change-capture method and its persisted cursor. ``legacy_documents``
gains the version landreg holds of each document, the state ``deleted``, and the key as the legacy
tables store it where it is not normalised (so the follower reads a document by its key indexes). ``mirror_flags``
holds one flag per replaced or deleted version: ``changed_in_legacy`` (with the new version and
the field-by-field difference) or ``deleted_in_legacy``; an operator may acknowledge one with a
reason, and the registry revokes the replaced version's leaf on the chain with a reason that
names its successor, so a verifier sees "superseded" from the chain alone.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def _states(states: str) -> None:
    name = op.f("ck_legacy_documents_state")
    with op.batch_alter_table("legacy_documents") as batch:
        batch.drop_constraint(name, type_="check")
        batch.create_check_constraint(name, f"state IN ({states})")


def upgrade() -> None:
    with op.batch_alter_table("legacy_sources") as batch:
        batch.add_column(sa.Column("capture", sa.String(length=16), nullable=True))  # trigger | watermark
        batch.add_column(sa.Column("cursor", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("last_sweep_at", When, nullable=True))
    with op.batch_alter_table("legacy_documents") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("raw_keys", sa.JSON(), nullable=True))
    _states("'loaded', 'quarantined', 'deleted'")
    op.create_table(
        "mirror_flags",
        sa.Column("id", Id, nullable=False),
        sa.Column("source_id", Id, nullable=False),
        sa.Column("legacy_key", sa.String(length=64), nullable=False),
        sa.Column("instrument_id", Id, nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("successor_id", Id, nullable=True),
        sa.Column("diff", sa.JSON(), nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("acknowledged_at", When, nullable=True),
        sa.Column("acknowledged_by", sa.String(length=160), nullable=True),
        sa.Column("ack_reason", sa.Text(), nullable=True),
        sa.Column("revoke_tx", sa.String(length=66), nullable=True),
        sa.Column("revoked_block", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("kind IN ('changed_in_legacy', 'deleted_in_legacy')", name=op.f("ck_mirror_flags_kind")),
        sa.ForeignKeyConstraint(
            ["instrument_id"], ["instruments.id"], name=op.f("fk_mirror_flags_instrument_id_instruments")
        ),  # fmt: skip
        sa.ForeignKeyConstraint(
            ["successor_id"], ["instruments.id"], name=op.f("fk_mirror_flags_successor_id_instruments")
        ),  # fmt: skip
        sa.ForeignKeyConstraint(
            ["source_id"], ["legacy_sources.id"], name=op.f("fk_mirror_flags_source_id_legacy_sources")
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirror_flags")),
        sa.UniqueConstraint("instrument_id", name=op.f("uq_mirror_flags_instrument_id")),
    )
    op.create_index(op.f("ix_mirror_flags_legacy_key"), "mirror_flags", ["source_id", "legacy_key"])


def downgrade() -> None:
    op.drop_index(op.f("ix_mirror_flags_legacy_key"), table_name="mirror_flags")
    op.drop_table("mirror_flags")
    op.execute("DELETE FROM legacy_documents WHERE state = 'deleted'")
    _states("'loaded', 'quarantined'")
    with op.batch_alter_table("legacy_documents") as batch:
        batch.drop_column("raw_keys")
        batch.drop_column("version")
    with op.batch_alter_table("legacy_sources") as batch:
        batch.drop_column("last_sweep_at")
        batch.drop_column("cursor")
        batch.drop_column("capture")
