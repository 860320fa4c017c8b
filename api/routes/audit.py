"""``GET /api/audit``: the audit trail of a record, an actor or a period (QA, QA manager, regulatory)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime

from api.deps import SessionDep, require_roles
from api.schemas.audit import AuditEntryPublic, AuditPage
from domain.audit import service
from domain.enums import Role
from domain.errors import InvalidInput

router = APIRouter(prefix="/api/audit", tags=["audit"])

READERS = (Role.qa, Role.qa_manager, Role.regulatory, Role.admin)


@router.get(
    "",
    response_model=AuditPage,
    dependencies=[Depends(require_roles(*READERS))],
    responses={422: {"description": "a malformed filter; `detail[].field` names it"}},
    summary="Read the audit trail",
)
async def audit_trail(
    session: SessionDep,
    record: Annotated[
        str | None,
        Query(max_length=140, description="`<type>:<id>`, e.g. `recall:12`", examples=["recall:12"]),
    ] = None,
    record_type: Annotated[str | None, Query(max_length=64)] = None,
    record_id: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[
        str | None, Query(max_length=128, description="a username, or `system:<workflow id>`")
    ] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="entries at or after this time (with zone)")
    ] = None,
    after: Annotated[int | None, Query(ge=0, description="entries after this seq (paging)")] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_LIMIT)] = 100,
) -> AuditPage:
    """Entries matching every filter, oldest first."""
    if record is not None:
        parsed_type, parsed_id = service.parse_record(record)
        record_type = record_type or parsed_type
        record_id = record_id or parsed_id
        if (record_type, record_id) != (parsed_type, parsed_id):
            raise InvalidInput("contradicts record_type / record_id", field="record")
    rows = await service.entries(
        session,
        record_type=record_type,
        record_id=record_id,
        actor=actor,
        since=since,
        after_seq=after,
        limit=limit,
    )
    return AuditPage(
        entries=[AuditEntryPublic.model_validate(r) for r in rows],
        next_after=rows[-1].seq if len(rows) == limit else None,
    )
