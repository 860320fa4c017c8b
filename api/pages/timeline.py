"""A record's history for its page: what happened when (the record's own dated facts, its tasks opened
and decided, its signatures), and, for the roles that may read the audit trail (those of
``GET /api/audit``), every audited change to it with old and new values."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.pages.guards import admits, route_guard
from api.pages.i18n import translate
from api.routes import audit as audit_api
from api.routes import tasks as tasks_api
from api.security import Principal
from domain.audit import service as audit_service
from domain.enums import Language

# Who may read the audit trail on a page: whom GET /api/audit admits.
AUDIT_GUARD = route_guard(audit_api.router, "/api/audit")
AUDIT_ROWS = 200  # entries shown per record; the API pages on from there
VALUE_CHARS = 120


@dataclass
class Event:
    """One line of a timeline: when, what (in the page's language), who, and where it leads."""

    at: datetime
    text: str
    who: str | None = None
    kind: str = "fact"  # fact | task | signature
    href: str | None = None
    detail: str | None = None


def moment(value: datetime | date | None) -> datetime | None:
    """A date as midnight UTC, a naive time as UTC, so facts of both kinds sort together."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        return datetime.combine(value, time(), tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def fact(
    at: datetime | date | None, text: str, *, who: str | None = None, detail: str | None = None
) -> Event | None:
    """A dated fact of the record, worded (None when it has not happened)."""
    when = moment(at)
    return Event(when, text, who, "fact", detail=detail) if when else None


def _short(value: Any) -> str:
    text = "—" if value is None else str(value)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


async def history(
    session: AsyncSession,
    user: Principal,
    lang: Language,
    *,
    record_type: str,
    record_id: int,
    facts: Iterable[Event | None],
    signatures: Iterable[Any],
    related: Iterable[tuple[str, int]] = (),
) -> dict[str, Any]:
    """The timeline (oldest first) and, for audit readers, the audit entries of the record and of its
    ``related`` records (its actions, its implementation tasks...)."""
    tasks = await tasks_api.list_tasks(
        session=session,
        user=user,
        status=None,
        process=None,
        record_type=record_type,
        record_id=record_id,
        mine=False,
        my_roles=False,
        overdue=False,
    )
    events = [e for e in facts if e is not None]
    for t in tasks:
        opened = translate(lang, "Task opened: {title}", title=t.title)
        events.append(Event(moment(t.created_at), opened, None, "task", href=f"/tasks/{t.id}"))
    for s in signatures:
        meaning = translate(lang, f"meaning.{s.meaning}")
        events.append(
            Event(
                moment(s.signed_at),
                translate(lang, "Signed: {meaning}.", meaning=meaning),
                f"{s.printed_name} ({s.signer})",
                "signature",
                detail=s.reason,
            )
        )
    events.sort(key=lambda e: e.at)
    audit = None
    truncated = False
    if admits(AUDIT_GUARD, user):
        audit = []
        for rtype, rid in [(record_type, record_id), *related]:
            rows = await audit_service.entries(
                session, record_type=rtype, record_id=str(rid), limit=AUDIT_ROWS
            )
            truncated = truncated or len(rows) == AUDIT_ROWS
            audit.extend(rows)
        audit.sort(key=lambda a: a.seq)
        audit = [
            {
                "seq": a.seq,
                "at": a.at,
                "actor": a.actor,
                "action": a.action,
                "record": f"{a.record_type} {a.record_id}",
                "changes": [(k, _short(v[0]), _short(v[1])) for k, v in sorted((a.changes or {}).items())],
                "reason": a.reason,
            }
            for a in audit
        ]
    return {
        "timeline": events,
        "record_tasks": sorted(tasks, key=lambda t: (t.created_at, t.id)),
        "audit": audit,
        "audit_truncated": truncated,
        "audit_record": f"{record_type}:{record_id}",
    }
