"""The committed field hashes beside each commitment (issue 24): reconciliation names the fields
of a tampered record that no longer match the hashes they were committed under. Nullable: records
committed before this revision have none, and reconciliation says so instead of naming fields.

Revises 0019.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("commitments", sa.Column("field_hashes", sa.LargeBinary(), nullable=True))  # plain ALTER


def downgrade() -> None:
    with op.batch_alter_table("commitments", recreate="never") as batch:  # plain ALTER: keeps its triggers
        batch.drop_column("field_hashes")
