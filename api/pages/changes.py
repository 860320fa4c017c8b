"""Change-control pages: the list, and a change's record page with its impact, approvals, implementation
tasks, documents, signatures and timeline. Read through ``GET /api/changes``'s and
``GET /api/changes/{id}``'s own handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from api.deps import SessionDep
from api.pages.i18n import translate
from api.pages.render import page_language, render
from api.pages.routing import page_router
from api.pages.security import require_page_roles
from api.pages.timeline import fact, history
from api.routes import changes as changes_api
from api.security import Principal
from domain.changes.payloads import ChangeKind, ChangeStatus
from domain.errors import InvalidInput

router = page_router()

# The change pages admit whom GET /api/changes/{id} admits.
Reader = Annotated[Principal, Depends(require_page_roles(changes_api.READERS))]
LIST_LIMIT = 200
IMPACT_ROWS = 100  # lots listed per impact table; the counts cover them all


@router.get("/changes")
async def change_list(
    request: Request,
    session: SessionDep,
    user: Reader,
    status: str = "",
    kind: str = "",
    open: bool = False,
) -> Response:
    """Changes, newest first, by status, kind, or only the open ones."""
    if status and status not in {s.value for s in ChangeStatus}:
        raise InvalidInput(f"unknown status {status!r}", field="status")
    if kind and kind not in {k.value for k in ChangeKind}:
        raise InvalidInput(f"unknown kind {kind!r}", field="kind")
    changes = await changes_api.list_changes(
        session=session,
        status_=ChangeStatus(status) if status else None,
        kind=ChangeKind(kind) if kind else None,
        product_code=None,
        open_only=open,
        limit=LIST_LIMIT,
    )
    return render(
        request,
        "pages/changes.html",
        {
            "changes": changes,
            "statuses": [s.value for s in ChangeStatus],
            "kinds": [k.value for k in ChangeKind],
            "filters": {"status": status, "kind": kind, "open": open},
            "limit": LIST_LIMIT,
        },
        user=user,
    )


@router.get("/changes/{change_id}")
async def change_page(request: Request, change_id: int, session: SessionDep, user: Reader) -> Response:
    """A change: what and why, its impact and risk, approvals by round, implementation, documents,
    signatures and history."""
    change = await changes_api.get_change(change_id, session)
    lang = page_language(request)
    impact = change.impact
    facts = [
        fact(
            change.initiated_at,
            translate(lang, "Change requested"),
            who=change.initiated_by,
            detail=change.title,
        ),
        fact(
            impact.assessed_at if impact else None,
            translate(
                lang,
                "Impact and risk assessed: {rating}",
                rating=translate(lang, f"risk.{impact.risk_rating}") if impact else "",
            ),
            who=impact.assessed_by if impact else None,
        ),
        *(
            fact(
                a.decided_at,
                translate(
                    lang,
                    "Round {round}: {role} decided {decision}",
                    round=a.round,
                    role=translate(lang, f"role.{a.role}"),
                    decision=a.decision or "",
                ),
                who=a.printed_name or a.decided_by,
                detail=a.comment,
            )
            for a in change.approvals
        ),
        *(
            fact(
                t.completed_at,
                translate(lang, "Task done: {title}", title=t.title),
                who=t.completed_by,
                detail=t.note,
            )
            for t in change.tasks
        ),
        fact(change.became_effective_on, translate(lang, "Change effective")),
        fact(change.closed_at, translate(lang, "Change closed"), detail=change.closure_note),
    ]
    past = await history(
        session,
        user,
        lang,
        record_type="change",
        record_id=change_id,
        facts=facts,
        signatures=change.signatures,
        related=[("change_task", t.id) for t in change.tasks],
    )
    return render(
        request,
        "pages/change.html",
        {"change": change, "r": change, "impact_rows": IMPACT_ROWS, **past},
        user=user,
        lang=lang,
    )
