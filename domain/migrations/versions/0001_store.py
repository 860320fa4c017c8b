"""the lot and inventory store

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Also installs the triggers that keep implant records permanently (DOMAIN.md: distributors keep
records of implants permanently) and make the stock ledger append-only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consignees",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "distributor",
                "sub_distributor",
                "hospital",
                "pharmacy",
                "clinic",
                name="consigneekind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column(
            "language", sa.Enum("zh-CN", "en", name="language", native_enum=False, length=32), nullable=False
        ),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("parent_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("account_owner", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["consignees.id"], name=op.f("fk_consignees_parent_id_consignees")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consignees")),
        sa.UniqueConstraint("code", name=op.f("uq_consignees_code")),
    )
    with op.batch_alter_table("consignees", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consignees_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_consignees_phone"), ["phone"], unique=False)

    op.create_table(
        "locations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "warehouse",
                "production",
                "quarantine",
                "distribution_center",
                "supplier",
                name="locationkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_locations")),
        sa.UniqueConstraint("code", name=op.f("uq_locations_code")),
    )
    op.create_table(
        "products",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("gtin", sa.String(length=14), nullable=False),
        sa.Column(
            "risk_class",
            sa.Enum("I", "II", "III", name="riskclass", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("implantable", sa.Boolean(), nullable=False),
        sa.Column("shelf_life_days", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("code", name=op.f("uq_products_code")),
        sa.UniqueConstraint("gtin", name=op.f("uq_products_gtin")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("full_name", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "lots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_number", sa.String(length=20), nullable=False),
        sa.Column("manufactured_on", sa.Date(), nullable=True),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column(
            "qc_status",
            sa.Enum("quarantined", "released", "rejected", name="qcstatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("quantity >= 0", name=op.f("ck_lots_quantity_not_negative")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_lots_product_id_products")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lots")),
        sa.UniqueConstraint("product_id", "lot_number", name=op.f("uq_lots_product_id_lot_number")),
    )
    with op.batch_alter_table("lots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lots_product_id"), ["product_id"], unique=False)

    op.create_table(
        "shipments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("consignee_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shipped_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consignee_id"], ["consignees.id"], name=op.f("fk_shipments_consignee_id_consignees")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipments")),
        sa.UniqueConstraint("ref", name=op.f("uq_shipments_ref")),
    )
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shipments_consignee_id"), ["consignee_id"], unique=False)

    op.create_table(
        "genealogy_edges",
        sa.Column("component_lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("parent_lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_genealogy_edges_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["component_lot_id"], ["lots.id"], name=op.f("fk_genealogy_edges_component_lot_id_lots")
        ),
        sa.ForeignKeyConstraint(
            ["parent_lot_id"], ["lots.id"], name=op.f("fk_genealogy_edges_parent_lot_id_lots")
        ),
        sa.PrimaryKeyConstraint("component_lot_id", "parent_lot_id", name=op.f("pk_genealogy_edges")),
    )
    with op.batch_alter_table("genealogy_edges", schema=None) as batch_op:
        batch_op.create_index(
            "ix_genealogy_edges_parent", ["parent_lot_id", "component_lot_id"], unique=False
        )

    op.create_table(
        "lot_holds",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("placed_by", sa.String(length=64), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_lot_holds_lot_id_lots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lot_holds")),
    )
    with op.batch_alter_table("lot_holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lot_holds_lot_id"), ["lot_id"], unique=False)

    op.create_table(
        "serials",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("serial", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_serials_lot_id_lots")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_serials_product_id_products")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_serials")),
        sa.UniqueConstraint("product_id", "serial", name=op.f("uq_serials_product_id_serial")),
    )
    with op.batch_alter_table("serials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_serials_lot_id"), ["lot_id"], unique=False)

    op.create_table(
        "stock_balances",
        sa.Column("location_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "status",
            sa.Enum("unrestricted", "blocked", name="stockstatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("quantity >= 0", name=op.f("ck_stock_balances_quantity_not_negative")),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_stock_balances_location_id_locations")
        ),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_stock_balances_lot_id_lots")),
        sa.PrimaryKeyConstraint("location_id", "lot_id", "status", name=op.f("pk_stock_balances")),
    )
    with op.batch_alter_table("stock_balances", schema=None) as batch_op:
        batch_op.create_index("ix_stock_balances_lot", ["lot_id"], unique=False)

    op.create_table(
        "shipment_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shipment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("serial_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_shipment_lines_quantity_positive")),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_shipment_lines_lot_id_lots")),
        sa.ForeignKeyConstraint(
            ["serial_id"], ["serials.id"], name=op.f("fk_shipment_lines_serial_id_serials")
        ),
        sa.ForeignKeyConstraint(
            ["shipment_id"], ["shipments.id"], name=op.f("fk_shipment_lines_shipment_id_shipments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipment_lines")),
    )
    with op.batch_alter_table("shipment_lines", schema=None) as batch_op:
        batch_op.create_index("ix_shipment_lines_lot", ["lot_id", "shipment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_shipment_lines_shipment_id"), ["shipment_id"], unique=False)

    op.create_table(
        "stock_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "receipt",
                "issue",
                "shipment",
                "return",
                "destruction",
                "transfer",
                "block",
                "unblock",
                name="movementkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("serial_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("location_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("to_location_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_stock_entries_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_stock_entries_location_id_locations")
        ),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_stock_entries_lot_id_lots")),
        sa.ForeignKeyConstraint(
            ["serial_id"], ["serials.id"], name=op.f("fk_stock_entries_serial_id_serials")
        ),
        sa.ForeignKeyConstraint(
            ["to_location_id"], ["locations.id"], name=op.f("fk_stock_entries_to_location_id_locations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_entries")),
    )
    with op.batch_alter_table("stock_entries", schema=None) as batch_op:
        batch_op.create_index("ix_stock_entries_lot", ["lot_id", "id"], unique=False)
        batch_op.create_index("ix_stock_entries_reference", ["reference"], unique=False)

    _install_guards()


def downgrade() -> None:
    _drop_guards()
    with op.batch_alter_table("stock_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_stock_entries_reference")
        batch_op.drop_index("ix_stock_entries_lot")

    op.drop_table("stock_entries")
    with op.batch_alter_table("shipment_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shipment_lines_shipment_id"))
        batch_op.drop_index("ix_shipment_lines_lot")

    op.drop_table("shipment_lines")
    with op.batch_alter_table("stock_balances", schema=None) as batch_op:
        batch_op.drop_index("ix_stock_balances_lot")

    op.drop_table("stock_balances")
    with op.batch_alter_table("serials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_serials_lot_id"))

    op.drop_table("serials")
    with op.batch_alter_table("lot_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lot_holds_lot_id"))

    op.drop_table("lot_holds")
    with op.batch_alter_table("genealogy_edges", schema=None) as batch_op:
        batch_op.drop_index("ix_genealogy_edges_parent")

    op.drop_table("genealogy_edges")
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shipments_consignee_id"))

    op.drop_table("shipments")
    with op.batch_alter_table("lots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lots_product_id"))

    op.drop_table("lots")
    op.drop_table("users")
    op.drop_table("products")
    op.drop_table("locations")
    with op.batch_alter_table("consignees", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consignees_phone"))
        batch_op.drop_index(batch_op.f("ix_consignees_parent_id"))

    op.drop_table("consignees")


KEPT = "implant records are kept permanently"
APPEND_ONLY = "the stock ledger is append-only"

# table -> SQL that is true when OLD belongs to an implantable product
_IMPLANT_OF = {
    "products": "OLD.implantable",
    "lots": "(SELECT implantable FROM products WHERE id = OLD.product_id)",
    "serials": "(SELECT implantable FROM products WHERE id = OLD.product_id)",
    "shipment_lines": (
        "(SELECT p.implantable FROM lots l JOIN products p ON p.id = l.product_id WHERE l.id = OLD.lot_id)"
    ),
    "genealogy_edges": (
        "(SELECT p.implantable FROM lots l JOIN products p ON p.id = l.product_id"
        " WHERE l.id = OLD.parent_lot_id OR l.id = OLD.component_lot_id"
        " ORDER BY p.implantable DESC LIMIT 1)"
    ),
}


def _install_guards() -> None:
    """Triggers, on SQLite and PostgreSQL alike, that refuse what the rules forbid whoever the caller is."""
    if op.get_bind().dialect.name == "sqlite":
        for table, cond in _IMPLANT_OF.items():
            op.execute(
                f"CREATE TRIGGER {table}_keep_implants BEFORE DELETE ON {table} WHEN {cond} "
                f"BEGIN SELECT RAISE(ABORT, '{KEPT}'); END"
            )
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER stock_entries_no_{verb.lower()} BEFORE {verb} ON stock_entries "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
            )
        return
    for table, cond in _IMPLANT_OF.items():
        op.execute(
            f"""CREATE FUNCTION {table}_keep_implants() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF {cond} THEN
                RAISE EXCEPTION '{KEPT}' USING ERRCODE = 'integrity_constraint_violation';
              END IF;
              RETURN OLD;
            END $$"""
        )
        op.execute(
            f"CREATE TRIGGER {table}_keep_implants BEFORE DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_keep_implants()"
        )
    op.execute(
        f"""CREATE FUNCTION stock_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '{APPEND_ONLY}' USING ERRCODE = 'integrity_constraint_violation'; END $$"""
    )
    op.execute(
        "CREATE TRIGGER stock_entries_append_only BEFORE UPDATE OR DELETE ON stock_entries "
        "FOR EACH ROW EXECUTE FUNCTION stock_entries_append_only()"
    )


def _drop_guards() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in _IMPLANT_OF:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_keep_implants")
        op.execute("DROP TRIGGER IF EXISTS stock_entries_no_update")
        op.execute("DROP TRIGGER IF EXISTS stock_entries_no_delete")
        return
    for table in _IMPLANT_OF:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_keep_implants ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {table}_keep_implants()")
    op.execute("DROP TRIGGER IF EXISTS stock_entries_append_only ON stock_entries")
    op.execute("DROP FUNCTION IF EXISTS stock_entries_append_only()")
