"""Genealogy trace: forward from suspect lots to everything made from them, or backward to their components.

One statement per trace, the same on SQLite and PostgreSQL. A recursive CTE walks the genealogy on
rows ``(lot_id, depth, via)`` with ``UNION`` (distinct), ``via`` being the lot the row came from,
bounded by ``max_depth``:

* It terminates on any data: ``UNION`` never re-expands a row it has produced, and the depth bound
  stops a cycle, whose rows would otherwise grow deeper forever.
* It never enumerates paths. A lot is expanded once per (depth, predecessor) at which it is
  reached: diamonds and a component lot shared by thousands of finished lots cost about one visit
  per edge of the reached subgraph, each an index-only probe of the edge primary key (forward) or
  of ``ix_genealogy_edges_parent`` (backward).
* One aggregate, ``MIN(depth * 2^40 + via)`` per lot, gives the shortest depth and, at that depth,
  a predecessor; following predecessors rebuilds one shortest path per lot in Python, so paths are
  never carried through the recursion, where they would multiply.

The reached lots feed the scope in the same statement: on-hand stock per location, shipment lines
and consignees with summed quantities, each a tagged branch of one ``UNION ALL`` (the CTE is
materialised once, being used several times). So a trace is one round trip at any size, never one
query per lot; only when the walk reaches ``max_depth`` (bad data with a cycle, or a genealogy
deeper than any real one) does a second query fetch the edges among the reached lots to name the
cycle. ``truncated`` is set only when lots beyond the bound were really left out.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
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
    bindparam,
    case,
    cast,
    exists,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
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
# Every branch of the result UNION ALL has these columns; a branch fills what it needs.
_TEXT_COLUMNS = 8
_INT_COLUMNS = 3


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


def _walk(forward: bool) -> tuple[CTE, CTE]:
    """The recursive walk over (lot_id, depth, via), and per lot its shortest depth and a predecessor.

    ``via`` is the lot a row was reached from (0 for an origin). Rows are distinct triples, so a lot
    is expanded once per depth and predecessor at that depth: paths are never enumerated, and the
    predecessor comes for free instead of costing a second pass over the edges.
    """
    src, dst = _direction(forward)
    anchor = select(
        lots_t.c.id.label("lot_id"),
        literal_column("0", Integer).label("depth"),
        cast(literal_column("0"), BigInteger).label("via"),
    ).where(lots_t.c.id.in_(bindparam("origin_ids", expanding=True)))
    walk = anchor.cte("walk", recursive=True)
    w = walk.alias("w")
    walk = walk.union(
        select(dst, w.c.depth + 1, w.c.lot_id)
        .select_from(w.join(edges, src == w.c.lot_id))
        .where(w.c.depth < bindparam("max_depth", type_=Integer))
    )
    # MIN(depth * 2^40 + via): the shortest depth, and at that depth the smallest predecessor id.
    key = func.min(walk.c.depth * literal_column(str(_VIA), BigInteger) + walk.c.via, type_=BigInteger)
    reach = select(walk.c.lot_id, key.label("key")).group_by(walk.c.lot_id).cte("reach")
    return walk, reach


def _row(
    kind: str,
    lot_id: Any = None,
    ints: Sequence[Any] = (),
    texts: Sequence[Any] = (),
    dates: Sequence[Any] = (),
) -> list[ColumnElement[Any]]:
    """One branch's select list in the common layout; missing values are NULLs cast to the column's type
    (PostgreSQL resolves UNION column types pairwise, and an untyped NULL would become text)."""

    def pad(values: Sequence[Any], n: int, type_: Any) -> list[ColumnElement[Any]]:
        return [v if v is not None else cast(null(), type_) for v in values] + [
            cast(null(), type_) for _ in range(n - len(values))
        ]

    cols: list[ColumnElement[Any]] = [
        literal_column(f"'{kind}'", String).label("kind"),
        lot_id if lot_id is not None else cast(null(), BigInteger),
    ]
    cols += pad(ints, _INT_COLUMNS, BigInteger)
    cols += pad(texts, _TEXT_COLUMNS, String)
    cols += pad(dates, 2, Date)
    names = ["kind", "lot_id", *(f"n{i}" for i in range(_INT_COLUMNS))]
    names += [f"t{i}" for i in range(_TEXT_COLUMNS)] + ["d0", "d1"]
    return [c.label(n) for c, n in zip(cols, names, strict=True)]


def _lots_branch(reach: CTE) -> Select[Any]:
    """Reached lots with their product and their key: depth and predecessor (see ``_VIA``)."""
    return select(
        *_row(
            "lot",
            reach.c.lot_id,
            # The depth apart too, so Python sorts by plain columns (C-speed itemgetter, no key function).
            ints=[reach.c.key, reach.c.key // literal_column(str(_VIA), BigInteger)],
            texts=[products_t.c.code, products_t.c.name, products_t.c.gtin, lots_t.c.lot_number],
            dates=[lots_t.c.expires_on],
        )
    ).select_from(
        reach.join(lots_t, lots_t.c.id == reach.c.lot_id).join(
            products_t, products_t.c.id == lots_t.c.product_id
        )
    )


def _bound_branch(walk: CTE, reach: CTE, forward: bool) -> Select[Any]:
    """Whether the walk reached the depth bound, and whether an edge from there leads outside the trace.

    Rows at the bound are the only ones not expanded, so only their edges can have been cut off.
    """
    src, dst = _direction(forward)
    max_depth = bindparam("max_depth", type_=Integer)
    at_bound = exists(select(literal_column("1")).select_from(walk).where(walk.c.depth == max_depth))
    cut = exists(
        select(literal_column("1"))
        .select_from(walk.join(edges, src == walk.c.lot_id))
        .where(walk.c.depth == max_depth, ~exists().where(reach.c.lot_id == dst))
    )
    return select(*_row("bound", ints=[case((at_bound, 1), else_=0), case((cut, 1), else_=0)]))


@cache
def _statement(*, forward: bool, scope: bool, include_shipments: bool, lateral: bool = False) -> Select[Any]:
    """The statement for one shape of trace, built once (SQLAlchemy caches its compiled form too).

    ``lateral`` (PostgreSQL; SQLite has no LATERAL) groups shipment lines lot by lot."""
    walk, reach = _walk(forward)
    branches: list[Select[Any]] = [_lots_branch(reach), _bound_branch(walk, reach, forward)]
    if scope:
        sb, loc = StockBalance.__table__, Location.__table__
        branches.append(
            select(*_row("stock", sb.c.lot_id, ints=[sb.c.quantity], texts=[loc.c.code, sb.c.status]))
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
        # sums bigints into numeric, which would turn the whole UNION column into numeric.
        per_lot_columns = (
            sl.c.consignee_id,
            cast(func.sum(sl.c.quantity), BigInteger).label("quantity"),
            func.min(sl.c.shipped_on).label("first_on"),
            func.max(sl.c.shipped_on).label("last_on"),
        )
        if lateral:
            # PostgreSQL: per reached lot, its lines come in consignee order from the index, so each
            # lot groups by streaming; one hash over all (consignee, lot) pairs would outgrow work_mem.
            one_lot = (
                select(*per_lot_columns)
                .where(sl.c.lot_id == reach.c.lot_id)
                .group_by(sl.c.consignee_id)
                .lateral("one_lot")
            )
            per_lot = (
                select(one_lot).select_from(reach.join(one_lot, literal_column("true"))).subquery("per_lot")
            )
        else:
            per_lot = (
                select(*per_lot_columns)
                .select_from(reach.join(sl, sl.c.lot_id == reach.c.lot_id))
                .group_by(sl.c.consignee_id, sl.c.lot_id)
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
        branches.append(
            select(
                *_row(
                    "consignee",
                    ints=[per_consignee.c.quantity, per_consignee.c.lots, c.c.id],
                    texts=[
                        c.c.code,
                        c.c.name,
                        c.c.kind,
                        c.c.region,
                        c.c.email,
                        c.c.phone,
                        c.c.language,
                        parent.c.code,
                    ],
                    dates=[per_consignee.c.first_on, per_consignee.c.last_on],
                )
            ).select_from(
                per_consignee.join(c, c.c.id == per_consignee.c.consignee_id).outerjoin(
                    parent, parent.c.id == c.c.parent_id
                )
            )
        )
        if include_shipments:
            sh, serials = Shipment.__table__, Serial.__table__
            branches.append(
                select(
                    *_row(
                        "line",
                        sl.c.lot_id,
                        ints=[sl.c.quantity, sl.c.consignee_id],
                        texts=[sh.c.ref, serials.c.serial],
                        dates=[sl.c.shipped_on],
                    )
                ).select_from(
                    reach.join(sl, sl.c.lot_id == reach.c.lot_id)
                    .join(sh, sh.c.id == sl.c.shipment_id)
                    .outerjoin(serials, serials.c.id == sl.c.serial_id)
                )
            )
    return union_all(*branches)  # type: ignore[return-value]


def _induced_edges_statement(forward: bool) -> Any:
    """Edges among the lots a trace reached (for naming a cycle), in the direction of travel."""
    src, dst = _direction(forward)
    _, reach = _walk(forward)
    a, b = reach.alias("a"), reach.alias("b")
    return select(src, dst).select_from(a.join(edges, src == a.c.lot_id).join(b, b.c.lot_id == dst))


# --------------------------------------------------------------------------- running it


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large result is assembled.

    A big scope allocates a few hundred thousand objects, none in a reference cycle; the collector
    would otherwise run hundreds of times over all of them, about half the assembly time. The block
    holds no ``await``, so nothing else runs on this event loop meanwhile.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
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


class _Walked:
    """The rows of one trace statement, sorted out by branch."""

    def __init__(self, rows: Sequence[Any]) -> None:
        by_kind: dict[str, list[Any]] = {"lot": [], "stock": [], "line": [], "consignee": [], "bound": []}
        for row in rows:
            by_kind[row[0]].append(row)
        self.lots = by_kind["lot"]
        self.stock = by_kind["stock"]
        self.lines = by_kind["line"]
        self.consignees = by_kind["consignee"]
        (bound,) = by_kind["bound"]
        self.at_bound, self.cut = bool(bound[2]), bool(bound[3])


_M = TypeVar("_M", bound=BaseModel)
_STATUS = {m.value: m for m in StockStatus}
_KIND = {m.value: m for m in ConsigneeKind}
_LANGUAGE = {m.value: m for m in Language}


def _built(cls: type[_M], values: dict[str, Any]) -> _M:
    """A model over ``values`` as they are, without validation.

    Only for values this module assembled from the statement's typed columns, every field present in
    the model's order and of the model's type (enums as members, dates as dates): a heavy trace has
    ~100,000 of them, and validating (or ``model_construct``, slower still) cost more than the query.
    """
    model = object.__new__(cls)
    object.__setattr__(model, "__dict__", values)
    object.__setattr__(model, "__pydantic_fields_set__", set(values))
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model


def _traced_lots(rows: list[Any]) -> list[dict[str, Any]]:
    """Lots as TracedLot fields ordered by depth, product and lot, each with one shortest path from the
    origin (O(lots × depth): a lot's path extends its predecessor's, built before it)."""
    # The key sorts by depth first (then by predecessor): shallowest first, ties by product and lot.
    rows.sort(key=itemgetter(3, 5, 8))
    paths: dict[int, list[str]] = {}
    out = []
    for r in rows:
        lot_id, depth = r[1], r[3]
        label = f"{r[5]}/{r[8]}"
        path = [*paths[r[2] & _LOT_ID_MASK], label] if depth else [label]
        paths[lot_id] = path
        out.append(
            {
                "lot_id": lot_id,
                "product_code": r[5],
                "product_name": r[6],
                "gtin": r[7],
                "lot_number": r[8],
                "expires_on": r[13],
                "depth": depth,
                "path": path,
            }
        )
    return out


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


async def _run(
    session: AsyncSession,
    lot_ids: list[int],
    *,
    max_depth: int,
    forward: bool,
    scope: bool,
    include_shipments: bool,
) -> tuple[_Walked, list[dict[str, Any]], dict[str, Any]]:
    params = {"origin_ids": lot_ids, "max_depth": max_depth}
    lateral = session.bind.dialect.name == "postgresql"
    stmt = _statement(forward=forward, scope=scope, include_shipments=include_shipments, lateral=lateral)
    result = await session.execute(stmt, params)
    with _gc_paused():
        walked = _Walked(result.all())
        lots = _traced_lots(walked.lots)
    missing = sorted(set(lot_ids).difference(d["lot_id"] for d in lots if d["depth"] == 0))
    if missing:
        raise NotFound(f"no lot with id {', '.join(map(str, missing))}", field="lot_id")
    health: dict[str, Any] = {"max_depth": max_depth, "truncated": walked.cut, "cycle": [], "warnings": []}
    if walked.at_bound:
        # The walk went as deep as allowed: a cycle, or a genealogy deeper than the bound. Name the cycle.
        pairs = [(a, b) for a, b in await session.execute(_induced_edges_statement(forward), params)]
        cycle = _find_cycle(pairs, lot_ids)
        if not forward:
            cycle.reverse()  # always name it as the genealogy runs: component, then what it went into
        if cycle:
            labels = {d["lot_id"]: d["path"][-1] for d in lots}
            health["cycle"] = [labels[i] for i in cycle]
            health["warnings"].append(
                "the genealogy has a cycle (" + " → ".join(health["cycle"]) + "): a lot is recorded as made "
                "from itself; each lot is reported once at its shortest depth, but these edges need fixing"
            )
    if walked.cut:
        health["warnings"].append(
            f"the trace stopped at depth {max_depth}: lots further "
            f"{'downstream' if forward else 'upstream'} were not followed"
        )
    return walked, lots, health


def _origin(lots: list[dict[str, Any]]) -> list[LotRef]:
    return [
        LotRef(lot_id=d["lot_id"], product_code=d["product_code"], lot_number=d["lot_number"], gtin=d["gtin"])
        for d in lots
        if d["depth"] == 0
    ]


def _forward_result(
    walked: _Walked, lots: list[dict[str, Any]], health: dict[str, Any], *, include_shipments: bool
) -> ForwardTrace:
    """The forward trace from the statement's rows."""
    names = {d["lot_id"]: (d["product_code"], d["lot_number"]) for d in lots}
    stock = [
        _built(
            StockAtLocation,
            {
                "location_code": code,
                "product_code": product,
                "lot_number": number,
                "status": _STATUS[status],
                "quantity": quantity,
                "lot_id": lot_id,
            },
        )
        for code, product, number, status, quantity, lot_id in sorted(
            (r[5], *names[r[1]], r[6], r[2], r[1]) for r in walked.stock
        )
    ]
    codes = {r[4]: r[5] for r in walked.consignees}
    consignees = [
        _built(
            ConsigneeExposure,
            {
                "code": r[5],
                "name": r[6],
                "kind": _KIND[r[7]],
                "region": r[8],
                "email": r[9],
                "phone": r[10],
                "language": _LANGUAGE[r[11]],
                "parent_code": r[12],
                "quantity": r[2],
                "lots": r[3],
                "first_shipped_on": r[13],
                "last_shipped_on": r[14],
            },
        )
        for r in sorted(walked.consignees, key=lambda r: r[5])
    ]
    shipments = [
        _built(
            ShippedLine,
            {
                "shipment_ref": ref,
                "shipped_on": on,
                "consignee_code": consignee,
                "product_code": product,
                "lot_number": number,
                "serial": serial,
                "quantity": quantity,
                "lot_id": lot_id,
            },
        )
        for on, ref, product, number, serial, consignee, quantity, lot_id in sorted(
            ((r[13], r[5], *names[r[1]], r[6], codes[r[3]], r[2], r[1]) for r in walked.lines),
            key=lambda x: (*x[:4], x[4] or ""),  # lines without a serial first
        )
    ]
    return _built(
        ForwardTrace,
        {
            **health,
            "direction": "forward",
            "origin": _origin(lots),
            "lots": [_built(TracedLot, d) for d in lots],
            "stock": stock,
            "shipments_included": include_shipments,
            "shipments": shipments,
            "consignees": consignees,
        },
    )


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
    walked, lots, health = await _run(
        session, ids, max_depth=max_depth, forward=True, scope=True, include_shipments=include_shipments
    )
    with _gc_paused():
        return _forward_result(walked, lots, health, include_shipments=include_shipments)


async def backward_trace(
    session: AsyncSession, lot_ids: Iterable[int], *, max_depth: int = DEFAULT_MAX_DEPTH
) -> BackwardTrace:
    """Every component and supplier lot the lots were made from, at any depth."""
    ids = _check_args(lot_ids, max_depth)
    _, lots, health = await _run(
        session, ids, max_depth=max_depth, forward=False, scope=False, include_shipments=False
    )
    with _gc_paused():
        return _built(
            BackwardTrace,
            {
                **health,
                "direction": "backward",
                "origin": _origin(lots),
                "lots": [_built(TracedLot, d) for d in lots],
            },
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
