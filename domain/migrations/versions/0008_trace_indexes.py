"""trace indexes: covering indexes for the trace scope; a shipment's consignee and date on its lines

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

The forward trace reads, for every reached lot, its stock balances and its shipment lines with the
consignee and date of their shipment. At tens of thousands of lots that was one heap visit per
balance and one shipments lookup per line. Now:

* ``shipment_lines`` carries ``consignee_id`` and ``shipped_on`` (a shipment's consignee and date,
  copied; backfilled here). A composite foreign key to ``shipments (id, consignee_id, shipped_on)``
  keeps the copy true on both databases: a line cannot disagree with its shipment, and
  ``ON UPDATE CASCADE`` carries a corrected shipment onto its lines. It replaces the plain foreign key
  on ``shipment_id`` (which it implies), so a join between the two tables stays unambiguous.
* ``ix_shipment_lines_lot`` becomes ``(lot_id, consignee_id, shipped_on, quantity, shipment_id,
  serial_id)``: consignee totals and the shipment lines of a lot come from the index alone.
* ``ix_stock_balances_lot`` becomes ``(lot_id, location_id, status, quantity)``: on-hand stock of a
  lot from the index alone.

SQLite cannot add a NOT NULL column or a foreign key to a table in place, so ``shipment_lines`` is
rebuilt in batch mode there (its triggers are re-created after the copy).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

LINES_LOT = "ix_shipment_lines_lot"
LINES_LOT_COLUMNS = ["lot_id", "consignee_id", "shipped_on", "quantity", "shipment_id", "serial_id"]
STOCK_LOT = "ix_stock_balances_lot"
STOCK_LOT_COLUMNS = ["lot_id", "location_id", "status", "quantity"]
SHIPMENT_KEY = "uq_shipments_id_consignee_shipped"
LINE_SHIPMENT_FK = "fk_shipment_lines_shipment_consignee_shipped"
SHIPMENT_FK = "fk_shipment_lines_shipment_id_shipments"


def _lines_table(*, upgraded: bool) -> sa.Table:
    """``shipment_lines`` for SQLite's batch copy: as 0001 made it plus the two new (nullable) columns,
    or as this migration leaves it."""
    extra: list[sa.SchemaItem] = [
        sa.Column("consignee_id", ID, nullable=not upgraded),
        sa.Column("shipped_on", sa.Date(), nullable=not upgraded),
    ]
    if upgraded:
        extra.append(
            sa.ForeignKeyConstraint(
                ["shipment_id", "consignee_id", "shipped_on"],
                ["shipments.id", "shipments.consignee_id", "shipments.shipped_on"],
                name=LINE_SHIPMENT_FK,
                onupdate="CASCADE",
            )
        )
    else:
        extra.append(sa.ForeignKeyConstraint(["shipment_id"], ["shipments.id"], name=SHIPMENT_FK))
    return sa.Table(
        "shipment_lines",
        sa.MetaData(),
        sa.Column("id", ID, nullable=False),
        sa.Column("shipment_id", ID, nullable=False),
        sa.Column("lot_id", ID, nullable=False),
        sa.Column("serial_id", ID, nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        *extra,
        sa.CheckConstraint("quantity > 0", name="ck_shipment_lines_quantity_positive"),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name="fk_shipment_lines_lot_id_lots"),
        sa.ForeignKeyConstraint(["serial_id"], ["serials.id"], name="fk_shipment_lines_serial_id_serials"),
        sa.PrimaryKeyConstraint("id", name="pk_shipment_lines"),
    )


def _sqlite_triggers(table: str) -> list[str]:
    """The CREATE TRIGGER statements on a SQLite table (a batch rebuild drops them with the table)."""
    rows = op.get_bind().execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t ORDER BY name"),
        {"t": table},
    )
    return [r[0] for r in rows]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # The key a line's (shipment, consignee, date) refers to; also lets PostgreSQL read a shipment's
    # consignee and date from the index alone.
    op.create_index(SHIPMENT_KEY, "shipments", ["id", "consignee_id", "shipped_on"], unique=True)

    op.add_column("shipment_lines", sa.Column("consignee_id", ID, nullable=True))
    op.add_column("shipment_lines", sa.Column("shipped_on", sa.Date(), nullable=True))
    if sqlite:
        op.execute(
            "UPDATE shipment_lines SET (consignee_id, shipped_on) = "
            "(SELECT s.consignee_id, s.shipped_on FROM shipments s WHERE s.id = shipment_lines.shipment_id)"
        )
    else:
        op.execute(
            "UPDATE shipment_lines l SET consignee_id = s.consignee_id, shipped_on = s.shipped_on "
            "FROM shipments s WHERE s.id = l.shipment_id"
        )
    op.drop_index(LINES_LOT, table_name="shipment_lines")
    if sqlite:
        triggers = _sqlite_triggers("shipment_lines")
        with op.batch_alter_table(
            "shipment_lines", copy_from=_lines_table(upgraded=False), recreate="always"
        ) as batch:
            batch.alter_column("consignee_id", existing_type=ID, nullable=False)
            batch.alter_column("shipped_on", existing_type=sa.Date(), nullable=False)
            batch.drop_constraint(SHIPMENT_FK, type_="foreignkey")
            batch.create_foreign_key(
                LINE_SHIPMENT_FK,
                "shipments",
                ["shipment_id", "consignee_id", "shipped_on"],
                ["id", "consignee_id", "shipped_on"],
                onupdate="CASCADE",
            )
        # The copy came from a table definition without indexes: put back the one 0001 made.
        op.create_index("ix_shipment_lines_shipment_id", "shipment_lines", ["shipment_id"])
        for sql in triggers:
            op.execute(sql)
    else:
        op.alter_column("shipment_lines", "consignee_id", existing_type=ID, nullable=False)
        op.alter_column("shipment_lines", "shipped_on", existing_type=sa.Date(), nullable=False)
        op.drop_constraint(SHIPMENT_FK, "shipment_lines", type_="foreignkey")
        op.create_foreign_key(
            LINE_SHIPMENT_FK,
            "shipment_lines",
            "shipments",
            ["shipment_id", "consignee_id", "shipped_on"],
            ["id", "consignee_id", "shipped_on"],
            onupdate="CASCADE",
        )
    op.create_index(LINES_LOT, "shipment_lines", LINES_LOT_COLUMNS)

    op.drop_index(STOCK_LOT, table_name="stock_balances")
    op.create_index(STOCK_LOT, "stock_balances", STOCK_LOT_COLUMNS)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.drop_index(STOCK_LOT, table_name="stock_balances")
    op.create_index(STOCK_LOT, "stock_balances", ["lot_id"])

    op.drop_index(LINES_LOT, table_name="shipment_lines")
    if sqlite:
        triggers = _sqlite_triggers("shipment_lines")
        with op.batch_alter_table(
            "shipment_lines", copy_from=_lines_table(upgraded=True), recreate="always"
        ) as batch:
            batch.drop_constraint(LINE_SHIPMENT_FK, type_="foreignkey")
            batch.drop_column("consignee_id")
            batch.drop_column("shipped_on")
            batch.create_foreign_key(SHIPMENT_FK, "shipments", ["shipment_id"], ["id"])
        op.create_index("ix_shipment_lines_shipment_id", "shipment_lines", ["shipment_id"])
        for sql in triggers:
            op.execute(sql)
    else:
        op.drop_constraint(LINE_SHIPMENT_FK, "shipment_lines", type_="foreignkey")
        op.create_foreign_key(SHIPMENT_FK, "shipment_lines", "shipments", ["shipment_id"], ["id"])
        op.drop_column("shipment_lines", "shipped_on")
        op.drop_column("shipment_lines", "consignee_id")
    op.create_index(LINES_LOT, "shipment_lines", ["lot_id", "shipment_id"])
    op.drop_index(SHIPMENT_KEY, table_name="shipments")
