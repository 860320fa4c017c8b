"""The store's tables: products, lots, serials, genealogy, locations, the stock ledger, consignees,
shipments and users.

Stock is never edited in place: every movement is a :class:`StockEntry` in the ledger, and
:class:`StockBalance` is the running total per location, lot and bucket that the ledger keeps,
with a CHECK that it never goes below zero (see ``domain/inventory.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from domain.enums import (
    ConsigneeKind,
    Language,
    LocationKind,
    MovementKind,
    QcStatus,
    RiskClass,
    StockStatus,
)

# Integer primary keys that are BIGINT on PostgreSQL and rowid aliases on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime: give timestamps with a time zone")
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


def _enum(cls) -> Enum:
    """Enums stored as their values in a VARCHAR, portable across SQLite and PostgreSQL."""
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda e: [m.value for m in e],
    )


class Base(DeclarativeBase):
    """Declarative base with stable constraint names for Alembic."""

    metadata = MetaData(naming_convention=NAMING)


class Product(Base):
    """A device model: its UDI-DI (GTIN), risk class, whether it is implanted, and shelf life."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    gtin: Mapped[str] = mapped_column(String(14), unique=True)
    risk_class: Mapped[RiskClass] = mapped_column(_enum(RiskClass))
    implantable: Mapped[bool] = mapped_column(Boolean, default=False)
    shelf_life_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    lots: Mapped[list[Lot]] = relationship(back_populates="product")


class Lot(Base):
    """Units made together; unique per product (not globally)."""

    __tablename__ = "lots"
    __table_args__ = (
        UniqueConstraint("product_id", "lot_number"),
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        # Covering: a trace reads each reached lot's product, number and expiry from the index alone,
        # not from the wide table rows (migration 0012). The id leads and is unique, so PostgreSQL's
        # inner pages keep only the id and the index is as small as one with INCLUDE columns.
        Index("ix_lots_trace", "id", "product_id", "lot_number", "expires_on"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    lot_number: Mapped[str] = mapped_column(String(20))
    manufactured_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    expires_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    quantity: Mapped[int] = mapped_column(BigInteger, default=0)
    qc_status: Mapped[QcStatus] = mapped_column(_enum(QcStatus), default=QcStatus.quarantined)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    product: Mapped[Product] = relationship(back_populates="lots")
    holds: Mapped[list[LotHold]] = relationship(back_populates="lot")


class LotHold(Base):
    """A hold on a whole lot (recall, QC, change): while active, the lot may not be shipped or released."""

    __tablename__ = "lot_holds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    reason: Mapped[str] = mapped_column(String(32))  # recall | qc | change | manual
    reference: Mapped[str] = mapped_column(String(64))  # e.g. "recall-12"
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    placed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    released_by: Mapped[str | None] = mapped_column(String(64), nullable=True)

    lot: Mapped[Lot] = relationship(back_populates="holds")


class Serial(Base):
    """One unit of a serialised product; unique per product, belongs to a lot."""

    __tablename__ = "serials"
    __table_args__ = (UniqueConstraint("product_id", "serial"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    serial: Mapped[str] = mapped_column(String(20))


class GenealogyEdge(Base):
    """A component lot went into a produced lot, in a quantity."""

    __tablename__ = "genealogy_edges"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_genealogy_edges_parent", "parent_lot_id", "component_lot_id"),
    )

    component_lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), primary_key=True)
    parent_lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger)


class Location(Base):
    """A place that holds stock: warehouse, production line, quarantine area."""

    __tablename__ = "locations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[LocationKind] = mapped_column(_enum(LocationKind))


class StockEntry(Base):
    """One movement in the stock ledger. Append-only; balances follow from it.

    ``quantity`` is always positive; the kind says which bucket it leaves and enters
    (see ``domain.inventory.EFFECTS``). A transfer names ``to_location_id``.
    """

    __tablename__ = "stock_entries"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_stock_entries_lot", "lot_id", "id"),
        Index("ix_stock_entries_reference", "reference"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[MovementKind] = mapped_column(_enum(MovementKind))
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"))
    serial_id: Mapped[int | None] = mapped_column(ForeignKey("serials.id"), nullable=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    to_location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"), nullable=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str | None] = mapped_column(String(64), nullable=True)  # recall-12, SHP-001, import
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class StockBalance(Base):
    """On-hand quantity per location, lot and bucket, kept by the ledger; never negative."""

    __tablename__ = "stock_balances"
    __table_args__ = (
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        # Covering: a trace reads a lot's on-hand stock from the index alone.
        Index("ix_stock_balances_lot", "lot_id", "location_id", "status", "quantity"),
    )

    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"), primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), primary_key=True)
    status: Mapped[StockStatus] = mapped_column(_enum(StockStatus), primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger, default=0)


class Consignee(Base):
    """Whoever received product: distributor, hospital, pharmacy, or a sub-account of another consignee."""

    __tablename__ = "consignees"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[ConsigneeKind] = mapped_column(_enum(ConsigneeKind))
    email: Mapped[str | None] = mapped_column(String(255), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(20), nullable=True, index=True)  # E.164
    language: Mapped[Language] = mapped_column(_enum(Language), default=Language.zh_CN)
    region: Mapped[str | None] = mapped_column(String(64), nullable=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("consignees.id"), nullable=True, index=True)
    account_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)  # username

    parent: Mapped[Consignee | None] = relationship(remote_side="Consignee.id")


class Shipment(Base):
    """A delivery to one consignee on one date."""

    __tablename__ = "shipments"
    # What a line's copy of the consignee and date refers to (see ShipmentLine).
    __table_args__ = (
        Index("uq_shipments_id_consignee_shipped", "id", "consignee_id", "shipped_on", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    consignee_id: Mapped[int] = mapped_column(ForeignKey("consignees.id"), index=True)
    shipped_on: Mapped[date] = mapped_column(Date)

    consignee: Mapped[Consignee] = relationship()
    lines: Mapped[list[ShipmentLine]] = relationship(
        back_populates="shipment",
        primaryjoin="Shipment.id == ShipmentLine.shipment_id",
        foreign_keys="ShipmentLine.shipment_id",
    )


def _from_shipment(column: str) -> Callable[[Any], Any]:
    """A line's default for a column copied from its shipment, for writers that give only shipment_id."""

    def default(context: Any) -> Any:
        # Per statement, one lookup per shipment (an executemany calls this for every row and column).
        cache = context.__dict__.setdefault("_lotline_shipments", {})
        shipment_id = context.get_current_parameters()["shipment_id"]
        if shipment_id not in cache:
            cache[shipment_id] = context.connection.execute(
                select(Shipment.consignee_id, Shipment.shipped_on).where(Shipment.id == shipment_id)
            ).first() or (None, None)
        return cache[shipment_id][0 if column == "consignee_id" else 1]

    return default


class ShipmentLine(Base):
    """A quantity of one lot (or one serial) on a shipment.

    ``consignee_id`` and ``shipped_on`` repeat the shipment's, so a trace sums what each consignee
    received from this table alone; the composite foreign key keeps them equal to the shipment's
    (and ``ON UPDATE CASCADE`` follows a corrected shipment). Bulk writers fill them; a writer that
    gives only ``shipment_id`` gets them looked up.
    """

    __tablename__ = "shipment_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        ForeignKeyConstraint(
            ["shipment_id", "consignee_id", "shipped_on"],
            ["shipments.id", "shipments.consignee_id", "shipments.shipped_on"],
            name="fk_shipment_lines_shipment_consignee_shipped",
            onupdate="CASCADE",
        ),
        # Covering: consignee totals and the lines of a lot come from the index alone.
        Index(
            "ix_shipment_lines_lot",
            "lot_id",
            "consignee_id",
            "shipped_on",
            "quantity",
            "shipment_id",
            "serial_id",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Its foreign key is the composite one above (which implies shipments.id).
    shipment_id: Mapped[int] = mapped_column(BigId, index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"))
    serial_id: Mapped[int | None] = mapped_column(ForeignKey("serials.id"), nullable=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
    consignee_id: Mapped[int] = mapped_column(BigId, default=_from_shipment("consignee_id"))
    shipped_on: Mapped[date] = mapped_column(Date, default=_from_shipment("shipped_on"))

    shipment: Mapped[Shipment] = relationship(
        back_populates="lines",
        primaryjoin="Shipment.id == ShipmentLine.shipment_id",
        foreign_keys=[shipment_id],
    )


class User(Base):
    """A person who signs in; roles decide which routes and which sign-offs are theirs."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255), nullable=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DevSmsMessage(Base):
    """A text the built-in Twilio-compatible endpoint accepted, or a reply typed on the dev phone page.

    Development only: it stands in for Twilio's message log so the loop closes on one machine.
    """

    __tablename__ = "dev_sms_messages"
    __table_args__ = (Index("ix_dev_sms_messages_phone", "phone", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sid: Mapped[str] = mapped_column(String(34), unique=True)
    account_sid: Mapped[str] = mapped_column(String(34))
    direction: Mapped[str] = mapped_column(String(16))  # outbound-api | inbound | outbound-reply
    phone: Mapped[str] = mapped_column(String(20))  # the consignee's side of the conversation
    from_number: Mapped[str] = mapped_column(String(20))
    to_number: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # queued | sent | delivered | received | failed
    status_callback: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    # The HTTP status our last status callback (or inbound webhook) POST was answered with.
    callback_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
