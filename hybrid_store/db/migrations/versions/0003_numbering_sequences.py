"""Numbering without a global lock on PostgreSQL: sequences for instrument numbers and pages.

A counter row locked until commit serialises every filing (and every commit's fsync) behind it;
a sequence hands out numbers without holding anything. SQLite, which serialises writers anyway,
keeps using the ``counters`` table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE landreg_instrument_seq MINVALUE 0 START 1")
        op.execute("CREATE SEQUENCE landreg_page_seq MINVALUE 0 START 0")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE IF EXISTS landreg_page_seq")
        op.execute("DROP SEQUENCE IF EXISTS landreg_instrument_seq")
