"""The recall dashboard: the list of recalls with their deadlines, and one recall as QA follows it.

A recall's page reads the API's own read model (``GET /api/recalls/{id}``'s handler: status, deadlines
and whether each was met, the funnel, units, signatures, tasks) and the aggregates of
``domain.recalls.dashboard`` (the acknowledgement curve, regions, reconciliation), each computed in the
database; the consignee and mismatch lists are read one page at a time. So the page costs the same
handful of statements for 30 consignees or 30,000. The consignee timeline is exported as CSV, streamed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from enum import Enum
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import func, select

from api.deps import SessionDep
from api.pages.charts import curve_chart, funnel
from api.pages.i18n import translate
from api.pages.paging import pager, url_with
from api.pages.render import page_language, render
from api.pages.routing import page_router
from api.pages.security import require_page_roles
from api.routes import recalls as recalls_api
from api.security import Principal
from domain.errors import InvalidInput
from domain.recalls import dashboard
from domain.recalls import service as recalls
from domain.recalls.dashboard import Show
from domain.recalls.models import Recall
from domain.recalls.payloads import RecallStatus

router = page_router()

# The recall pages admit whom GET /api/recalls/{id} admits.
Reader = Annotated[Principal, Depends(require_page_roles(recalls_api.READERS))]

LIST_SIZE = 50
CONSIGNEE_PAGE = 50
MISMATCH_PAGE = 25
FUNNEL_STAGES = ("planned", "sent", "delivered", "opened", "acknowledged")
CSV_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


@router.get("/recalls")
async def recall_list(
    request: Request,
    session: SessionDep,
    user: Reader,
    status: str = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """Recalls, newest first: status, consignees acknowledged and overdue, each deadline and whether it was
    met (as ``GET /api/recalls/{id}`` judges it)."""
    if status and status not in {s.value for s in RecallStatus}:
        raise InvalidInput(f"unknown status {status!r}", field="status")
    where = [Recall.status == status] if status else []
    total = await session.scalar(select(func.count()).select_from(Recall).where(*where)) or 0
    pages = pager(request, param="page", page=page, size=LIST_SIZE, total=total)
    rows = list(
        await session.scalars(
            select(Recall).where(*where).order_by(Recall.id.desc()).offset(pages.offset).limit(LIST_SIZE)
        )
    )
    counts = await dashboard.summaries(session, recall_ids=[r.id for r in rows])
    items = [
        {
            "recall": recalls_api.list_item(r),
            "deadlines": await recalls_api.deadlines_of(session, r),
            "counts": counts.get(r.id, dashboard.RecallSummary()),
        }
        for r in rows
    ]
    return render(
        request,
        "pages/recalls.html",
        {"items": items, "list_pager": pages, "statuses": [s.value for s in RecallStatus], "status": status},
        user=user,
    )


def _deadline_label(kind: str) -> str:
    return f"deadline_kind.{kind}"


@router.get("/recalls/{recall_id}")
async def recall_dashboard(
    request: Request,
    recall_id: int,
    session: SessionDep,
    user: Reader,
    show: Show = "open",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    mpage: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    """One recall: deadlines, the acknowledgement curve, the funnel, who has not answered, regions,
    reconciliation, reports and signatures."""
    recall = await recalls_api.get_recall(recall_id, session)
    row = await recalls.get_recall(session, recall_id)
    now = datetime.now(UTC)
    curve = await dashboard.acknowledgement_curve(session, recall=row, now=now)
    lang = page_language(request)
    chart = curve_chart(
        curve,
        deadlines=[
            (d.due_at, translate(lang, _deadline_label(d.kind)), d.kind == "notify") for d in recall.deadlines
        ],
        now=now if row.status not in recalls.CLOSED_STATES else None,
    )
    notify = next((d for d in recall.deadlines if d.kind == "notify"), None)
    progress = recall.progress
    stages = [(key, getattr(progress, key)) for key in FUNNEL_STAGES]
    total, consignees = await dashboard.consignee_page(
        session,
        recall_id=recall_id,
        show=show,
        offset=(page - 1) * CONSIGNEE_PAGE,
        limit=CONSIGNEE_PAGE,
    )
    mtotal, mismatches = await dashboard.mismatch_page(
        session, recall_id=recall_id, offset=(mpage - 1) * MISMATCH_PAGE, limit=MISMATCH_PAGE
    )
    lots = await dashboard.reconciliation(session, recall_id=recall_id)
    return render(
        request,
        "pages/recall.html",
        {
            "recall": recall,
            "curve": curve,
            "chart": chart,
            "ack_by_deadline": curve.at(notify.due_at) if notify else None,
            "notify": notify,
            "funnel": funnel(stages),
            "funnel_labels": {key: translate(lang, f"funnel.{key}") for key in FUNNEL_STAGES},
            "regions": await dashboard.by_region(session, recall_id=recall_id),
            "show": show,
            "shows": dashboard.SHOWS,
            "show_url": lambda s: url_with(request, "consignees", show=s, page=None),
            "consignees": consignees,
            "consignee_pager": pager(
                request, param="page", page=page, size=CONSIGNEE_PAGE, total=total, fragment="consignees"
            ),
            "lots": lots,
            "lot_totals": {
                k: sum(getattr(x, k) for x in lots)
                for k in (
                    "shipped",
                    "shipped_answered",
                    "on_hand",
                    "returned",
                    "corrected",
                    "destroyed",
                    "used",
                    "accounted",
                    "mismatches",
                    "consignees",
                    "answered",
                )
            },
            "mismatches": mismatches,
            "mismatch_pager": pager(
                request,
                param="mpage",
                page=mpage,
                size=MISMATCH_PAGE,
                total=mtotal,
                fragment="reconciliation",
            ),
            "reports": await recalls_api.list_reports(recall_id, session),
            "now": now,
        },
        user=user,
        lang=lang,
    )


def _cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula is prefixed with ' (OWASP CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else ""
    if not isinstance(value, str):
        return str(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@router.get("/recalls/{recall_id}/timeline.csv")
async def timeline_csv(request: Request, recall_id: int, session: SessionDep, user: Reader) -> Response:
    """Every consignee's notice timeline as CSV (UTF-8 with a byte order mark, so spreadsheet programs read
    the Chinese names), one row per event, streamed from the store."""
    recall = await recalls.get_recall(session, recall_id)
    reference = recall.reference
    await session.rollback()
    sessions = request.app.state.sessions

    async def rows() -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        buffer.write("\ufeff")
        writer.writerow(dashboard.TIMELINE_COLUMNS)
        async with sessions() as s:
            n = 0
            async for row in dashboard.timeline_rows(s, recall_id=recall_id):
                writer.writerow([_cell(v) for v in row])
                n += 1
                if n % 1000 == 0:
                    yield buffer.getvalue().encode()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue().encode()

    filename = f"{reference}-consignee-timeline.csv"
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={**CSV_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/recalls/{recall_id}/reports/{report_id}")
async def report_page(
    request: Request, recall_id: int, report_id: int, session: SessionDep, user: Reader
) -> Response:
    """One stored report of the recall, as it was generated (its text and figures)."""
    recall = await recalls.get_recall(session, recall_id)
    report = await recalls_api.get_report(recall_id, report_id, session)
    return render(request, "pages/recall_report.html", {"recall": recall, "report": report}, user=user)
