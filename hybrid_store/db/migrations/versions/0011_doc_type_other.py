"""Document type OTHER: a recorded instrument that neither conveys nor encumbers title (an
agreement, a declaration, a contract of sale), as recorders such as New York City's record them.

The CHECK constraint on ``instruments.doc_type`` is widened. SQLite cannot alter a constraint, so
the table is copied (Alembic's batch mode) and its append-only triggers are made again; nothing in
any row changes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from hybrid_store.db.triggers import create_append_only_trigger, drop_append_only_trigger

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = ("DEED", "MASTER_DEED", "MORTGAGE", "ASSIGNMENT", "SATISFACTION", "RELEASE", "SUBORDINATION", "LIEN",
          "DISCHARGE_OF_LIEN", "LIS_PENDENS", "EASEMENT", "CORRECTION", "POWER_OF_ATTORNEY")  # fmt: skip
AFTER = (*BEFORE, "OTHER")


def _check(types: Sequence[str]) -> str:
    return "doc_type IN (" + ", ".join(f"'{t}'" for t in types) + ")"


def _replace(types: Sequence[str]) -> None:
    name = op.f("ck_instruments_doc_type")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(name, "instruments", type_="check")
        op.create_check_constraint(name, "instruments", _check(types))
        return
    # foreign keys are off while SQLite migrates (Database.migrate), and checked after
    with op.batch_alter_table("instruments", recreate="always") as batch:
        batch.drop_constraint(name, type_="check")
        batch.create_check_constraint(name, _check(types))
    drop_append_only_trigger("instruments")  # the copy has none; IF EXISTS makes this safe
    create_append_only_trigger("instruments")


def upgrade() -> None:
    _replace(AFTER)


def downgrade() -> None:
    # refused by the constraint while any OTHER instrument exists (append-only: they stay)
    _replace(BEFORE)
