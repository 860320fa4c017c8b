"""One way to reach Temporal: the client every process uses (API, worker, tests, the dev stack)."""

from __future__ import annotations

import asyncio
import time

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from lotline.settings import Settings


async def connect(settings: Settings, *, wait: float = 0.0) -> Client:
    """A client for the configured address and namespace, with the pydantic data converter.

    ``wait`` is how many seconds to keep retrying while the server is still starting (the dev stack
    and containers start Temporal next to its clients); with 0 the first failure is raised.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=pydantic_data_converter,
            )
        except RuntimeError:
            # The SDK reports a refused or reset connection as RuntimeError.
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.25)
