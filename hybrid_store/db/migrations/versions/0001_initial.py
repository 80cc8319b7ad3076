"""Deed database and anchoring tables; Bergen County's municipalities; append-only triggers.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hybrid_store.db.triggers import create_append_only_trigger, drop_append_only_trigger
from hybrid_store.jurisdictions.bergen import municipalities

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chain_deployments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("genesis_hash", sa.String(length=66), nullable=False),
        sa.Column("contract_address", sa.String(length=42), nullable=False),
        sa.Column("registrar", sa.String(length=42), nullable=False),
        sa.Column("deploy_tx", sa.String(length=66), nullable=True),
        sa.Column("deploy_block", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_deployments")),
        sa.UniqueConstraint("chain_id", "contract_address", name=op.f("uq_chain_deployments_chain_id")),
    )
    op.create_table(
        "counters",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_counters")),
    )
    op.create_table(
        "instruments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("instrument_number", sa.String(length=24), nullable=False),
        sa.Column("book", sa.String(length=6), nullable=False),
        sa.Column("page", sa.String(length=6), nullable=False),
        sa.Column("doc_type", sa.String(length=24), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consideration_cents", sa.BigInteger(), nullable=True),
        sa.Column("legal_description", sa.Text(), nullable=False),
        sa.Column("document_digest", sa.String(length=64), nullable=False),
        sa.Column("corrects_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("salt_seed", sa.LargeBinary(length=32), nullable=False),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "doc_type IN ('DEED', 'MASTER_DEED', 'MORTGAGE', 'ASSIGNMENT', 'SATISFACTION', 'RELEASE', 'SUBORDINATION', 'LIEN', 'DISCHARGE_OF_LIEN', 'LIS_PENDENS', 'EASEMENT', 'CORRECTION', 'POWER_OF_ATTORNEY')",
            name=op.f("ck_instruments_doc_type"),
        ),
        sa.CheckConstraint(
            "consideration_cents IS NULL OR consideration_cents >= 0",
            name=op.f("ck_instruments_consideration"),
        ),
        sa.ForeignKeyConstraint(
            ["corrects_id"], ["instruments.id"], name=op.f("fk_instruments_corrects_id_instruments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instruments")),
        sa.UniqueConstraint("instrument_number", name=op.f("uq_instruments_instrument_number")),
    )
    with op.batch_alter_table("instruments", schema=None) as batch_op:
        batch_op.create_index("ix_instruments_book_page", ["book", "page"], unique=False)
        batch_op.create_index(batch_op.f("ix_instruments_corrects_id"), ["corrects_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_instruments_recorded_at"), ["recorded_at"], unique=False)

    op.create_table(
        "municipalities",
        sa.Column("code", sa.String(length=4), nullable=False),
        sa.Column("county_code", sa.String(length=2), nullable=False),
        sa.Column("district_code", sa.String(length=2), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_municipalities")),
    )
    op.create_table(
        "anchor_batches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("deployment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("chain_batch_id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("nodes", sa.LargeBinary(), nullable=False),
        sa.Column("parcel_root", sa.LargeBinary(length=32), nullable=True),
        sa.Column("parcel_nodes", sa.LargeBinary(), nullable=True),
        sa.Column("first_token_id", sa.BigInteger(), nullable=True),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("block_hash", sa.String(length=66), nullable=True),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mined_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('signed', 'mined', 'confirmed', 'failed')", name=op.f("ck_anchor_batches_state")),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["chain_deployments.id"],
            name=op.f("fk_anchor_batches_deployment_id_chain_deployments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anchor_batches")),
    )
    with op.batch_alter_table("anchor_batches", schema=None) as batch_op:
        batch_op.create_index("ix_anchor_batches_state", ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_anchor_batches_tx_hash"), ["tx_hash"], unique=False)
        batch_op.create_index(
            "uq_anchor_batches_live_chain_batch",
            ["deployment_id", "chain_batch_id"],
            unique=True,
            sqlite_where=sa.text("state != 'failed'"),
            postgresql_where=sa.text("state != 'failed'"),
        )

    op.create_table(
        "commitments",
        sa.Column("instrument_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scheme", sa.String(length=32), nullable=False),
        sa.Column("commitment", sa.LargeBinary(length=32), nullable=False),
        sa.Column("prev", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["instrument_id"], ["instruments.id"], name=op.f("fk_commitments_instrument_id_instruments")
        ),
        sa.PrimaryKeyConstraint("instrument_id", name=op.f("pk_commitments")),
        sa.UniqueConstraint("commitment", name=op.f("uq_commitments_commitment")),
    )
    op.create_table(
        "instrument_parties",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("instrument_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.CheckConstraint("role IN ('grantor', 'grantee')", name=op.f("ck_instrument_parties_role")),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.id"],
            name=op.f("fk_instrument_parties_instrument_id_instruments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instrument_parties")),
        sa.UniqueConstraint("instrument_id", "role", "position", name=op.f("uq_instrument_parties_instrument_id")),
    )
    with op.batch_alter_table("instrument_parties", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instrument_parties_name"), ["name"], unique=False)

    op.create_table(
        "anchor_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("instrument_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("batch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["anchor_batches.id"], name=op.f("fk_anchor_outbox_batch_id_anchor_batches")
        ),
        sa.ForeignKeyConstraint(
            ["instrument_id"], ["instruments.id"], name=op.f("fk_anchor_outbox_instrument_id_instruments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anchor_outbox")),
        sa.UniqueConstraint("instrument_id", name=op.f("uq_anchor_outbox_instrument_id")),
    )
    with op.batch_alter_table("anchor_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_anchor_outbox_batch_id"), ["batch_id"], unique=False)

    op.create_table(
        "batch_records",
        sa.Column("batch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("instrument_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tree_index", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["anchor_batches.id"], name=op.f("fk_batch_records_batch_id_anchor_batches")
        ),
        sa.ForeignKeyConstraint(
            ["instrument_id"], ["instruments.id"], name=op.f("fk_batch_records_instrument_id_instruments")
        ),
        sa.PrimaryKeyConstraint("batch_id", "instrument_id", name=op.f("pk_batch_records")),
    )
    with op.batch_alter_table("batch_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_batch_records_instrument_id"), ["instrument_id"], unique=False)

    op.create_table(
        "parcels",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("parcel_key", sa.String(length=48), nullable=False),
        sa.Column("municipality_code", sa.String(length=4), nullable=False),
        sa.Column("block", sa.String(length=12), nullable=False),
        sa.Column("lot", sa.String(length=12), nullable=False),
        sa.Column("qualifier", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("head_instrument_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("token_id", sa.BigInteger(), nullable=True),
        sa.Column("token_batch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["head_instrument_id"], ["instruments.id"], name=op.f("fk_parcels_head_instrument_id_instruments")
        ),
        sa.ForeignKeyConstraint(
            ["municipality_code"],
            ["municipalities.code"],
            name=op.f("fk_parcels_municipality_code_municipalities"),
        ),
        sa.ForeignKeyConstraint(
            ["token_batch_id"], ["anchor_batches.id"], name=op.f("fk_parcels_token_batch_id_anchor_batches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parcels")),
        sa.UniqueConstraint("parcel_key", name=op.f("uq_parcels_parcel_key")),
        sa.UniqueConstraint("token_id", name=op.f("uq_parcels_token_id")),
    )
    with op.batch_alter_table("parcels", schema=None) as batch_op:
        batch_op.create_index("ix_parcels_location", ["municipality_code", "block", "lot"], unique=False)

    op.create_table(
        "instrument_parcels",
        sa.Column("instrument_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("parcel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.id"],
            name=op.f("fk_instrument_parcels_instrument_id_instruments"),
        ),
        sa.ForeignKeyConstraint(["parcel_id"], ["parcels.id"], name=op.f("fk_instrument_parcels_parcel_id_parcels")),
        sa.PrimaryKeyConstraint("instrument_id", "parcel_id", name=op.f("pk_instrument_parcels")),
    )
    with op.batch_alter_table("instrument_parcels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instrument_parcels_parcel_id"), ["parcel_id"], unique=False)

    municipality = sa.table(
        "municipalities",
        sa.column("code", sa.String),
        sa.column("county_code", sa.String),
        sa.column("district_code", sa.String),
        sa.column("name", sa.String),
        sa.column("kind", sa.String),
    )
    op.bulk_insert(
        municipality,
        [
            {
                "code": m.code,
                "county_code": m.code[:2],  # an NJ code is county + district
                "district_code": m.code[2:],
                "name": m.name,
                "kind": m.kind,
            }
            for m in municipalities()
        ],
    )
    for table in APPEND_ONLY:
        create_append_only_trigger(table)


# Recorded instruments and their commitments are never changed or deleted: corrections are new rows.
APPEND_ONLY = ("instruments", "instrument_parties", "instrument_parcels", "commitments")


def downgrade() -> None:
    for table in APPEND_ONLY:
        drop_append_only_trigger(table)
    with op.batch_alter_table("instrument_parcels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instrument_parcels_parcel_id"))

    op.drop_table("instrument_parcels")
    with op.batch_alter_table("parcels", schema=None) as batch_op:
        batch_op.drop_index("ix_parcels_location")

    op.drop_table("parcels")
    with op.batch_alter_table("batch_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batch_records_instrument_id"))

    op.drop_table("batch_records")
    with op.batch_alter_table("anchor_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_anchor_outbox_batch_id"))

    op.drop_table("anchor_outbox")
    with op.batch_alter_table("instrument_parties", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instrument_parties_name"))

    op.drop_table("instrument_parties")
    op.drop_table("commitments")
    with op.batch_alter_table("anchor_batches", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_anchor_batches_live_chain_batch",
            sqlite_where=sa.text("state != 'failed'"),
            postgresql_where=sa.text("state != 'failed'"),
        )
        batch_op.drop_index(batch_op.f("ix_anchor_batches_tx_hash"))
        batch_op.drop_index("ix_anchor_batches_state")

    op.drop_table("anchor_batches")
    op.drop_table("municipalities")
    with op.batch_alter_table("instruments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instruments_recorded_at"))
        batch_op.drop_index(batch_op.f("ix_instruments_corrects_id"))
        batch_op.drop_index("ix_instruments_book_page")

    op.drop_table("instruments")
    op.drop_table("counters")
    op.drop_table("chain_deployments")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS landreg_append_only()")
