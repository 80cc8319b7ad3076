"""Revocations go through the transaction manager: a transaction attempt belongs to a batch, to a
mirror flag's revocation, or to a stage rollback's revocation of a batch's leaves (exactly one of
the three), and counts how often the node refused it outright (not a
revert: "insufficient funds", "intrinsic gas too high"), so a refusal becomes a hold after a few
tries instead of a retry every second.

tx_attempts stays placed once (0013): the signed attempt never changes and ``sent_at_block`` is set
once; what the node said when it refused it (``refusals``, which only grows, ``send_error`` and
``last_refused_at``) is the one record of it that moves. SQLite rebuilds the table to add the
columns, which drops its triggers: they are made again here with the new columns fixed.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
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
    placed_once(_FIXED + ("mirror_flag_id", "revokes_batch_id"), _MOVING)


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
    placed_once(_FIXED + ("send_error",), ("sent_at_block",))


#: tx_attempts' columns fixed once signed (0008's, but send_error: the node's last refusal)
_FIXED = ("id", "batch_id", "nonce", "tx_hash", "raw_tx", "max_fee_per_gas", "max_priority_fee_per_gas", "created_at",
          "created_at_block")  # fmt: skip
#: what may change: the block it was sent at (once), and the node's refusals of it
_MOVING = ("sent_at_block", "refusals", "send_error", "last_refused_at")
_REFUSED = "landreg: tx_attempts rows are kept as signed and sent ({} refused)"


def placed_once(fixed: tuple[str, ...], moving_columns: tuple[str, ...]) -> None:
    """The placed-once triggers of tx_attempts: on SQLite ``fixed`` are the columns no UPDATE may
    change, on PostgreSQL every column but ``moving_columns``; refusals never shrink."""
    if op.get_bind().dialect.name == "postgresql":
        moving = " - ".join(f"'{c}'" for c in moving_columns)
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION landreg_tx_attempts_placed_once() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE'
                   OR (to_jsonb(NEW) - {moving}) IS DISTINCT FROM (to_jsonb(OLD) - {moving})
                   OR (OLD.sent_at_block IS NOT NULL AND NEW.sent_at_block IS DISTINCT FROM OLD.sent_at_block)
                   OR COALESCE((to_jsonb(NEW) ->> 'refusals')::int, 0) < COALESCE((to_jsonb(OLD) ->> 'refusals')::int, 0) THEN
                    RAISE EXCEPTION 'landreg: tx_attempts rows are kept as signed and sent (% refused)', TG_OP
                        USING ERRCODE = 'restrict_violation';
                END IF;
                RETURN NEW;
            END $$
            """
        )
        return
    for action in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS tx_attempts_placed_once_{action}")
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in fixed)
    columns = {r[1] for r in op.get_bind().exec_driver_sql("PRAGMA table_info(tx_attempts)")}
    shrinks = " OR NEW.refusals < OLD.refusals" if "refusals" in columns else ""
    op.execute(
        "CREATE TRIGGER tx_attempts_placed_once_update BEFORE UPDATE ON tx_attempts "
        f"WHEN {changed}{shrinks} OR (OLD.sent_at_block IS NOT NULL AND NEW.sent_at_block IS NOT OLD.sent_at_block) "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSED.format('UPDATE')}'); END"
    )
    op.execute(
        "CREATE TRIGGER tx_attempts_placed_once_delete BEFORE DELETE ON tx_attempts "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSED.format('DELETE')}'); END"
    )
