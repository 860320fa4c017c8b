"""The trace view: find a lot by product and lot, by serial, or by a scanned GS1 string, and see where it
went (or what it was made from) as a graph by level, with its stock and consignees beside it.

A USB scanner types into the scan field and presses Enter: the field takes ``(01)…(10)…`` as well as
the raw string with FNC1 / GS (ASCII 29) separators and a symbology prefix (``]C1``, ``]d2``), parsed by
``domain.gs1`` as ``GET /api/trace`` parses it. The scan has a form of its own, so a scan never meets the
product and lot typed for an earlier search.

Large genealogies stay usable: the trace is one query (``domain.trace``); a level with more than
:data:`SMALL_LEVEL` lots is shown collapsed (its count and products) until it is expanded, an expanded
level lists :data:`LEVEL_ROWS` lots at a time, and the graph draws a crowded level as one box per product.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal

from biip import ParseConfig, ParseError, parse
from fastapi import Depends, Query, Request
from fastapi.responses import Response

from api.deps import SessionDep, SettingsDep
from api.pages.charts import genealogy_graph
from api.pages.guards import route_guard
from api.pages.i18n import translate
from api.pages.paging import url_with
from api.pages.render import page_language, render
from api.pages.routing import page_router
from api.pages.security import require_page_roles
from api.routes import trace as trace_api
from api.security import Principal
from domain.errors import DomainError
from domain.gs1 import FNC1, parse_element_string
from domain.trace import backward_trace, forward_trace, resolve_origin

router = page_router()

# The trace view admits whom GET /api/trace admits.
TRACE_GUARD = route_guard(trace_api.router, "/api/trace")
Reader = Annotated[Principal, Depends(require_page_roles(TRACE_GUARD))]

SMALL_LEVEL = 25  # a level with at most this many lots is listed without asking
LEVEL_ROWS = 100  # lots listed at once when a level is expanded
GRAPH_PER_LEVEL = 8  # a level with more lots is drawn as one box per product
GRAPH_LEVELS = 12  # deeper levels are only listed
CONSIGNEE_ROWS = 100  # consignees listed (the most exposed first); the rest are counted
LIMITS = {"product_code": 64, "lot_number": 20, "serial": 20, "gs1": 200}


def _hri(text: str) -> str:
    """A scanned string as people read it, ``(01)…(10)…`` (the raw string when it does not parse)."""
    if text.startswith("("):
        return text
    try:
        result = parse(text.strip(), config=ParseConfig(separator_chars=[FNC1, "|"]))
        if result.gs1_message is not None:
            return result.gs1_message.as_hri()
    except ParseError:
        pass
    return text.replace(FNC1, "|")


def _lot_href(lot: Any, direction: str) -> str:
    from urllib.parse import urlencode

    return "/trace?" + urlencode(
        {"product_code": lot.product_code, "lot_number": lot.lot_number, "direction": direction}
    )


@router.get("/trace")
async def trace_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: Reader,
    product_code: str = "",
    lot_number: str = "",
    serial: str = "",
    gs1: str = "",
    direction: Literal["forward", "backward"] = "forward",
    expand: Annotated[int | None, Query(ge=0, le=100_000)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    """The search forms, and the trace of the lot they name."""
    lang = page_language(request)
    values = {"product_code": product_code, "lot_number": lot_number, "serial": serial, "gs1": gs1}
    context: dict[str, Any] = {
        "values": {**values, "gs1": _hri(gs1) if gs1.strip() else ""},
        "direction": direction,
        "errors": [],
        "result": None,
        "scanned": None,
        "scan_used": bool(gs1.strip()),
    }
    if not any(v.strip() for v in values.values()):
        return render(request, "pages/trace.html", context, user=user, lang=lang)
    errors = [
        {"field": name, "reason": translate(lang, "at most {n} characters", n=limit)}
        for name, limit in LIMITS.items()
        if len(values[name]) > limit
    ]
    if errors:
        return render(request, "pages/trace.html", {**context, "errors": errors}, status_code=422, user=user)
    try:
        scanned = parse_element_string(gs1) if gs1.strip() else None
        lot_ids = await resolve_origin(
            session, product_code=product_code, lot_number=lot_number, serial=serial, gs1=gs1
        )
    except DomainError as exc:
        return render(
            request,
            "pages/trace.html",
            {**context, "errors": [exc.as_dict()]},
            status_code=exc.status_code,
            user=user,
            lang=lang,
        )
    if direction == "forward":
        trace = await forward_trace(
            session, lot_ids, max_depth=settings.trace_max_depth, include_shipments=False
        )
    else:
        trace = await backward_trace(session, lot_ids, max_depth=settings.trace_max_depth)
    context.update(scanned=scanned, result=_view(request, lang, trace, direction, expand, offset))
    return render(request, "pages/trace.html", context, user=user, lang=lang)


def _view(request: Request, lang, trace, direction: str, expand: int | None, offset: int) -> dict[str, Any]:
    """What the result part of the page draws: summary, graph, levels, stock and consignees."""
    lots = sorted(trace.lots, key=lambda x: (x.depth, x.product_code, x.lot_number))
    stock = getattr(trace, "stock", [])
    consignees = getattr(trace, "consignees", [])
    on_hand: Counter[int] = Counter()
    places: dict[tuple[str, str], list] = {}
    for s in stock:
        on_hand[s.lot_id] += s.quantity
        entry = places.setdefault((s.location_code, s.status.value), [set(), 0])
        entry[0].add(s.lot_id)
        entry[1] += s.quantity
    by_depth: dict[int, list] = {}
    for lot in lots:
        by_depth.setdefault(lot.depth, []).append(lot)
    levels = []
    for depth, level in sorted(by_depth.items()):
        is_open = len(level) <= SMALL_LEVEL or depth == expand
        start = offset if depth == expand else 0
        rows = level[start : start + LEVEL_ROWS] if is_open else []
        products = Counter(x.product_code for x in level).most_common()
        levels.append(
            {
                "depth": depth,
                "count": len(level),
                "products": products[:6],
                "more_products": max(len(products) - 6, 0),
                "open": is_open,
                "expanded": depth == expand and len(level) > SMALL_LEVEL,
                "rows": rows,
                "first": start + 1 if rows else 0,
                "last": start + len(rows),
                "prev_url": url_with(
                    request, f"level-{depth}", expand=depth, offset=max(start - LEVEL_ROWS, 0)
                )
                if is_open and start > 0
                else None,
                "next_url": url_with(request, f"level-{depth}", expand=depth, offset=start + LEVEL_ROWS)
                if is_open and start + LEVEL_ROWS < len(level)
                else None,
                "expand_url": url_with(request, f"level-{depth}", expand=depth, offset=None),
                "collapse_url": url_with(request, f"level-{depth}", expand=None, offset=None),
            }
        )
    graph = genealogy_graph(
        lots,
        per_level=GRAPH_PER_LEVEL,
        max_levels=GRAPH_LEVELS,
        lot_href=lambda lot: _lot_href(lot, direction),
        level_href=lambda depth: url_with(request, f"level-{depth}", expand=depth, offset=None),
        group_sub=lambda n: translate(lang, "{n} lots", n=n),
        others_label=translate(lang, "other products"),
    )
    ranked = sorted(consignees, key=lambda c: (-c.quantity, c.code))
    return {
        "trace": trace,
        "origin": trace.origin,
        "lots": len(lots),
        "levels": levels,
        "graph": graph,
        "on_hand": on_hand,
        "units_on_hand": sum(on_hand.values()),
        "places": sorted(
            ((loc, status, len(ids), qty) for (loc, status), (ids, qty) in places.items()),
            key=lambda p: (p[0], p[1]),
        ),
        "consignees": ranked[:CONSIGNEE_ROWS],
        "consignee_count": len(consignees),
        "units_shipped": sum(c.quantity for c in consignees),
        "other_direction_url": url_with(
            request,
            "",
            direction="backward" if direction == "forward" else "forward",
            expand=None,
            offset=None,
        ),
    }
