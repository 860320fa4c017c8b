"""What a genealogy trace returns: affected lots, on-hand stock, shipments and consignees.

Plain pydantic models over standard types and the enums in ``domain.enums``; no SQLAlchemy, so a
workflow may carry them through Temporal's sandbox (the recall's frozen scope is built from them).
The JSON field names are a contract: ``lotline trace --json`` and ``GET /api/trace`` print them.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

from domain.enums import ConsigneeKind, Language, StockStatus


def lot_label(product_code: str, lot_number: str) -> str:
    """How a lot is named in paths and messages: ``PRODUCT/LOT``."""
    return f"{product_code}/{lot_number}"


class LotRef(BaseModel):
    """A lot a trace starts from."""

    lot_id: int
    product_code: str
    lot_number: str
    gtin: str


class TracedLot(BaseModel):
    """A lot the trace reached, at its shortest distance from the origin, with one shortest path."""

    lot_id: int
    product_code: str
    product_name: str
    gtin: str
    lot_number: str
    expires_on: date | None = None
    depth: int = Field(description="genealogy levels from the nearest origin lot (0: an origin)")
    path: list[str] = Field(
        default_factory=list, description="PRODUCT/LOT labels from the origin to this lot, both included"
    )


class StockAtLocation(BaseModel):
    """On-hand quantity of an affected lot at one location, in one bucket."""

    location_code: str
    product_code: str
    lot_number: str
    status: StockStatus
    quantity: int
    lot_id: int


class ShippedLine(BaseModel):
    """A shipment line of an affected lot: who received how much, when."""

    shipment_ref: str
    shipped_on: date
    consignee_code: str
    product_code: str
    lot_number: str
    serial: str | None = None
    quantity: int
    lot_id: int


class ConsigneeExposure(BaseModel):
    """A consignee that received affected lots, with the totals a notice and a reconciliation need."""

    code: str
    name: str
    kind: ConsigneeKind
    region: str | None = None
    email: str | None = None
    phone: str | None = None
    language: Language
    parent_code: str | None = None
    quantity: int = Field(description="units of affected lots shipped to this consignee")
    lots: int = Field(description="how many affected lots it received")
    first_shipped_on: date
    last_shipped_on: date


class TraceHealth(BaseModel):
    """How complete a trace is: the depth bound, whether it cut anything off, and data faults met."""

    max_depth: int
    truncated: bool = Field(
        default=False, description="lots lie beyond max_depth that the trace did not follow"
    )
    cycle: list[str] = Field(
        default_factory=list,
        description="one genealogy cycle met on the way (PRODUCT/LOT labels, first repeated last); bad data",
    )
    warnings: list[str] = Field(default_factory=list)


class ForwardTrace(TraceHealth):
    """Forward scope of suspect lots: every lot made from them, its stock, shipments and consignees."""

    direction: Literal["forward"] = "forward"
    origin: list[LotRef]
    lots: list[TracedLot]
    stock: list[StockAtLocation] = Field(default_factory=list)
    shipments_included: bool = True
    shipments: list[ShippedLine] = Field(default_factory=list)
    consignees: list[ConsigneeExposure] = Field(default_factory=list)


class BackwardTrace(TraceHealth):
    """Backward trace: every component and supplier lot the origin lots were made from."""

    direction: Literal["backward"] = "backward"
    origin: list[LotRef]
    lots: list[TracedLot]
