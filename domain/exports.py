"""Export the store as the CSV files of the import contract (``domain/csvfiles.py``).

Import -> export -> import into an empty store gives the same data; export -> import into the
same store changes nothing. What the contract cannot carry is left out: QC status and holds of
lots, whether stock sits blocked or free (stock is the on-hand total per location and lot),
account owners. Rows are streamed from the store and written as they come, sorted by their keys.
"""

from __future__ import annotations

import asyncio
import csv
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.csvfiles import CSV_COLUMNS
from domain.models import (
    Consignee,
    GenealogyEdge,
    Location,
    Lot,
    Product,
    Serial,
    Shipment,
    ShipmentLine,
    StockBalance,
)

PARTITION = 5000


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _queries() -> dict[str, Select]:
    """One query per file, its columns in the contract's order."""
    parent_consignee = aliased(Consignee)
    parent_lot, component_lot = aliased(Lot), aliased(Lot)
    parent_product, component_product = aliased(Product), aliased(Product)
    on_hand = func.sum(StockBalance.quantity)
    shipped = func.sum(ShipmentLine.quantity)
    return {
        "products.csv": select(
            Product.code,
            Product.name,
            Product.gtin,
            Product.risk_class,
            Product.implantable,
            Product.shelf_life_days,
        ).order_by(Product.code),
        "locations.csv": select(Location.code, Location.name, Location.kind).order_by(Location.code),
        "consignees.csv": select(
            Consignee.code,
            Consignee.name,
            Consignee.kind,
            Consignee.email,
            Consignee.phone,
            Consignee.language,
            Consignee.region,
            parent_consignee.code,
        )
        .outerjoin(parent_consignee, Consignee.parent_id == parent_consignee.id)
        .order_by(Consignee.code),
        "lots.csv": select(
            Product.code,
            Lot.lot_number,
            Lot.manufactured_on,
            Lot.expires_on,
            # 0 means "not recorded": the contract writes it empty.
            func.nullif(Lot.quantity, 0),
        )
        .join(Product, Lot.product_id == Product.id)
        .order_by(Product.code, Lot.lot_number),
        "serials.csv": select(Product.code, Lot.lot_number, Serial.serial)
        .join(Product, Serial.product_id == Product.id)
        .join(Lot, Serial.lot_id == Lot.id)
        .order_by(Product.code, Serial.serial),
        "genealogy.csv": select(
            parent_product.code,
            parent_lot.lot_number,
            component_product.code,
            component_lot.lot_number,
            GenealogyEdge.quantity,
        )
        .join(parent_lot, GenealogyEdge.parent_lot_id == parent_lot.id)
        .join(parent_product, parent_lot.product_id == parent_product.id)
        .join(component_lot, GenealogyEdge.component_lot_id == component_lot.id)
        .join(component_product, component_lot.product_id == component_product.id)
        .order_by(
            parent_product.code, parent_lot.lot_number, component_product.code, component_lot.lot_number
        ),
        "stock.csv": select(Location.code, Product.code, Lot.lot_number, on_hand)
        .join(Location, StockBalance.location_id == Location.id)
        .join(Lot, StockBalance.lot_id == Lot.id)
        .join(Product, Lot.product_id == Product.id)
        .group_by(Location.code, Product.code, Lot.lot_number)
        .having(on_hand > 0)
        .order_by(Location.code, Product.code, Lot.lot_number),
        # Repeated lines of one (shipment, lot, serial) are added up: the key is unique in the file.
        "shipments.csv": select(
            Shipment.ref,
            Consignee.code,
            Product.code,
            Lot.lot_number,
            Serial.serial,
            shipped,
            Shipment.shipped_on,
        )
        .join(Shipment, ShipmentLine.shipment_id == Shipment.id)
        .join(Consignee, Shipment.consignee_id == Consignee.id)
        .join(Lot, ShipmentLine.lot_id == Lot.id)
        .join(Product, Lot.product_id == Product.id)
        .outerjoin(Serial, ShipmentLine.serial_id == Serial.id)
        .group_by(
            Shipment.ref, Consignee.code, Product.code, Lot.lot_number, Serial.serial, Shipment.shipped_on
        )
        .order_by(Shipment.ref, Product.code, Lot.lot_number, Serial.serial.nulls_first()),
    }


async def export_csv(session: AsyncSession, *, directory: Path, bom: bool = False) -> dict[str, int]:
    """Write the eight files of the contract into ``directory``; returns the rows written per file.

    ``bom`` starts each file with a UTF-8 byte-order mark, which Excel needs to show Chinese text.
    """
    # File work runs in a thread so that a large export never stalls the event loop.
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    queries = _queries()
    assert set(queries) == set(CSV_COLUMNS), "one query per file of the contract"
    counts: dict[str, int] = {}
    for file, columns in CSV_COLUMNS.items():
        n = 0
        encoding = "utf-8-sig" if bom else "utf-8"
        out = await asyncio.to_thread(open, directory / file, "w", encoding=encoding, newline="")
        try:
            writer = csv.writer(out)
            writer.writerow(columns)
            result = await session.stream(queries[file])
            async for partition in result.partitions(PARTITION):
                await asyncio.to_thread(writer.writerows, [[_cell(v) for v in row] for row in partition])
                n += len(partition)
        finally:
            await asyncio.to_thread(out.close)
        counts[file] = n
    return counts
