"""``GET /api/trace``: where a lot went (forward) or what it was made from (backward). Every role may read."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from api.deps import SessionDep, SettingsDep, require_roles
from domain.enums import Role
from domain.scope import BackwardTrace, ForwardTrace
from domain.trace import backward_trace, forward_trace, resolve_origin

router = APIRouter(prefix="/api/trace", tags=["trace"])

ERRORS = {
    404: {"description": "no such product, lot, serial or GTIN; `detail[].field` names the input"},
    422: {"description": "malformed or ambiguous input; `detail[].field` names it and `reason` says why"},
}


@router.get(
    "",
    response_model=ForwardTrace | BackwardTrace,
    responses=ERRORS,
    dependencies=[Depends(require_roles(*Role))],
    summary="Trace a lot forward or backward through the genealogy",
)
async def trace(
    session: SessionDep,
    settings: SettingsDep,
    product_code: Annotated[str | None, Query(max_length=64, description="with lot_number or serial")] = None,
    lot_number: Annotated[str | None, Query(max_length=20)] = None,
    serial: Annotated[str | None, Query(max_length=20)] = None,
    gs1: Annotated[
        str | None,
        Query(max_length=200, description="a GS1 element string: `(01)…(10)…` or raw with FNC1 (ASCII 29)"),
    ] = None,
    direction: Literal["forward", "backward"] = "forward",
    include_shipments: Annotated[
        bool, Query(description="list every shipment line (forward); consignee totals are always there")
    ] = True,
) -> Response:
    """Forward: affected lots with depth and path, on-hand stock, shipments and consignees.
    Backward: the component lots. Name the lot by product and lot, by serial, or by a GS1 string."""
    lot_ids = await resolve_origin(
        session, product_code=product_code, lot_number=lot_number, serial=serial, gs1=gs1
    )
    if direction == "forward":
        result: ForwardTrace | BackwardTrace = await forward_trace(
            session, lot_ids, max_depth=settings.trace_max_depth, include_shipments=include_shipments
        )
    else:
        result = await backward_trace(session, lot_ids, max_depth=settings.trace_max_depth)
    # Serialised once by pydantic-core: a large scope is not validated a second time on the way out.
    return Response(content=result.model_dump_json(), media_type="application/json")
