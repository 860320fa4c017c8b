"""`lotline dev` (what `make run` runs): the whole embedded stack from one command, and back down.

Each test runs the real command in a fresh working directory with every port moved to a free
ephemeral one, so runs never collide with each other or with a stack someone has open.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx
import pytest

from lotline.devstack import PortNeed, port_problem, run
from lotline.settings import Settings
from lotline.temporal import connect
from notifications.devmail import list_messages

pytestmark = pytest.mark.temporal

CHILDREN = {"temporal", "mailbox", "api", "worker"}
STARTED = re.compile(r"started (?P<name>\S+) \(pid (?P<pid>\d+)\)")
READY = "Lotline is running"


def free_ports(count: int) -> list[int]:
    """Distinct ports the kernel just handed out (all held at once, so no two are the same)."""
    held = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        held.append(s)
    ports = [s.getsockname()[1] for s in held]
    for s in held:
        s.close()
    return ports


def stack_env(temporal: int, ui: int, api: int, smtp: int) -> dict[str, str]:
    """The environment for one isolated stack: our ports, nothing inherited from a developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOTLINE_")}
    env.update(
        LOTLINE_TEMPORAL_ADDRESS=f"127.0.0.1:{temporal}",
        LOTLINE_TEMPORAL_UI_PORT=str(ui),
        LOTLINE_API_HOST="127.0.0.1",
        LOTLINE_API_PORT=str(api),
        LOTLINE_PUBLIC_BASE_URL=f"http://127.0.0.1:{api}",
        LOTLINE_TWILIO_BASE_URL=f"http://127.0.0.1:{api}/dev/twilio",
        LOTLINE_SMTP_HOST="127.0.0.1",
        LOTLINE_SMTP_PORT=str(smtp),
        PYTHONUNBUFFERED="1",
    )
    return env


class DevStack:
    """One `lotline dev` process, its output, and the children it says it started."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env
        self.lines: list[str] = []
        self.children: dict[str, int] = {}
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lotline",
            "dev",
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            limit=1 << 20,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process and self.process.stdout
        async for raw in self.process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self.lines.append(line)
            if m := STARTED.search(line):
                self.children[m["name"]] = int(m["pid"])

    async def wait_for(self, text: str, within: float = 120) -> None:
        """Wait until ``text`` appears in the output; fail with the output if the stack exits first."""
        assert self.process
        deadline = time.monotonic() + within
        while not any(text in line for line in self.lines):
            if self.process.returncode is not None:
                pytest.fail(f"lotline dev exited ({self.process.returncode}) before {text!r}:\n{self.output}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {text!r} within {within} s:\n{self.output}")
            await asyncio.sleep(0.1)

    async def wait_exit(self, within: float = 60) -> int:
        assert self.process and self._reader
        try:
            code = await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            pytest.fail(f"lotline dev did not exit within {within} s:\n{self.output}")
        await asyncio.wait_for(self._reader, 10)
        return code

    def kill_everything(self) -> None:
        """Last-resort cleanup after a failed test: nothing this test started may outlive it."""
        for pid in [*self.children.values(), *([self.process.pid] if self.process else [])]:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def group_alive(pgid: int) -> bool:
    """True while any process of the process group is left (each child leads a group of its own)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def processes_in(directory: Path) -> list[int]:
    """Pids of processes whose working directory is inside ``directory``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if cwd == directory.resolve() or directory.resolve() in cwd.parents:
            found.append(int(entry.name))
    return found


@pytest.fixture
async def start_dev(
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Awaitable[tuple[DevStack, dict[str, int]]]]]:
    """Starts `lotline dev` in an empty working directory with four free ports; cleans up after."""
    started: list[DevStack] = []

    async def start(*, demo: bool = True) -> tuple[DevStack, dict[str, int]]:
        temporal, ui, api, smtp = free_ports(4)
        env = stack_env(temporal, ui, api, smtp)
        if not demo:  # for tests that do not look at the demo data, which takes a while to seed
            env["LOTLINE_SEED_DEMO_DATA"] = "false"
        stack = DevStack(tmp_path, env)
        started.append(stack)
        await stack.start()
        return stack, {"temporal": temporal, "ui": ui, "api": api, "smtp": smtp}

    try:
        yield start
    finally:
        for stack in started:
            stack.kill_everything()


async def test_dev_runs_every_part_and_ctrl_c_stops_them_all(start_dev, tmp_path: Path) -> None:
    stack, ports = await start_dev()
    await stack.wait_for(READY)
    assert set(stack.children) == CHILDREN, stack.output

    # The URLs a person needs are printed.
    assert f"http://127.0.0.1:{ports['api']}/docs" in stack.output
    assert f"http://127.0.0.1:{ports['ui']}" in stack.output
    assert f"SMTP 127.0.0.1:{ports['smtp']}" in stack.output
    # The first start seeds the demo data and the banner says so.
    assert "  Demo data     " in stack.output, stack.output

    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        health = await http.get(f"http://127.0.0.1:{ports['api']}/api/health")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        docs = await http.get(f"http://127.0.0.1:{ports['api']}/docs")
        assert docs.status_code == 200
        ui = await http.get(f"http://127.0.0.1:{ports['ui']}/")
        assert ui.status_code == 200

    # Temporal's frontend answers with the namespace the settings name.
    settings = Settings(_env_file=None, temporal_address=f"127.0.0.1:{ports['temporal']}")
    client = await connect(settings)
    assert (await client.service_client.check_health()) is True
    assert client.namespace == "default"

    # A message sent to the dev mailbox lands in var/mailbox.
    subject = f"召回通知 {uuid.uuid4().hex[:8]}"
    message = EmailMessage()
    message["From"] = "recalls@lotline.local"
    message["To"] = "qa@hospital.example"
    message["Subject"] = subject
    message.set_content("Lot L-2024-001 is recalled.")
    await aiosmtplib.send(message, hostname="127.0.0.1", port=ports["smtp"], timeout=10)
    mailbox = tmp_path / "var" / "mailbox"
    received = [m for m in list_messages(mailbox) if m.subject == subject]
    assert len(received) == 1
    assert received[0].envelope_to == ["qa@hospital.example"]
    assert received[0].text.strip() == "Lot L-2024-001 is recalled."
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        page = await http.get(f"http://127.0.0.1:{ports['api']}/dev/mailbox")
    assert page.status_code == 200 and subject in page.text  # the API reads the same Maildir

    # State lives under var/ of the working directory.
    assert (tmp_path / "var" / "temporal.db").is_file()
    assert (tmp_path / "var" / "lotline.db").is_file()

    assert stack.process
    stack.process.send_signal(signal.SIGINT)
    assert await stack.wait_exit() == 0, stack.output
    alive = {name: pid for name, pid in stack.children.items() if group_alive(pid)}
    assert not alive, f"still running after Ctrl-C: {alive}\n{stack.output}"
    assert processes_in(tmp_path) == []
    for need in (
        PortNeed("127.0.0.1", ports["api"], "API", "LOTLINE_API_PORT"),
        PortNeed("127.0.0.1", ports["smtp"], "dev mailbox SMTP", "LOTLINE_SMTP_PORT"),
        PortNeed("127.0.0.1", ports["temporal"], "Temporal", "LOTLINE_TEMPORAL_ADDRESS"),
        PortNeed("127.0.0.1", ports["ui"], "Temporal UI", "LOTLINE_TEMPORAL_UI_PORT"),
    ):
        assert port_problem(need) is None, f"{need.what} port still taken after stopping"


async def test_a_child_that_dies_stops_the_stack_with_its_name_and_code(start_dev, tmp_path: Path) -> None:
    stack, _ = await start_dev(demo=False)
    await stack.wait_for(READY)
    os.killpg(stack.children["worker"], signal.SIGKILL)
    code = await stack.wait_exit()
    assert code != 0
    assert f"worker exited with code {-signal.SIGKILL}" in stack.output
    alive = {name: pid for name, pid in stack.children.items() if group_alive(pid)}
    assert not alive, f"still running after the worker died: {alive}\n{stack.output}"
    assert processes_in(tmp_path) == []


async def test_a_port_in_use_is_named_and_nothing_starts(tmp_path: Path) -> None:
    ports = dict(zip(("temporal", "ui", "api", "smtp"), free_ports(4), strict=True))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["temporal"]))
        squatter.listen()
        stack = DevStack(tmp_path, stack_env(**ports))
        await stack.start()
        try:
            code = await stack.wait_exit(within=60)
        finally:
            stack.kill_everything()
    assert code != 0
    assert (
        f"port {ports['temporal']} (Temporal) is already in use; "
        "stop the other process or set LOTLINE_TEMPORAL_ADDRESS" in stack.output
    )
    assert "started" not in stack.output, "a part started although a port was taken"
    assert processes_in(tmp_path) == []


@pytest.mark.parametrize(
    ("taken", "what", "setting"),
    [
        ("temporal_port", "Temporal", "LOTLINE_TEMPORAL_ADDRESS"),
        ("temporal_ui_port", "Temporal UI", "LOTLINE_TEMPORAL_UI_PORT"),
        ("api_port", "API", "LOTLINE_API_PORT"),
        ("smtp_port", "dev mailbox SMTP", "LOTLINE_SMTP_PORT"),
    ],
)
async def test_each_port_is_checked_before_anything_starts(
    tmp_path: Path, taken: str, what: str, setting: str
) -> None:
    temporal, ui, api, smtp = free_ports(4)
    settings = Settings(
        _env_file=None,
        temporal_address=f"127.0.0.1:{temporal}",
        temporal_ui_port=ui,
        api_port=api,
        smtp_port=smtp,
        var_dir=tmp_path / "var",
    )
    port = {"temporal_port": temporal, "temporal_ui_port": ui, "api_port": api, "smtp_port": smtp}[taken]
    out = io.StringIO()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        code = await run(settings, out=out)
    assert code != 0
    assert (
        f"port {port} ({what}) is already in use; stop the other process or set {setting}" in out.getvalue()
    )
    assert "started" not in out.getvalue()
    assert not (tmp_path / "var").exists(), "a refused start changed the working directory"


async def test_two_parts_on_one_port_are_refused(tmp_path: Path) -> None:
    temporal, ui, api = free_ports(3)
    settings = Settings(
        _env_file=None,
        temporal_address=f"127.0.0.1:{temporal}",
        temporal_ui_port=ui,
        api_port=api,
        smtp_port=api,
        var_dir=tmp_path / "var",
    )
    out = io.StringIO()
    assert await run(settings, out=out) != 0
    assert f"port {api} is set for both API and dev mailbox SMTP; set LOTLINE_SMTP_PORT" in out.getvalue()
