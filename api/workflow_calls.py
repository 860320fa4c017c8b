"""Commanding workflows from the API: Updates whose refusal becomes a 409 with the validator's reason,
and coalesced wake-up signals after inbound facts were committed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import HTTPException, status
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from domain.recalls.models import Recall, RecallConsignee
from domain.recalls.payloads import ConsigneeState, WakeUp

# At most one wake-up signal per recall per this interval: 10,000 acknowledgements must not become
# 10,000 history events. The workflow re-reads the store at its timers, so a skipped signal delays,
# never loses; the last open consignee's answer always signals.
WAKE_INTERVAL = timedelta(seconds=5)


def _cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc) or exc.__class__.__name__


async def execute_update(
    client: Client, workflow_id: str, update_name: str, arg: Any, result_type: type
) -> Any:
    """Run a workflow Update; a refusal by its validator is a 409 naming the reason."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        return await handle.execute_update(update_name, arg, result_type=result_type)
    except WorkflowUpdateFailedError as exc:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT, detail=[{"field": None, "reason": _cause(exc)}]
        ) from exc
    except RPCError as exc:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT,
            detail=[{"field": None, "reason": f"the recall's process is not running: {exc.message}"}],
        ) from exc


async def wake_recall(session: AsyncSession, client: Client | None, recall_id: int) -> bool:
    """Signal the recall's workflow that facts arrived, coalesced to one signal per WAKE_INTERVAL
    (multi-replica safe: a conditional UPDATE decides who sends); returns True when it signalled."""
    now = datetime.now(UTC)
    open_consignees = (
        select(func.count())
        .where(RecallConsignee.recall_id == recall_id, RecallConsignee.state != ConsigneeState.acknowledged)
        .scalar_subquery()
    )
    row = (
        await session.execute(select(open_consignees, Recall.last_signalled_at).where(Recall.id == recall_id))
    ).one_or_none()
    if row is None:
        return False
    still_open, last = row
    claim = update(Recall).where(Recall.id == recall_id)
    if still_open:
        # Most answers fall inside the interval: the read above says so without a write (on SQLite every
        # UPDATE, even one that matches nothing, takes the database's single write lock).
        if last is not None and last >= now - WAKE_INTERVAL:
            return False
        claim = claim.where(
            or_(Recall.last_signalled_at.is_(None), Recall.last_signalled_at < now - WAKE_INTERVAL)
        )
    res = await session.execute(claim.values(last_signalled_at=now).returning(Recall.workflow_id))
    workflow_id = res.scalar_one_or_none()
    await session.commit()
    if workflow_id is None or client is None:
        return False
    try:
        await client.get_workflow_handle(workflow_id).signal("wake_up", WakeUp())
    except RPCError:
        return False  # the fact is stored; the workflow reads it at its next timer
    return True
