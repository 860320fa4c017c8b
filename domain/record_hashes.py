"""The hash of a record's current version, by record type: what a signature binds (21 CFR 11.70).

One place for every signed kind of record, used by the workflows' sign-off activity and by the API
when a person completes a work task with their signature.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from domain.capa import service as capas
from domain.changes import service as changes
from domain.errors import Conflict
from domain.quality import service as quality
from domain.recalls import service as recalls

HASHERS: dict[str, Callable[[AsyncSession, int], Awaitable[str]]] = {
    "recall": recalls.record_hash,
    "lot_release": quality.record_hash,
    "change": changes.record_hash,
    "capa": capas.record_hash,
}


async def record_hash(session: AsyncSession, record_type: str, record_id: int) -> str:
    """SHA-256 over the record's signed content as stored now."""
    hasher = HASHERS.get(record_type)
    if hasher is None:
        raise Conflict(f"records of type {record_type!r} are not signed", field="record_type")
    return await hasher(session, record_id)
