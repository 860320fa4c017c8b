"""Task and signature activities: open a task, store a signed decision, remind, close."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from domain.capa import service as capas
from domain.changes import service as changes
from domain.db import transaction
from domain.quality import service as quality
from domain.recalls import service as recalls
from domain.tasks import service as tasks
from domain.tasks.payloads import Nudge, SignOff, SignOffResult, TaskRef, TaskSpec
from workflows import names

# How each kind of record is hashed for the signature that binds it (21 CFR 11.70).
RECORD_HASHERS = {
    "recall": recalls.record_hash,
    "lot_release": quality.record_hash,
    "change": changes.record_hash,
}
RECORD_HASHERS["capa"] = capas.record_hash


class TaskActivities:
    """Activities on the task inbox and signatures, bound to the store at worker start."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    @activity.defn(name=names.OPEN_TASK)
    async def open_task(self, spec: TaskSpec) -> TaskRef:
        """Open a task (idempotent by business key)."""
        async with transaction(self.sessions) as s:
            return await tasks.open_task(s, spec=spec)

    @activity.defn(name=names.SIGN_TASK)
    async def sign_task(self, signoff: SignOff, record_type: str, record_id: int) -> SignOffResult:
        """Store the signature bound to the hash of the record as it is now, and complete the task."""
        async with transaction(self.sessions) as s:
            digest = await RECORD_HASHERS[record_type](s, record_id)
            sig = await tasks.sign(
                s, signoff=signoff, record_type=record_type, record_id=record_id, record_hash=digest
            )
            return SignOffResult(
                signature_id=sig.id,
                task_id=signoff.task_id,
                meaning=sig.meaning,
                signed_at=sig.signed_at,
                record_hash=sig.record_hash,
            )

    @activity.defn(name=names.NUDGE_TASK)
    async def nudge_task(self, n: Nudge) -> None:
        """Record a reminder or an escalation (the inbox shows it; the digest mail reads it)."""
        async with transaction(self.sessions) as s:
            await tasks.nudge(s, task_id=n.task_id, action=n.action, to_roles=n.to_roles)

    @activity.defn(name=names.CLOSE_TASKS)
    async def close_tasks(self, record_type: str, record_id: int) -> int:
        """Cancel the open tasks of a record that has ended."""
        async with transaction(self.sessions) as s:
            return await tasks.close_for_record(s, record_type=record_type, record_id=record_id)
