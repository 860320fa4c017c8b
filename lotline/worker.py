"""The worker process: runs every registered workflow and activity on the configured task queue."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.worker import Worker

from activities.audit import AuditActorInterceptor
from domain.db import make_session_factory
from lotline import registry
from lotline.heap import freeze_what_start_made
from lotline.loopwatch import watching
from lotline.settings import Settings, store_engine
from lotline.starter import run_starter
from lotline.temporal import connect

log = logging.getLogger("lotline.worker")

# Plain (non-async) activities run on this many threads; async ones run on the event loop.
ACTIVITY_THREADS = 16


def build_worker(
    client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> Worker | None:
    """A worker for everything in the registry, or None while nothing is registered."""
    workflows = registry.workflows()
    activities = registry.activities(settings, sessions)
    if not workflows and not activities:
        return None
    needs_threads = any(not inspect.iscoroutinefunction(a) for a in activities)
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=workflows,
        activities=activities,
        activity_executor=ThreadPoolExecutor(ACTIVITY_THREADS) if needs_threads else None,
        interceptors=[AuditActorInterceptor()],  # audit entries name whom each activity acts for
    )


async def start_standing_workflows(client: Client, settings: Settings) -> None:
    """Start the site's always-running workflows (the reminder digest) unless they run already."""
    for workflow_type, workflow_id, arg in registry.standing_workflows():
        try:
            await client.start_workflow(
                workflow_type, arg, id=workflow_id, task_queue=settings.temporal_task_queue
            )
            log.info("started %s (%s)", workflow_type, workflow_id)
        except WorkflowAlreadyStartedError:
            pass


async def run_worker(settings: Settings, stop: asyncio.Event, *, connect_wait: float = 60.0) -> None:
    """Connect to Temporal and the store, then poll the task queue until ``stop`` is set."""
    connecting = asyncio.ensure_future(connect(settings, wait=connect_wait))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not connecting.done():
        # Stopped while Temporal was still starting: nothing to shut down yet.
        connecting.cancel()
        return
    client = connecting.result()
    engine = store_engine(settings)
    try:
        sessions = make_session_factory(engine)
        worker = build_worker(client, settings, sessions)
        if worker is None:
            # temporalio refuses a worker with nothing to run; stay up so the stack's shape is stable.
            log.warning("no workflows registered yet; idling until stopped")
            await stop.wait()
            return
        log.info(
            "polling task queue %r in namespace %r at %s",
            settings.temporal_task_queue,
            settings.temporal_namespace,
            settings.temporal_address,
        )
        # Beside the worker: start any workflow the store recorded but Temporal did not take (starter.py).
        starting = asyncio.create_task(
            run_starter(sessions, client, task_queue=settings.temporal_task_queue, stop=stop)
        )
        try:
            async with worker:
                await start_standing_workflows(client, settings)
                freeze_what_start_made()  # lives as long as the process: out of every later GC pass
                async with watching(settings.loop_stall_warn_ms):
                    await stop.wait()
        finally:  # also when the worker failed: never wait on a starter that only ``stop`` ends
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
    finally:
        await engine.dispose()


def main(settings: Settings) -> None:
    """Run the worker in the foreground; SIGINT or SIGTERM shuts it down gracefully."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    asyncio.run(_run())
