"""How each record entered the hybrid system (``commitments.source``) and, for a mirrored record's
new version, the version it supersedes (``commitments.supersedes_id``).

Existing rows: a legacy record's commitment was made by migration or by a filing's catch-up (not
told apart before); a filing's, at filing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hybrid_store.db.triggers import create_append_only_trigger, drop_append_only_trigger

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # plain ALTER on both: the table (and its triggers) stays as it is
    op.add_column("commitments", sa.Column("source", sa.String(length=12), nullable=False, server_default="filing"))
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("commitments", sa.Column("supersedes_id", Id, nullable=True))
        op.create_foreign_key("fk_commitments_supersedes_id_instruments", "commitments", "instruments",
                              ["supersedes_id"], ["id"])  # fmt: skip
    else:
        op.execute("ALTER TABLE commitments ADD COLUMN supersedes_id INTEGER REFERENCES instruments (id)")
    # the backfill is the owner's one-time rewrite of a column that did not exist: the append-only
    # trigger is lifted for this statement only
    drop_append_only_trigger("commitments")
    op.execute(
        "UPDATE commitments SET source = 'migration' WHERE instrument_id IN "
        "(SELECT id FROM instruments WHERE source = 'legacy')"
    )
    create_append_only_trigger("commitments")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("fk_commitments_supersedes_id_instruments", "commitments", type_="foreignkey")
        op.drop_column("commitments", "supersedes_id")
    else:  # SQLite cannot drop a column a foreign key names: copy the table (its triggers go with it)
        with op.batch_alter_table("commitments") as batch:
            batch.drop_column("supersedes_id")
        drop_append_only_trigger("commitments")
        create_append_only_trigger("commitments")
    with op.batch_alter_table("commitments", recreate="never") as batch:
        batch.drop_column("source")
