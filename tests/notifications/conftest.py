"""A running dev stack for the SMS tests: the Lotline app (with its Twilio-compatible endpoint) and a
small receiver standing in for the webhooks, both served by uvicorn on ephemeral ports."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.app import create_app
from domain.db import make_engine, make_session_factory
from lotline.settings import Settings

TWIML_REPLY = "Thank you, receipt confirmed."


@dataclass
class Hit:
    """One request the receiver got: the URL Twilio signed, the form fields and the signature header."""

    url: str
    params: dict[str, str]
    signature: str | None


async def _hit(request: Request) -> Hit:
    form = await request.form()
    params = {k: str(v) for k, v in form.items()}
    return Hit(str(request.url), params, request.headers.get("X-Twilio-Signature"))


@dataclass
class Receiver:
    """Stands in for the lead's /webhooks/twilio/{status,sms}: records every hit."""

    status: list[Hit] = field(default_factory=list)
    inbound: list[Hit] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/webhooks/twilio/status")
        async def status(request: Request) -> Response:
            self.status.append(await _hit(request))
            return Response(status_code=204)

        @app.post("/webhooks/twilio/sms")
        async def sms(request: Request) -> Response:
            self.inbound.append(await _hit(request))
            twiml = (
                f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{TWIML_REPLY}</Message></Response>'
            )
            return Response(content=twiml, media_type="application/xml")

        return app


@dataclass
class DevStack:
    """The running app and receiver, with a store session factory and an HTTP client for the app."""

    settings: Settings
    base_url: str
    receiver: Receiver
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient

    async def control(self, **knobs) -> dict:
        """Set the endpoint's knobs (and zero its statistics); returns its state."""
        response = await self.http.post("/dev/twilio/_control", json={"reset_stats": True, **knobs})
        response.raise_for_status()
        return response.json()

    async def state(self) -> dict:
        """The endpoint's knobs and statistics, untouched."""
        response = await self.http.get("/dev/twilio/_control")
        response.raise_for_status()
        return response.json()


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class Served:
    """A uvicorn server running as a task on the test's event loop."""

    def __init__(self) -> None:
        # Bound first, on an ephemeral port, so the port is known before the app is built.
        self.sock = _listening_socket()
        self.port: int = self.sock.getsockname()[1]
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task | None = None

    async def start(self, app: FastAPI) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        for _ in range(500):
            if self.server.started:
                return
            if self.task.done():
                self.task.result()  # raises what stopped it
            await asyncio.sleep(0.01)
        raise RuntimeError("uvicorn did not start")

    async def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.task is not None:
            await self.task
        self.sock.close()


async def eventually(check: Callable[[], Awaitable[bool]] | Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``check()`` is true (the endpoint's callbacks run in the background)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
async def dev_stack(sqlite_template: Path, tmp_path_factory) -> AsyncIterator[DevStack]:
    """The Lotline app on a migrated SQLite store with dev endpoints on, and the webhook receiver."""
    tmp = tmp_path_factory.mktemp("devstack")
    db = tmp / "store.db"
    shutil.copy(sqlite_template, db)
    receiver = Receiver()
    receiving, serving = Served(), Served()
    await receiving.start(receiver.app())
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{db}",
        public_base_url=f"http://127.0.0.1:{receiving.port}",
        twilio_base_url=f"http://127.0.0.1:{serving.port}/dev/twilio",
        var_dir=tmp / "var",
        dev_endpoints=True,
        sms_concurrency=4,
    )
    await serving.start(create_app(settings))
    engine = make_engine(settings.database_url)
    base_url = f"http://127.0.0.1:{serving.port}"
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        yield DevStack(settings, base_url, receiver, engine, make_session_factory(engine), http)
    await engine.dispose()
    await serving.stop()
    await receiving.stop()
