"""Append-only enforcement, shared by the migrations: triggers that refuse UPDATE and DELETE.

A database administrator can still drop them (that is what reconciliation's tamper detection is
for); they stop every application path and every accidental statement from rewriting history.
"""

from __future__ import annotations

from alembic import op


def create_append_only_trigger(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE OR REPLACE FUNCTION landreg_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'landreg: % is append-only (% refused); file a correction instead',
                    TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
            END $$
            """
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION landreg_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_append_only_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'landreg: {table} is append-only ({action} refused); "
                "file a correction instead'); END"
            )


def drop_append_only_trigger(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    else:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only_{action}")
