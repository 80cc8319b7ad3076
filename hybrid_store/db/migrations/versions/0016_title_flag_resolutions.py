"""Title flags resolved by a recorded instrument: ``title_flag_resolutions`` (append-only, as
``title_flags`` is: a resolution is a new record naming the instrument that resolves the flag, a
correction of the flagged deed or a deed that makes its grantees the owners of record). One per
flag.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hybrid_store.db.triggers import create_append_only_trigger, drop_append_only_trigger

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "title_flag_resolutions",
        sa.Column("id", Id, nullable=False),
        sa.Column("flag_id", Id, nullable=False),
        sa.Column("instrument_id", Id, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["flag_id"], ["title_flags.id"],
                                name=op.f("fk_title_flag_resolutions_flag_id_title_flags")),
        sa.ForeignKeyConstraint(["instrument_id"], ["instruments.id"],
                                name=op.f("fk_title_flag_resolutions_instrument_id_instruments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_title_flag_resolutions")),
        sa.UniqueConstraint("flag_id", name=op.f("uq_title_flag_resolutions_flag_id")),
    )  # fmt: skip
    with op.batch_alter_table("title_flag_resolutions") as batch:
        batch.create_index(batch.f("ix_title_flag_resolutions_instrument_id"), ["instrument_id"], unique=False)
    create_append_only_trigger("title_flag_resolutions")
    if op.get_bind().dialect.name == "postgresql":  # as 0006 did for the other history tables
        op.execute(
            "CREATE TRIGGER title_flag_resolutions_no_truncate BEFORE TRUNCATE ON title_flag_resolutions "
            "FOR EACH STATEMENT EXECUTE FUNCTION landreg_no_truncate()"
        )


def downgrade() -> None:
    drop_append_only_trigger("title_flag_resolutions")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS title_flag_resolutions_no_truncate ON title_flag_resolutions")
    op.drop_table("title_flag_resolutions")
