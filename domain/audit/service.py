"""Reading the audit trail: a record's history, an actor's changes, everything since a time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.models import AuditEntry
from domain.errors import InvalidInput

MAX_LIMIT = 1000


def parse_record(value: str) -> tuple[str, str]:
    """``recall:12`` -> ("recall", "12"); InvalidInput naming ``record`` otherwise."""
    record_type, sep, record_id = value.partition(":")
    if not sep or not record_type.strip() or not record_id.strip():
        raise InvalidInput("give the record as <type>:<id>, e.g. recall:12", field="record")
    return record_type.strip(), record_id.strip()


async def entries(
    session: AsyncSession,
    *,
    record_type: str | None = None,
    record_id: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    after_seq: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Entries matching every filter given, oldest first (page on with ``after_seq``)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    if since is not None and since.tzinfo is None:
        raise InvalidInput("give a time zone (e.g. 2026-03-01T00:00:00Z)", field="since")
    stmt = select(AuditEntry).order_by(AuditEntry.seq).limit(limit)
    if record_type is not None:
        stmt = stmt.where(AuditEntry.record_type == record_type)
    if record_id is not None:
        stmt = stmt.where(AuditEntry.record_id == record_id)
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor == actor)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    if after_seq is not None:
        stmt = stmt.where(AuditEntry.seq > after_seq)
    return list(await session.scalars(stmt))
