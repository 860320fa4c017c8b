"""Commanding workflows from the API: Updates whose refusal becomes a 409 with the validator's reason,
and coalesced wake-up signals after inbound facts were committed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import HTTPException, status
from pydantic import BaseModel
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from domain import process_starts
from domain.recalls.models import Recall, RecallConsignee
from domain.recalls.payloads import ConsigneeState, WakeUp
from lotline.starter import start_recorded

log = logging.getLogger(__name__)

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


async def start_process(
    session: AsyncSession,
    client: Client,
    task_queue: str,
    workflow_type: str,
    workflow_id: str,
    arg: BaseModel,
) -> bool:
    """Commit the record in ``session`` together with its start, then start its workflow.

    When Temporal cannot take the start now, the record still stands (the request succeeded) and the
    worker's starter starts it as soon as it can; returns whether it started now.
    """
    row = process_starts.enqueue(session, workflow_type, workflow_id, arg)
    await session.commit()
    return await start_recorded(
        session,
        client,
        task_queue=task_queue,
        workflow_type=workflow_type,
        workflow_id=workflow_id,
        args=row.args,
    )


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


class RecallWaker:
    """Wakes recall workflows after inbound facts were committed, coalesced within this process.

    :meth:`poke` returns at once; a background task runs :func:`wake_recall` (which coalesces across
    processes through the store) for each poked recall: at once for the first poke, then at most every
    ``every`` seconds while pokes keep coming. A burst of ten thousand acknowledgements so costs a
    check or two a second instead of a read per acknowledgement, and the last acknowledgement is
    always followed by a check (the one that signals when nobody is left open). A check that fails
    loses nothing: the facts are stored and the workflow reads them at its next timer.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: Callable[[], Awaitable[Client | None]],
        *,
        every: float = 0.5,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._every = every
        self._pending: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    def poke(self, recall_id: int) -> None:
        """Facts about this recall were committed: have its workflow woken soon."""
        self._pending.add(recall_id)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="recall-waker")

    async def _run(self) -> None:
        while self._pending:
            due, self._pending = sorted(self._pending), set()
            try:
                client = await self._client()
            except Exception:  # unreachable Temporal: the facts wait in the store
                client = None
            for recall_id in due:
                try:
                    async with self._sessions() as session:
                        await wake_recall(session, client, recall_id)
                except Exception:
                    log.exception(
                        "waking the workflow of recall %s failed; it looks at its next timer", recall_id
                    )
            if self._closing.is_set():
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._every)

    async def close(self) -> None:
        """Run the checks still pending now, then stop (the app is shutting down)."""
        self._closing.set()
        if self._task is not None:
            await self._task
