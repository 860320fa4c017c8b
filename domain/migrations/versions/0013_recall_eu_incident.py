"""recalls: the EU serious incident category and when the maker became aware (MDR Art. 87 clocks)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("recalls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("eu_incident", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("eu_aware_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recalls", schema=None) as batch_op:
        batch_op.drop_column("eu_aware_at")
        batch_op.drop_column("eu_incident")
