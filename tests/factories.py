"""Small builders for test data, straight into the store."""

from __future__ import annotations

from datetime import date
from itertools import count

from sqlalchemy.ext.asyncio import AsyncSession

from domain.enums import ConsigneeKind, Language, LocationKind, RiskClass
from domain.gs1 import gtin_check_digit
from domain.models import Consignee, GenealogyEdge, Location, Lot, Product

_seq = count(1)


def make_gtin(n: int) -> str:
    """A valid GTIN-14 with the given item number."""
    body = f"0695{n:09d}"
    return body + str(gtin_check_digit(body))


async def product(session: AsyncSession, code: str | None = None, *, implantable: bool = False) -> Product:
    """A product with a valid GTIN."""
    n = next(_seq)
    p = Product(
        code=code or f"P{n}",
        name=f"Device {n}",
        gtin=make_gtin(n),
        risk_class=RiskClass.III if implantable else RiskClass.II,
        implantable=implantable,
        shelf_life_days=730,
    )
    session.add(p)
    await session.flush()
    return p


async def lot(session: AsyncSession, prod: Product, number: str, quantity: int = 100) -> Lot:
    """A lot of the product."""
    x = Lot(
        product_id=prod.id,
        lot_number=number,
        manufactured_on=date(2026, 1, 5),
        expires_on=date(2028, 1, 5),
        quantity=quantity,
    )
    session.add(x)
    await session.flush()
    return x


async def edge(session: AsyncSession, component: Lot, parent: Lot, quantity: int = 1) -> None:
    """Component lot went into parent lot."""
    session.add(GenealogyEdge(component_lot_id=component.id, parent_lot_id=parent.id, quantity=quantity))
    await session.flush()


async def location(session: AsyncSession, code: str = "WH1") -> Location:
    """A warehouse."""
    x = Location(code=code, name=f"Warehouse {code}", kind=LocationKind.warehouse)
    session.add(x)
    await session.flush()
    return x


async def consignee(session: AsyncSession, code: str, *, parent: Consignee | None = None) -> Consignee:
    """A hospital with e-mail and phone."""
    n = next(_seq)
    x = Consignee(
        code=code,
        name=f"Hospital {code}",
        kind=ConsigneeKind.hospital,
        email=f"{code.lower()}@example.org",
        phone=f"+86138{n:08d}",
        language=Language.zh_CN,
        region="Shanghai",
        parent_id=parent.id if parent else None,
    )
    session.add(x)
    await session.flush()
    return x
