"""The event-loop watch reports a stall while it happens: how long, whether the loop computed, and where."""

from __future__ import annotations

import asyncio
import logging
import time

from lotline.loopwatch import watching


def _busy_for(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _blocked_for(seconds: float) -> None:
    time.sleep(seconds)


async def test_a_stall_is_logged_with_its_length_its_cpu_and_the_code_that_held_the_loop(caplog):
    caplog.set_level(logging.WARNING, logger="lotline.loopwatch")
    async with watching(100) as watch:
        await asyncio.sleep(0.05)
        _busy_for(0.4)  # computing: the loop thread's CPU grows with the stall
        await asyncio.sleep(0.1)
        _blocked_for(0.4)  # waiting in a system call: it does not
        await asyncio.sleep(0.1)
        _busy_for(0.05)  # below the threshold: not a stall
        await asyncio.sleep(0.1)
    assert watch is not None
    busy, blocked = watch.stalls
    assert 0.35 <= busy["seconds"] < 1.0 and 0.35 <= blocked["seconds"] < 1.0
    assert busy["loop_cpu_s"] >= 0.5 * busy["watched_s"] > 0
    assert blocked["loop_cpu_s"] <= 0.2 * blocked["watched_s"]
    messages = [r.getMessage() for r in caplog.records if r.name == "lotline.loopwatch"]
    assert len(messages) == 2
    assert "_busy_for" in messages[0] and "_blocked_for" in messages[1]


async def test_a_threshold_of_zero_watches_nothing():
    async with watching(0) as watch:
        _busy_for(0.05)
    assert watch is None
