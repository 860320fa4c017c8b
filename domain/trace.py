"""Genealogy trace: forward from suspect lots to everything made from them, or backward to their components.

A recursive CTE, the same on SQLite and PostgreSQL, walks the genealogy on rows ``(lot_id, key)``
with ``UNION`` (distinct), ``key`` packing the depth and ``via``, the lot the row came from, as
``depth * 2^40 + via``, bounded by ``max_depth``:

* It terminates on any data: ``UNION`` never re-expands a row it has produced, and the depth bound
  stops a cycle, whose rows would otherwise grow deeper forever.
* It never enumerates paths. A lot is expanded once per (depth, predecessor) at which it is
  reached: diamonds and a component lot shared by thousands of finished lots cost about one visit
  per edge of the reached subgraph, each an index-only probe of the edge primary key (forward) or
  of ``ix_genealogy_edges_parent`` (backward).
* The smallest key per lot gives the shortest depth and, at that depth, a predecessor (on
  PostgreSQL the first row per lot in key order, ``DISTINCT ON``: one sort where ``MIN`` hashed and
  then sorted); following predecessors rebuilds one shortest path per lot in Python, so paths are
  never carried through the recursion, where they would multiply.

The reached lots feed the scope, each part a section of the answer: the lots with their product,
number and expiry (``ix_lots_trace`` covers them), their products once each, on-hand stock per
location and bucket, and consignees with summed quantities (every shipment line too, on request).
``reach`` is ordered by lot id, so every part probes its index in key order (3× faster than in hash
order at 44,477 lots). On PostgreSQL a part's answer is one row holding an array per section column,
which asyncpg decodes in C (tens of thousands of rows cost a Python object each); on SQLite it is a
tagged ``UNION ALL``. Python then orders each part (the same on both databases) and builds the
models without validating them.

So a trace is a fixed number of statements at any size, never one query per lot:

* SQLite, and the backward trace: one statement, the walk and its sections together.
* PostgreSQL, forward: the walk, then the scope of the lots it returned. A large scope is read on
  two more connections at once, as the walk saw it (see ``_forward_postgres``): on two cores the
  lots are assembled in Python while the stock and the consignees are still being read.

Only when the walk reaches ``max_depth`` (bad data with a cycle, or a genealogy deeper than any real
one) does one more query fetch the edges among the reached lots to name the cycle. ``truncated`` is
set only when lots beyond the bound were really left out.
"""

from __future__ import annotations

import asyncio
import gc
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from operator import itemgetter
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import (
    BigInteger,
    Date,
    Integer,
    String,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal_column,
    null,
    select,
    text,
    true,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.selectable import CTE

from domain.enums import ConsigneeKind, Language, StockStatus
from domain.errors import InvalidInput, NotFound
from domain.gs1 import parse_element_string
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
from domain.scope import (
    BackwardTrace,
    ConsigneeExposure,
    ForwardTrace,
    LotRef,
    ShippedLine,
    StockAtLocation,
    TracedLot,
    lot_label,
)

try:
    from sqlalchemy.dialects.postgresql import distinct_on
except ImportError:  # SQLAlchemy 2.0: DISTINCT ON through Select.distinct(*columns)
    distinct_on = None  # type: ignore[assignment]

DEFAULT_MAX_DEPTH = 200
# Deeper than any real bill of materials; a caller asking for more is almost surely mistaken.
MAX_DEPTH_LIMIT = 10_000

edges = GenealogyEdge.__table__
lots_t = Lot.__table__
products_t = Product.__table__

# A walk key packs (depth, predecessor lot id) into one BIGINT: ids below 2^40, depths below 2^23.
_VIA_BITS = 40
_VIA = 1 << _VIA_BITS
_LOT_ID_MASK = _VIA - 1


# --------------------------------------------------------------------------- origin


def _clean(value: str | None) -> str | None:
    value = value.strip() if isinstance(value, str) else value
    return value or None


async def resolve_origin(
    session: AsyncSession,
    *,
    product_code: str | None = None,
    lot_number: str | None = None,
    serial: str | None = None,
    gs1: str | None = None,
) -> list[int]:
    """The lot ids a person means: by product and lot, by serial, or by a GS1 element string.

    Raises InvalidInput or NotFound naming the field that is wrong.
    """
    product_code, lot_number, serial = _clean(product_code), _clean(lot_number), _clean(serial)
    gs1 = gs1 if gs1 and gs1.strip() else None
    if gs1 is not None:
        if product_code or lot_number or serial:
            raise InvalidInput(
                "give either a GS1 element string or product_code/lot_number/serial, not both", field="gs1"
            )
        return [await _lot_from_gs1(session, gs1)]
    product_id: int | None = None
    if product_code is not None:
        product_id = await session.scalar(select(Product.id).where(Product.code == product_code))
        if product_id is None:
            raise NotFound(f"no product with code {product_code!r}", field="product_code")
    if serial is not None:
        return [await _lot_from_serial(session, serial, product_id=product_id, lot_number=lot_number)]
    if lot_number is None:
        if product_code is not None:
            raise InvalidInput(
                "a product code needs a lot_number (or a serial) to name a lot", field="lot_number"
            )
        raise InvalidInput(
            "name the lot: product_code and lot_number, a serial, or a gs1 element string", field="lot_number"
        )
    rows = (
        await session.execute(
            select(Lot.id, Product.code)
            .join(Product, Product.id == Lot.product_id)
            .where(Lot.lot_number == lot_number, *([Lot.product_id == product_id] if product_id else []))
            .order_by(Product.code)
        )
    ).all()
    if not rows:
        where = f" of product {product_code}" if product_code else ""
        raise NotFound(f"no lot {lot_number!r}{where}", field="lot_number")
    if len(rows) > 1:
        codes = ", ".join(code for _, code in rows)
        raise InvalidInput(
            f"lot number {lot_number!r} exists for several products ({codes}); give product_code",
            field="product_code",
        )
    return [rows[0][0]]


async def _lot_from_serial(
    session: AsyncSession, serial: str, *, product_id: int | None, lot_number: str | None
) -> int:
    q = (
        select(Serial.lot_id, Lot.lot_number, Product.code)
        .join(Lot, Lot.id == Serial.lot_id)
        .join(Product, Product.id == Serial.product_id)
        .where(Serial.serial == serial)
        .order_by(Product.code)
    )
    if product_id is not None:
        q = q.where(Serial.product_id == product_id)
    rows = (await session.execute(q)).all()
    if not rows:
        raise NotFound(f"no unit with serial {serial!r}", field="serial")
    if len(rows) > 1:
        codes = ", ".join(code for _, _, code in rows)
        raise InvalidInput(
            f"serial {serial!r} exists for several products ({codes}); give product_code",
            field="product_code",
        )
    lot_id, number, code = rows[0]
    if lot_number is not None and lot_number != number:
        raise InvalidInput(
            f"serial {serial!r} belongs to lot {lot_label(code, number)}, not lot {lot_number!r}",
            field="lot_number",
        )
    return lot_id


async def _lot_from_gs1(session: AsyncSession, text: str) -> int:
    ident = parse_element_string(text)
    product = (
        await session.execute(select(Product.id, Product.code).where(Product.gtin == ident.gtin))
    ).first()
    if product is None:
        raise NotFound(f"no product with GTIN {ident.gtin}", field="gs1")
    product_id, code = product
    if ident.serial is not None:
        row = (
            await session.execute(
                select(Serial.lot_id, Lot.lot_number)
                .join(Lot, Lot.id == Serial.lot_id)
                .where(Serial.product_id == product_id, Serial.serial == ident.serial)
            )
        ).first()
        if row is None:
            raise NotFound(f"no unit of {code} with serial {ident.serial!r}", field="gs1")
        if ident.lot is not None and ident.lot != row[1]:
            raise InvalidInput(
                f"serial {ident.serial!r} belongs to lot {row[1]!r}, "
                f"but the GS1 string says lot {ident.lot!r}",
                field="gs1",
            )
        return row[0]
    if ident.lot is None:
        raise InvalidInput(
            "the GS1 element string names a product (AI 01) but no lot (AI 10) or serial (AI 21)", field="gs1"
        )
    lot_id = await session.scalar(
        select(Lot.id).where(Lot.product_id == product_id, Lot.lot_number == ident.lot)
    )
    if lot_id is None:
        raise NotFound(f"no lot {ident.lot!r} of {code} (GTIN {ident.gtin})", field="gs1")
    return lot_id


# --------------------------------------------------------------------------- the statement


def _direction(forward: bool) -> tuple[ColumnElement[int], ColumnElement[int]]:
    """(from, to) columns of an edge in the direction of travel."""
    if forward:
        return edges.c.component_lot_id, edges.c.parent_lot_id
    return edges.c.parent_lot_id, edges.c.component_lot_id


def _walk(forward: bool, *, postgres: bool = False) -> tuple[CTE, CTE]:
    """The recursive walk over (lot_id, key), and per lot its shortest depth and a predecessor.

    ``key`` packs the depth and ``via``, the lot a row was reached from (0 for an origin), as
    ``depth * 2^40 + via``. Rows are distinct pairs, so a lot is expanded once per depth and
    predecessor at that depth: paths are never enumerated, and the predecessor comes for free instead
    of costing a second pass over the edges. (Packed, a row is 16 bytes of data where a separate depth
    made it 24: the 50,016 rows of the heaviest trace then stay within PostgreSQL's default
    ``work_mem`` instead of spilling to a temporary file that every later scan of the walk reads.)

    ``reach`` is ordered by lot id. Every part of the scope joins it to an index on ``lot_id``, one
    probe per reached lot; in key order consecutive probes land on the same index pages, where in the
    hash aggregate's order each probe is a fresh walk down a cold B-tree (at 44,477 lots on
    PostgreSQL: the stock, lots and shipment-line probes ran about 3× faster).
    """
    src, dst = _direction(forward)
    via = literal_column(str(_VIA), BigInteger)
    anchor = select(
        lots_t.c.id.label("lot_id"),
        cast(literal_column("0"), BigInteger).label("key"),
    ).where(lots_t.c.id.in_(bindparam("origin_ids", expanding=True)))
    walk = anchor.cte("walk", recursive=True)
    w = walk.alias("w")
    walk = walk.union(
        select(dst, (w.c.key // via + 1) * via + w.c.lot_id)
        .select_from(w.join(edges, src == w.c.lot_id))
        .where(w.c.key < bindparam("max_key", type_=BigInteger))
    )
    # The smallest key: the shortest depth, and at that depth the smallest predecessor id.
    if postgres:
        # The first row per lot in (lot, key) order: one sort, where GROUP BY then ORDER BY hashes and
        # sorts (PostgreSQL cannot know how few rows a recursive CTE makes, so it hashes).
        first_per_lot = select(walk.c.lot_id, walk.c.key).order_by(walk.c.lot_id, walk.c.key)
        if distinct_on is None:  # SQLAlchemy 2.0
            first_per_lot = first_per_lot.distinct(walk.c.lot_id)
        else:
            first_per_lot = first_per_lot.ext(distinct_on(walk.c.lot_id))
        reach = first_per_lot.cte("reach")
    else:
        reach = (
            select(walk.c.lot_id, func.min(walk.c.key, type_=BigInteger).label("key"))
            .group_by(walk.c.lot_id)
            .order_by(walk.c.lot_id)
            .cte("reach")
        )
    return walk, reach


def _bound(walk: CTE, reach: CTE, forward: bool) -> list[ColumnElement[Any]]:
    """Whether the walk reached the depth bound, and whether an edge from there leads outside the trace.

    Rows at the bound are the only ones not expanded, so only their edges can have been cut off; the
    second test runs only when the first holds.
    """
    src, dst = _direction(forward)
    max_key = bindparam("max_key", type_=BigInteger)  # rows at the bound have keys from there on
    at_bound = exists(select(literal_column("1")).select_from(walk).where(walk.c.key >= max_key))
    cut = exists(
        select(literal_column("1"))
        .select_from(walk.join(edges, src == walk.c.lot_id))
        .where(walk.c.key >= max_key, ~exists().where(reach.c.lot_id == dst))
    )
    return [
        case((at_bound, 1), else_=0).label("at_bound"),
        case((at_bound, case((cut, 1), else_=0)), else_=0).label("cut"),
    ]


def _sections(reach: CTE, *, scope: bool, include_shipments: bool, lateral: bool) -> dict[str, Select[Any]]:
    """The parts of a trace's answer, each a select whose columns ``_Shape.split`` hands on by position.

    ``lot``: reached lots with their key (depth and predecessor, see ``_VIA``); ``product``: the products
    of those lots, once each (so the per-lot part carries no repeated text); with the scope, ``stock``
    (on-hand per location and bucket), ``consignee`` (totals per consignee) and ``line`` (every
    shipment line, on request). Nothing is sorted here: the builders below order in Python, the same on
    both databases (sorting in PostgreSQL spilled to disk at the default ``work_mem``).
    """
    lot_rows = (
        select(reach.c.lot_id, reach.c.key, lots_t.c.product_id, lots_t.c.lot_number, lots_t.c.expires_on)
        .select_from(reach.join(lots_t, lots_t.c.id == reach.c.lot_id))
        .cte("lot_rows")
    )
    sections: dict[str, Select[Any]] = {
        "lot": select(lot_rows),
        "product": select(products_t.c.id, products_t.c.code, products_t.c.name, products_t.c.gtin).where(
            products_t.c.id.in_(select(lot_rows.c.product_id))
        ),
    }
    if not scope:
        return sections
    sb, loc = StockBalance.__table__, Location.__table__
    if lateral:
        # PostgreSQL: one index probe per reached lot, whatever the planner expects of the reach. Told
        # it is 44,477 lots, it hashed all 380,000 balances instead (167 ms against 63); OFFSET 0 keeps
        # the subquery from being flattened back into that join. The balances name their location by
        # id: ``_scope_statement`` looks the codes up once per location, not once per balance.
        balances = (
            select(sb.c.location_id, sb.c.status, sb.c.quantity)
            .where(sb.c.lot_id == reach.c.lot_id, sb.c.quantity > 0)
            .offset(0)
            .lateral("balances")
        )
        sections["stock"] = select(
            reach.c.lot_id,
            balances.c.location_id,
            type_coerce(balances.c.status, String).label("status"),
            balances.c.quantity,
        ).select_from(reach.join(balances, true()))
    else:
        sections["stock"] = (
            select(
                sb.c.lot_id,
                loc.c.code.label("location_code"),
                type_coerce(sb.c.status, String).label("status"),
                sb.c.quantity,
            )
            .select_from(
                reach.join(sb, sb.c.lot_id == reach.c.lot_id).join(loc, loc.c.id == sb.c.location_id)
            )
            .where(sb.c.quantity > 0)
        )
    # Consignee totals come from the lines' covering index alone: each line repeats its shipment's
    # consignee and date (migration 0008), so no shipment is looked up per line.
    sl = ShipmentLine.__table__
    # Two plain GROUP BYs rather than COUNT(DISTINCT lot_id): both hash, where a DISTINCT aggregate
    # makes PostgreSQL sort every shipment line of the scope. SUMs cast back to BIGINT: PostgreSQL
    # sums bigints into numeric.
    per_lot_columns = (
        sl.c.consignee_id,
        cast(func.sum(sl.c.quantity), BigInteger).label("quantity"),
        func.min(sl.c.shipped_on).label("first_on"),
        func.max(sl.c.shipped_on).label("last_on"),
    )
    if lateral:
        # PostgreSQL: per reached lot, its lines come in consignee order from the index, so each lot
        # groups by streaming; one hash over all (consignee, lot) pairs would outgrow work_mem.
        one_lot = (
            select(*per_lot_columns)
            .where(sl.c.lot_id == reach.c.lot_id)
            .group_by(sl.c.consignee_id)
            .lateral("one_lot")
        )
        per_lot = select(one_lot).select_from(reach.join(one_lot, true())).subquery("per_lot")
    else:
        # SQLite: ``IN`` makes it probe the lines' index per reached lot; as a join it scanned every
        # line of the store against the reached lots (measured: 200,000 lines for a 35-lot trace).
        per_lot = (
            select(*per_lot_columns)
            .where(sl.c.lot_id.in_(select(reach.c.lot_id)))
            .group_by(sl.c.lot_id, sl.c.consignee_id)
            .subquery("per_lot")
        )
    per_consignee = (
        select(
            per_lot.c.consignee_id,
            cast(func.sum(per_lot.c.quantity), BigInteger).label("quantity"),
            func.count().label("lots"),
            func.min(per_lot.c.first_on).label("first_on"),
            func.max(per_lot.c.last_on).label("last_on"),
        )
        .group_by(per_lot.c.consignee_id)
        .subquery("per_consignee")
    )
    c, parent = Consignee.__table__.alias("c"), Consignee.__table__.alias("parent")
    sections["consignee"] = select(
        c.c.id,
        c.c.code,
        c.c.name,
        type_coerce(c.c.kind, String).label("kind"),
        c.c.region,
        c.c.email,
        c.c.phone,
        type_coerce(c.c.language, String).label("language"),
        parent.c.code.label("parent_code"),
        per_consignee.c.quantity,
        per_consignee.c.lots,
        per_consignee.c.first_on,
        per_consignee.c.last_on,
    ).select_from(
        per_consignee.join(c, c.c.id == per_consignee.c.consignee_id).outerjoin(
            parent, parent.c.id == c.c.parent_id
        )
    )
    if include_shipments:
        sh, serials = Shipment.__table__, Serial.__table__
        sections["line"] = select(
            sl.c.lot_id, sh.c.ref, serials.c.serial, sl.c.quantity, sl.c.consignee_id, sl.c.shipped_on
        ).select_from(
            reach.join(sl, sl.c.lot_id == reach.c.lot_id)
            .join(sh, sh.c.id == sl.c.shipment_id)
            .outerjoin(serials, serials.c.id == sl.c.serial_id)
        )
    return sections


def _array_row(sections: dict[str, Select[Any]], extra: Sequence[ColumnElement[Any]] = ()) -> Select[Any]:
    """PostgreSQL: the sections as one row of arrays, a column per section column, then ``extra``.

    asyncpg decodes an array in one C loop, where tens of thousands of rows cost a Record each
    (measured: 190 -> 35 ms of client CPU at 92,000 rows)."""
    parts = []
    for kind, section in sections.items():
        rows = section.subquery(f"{kind}_rows")
        parts.append(select(*[func.array_agg(c).label(f"{kind}_{c.key}") for c in rows.c]).subquery(kind))
    joined: Any = parts[0]
    for part in parts[1:]:
        joined = joined.join(part, true())
    return select(*[c for p in parts for c in p.c], *extra).select_from(joined)


def _unzip(row: Sequence[Any], widths: dict[str, int]) -> dict[str, list[tuple[Any, ...]]]:
    """The sections' rows (tuples in column order) from a row of arrays made by :func:`_array_row`."""
    parts: dict[str, list[tuple[Any, ...]]] = {}
    i = 0
    for kind, width in widths.items():
        arrays = row[i : i + width]
        i += width
        parts[kind] = list(zip(*arrays, strict=True)) if arrays[0] is not None else []
    return parts


# Every tagged row of the SQLite statement has these columns; a section fills the slots of its types.
_SLOTS = {"int": 3, "text": 8, "date": 2}


def _slot_kind(column: ColumnElement[Any]) -> str:
    if isinstance(column.type, Integer):
        return "int"
    if isinstance(column.type, Date):
        return "date"
    return "text"


def _tagged(kind: str, columns: Sequence[ColumnElement[Any]]) -> tuple[list[ColumnElement[Any]], list[int]]:
    """A section's columns in the common layout of the tagged ``UNION ALL`` (kind, ints, texts, dates),
    and where each of its columns lands in that row.

    Missing values are NULLs cast to the slot's type: SQLite takes a compound's column types from its
    first branch, and SQLAlchemy reads the dates by the statement's column types."""
    slot_types = {"int": BigInteger, "text": String, "date": Date}
    filled: dict[str, list[ColumnElement[Any]]] = {name: [] for name in _SLOTS}
    positions = []
    for column in columns:
        slot = _slot_kind(column)
        positions.append(
            1 + sum(_SLOTS[s] for s in list(_SLOTS)[: list(_SLOTS).index(slot)]) + len(filled[slot])
        )
        filled[slot].append(column)
    out: list[ColumnElement[Any]] = [literal_column(f"'{kind}'", String).label("kind")]
    for slot, n in _SLOTS.items():
        values = filled[slot] + [cast(null(), slot_types[slot]) for _ in range(n - len(filled[slot]))]
        out += [v.label(f"{slot[0]}{i}") for i, v in enumerate(values)]
    return out, positions


class _Shape:
    """The statement for one shape of trace, and how its result row(s) map back onto the sections:
    every trace on SQLite, and the backward trace on PostgreSQL (its forward trace reads the scope in
    parts, ``_forward_postgres``, whose stock names locations by id)."""

    def __init__(self, *, forward: bool, scope: bool, include_shipments: bool, postgres: bool) -> None:
        if postgres and scope:
            raise ValueError("on PostgreSQL a trace with its scope is read in parts: see _forward_postgres")
        walk, reach = _walk(forward, postgres=postgres)
        sections = _sections(reach, scope=scope, include_shipments=include_shipments, lateral=postgres)
        bound = _bound(walk, reach, forward)
        self.postgres = postgres
        self.widths = {kind: len(s.selected_columns) for kind, s in sections.items()}
        if postgres:
            self.statement: Select[Any] = _array_row(sections, bound)
            return
        # SQLite: one tagged UNION ALL, a branch per section (it has no arrays).
        branches = []
        self.positions: dict[str, list[int]] = {}
        for kind, section in sections.items():
            rows = section.subquery(f"{kind}_rows")
            columns, self.positions[kind] = _tagged(kind, list(rows.c))
            branches.append(select(*columns).select_from(rows))
        columns, self.positions["bound"] = _tagged("bound", bound)
        branches.append(select(*columns))
        self.statement = union_all(*branches)  # type: ignore[assignment]
        # split() reads rows with itemgetter, which for one position gives a value, not a tuple.
        assert all(len(positions) > 1 for positions in self.positions.values())

    def split(self, result: Any) -> tuple[dict[str, list[tuple[Any, ...]]], bool, bool]:
        """Rows per section (tuples in the section's column order), and the two bound flags."""
        parts: dict[str, list[tuple[Any, ...]]] = {}
        if self.postgres:
            row = result.one()
            parts = _unzip(row, self.widths)
            i = sum(self.widths.values())
            return parts, bool(row[i]), bool(row[i + 1])
        picks = {kind: itemgetter(*positions) for kind, positions in self.positions.items()}
        by_kind: dict[str, list[Any]] = {kind: [] for kind in self.positions}
        for row in result:
            by_kind[row[0]].append(row)
        for kind in self.widths:
            pick = picks[kind]
            parts[kind] = [pick(r) for r in by_kind[kind]]
        (bound,) = by_kind["bound"]
        at_bound, cut = picks["bound"](bound)
        return parts, bool(at_bound), bool(cut)


@cache
def _shape(*, forward: bool, scope: bool, include_shipments: bool, postgres: bool) -> _Shape:
    """Each shape of trace is built once (SQLAlchemy caches its compiled form too)."""
    return _Shape(forward=forward, scope=scope, include_shipments=include_shipments, postgres=postgres)


def _induced_edges_statement(forward: bool) -> Any:
    """Edges among the lots a trace reached (for naming a cycle), in the direction of travel."""
    src, dst = _direction(forward)
    _, reach = _walk(forward)
    a, b = reach.alias("a"), reach.alias("b")
    return select(src, dst).select_from(a.join(edges, src == a.c.lot_id).join(b, b.c.lot_id == dst))


# PostgreSQL, forward: a walk that reaches at least this many lots has its scope read on two more
# connections at once (see _forward_postgres). A round number, not tuned: fanned out, a typical lot (38
# lots reached) took 3.6 ms against 2.2 ms on one connection; the heaviest (44,477) saves about a fifth.
PARALLEL_FROM_LOTS = 5_000
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+-[0-9]+")


def _parts(include_shipments: bool) -> tuple[tuple[str, ...], ...]:
    """The scope's sections in the parts read at once, each on a connection of its own, in the order
    the result is built: the first, with the lots, comes back first and is assembled in Python while
    the second, the longer, is still being read. The stock goes with the second part, unless the
    shipment lines already make that one long (44,477 lots, runs taken in turn: about 665 against
    700 ms without the lines; 1,470 against 1,610 ms with them). Three parts (lots | stock |
    consignees) measured no better than two, within the machine's noise."""
    if include_shipments:
        return ("lot", "stock"), ("consignee", "line")
    return ("lot",), ("stock", "consignee")


@cache
def _reach_statement() -> Select[Any]:
    """PostgreSQL, forward: the walk alone, as the reached lots' ids and keys in lot id order, the origin
    lots it found, the bound flags, and whether this transaction has written anything yet.

    When the walk reached ``parallel_from`` lots or more, the statement also exports its snapshot
    (``pg_export_snapshot`` in the same statement exports the very snapshot the walk read), so that
    other connections can read the scope exactly as this transaction sees it."""
    walk, reach = _walk(True, postgres=True)
    # The reached ids and keys go back as array literals, to be passed on as they are: as lists, Python
    # would decode them, and asyncpg re-encode them per statement with an isinstance test per element
    # (measured: 20 ms per statement at 44,477 lots, on the trace's critical path).
    reached = select(
        cast(func.array_agg(reach.c.lot_id), String).label("lot_ids"),
        cast(func.array_agg(reach.c.key), String).label("walk_keys"),
        func.array_agg(reach.c.lot_id).filter(reach.c.key == 0).label("origin"),
        func.count().label("n"),
    ).subquery("reached")
    export = case((reached.c.n >= bindparam("parallel_from", type_=BigInteger), func.pg_export_snapshot()))
    return select(
        reached.c.lot_ids,
        reached.c.walk_keys,
        reached.c.origin,
        *_bound(walk, reach, True),
        export.label("snapshot"),
        func.txid_current_if_assigned().is_not(None).label("wrote"),
    ).select_from(reached)


# PostgreSQL, forward: small tables a scope's sections name by id, each read once per distinct id from
# the section's aggregated ids (section, id column, table, columns). As a section of its own over the
# reach, the products made PostgreSQL keep every reached lot for a second pass (44,477 lots naming 595
# products: about 40 ms); a join per row would repeat each location's code on every balance.
_LOOKUPS = {
    "product": ("lot", "product_id", products_t, ("id", "code", "name", "gtin")),
    "location": ("stock", "location_id", Location.__table__, ("id", "code")),
}


@cache
def _scope_statement(kinds: tuple[str, ...], include_shipments: bool) -> tuple[Select[Any], dict[str, int]]:
    """PostgreSQL, forward: the scope's sections ``kinds`` for the lots the walk reached (ids and keys
    given as array literals, in lot id order), as one row of arrays; and each section's width. The
    lookups of ``_LOOKUPS`` whose section is among ``kinds`` come last."""
    ids = cast(bindparam("lot_ids", type_=String), ARRAY(BigInteger))
    keys = cast(bindparam("keys", type_=String), ARRAY(BigInteger))
    reach = select(
        func.unnest(ids, type_=BigInteger).label("lot_id"), func.unnest(keys, type_=BigInteger).label("key")
    ).cte("reach")
    sections = _sections(reach, scope=True, include_shipments=include_shipments, lateral=True)
    chosen = {kind: sections[kind] for kind in kinds if kind in sections and kind not in _LOOKUPS}
    widths = {kind: len(section.selected_columns) for kind, section in chosen.items()}
    scope = _array_row(chosen).subquery("scope")
    joined: Any = scope
    columns = list(scope.c)
    for name, (kind, id_column, table, names) in _LOOKUPS.items():
        if kind in chosen:
            looked_up = (
                select(*[func.array_agg(table.c[c]).label(f"{name}_{c}") for c in names])
                .where(table.c.id == any_(scope.c[f"{kind}_{id_column}"]))
                .lateral(name)
            )
            joined = joined.join(looked_up, true())
            columns += looked_up.c
            widths[name] = len(names)
    return select(*columns).select_from(joined), widths


# --------------------------------------------------------------------------- running it


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large result is assembled.

    A big scope allocates a few hundred thousand objects, none in a reference cycle; the collector
    would otherwise run hundreds of times over all of them, about half the assembly time. The block
    holds no ``await``, so nothing else runs on this event loop meanwhile.

    On the way out the objects made meanwhile go straight to the oldest generation (``freeze`` then
    ``unfreeze`` moves every tracked object there without looking at it): re-enabled, the collector
    would otherwise start with one young generation of all of them, ~65 ms of scanning per block for
    the heaviest trace, found by profiling. Other young objects move along; a full collection still
    finds any garbage among them.
    """
    enabled = gc.isenabled()
    # A process that froze what it made at start (the API and the worker: lotline/heap.py) keeps it
    # frozen, which unfreeze would undo; there the new objects stay young, costing one scan of them.
    frozen_base = gc.get_freeze_count() > 0
    gc.disable()
    try:
        yield
    finally:
        if not frozen_base:
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()


def _check_args(lot_ids: Iterable[int], max_depth: int) -> list[int]:
    ids = list(dict.fromkeys(lot_ids))
    if not ids:
        raise InvalidInput("name at least one lot to trace", field="lot_id")
    if any(not isinstance(i, int) or isinstance(i, bool) for i in ids):
        raise InvalidInput("lot ids must be whole numbers", field="lot_id")
    if not isinstance(max_depth, int) or isinstance(max_depth, bool) or not 0 <= max_depth <= MAX_DEPTH_LIMIT:
        raise InvalidInput(f"max_depth must be a whole number from 0 to {MAX_DEPTH_LIMIT}", field="max_depth")
    return ids


_M = TypeVar("_M", bound=BaseModel)
_STATUS = {m.value: m for m in StockStatus}
_KIND = {m.value: m for m in ConsigneeKind}
_LANGUAGE = {m.value: m for m in Language}


def _factory(cls: type[_M]) -> Callable[[dict[str, Any]], _M]:
    """A constructor of ``cls`` over a dict of all its fields, as they are, without validation.

    Only for values this module assembled from the statement's typed columns, every field present in
    the model's order and of the model's type (enums as members, dates as dates): a heavy trace has
    ~100,000 of them, and validating (or ``model_construct``, slower still) cost more than the query.
    The models share one set of set fields: it names every field already, and pydantic only ever adds
    field names to it (``model_copy`` copies it first), so sharing cannot change what it says.
    """
    fields_set = set(cls.model_fields)
    new, put = object.__new__, object.__setattr__

    def build(values: dict[str, Any]) -> _M:
        model = new(cls)
        put(model, "__dict__", values)
        put(model, "__pydantic_fields_set__", fields_set)
        put(model, "__pydantic_extra__", None)
        put(model, "__pydantic_private__", None)
        return model

    return build


def _built(cls: type[_M], values: dict[str, Any]) -> _M:
    """One model over ``values`` without validation (see ``_factory``)."""
    return _factory(cls)(values)


_traced_lot = _factory(TracedLot)
_stock_at = _factory(StockAtLocation)
_exposure = _factory(ConsigneeExposure)
_shipped_line = _factory(ShippedLine)


def _traced_lots(
    rows: list[tuple[Any, ...]], products: dict[int, tuple[str, str, str]]
) -> tuple[list[TracedLot], dict[int, tuple[str, str]]]:
    """Lots ordered by depth, product and lot, each with one shortest path from the origin
    (O(lots × depth): a lot's path extends its predecessor's, built before it, being shallower);
    and per lot id its (product code, lot number)."""
    ordered = sorted(
        [
            (
                key >> _VIA_BITS,
                products[product_id][0],
                number,
                lot_id,
                key & _LOT_ID_MASK,
                product_id,
                expires,
            )
            for lot_id, key, product_id, number, expires in rows
        ]
    )
    paths: dict[int, list[str]] = {}
    names: dict[int, tuple[str, str]] = {}
    lots = []
    append, make = lots.append, _traced_lot
    for depth, code, number, lot_id, via, product_id, expires in ordered:
        label = f"{code}/{number}"
        path = [*paths[via], label] if depth else [label]
        paths[lot_id] = path
        names[lot_id] = (code, number)
        _, name, gtin = products[product_id]
        append(
            make(
                {
                    "lot_id": lot_id,
                    "product_code": code,
                    "product_name": name,
                    "gtin": gtin,
                    "lot_number": number,
                    "expires_on": expires,
                    "depth": depth,
                    "path": path,
                }
            )
        )
    return lots, names


def _find_cycle(pairs: Iterable[tuple[int, int]], starts: Iterable[int]) -> list[int]:
    """One cycle reachable from ``starts`` (first node repeated last), or [] (iterative DFS)."""
    graph: dict[int, list[int]] = {}
    for a, b in pairs:
        graph.setdefault(a, []).append(b)
    for targets in graph.values():
        targets.sort()  # the same cycle reported on every database
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    for start in sorted(starts):
        if start in state:
            continue
        stack: list[tuple[int, int]] = [(start, 0)]
        on_path: list[int] = [start]
        state[start] = 1
        while stack:
            node, i = stack[-1]
            targets = graph.get(node, [])
            if i == len(targets):
                stack.pop()
                on_path.pop()
                state[node] = 2
                continue
            stack[-1] = (node, i + 1)
            nxt = targets[i]
            if state.get(nxt) == 1:
                return [*on_path[on_path.index(nxt) :], nxt]
            if nxt not in state:
                state[nxt] = 1
                stack.append((nxt, 0))
                on_path.append(nxt)
    return []


class _Traced:
    """What one trace statement found: lots with their paths, the scope's rows, and its health."""

    def __init__(self, parts: dict[str, list[tuple[Any, ...]]]) -> None:
        self.parts = parts
        products = {row[0]: row[1:] for row in parts["product"]}
        self.lots, self.names = _traced_lots(parts["lot"], products)


async def _run(
    session: AsyncSession,
    lot_ids: list[int],
    *,
    max_depth: int,
    forward: bool,
    scope: bool,
    include_shipments: bool,
) -> tuple[_Traced, dict[str, Any]]:
    """The trace as one statement (SQLite; on PostgreSQL the backward trace)."""
    params = _walk_params(lot_ids, max_depth)
    shape = _shape(
        forward=forward,
        scope=scope,
        include_shipments=include_shipments,
        postgres=session.bind.dialect.name == "postgresql",
    )
    result = await session.execute(shape.statement, params)
    with _gc_paused():
        parts, at_bound, cut = shape.split(result)
        traced = _Traced(parts)
    _check_found(lot_ids, {lot.lot_id for lot in traced.lots if lot.depth == 0})
    health = await _health(
        session, traced.lots, lot_ids, max_depth=max_depth, at_bound=at_bound, cut=cut, forward=forward
    )
    return traced, health


def _walk_params(lot_ids: list[int], max_depth: int) -> dict[str, Any]:
    return {"origin_ids": lot_ids, "max_key": max_depth * _VIA}


def _check_found(lot_ids: list[int], origin: set[int]) -> None:
    missing = sorted(set(lot_ids).difference(origin))
    if missing:
        raise NotFound(f"no lot with id {', '.join(map(str, missing))}", field="lot_id")


async def _health(
    session: AsyncSession,
    lots: list[TracedLot],
    lot_ids: list[int],
    *,
    max_depth: int,
    at_bound: bool,
    cut: bool,
    forward: bool,
) -> dict[str, Any]:
    """Whether the walk was cut at the depth bound, and the cycle that made it go so deep, if any."""
    health: dict[str, Any] = {"max_depth": max_depth, "truncated": cut, "cycle": [], "warnings": []}
    if at_bound:
        # The walk went as deep as allowed: a cycle, or a genealogy deeper than the bound. Name the cycle.
        params = _walk_params(lot_ids, max_depth)
        pairs = [(a, b) for a, b in await session.execute(_induced_edges_statement(forward), params)]
        cycle = _find_cycle(pairs, lot_ids)
        if not forward:
            cycle.reverse()  # always name it as the genealogy runs: component, then what it went into
        if cycle:
            labels = {lot.lot_id: lot.path[-1] for lot in lots}
            health["cycle"] = [labels[i] for i in cycle]
            health["warnings"].append(
                "the genealogy has a cycle (" + " → ".join(health["cycle"]) + "): a lot is recorded as made "
                "from itself; each lot is reported once at its shortest depth, but these edges need fixing"
            )
    if cut:
        health["warnings"].append(
            f"the trace stopped at depth {max_depth}: lots further "
            f"{'downstream' if forward else 'upstream'} were not followed"
        )
    return health


def _origin(lots: list[TracedLot]) -> list[LotRef]:
    return [
        LotRef(lot_id=x.lot_id, product_code=x.product_code, lot_number=x.lot_number, gtin=x.gtin)
        for x in lots
        if x.depth == 0
    ]


def _stock(
    rows: list[tuple[Any, ...]],
    names: dict[int, tuple[str, str]],
    location_codes: dict[int, str] | None = None,
) -> list[StockAtLocation]:
    """On-hand balances sorted by location, product, lot and bucket. Each row names its location by
    code, or by id when ``location_codes`` is given."""
    # One string key per balance (those four name it) compares fastest, being one string; no code or
    # number holds a NUL (PostgreSQL text cannot).
    balances = []
    add = balances.append
    for lot_id, location, status, quantity in rows:
        if location_codes is not None:
            location = location_codes[location]
        product, number = names[lot_id]
        add(
            (
                f"{location}\0{product}\0{number}\0{status}",
                location,
                product,
                number,
                status,
                quantity,
                lot_id,
            )
        )
    balances.sort()
    return [
        _stock_at(
            {
                "location_code": location,
                "product_code": product,
                "lot_number": number,
                "status": _STATUS[status],
                "quantity": quantity,
                "lot_id": lot_id,
            }
        )
        for _, location, product, number, status, quantity, lot_id in balances
    ]


def _consignees(rows: list[tuple[Any, ...]]) -> tuple[list[ConsigneeExposure], dict[int, str]]:
    """Consignees sorted by code, and their codes by id (for the shipment lines)."""
    rows = sorted(rows, key=itemgetter(1))
    exposures = [
        _exposure(
            {
                "code": row[1],
                "name": row[2],
                "kind": _KIND[row[3]],
                "region": row[4],
                "email": row[5],
                "phone": row[6],
                "language": _LANGUAGE[row[7]],
                "parent_code": row[8],
                "quantity": row[9],
                "lots": row[10],
                "first_shipped_on": row[11],
                "last_shipped_on": row[12],
            }
        )
        for row in rows  # id, code, name, kind, region, email, phone, language, parent, ...
    ]
    return exposures, {row[0]: row[1] for row in rows}


def _shipments(
    rows: list[tuple[Any, ...]], names: dict[int, tuple[str, str]], codes: dict[int, str]
) -> list[ShippedLine]:
    """Shipment lines by date, shipment, product and lot; lines without a serial first."""
    return [
        _shipped_line(
            {
                "shipment_ref": ref,
                "shipped_on": on,
                "consignee_code": consignee,
                "product_code": product,
                "lot_number": number,
                "serial": serial,
                "quantity": quantity,
                "lot_id": lot_id,
            }
        )
        for on, ref, product, number, serial, consignee, quantity, lot_id in sorted(
            [
                (on, ref, *names[lot_id], serial, codes[consignee_id], quantity, lot_id)
                for lot_id, ref, serial, quantity, consignee_id, on in rows
            ],
            key=lambda x: (*x[:4], x[4] or ""),
        )
    ]


def _forward(
    lots: list[TracedLot],
    stock: list[StockAtLocation],
    consignees: list[ConsigneeExposure],
    shipments: list[ShippedLine] | None,
    health: dict[str, Any],
) -> ForwardTrace:
    return _built(
        ForwardTrace,
        {
            **health,
            "direction": "forward",
            "origin": _origin(lots),
            "lots": lots,
            "stock": stock,
            "shipments_included": shipments is not None,
            "shipments": shipments or [],
            "consignees": consignees,
        },
    )


def _forward_result(traced: _Traced, health: dict[str, Any], *, include_shipments: bool) -> ForwardTrace:
    """The forward trace from the statement's rows, each list in a stable order (as the tests and the
    JSON contract expect, the same on both databases)."""
    names, parts = traced.names, traced.parts
    consignees, codes = _consignees(parts["consignee"])
    shipments = _shipments(parts["line"], names, codes) if include_shipments else None
    return _forward(traced.lots, _stock(parts["stock"], names), consignees, shipments, health)


async def forward_trace(
    session: AsyncSession,
    lot_ids: Iterable[int],
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    include_shipments: bool = True,
) -> ForwardTrace:
    """Everything made from the lots, at any depth: lots, on-hand stock, shipments and consignees.

    ``include_shipments=False`` leaves out the individual shipment lines (consignees and their
    quantities are still there), which is what a large scope needs.
    """
    ids = _check_args(lot_ids, max_depth)
    if session.bind.dialect.name == "postgresql":
        return await _forward_postgres(session, ids, max_depth=max_depth, include_shipments=include_shipments)
    traced, health = await _run(
        session, ids, max_depth=max_depth, forward=True, scope=True, include_shipments=include_shipments
    )
    with _gc_paused():
        return _forward_result(traced, health, include_shipments=include_shipments)


def _can_fan_out(session: AsyncSession, connections: int) -> bool:
    """Whether a trace in this session may read its scope on ``connections`` more connections of its
    engine.

    Not inside a savepoint (PostgreSQL exports no snapshot there), not when the session is bound to
    one connection, and only when the pool has them to spare without waiting: a trace never waits on
    the pool while holding a connection of its own."""
    bind = session.bind
    if not isinstance(bind, AsyncEngine) or session.in_nested_transaction():
        return False
    pool = bind.sync_engine.pool
    size = getattr(pool, "size", None)
    return callable(size) and size() - pool.checkedout() >= connections


async def _on_snapshot(
    engine: AsyncEngine, snapshot: str, statement: Select[Any], widths: dict[str, int], params: dict[str, Any]
) -> dict[str, list[tuple[Any, ...]]]:
    """Run a scope statement on a connection of its own that reads the exported ``snapshot``."""
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        await conn.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
        # Given the reach as arrays, the planner knows its size, and compiling the plan (JIT) would
        # cost more than it saves on a statement of a few hundred milliseconds.
        await conn.execute(text("SET LOCAL jit = off"))
        row = (await conn.execute(statement, params)).one()
        await conn.rollback()
    return _unzip(row, widths)


class _Scope:
    """PostgreSQL, forward: the result, each section built as soon as the rows it needs have arrived
    (the lots first: the stock and the lines name their lots, the lines their consignees)."""

    def __init__(self, include_shipments: bool) -> None:
        self.include_shipments = include_shipments
        self.rows: dict[str, list[tuple[Any, ...]]] = {}
        self.traced: _Traced | None = None
        self.stock: list[StockAtLocation] | None = None
        self.consignees: tuple[list[ConsigneeExposure], dict[int, str]] | None = None
        self.shipments: list[ShippedLine] | None = None

    def add(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        self.rows.update(rows)
        have = self.rows
        if "lot" in rows:
            self.traced = _Traced(have)
        if self.traced is None:
            raise AssertionError("the lots must come first")
        if "stock" in rows:
            self.stock = _stock(have["stock"], self.traced.names, dict(have["location"]))
        if "consignee" in rows:
            self.consignees = _consignees(have["consignee"])
        if (
            self.include_shipments
            and self.consignees is not None
            and "line" in have
            and self.shipments is None
        ):
            self.shipments = _shipments(have["line"], self.traced.names, self.consignees[1])

    def result(self, health: dict[str, Any]) -> ForwardTrace:
        if self.traced is None or self.stock is None or self.consignees is None:
            raise AssertionError("the scope is incomplete")
        if self.include_shipments and self.shipments is None:
            raise AssertionError("the shipment lines are missing")
        return _forward(self.traced.lots, self.stock, self.consignees[0], self.shipments, health)


async def _forward_postgres(
    session: AsyncSession, lot_ids: list[int], *, max_depth: int, include_shipments: bool
) -> ForwardTrace:
    """The forward trace on PostgreSQL: the walk, then the scope of what it reached.

    The walk (one recursive statement) returns the reached lots' ids. A large scope is then read on
    more connections at once (``_parts``), each importing the snapshot the walk exported, so all see
    exactly what the walk saw: the lots on one, the rest on the other. The lots are assembled in
    Python while the rest is still being read; on two cores that overlap is most of the gain (the
    heaviest trace of bench/trace.py: from 808 to about 630 ms). A transaction that has written (its
    own rows are invisible to other connections), a small scope or a busy pool reads the scope on the
    session's own connection instead, in one statement. Either way ``_Scope`` builds the result.
    """
    await session.connection()  # the session's own first: the pool's spare connections are the others
    parts = _parts(include_shipments)
    params = {
        **_walk_params(lot_ids, max_depth),
        "parallel_from": PARALLEL_FROM_LOTS if _can_fan_out(session, len(parts)) else None,
    }
    head = (await session.execute(_reach_statement(), params)).one()
    _check_found(lot_ids, set(head.origin or ()))
    reached = {"lot_ids": head.lot_ids or "{}", "keys": head.walk_keys or "{}"}  # array literals
    scope = _Scope(include_shipments)
    if head.snapshot is not None and not head.wrote:
        engine = session.bind
        runs = [
            asyncio.create_task(
                _on_snapshot(engine, head.snapshot, *_scope_statement(part, include_shipments), reached)
            )
            for part in parts
        ]
        try:
            for run in runs:  # in the order they are needed: the lots first
                rows = await run
                with _gc_paused():
                    scope.add(rows)
        finally:
            for run in runs:
                run.cancel()
            await asyncio.gather(*runs, return_exceptions=True)
    else:
        statement, widths = _scope_statement(sum(parts, ()), include_shipments)
        rows = _unzip((await session.execute(statement, reached)).one(), widths)
        with _gc_paused():
            scope.add(rows)
    assert scope.traced is not None  # add() refuses a first part without the lots
    health = await _health(
        session,
        scope.traced.lots,
        lot_ids,
        max_depth=max_depth,
        at_bound=bool(head.at_bound),
        cut=bool(head.cut),
        forward=True,
    )
    with _gc_paused():
        return scope.result(health)


async def backward_trace(
    session: AsyncSession, lot_ids: Iterable[int], *, max_depth: int = DEFAULT_MAX_DEPTH
) -> BackwardTrace:
    """Every component and supplier lot the lots were made from, at any depth."""
    ids = _check_args(lot_ids, max_depth)
    traced, health = await _run(
        session, ids, max_depth=max_depth, forward=False, scope=False, include_shipments=False
    )
    return _built(
        BackwardTrace,
        {**health, "direction": "backward", "origin": _origin(traced.lots), "lots": traced.lots},
    )


__all__ = [
    "BackwardTrace",
    "ConsigneeExposure",
    "ForwardTrace",
    "ShippedLine",
    "StockAtLocation",
    "TracedLot",
    "backward_trace",
    "forward_trace",
    "resolve_origin",
]
