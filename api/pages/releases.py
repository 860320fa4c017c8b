"""QC release pages: the inspections (lot release records), and one inspection's record page with its
evaluation, results, blockers, decision and disposition split, nonconformances, signatures and timeline.
A record is read through ``GET /api/inspections/{id}``'s own handler; the release decision is signed on
its task's page (``/tasks/{id}``), whose form carries the disposition split."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import select

from api.deps import SessionDep
from api.pages.i18n import translate
from api.pages.render import page_language, render
from api.pages.routing import page_router
from api.pages.security import require_page_roles
from api.pages.timeline import fact, history
from api.routes import quality as quality_api
from api.security import Principal
from domain.errors import InvalidInput
from domain.models import Lot, Product
from domain.quality.models import Inspection
from domain.quality.payloads import RECORD_TYPE, InspectionStatus

router = page_router()

# The release pages admit whom GET /api/inspections/{id} admits.
Reader = Annotated[Principal, Depends(require_page_roles(quality_api.READERS))]
LIST_LIMIT = 200


@router.get("/releases")
async def release_list(request: Request, session: SessionDep, user: Reader, status: str = "") -> Response:
    """Lot releases (inspections), newest first, by status."""
    if status and status not in {s.value for s in InspectionStatus}:
        raise InvalidInput(f"unknown status {status!r}", field="status")
    q = (
        select(Inspection, Lot.lot_number, Lot.qc_status, Product.code)
        .join(Lot, Lot.id == Inspection.lot_id)
        .join(Product, Product.id == Lot.product_id)
        .order_by(Inspection.id.desc())
        .limit(LIST_LIMIT)
    )
    if status:
        q = q.where(Inspection.status == InspectionStatus(status))
    rows = [
        {"inspection": i, "lot": f"{code}/{number}", "qc_status": qc.value}
        for i, number, qc, code in (await session.execute(q)).all()
    ]
    return render(
        request,
        "pages/releases.html",
        {
            "rows": rows,
            "statuses": [s.value for s in InspectionStatus],
            "filters": {"status": status},
            "limit": LIST_LIMIT,
        },
        user=user,
    )


@router.get("/releases/{inspection_id}")
async def release_page(request: Request, inspection_id: int, session: SessionDep, user: Reader) -> Response:
    """A lot release: the lot, the evaluation against its plan, results, blockers, the decision and its
    split, nonconformances, signatures and history."""
    insp = await quality_api.get_inspection(inspection_id, session)
    lang = page_language(request)
    batches: dict[tuple[str, str], list] = {}
    for r in insp.results:  # results recorded together read as one step of the timeline
        batches.setdefault((r.recorded_by, r.recorded_at.strftime("%Y-%m-%d %H:%M")), []).append(r)
    d = insp.disposition
    facts = [
        fact(
            insp.started_at, translate(lang, "Inspection started; lot in quarantine"), who=insp.initiated_by
        ),
        *(
            fact(
                rs[0].recorded_at,
                translate(lang, "{n} results recorded", n=len(rs)),
                who=who,
                detail=", ".join(sorted({r.characteristic for r in rs})),
            )
            for (who, _minute), rs in batches.items()
        ),
        *(
            fact(
                nc.opened_at,
                translate(lang, "Nonconformance opened"),
                who=nc.opened_by,
                detail=nc.description,
            )
            for nc in insp.nonconformances
        ),
        fact(
            d.decided_at if d else None,
            translate(
                lang, "Decided: {outcome}", outcome=translate(lang, f"disposition.{d.outcome}") if d else ""
            ),
            who=d.decided_by if d else None,
            detail=d.justification if d else None,
        ),
    ]
    past = await history(
        session,
        user,
        lang,
        record_type=RECORD_TYPE,
        record_id=inspection_id,
        facts=facts,
        signatures=insp.signatures,
    )
    return render(request, "pages/release.html", {"insp": insp, "r": insp, **past}, user=user, lang=lang)


SPLIT_PARTS = ("unrestricted", "blocked", "scrap", "sample")


def sign_off_input(form) -> tuple[dict[str, Any], dict[str, str]]:
    """A lot release's part of a sign-off form: the ``SignRequest`` fields ``disposition`` (the split, when
    the form carries one; an empty box counts as 0) and ``capa``, and the values to show again if refused."""
    sent = {part: str(form.get(f"disposition_{part}") or "").strip() for part in SPLIT_PARTS}
    shown = {f"disposition_{part}": value for part, value in sent.items() if f"disposition_{part}" in form}
    fields: dict[str, Any] = {"capa": form.get("capa") in ("on", "true", "1")}
    if shown:
        fields["disposition"] = {part: value or "0" for part, value in sent.items()}
    if fields["capa"]:
        shown["capa"] = "on"
    return fields, shown
