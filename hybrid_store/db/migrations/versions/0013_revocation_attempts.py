"""Revocations go through the transaction manager: a transaction attempt belongs to a batch, to a
mirror flag's revocation, or to a stage rollback's revocation of a batch's leaves (exactly one of
the three), and counts how often the node refused it outright (not a
revert: "insufficient funds", "intrinsic gas too high"), so a refusal becomes a hold after a few
tries instead of a retry every second.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ONE_SUBJECT = (
    "(CASE WHEN batch_id IS NULL THEN 0 ELSE 1 END) + (CASE WHEN mirror_flag_id IS NULL THEN 0 ELSE 1 END)"
    " + (CASE WHEN revokes_batch_id IS NULL THEN 0 ELSE 1 END) = 1"
)


def upgrade() -> None:
    with op.batch_alter_table("tx_attempts") as batch:
        batch.alter_column("batch_id", existing_type=Id, nullable=True)
        batch.add_column(sa.Column("mirror_flag_id", Id, nullable=True))
        batch.add_column(sa.Column("revokes_batch_id", Id, nullable=True))
        batch.add_column(sa.Column("refusals", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_refused_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key(
            op.f("fk_tx_attempts_mirror_flag_id_mirror_flags"), "mirror_flags", ["mirror_flag_id"], ["id"]
        )
        batch.create_foreign_key(
            op.f("fk_tx_attempts_revokes_batch_id_anchor_batches"), "anchor_batches", ["revokes_batch_id"], ["id"]
        )
        batch.create_index("ix_tx_attempts_mirror_flag_id", ["mirror_flag_id"])
        batch.create_index("ix_tx_attempts_revokes_batch_id", ["revokes_batch_id"])
        batch.create_check_constraint(op.f("ck_tx_attempts_one_subject"), ONE_SUBJECT)


def downgrade() -> None:
    op.execute("DELETE FROM tx_attempts WHERE batch_id IS NULL")
    with op.batch_alter_table("tx_attempts") as batch:
        batch.drop_constraint(op.f("ck_tx_attempts_one_subject"), type_="check")
        batch.drop_index("ix_tx_attempts_revokes_batch_id")
        batch.drop_index("ix_tx_attempts_mirror_flag_id")
        batch.drop_constraint(op.f("fk_tx_attempts_revokes_batch_id_anchor_batches"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_tx_attempts_mirror_flag_id_mirror_flags"), type_="foreignkey")
        batch.drop_column("revokes_batch_id")
        batch.drop_column("last_refused_at")
        batch.drop_column("refusals")
        batch.drop_column("mirror_flag_id")
        batch.alter_column("batch_id", existing_type=Id, nullable=False)
