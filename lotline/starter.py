"""Starting the workflows the store says must run (the outbox of ``domain/process_starts.py``).

The API calls ``start_recorded`` right after committing a record with its ``workflow_starts`` row; the
worker runs ``run_starter``, which retries whatever is still pending (Temporal was unreachable, or the
API died between commit and start). A workflow id is never started twice: REJECT_DUPLICATE makes a
second start of the same id, open or closed, a no-op that we count as started.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from domain import process_starts

log = logging.getLogger("lotline.starter")

# Rows younger than this are left to the API request that recorded them (it is starting them now).
GRACE = timedelta(seconds=30)
INTERVAL_SECONDS = 15.0


async def start_recorded(
    session: AsyncSession,
    client: Client,
    *,
    task_queue: str,
    workflow_type: str,
    workflow_id: str,
    args: dict[str, Any],
) -> bool:
    """Start one recorded workflow and commit that in ``session`` (which has no other work open);
    True when it runs (now or already), False when it stays pending."""
    try:
        await client.start_workflow(
            workflow_type,
            args,
            id=workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        pass  # started before (by the API or an earlier pass): exactly what we want
    except (RPCError, RuntimeError) as exc:  # unreachable or refused: stays pending for the starter
        log.warning("could not start %s (%s); it stays pending: %s", workflow_id, workflow_type, exc)
        await process_starts.mark_failed(session, workflow_id, str(exc))
        await session.commit()
        return False
    await process_starts.mark_started(session, workflow_id)
    await session.commit()
    return True


async def start_pending(
    sessions: async_sessionmaker[AsyncSession],
    client: Client,
    *,
    task_queue: str,
    older_than: timedelta = GRACE,
) -> int:
    """One pass: start every pending workflow recorded at least ``older_than`` ago; returns how many."""
    async with sessions() as s:
        rows = [
            (r.workflow_type, r.workflow_id, r.args)
            for r in await process_starts.pending(s, older_than=older_than)
        ]
    started = 0
    for workflow_type, workflow_id, args in rows:
        async with sessions() as s:
            ok = await start_recorded(
                s,
                client,
                task_queue=task_queue,
                workflow_type=workflow_type,
                workflow_id=workflow_id,
                args=args,
            )
        if ok:
            log.info("started %s (%s), which was recorded but not running", workflow_id, workflow_type)
            started += 1
    return started


async def run_starter(
    sessions: async_sessionmaker[AsyncSession],
    client: Client,
    *,
    task_queue: str,
    stop: asyncio.Event,
    interval: float = INTERVAL_SECONDS,
    older_than: timedelta = GRACE,
) -> None:
    """Every ``interval`` seconds until ``stop``: start what is pending. Errors are logged, never fatal."""
    while not stop.is_set():
        try:
            await start_pending(sessions, client, task_queue=task_queue, older_than=older_than)
        except Exception:  # the store may be briefly down too; try again next time
            log.exception("starting pending workflows failed; retrying in %.0f s", interval)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
