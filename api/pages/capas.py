"""CAPA pages: the list, and a CAPA's record page with its investigation, plan, actions, effectiveness,
signatures and timeline. Read through ``GET /api/capas``'s and ``GET /api/capas/{id}``'s own handlers."""

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
from api.routes import capa as capa_api
from api.security import Principal
from domain.capa.payloads import CapaStatus
from domain.errors import InvalidInput

router = page_router()

# The CAPA pages admit whom GET /api/capas/{id} admits.
Reader = Annotated[Principal, Depends(require_page_roles(capa_api.READERS))]
LIST_LIMIT = 200


@router.get("/capas")
async def capa_list(
    request: Request, session: SessionDep, user: Reader, status: str = "", overdue: bool = False
) -> Response:
    """CAPAs, newest first, by status or with an overdue action."""
    if status and status not in {s.value for s in CapaStatus}:
        raise InvalidInput(f"unknown status {status!r}", field="status")
    capas = await capa_api.list_capas(
        session=session,
        status_=CapaStatus(status) if status else None,
        source=None,
        owner=None,
        recall_id=None,
        overdue=True if overdue else None,
        limit=LIST_LIMIT,
    )
    return render(
        request,
        "pages/capas.html",
        {
            "capas": capas,
            "statuses": [s.value for s in CapaStatus],
            "filters": {"status": status, "overdue": overdue},
            "limit": LIST_LIMIT,
        },
        user=user,
    )


@router.get("/capas/{capa_id}")
async def capa_page(request: Request, capa_id: int, session: SessionDep, user: Reader) -> Response:
    """A CAPA: what it answers, its investigation, plan and actions, effectiveness, signatures, history."""
    capa = await capa_api.get_capa(capa_id, session)
    lang = page_language(request)
    inv = capa.investigation
    facts = [
        fact(capa.initiated_at, translate(lang, "CAPA initiated"), who=capa.initiated_by, detail=capa.title),
        fact(
            inv.at, translate(lang, "Investigation recorded"), who=inv.by, detail="; ".join(inv.root_causes)
        ),
        fact(
            capa.plan_submitted_at,
            translate(lang, "Action plan {version} proposed", version=capa.plan_version),
            who=capa.plan_submitted_by,
        ),
        fact(capa.plan_approved_at, translate(lang, "Action plan approved")),
        *(
            fact(
                a.completed_at,
                translate(lang, "Action done: {what}", what=a.description),
                who=a.completed_by,
                detail=a.evidence,
            )
            for a in capa.actions
        ),
        fact(
            capa.effectiveness_checked_at,
            translate(
                lang,
                "Effectiveness verified: {result}",
                result=translate(lang, f"effectiveness.{capa.effectiveness_result}"),
            ),
            who=capa.effectiveness_checked_by,
            detail=capa.effectiveness_summary,
        ),
        fact(capa.closed_at, translate(lang, "CAPA closed")),
    ]
    past = await history(
        session,
        user,
        lang,
        record_type="capa",
        record_id=capa_id,
        facts=facts,
        signatures=capa.signatures,
        related=[("capa_action", a.id) for a in capa.actions],
    )
    return render(request, "pages/capa.html", {"capa": capa, "r": capa, **past}, user=user, lang=lang)
