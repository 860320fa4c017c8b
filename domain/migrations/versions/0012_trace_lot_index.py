"""trace lot index: each reached lot's product, number and expiry from one covering index

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30

A forward trace of a shared component lot reaches tens of thousands of lots and reads, for each, its
product, lot number and expiry. Through the primary key that was one index probe plus one visit to a
wide table row per lot; at 44,477 lots on PostgreSQL (128 MB of shared buffers) those heap pages were
about 5,500 of the ~19,000 pages the trace read from outside the buffer cache, and the index-only
reads cut the trace statement's CPU time by ~100 ms. ``ix_lots_trace (id, product_id, lot_number,
expires_on)`` answers from the index alone; with the unique id first, PostgreSQL's inner pages hold
only the id, so it is as small as an index with INCLUDE columns, and it means the same on SQLite.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_lots_trace", "lots", ["id", "product_id", "lot_number", "expires_on"])


def downgrade() -> None:
    op.drop_index("ix_lots_trace", table_name="lots")
