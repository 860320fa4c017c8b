"""Browser tests: Debian's Chromium driven by Playwright (never ``playwright install``: it downloads).

The browser is launched once per run. Without ``/usr/bin/chromium`` the tests skip locally but FAIL
when ``LOTLINE_REQUIRE_POSTGRES=1`` (CI, ``.ci/run``, which installs Chromium when it is missing).
Screenshots of the main pages go to ``--screenshots`` (default ``var/screenshots``); the path is
printed at the end of the run.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# The real recall stack (API under uvicorn, worker, SMTP, time-skipping Temporal) of the workflow tests.
from tests.workflows.conftest import recall_stack, recall_store, time_env  # noqa: F401

CHROMIUM = os.environ.get("LOTLINE_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("LOTLINE_REQUIRE_POSTGRES") == "1"  # CI: every suite must run, none may skip
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
_saved: list[Path] = []


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"the browser tests must run here (LOTLINE_REQUIRE_POSTGRES=1): {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator:
    """Headless Chromium from Debian's package."""
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        _unavailable("the playwright package is missing (pip install -e '.[dev]')")
    expect.set_options(timeout=15_000)  # a shared 2-core machine: assertions wait, then fail clearly
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


class Screenshots:
    """Saves full-page screenshots of the main pages for a person to look at."""

    def __init__(self, directory: Path, prefix: str) -> None:
        self.directory = directory
        self.prefix = prefix

    async def take(self, page, name: str, *, full_page: bool = True) -> Path:
        """Save the page (the whole of it, or what the screen shows) as ``<prefix>-<name>.png``."""
        path = self.directory / f"{self.prefix}-{name}.png"
        await page.screenshot(path=str(path), full_page=full_page)
        _saved.append(path)
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Screenshots:
    """Where this test's screenshots go."""
    directory = Path(request.config.getoption("--screenshots"))
    if not directory.is_absolute():
        directory = Path(request.config.rootpath) / directory
    directory.mkdir(parents=True, exist_ok=True)
    prefix = re.sub(r"^test_", "", request.module.__name__.rsplit(".", 1)[-1])
    return Screenshots(directory, prefix)


def pytest_terminal_summary(terminalreporter) -> None:
    """Say where the screenshots are."""
    if _saved:
        terminalreporter.write_line(f"browser screenshots ({len(_saved)}): {_saved[0].parent}", bold=True)
