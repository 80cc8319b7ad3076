"""Every table declares what it is (``hybrid_store/db/tables.py``); the triggers catch up with it.

* ``batch_records`` and ``reconciliations`` are history: append-only triggers (UPDATE, DELETE).
* ``tx_attempts`` is placed once: an attempt is kept as signed and sent; only ``sent_at_block``
  is filled in, once. A trigger refuses any other change and every DELETE.
* ``registry_pins`` (append-only since 0010) also refuses TRUNCATE on PostgreSQL, whoever runs it.

Nothing in any row changes.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

from hybrid_store.db.triggers import create_append_only_trigger, drop_append_only_trigger

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEWLY_APPEND_ONLY = ("batch_records", "reconciliations")
#: tx_attempts' columns as 0008 made them: all fixed once signed, but sent_at_block (set once)
_FIXED = ("id", "batch_id", "nonce", "tx_hash", "raw_tx", "max_fee_per_gas", "max_priority_fee_per_gas", "created_at",
          "created_at_block", "send_error")  # fmt: skip
_REFUSED = "landreg: tx_attempts rows are kept as signed and sent ({} refused)"


def upgrade() -> None:
    for table in NEWLY_APPEND_ONLY:
        create_append_only_trigger(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER registry_pins_no_truncate BEFORE TRUNCATE ON registry_pins "
            "FOR EACH STATEMENT EXECUTE FUNCTION landreg_no_truncate()"
        )
        op.execute(
            """
            CREATE OR REPLACE FUNCTION landreg_tx_attempts_placed_once() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE'
                   OR (to_jsonb(NEW) - 'sent_at_block') IS DISTINCT FROM (to_jsonb(OLD) - 'sent_at_block')
                   OR (OLD.sent_at_block IS NOT NULL AND NEW.sent_at_block IS DISTINCT FROM OLD.sent_at_block) THEN
                    RAISE EXCEPTION 'landreg: tx_attempts rows are kept as signed and sent (% refused)', TG_OP
                        USING ERRCODE = 'restrict_violation';
                END IF;
                RETURN NEW;
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER tx_attempts_placed_once BEFORE UPDATE OR DELETE ON tx_attempts "
            "FOR EACH ROW EXECUTE FUNCTION landreg_tx_attempts_placed_once()"
        )
        return
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _FIXED)
    op.execute(
        "CREATE TRIGGER tx_attempts_placed_once_update BEFORE UPDATE ON tx_attempts "
        f"WHEN {changed} OR (OLD.sent_at_block IS NOT NULL AND NEW.sent_at_block IS NOT OLD.sent_at_block) "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSED.format('UPDATE')}'); END"
    )
    op.execute(
        "CREATE TRIGGER tx_attempts_placed_once_delete BEFORE DELETE ON tx_attempts "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSED.format('DELETE')}'); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS tx_attempts_placed_once ON tx_attempts")
        op.execute("DROP FUNCTION IF EXISTS landreg_tx_attempts_placed_once()")
        op.execute("DROP TRIGGER IF EXISTS registry_pins_no_truncate ON registry_pins")
    else:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS tx_attempts_placed_once_{action}")
    for table in NEWLY_APPEND_ONLY:
        drop_append_only_trigger(table)
