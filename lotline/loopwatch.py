"""A watch on the event loop of a long-running process: when the loop stops answering for longer than a
threshold, say so in the log, with what the loop's thread was doing and whether it was computing.

A stalled loop answers nobody: every request in flight waits, and the database sessions it holds sit
"idle in transaction". The watch runs on a thread of its own, so it sees the stall while it lasts: a
heartbeat task stamps the time every ``tick``; the thread samples the loop thread's stack while the
stamp is older than ``threshold`` and, when the loop answers again, logs one warning: how long, how
much CPU the loop's thread spent meanwhile (about the stall's length: it computed; much less: it
waited on a system call, the GIL or a core), and the stacks it was seen in, most frequent first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator

log = logging.getLogger(__name__)


def _thread_cpu(ident: int) -> float:
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(ident))
    except (AttributeError, OSError):  # not on this platform, or the thread is gone
        return float("nan")


class LoopWatch:
    """Start with :meth:`start` from inside the loop; :meth:`close` stops it."""

    def __init__(self, threshold: float, *, tick: float | None = None, frames: int = 12) -> None:
        self.threshold = threshold
        # A tenth of the threshold, within 10-50 ms: a stall is measured to that, at a few dozen
        # wake-ups a second.
        self.tick = tick if tick is not None else min(max(threshold / 10, 0.01), 0.05)
        self.frames = frames
        self.stalls: list[dict[str, object]] = []  # the latest stalls, newest last (at most 100)
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._loop_ident = 0

    def start(self) -> None:
        self._loop_ident = threading.get_ident()
        self._beat = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._heartbeat(), name="loop-watch")
        self._thread = threading.Thread(target=self._watch, name="loop-watch", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 1.0)

    async def _heartbeat(self) -> None:
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(self.tick)

    def _stack(self) -> str:
        frame = sys._current_frames().get(self._loop_ident)
        if frame is None:
            return "(no frame)"
        lines = traceback.format_stack(frame, limit=self.frames)
        return "".join(lines)

    def _watch(self) -> None:
        while not self._stop.wait(self.tick):
            beat = self._beat
            if time.monotonic() - beat <= self.threshold:
                continue
            # A stall: sample the loop thread until the heartbeat moves.
            seen = time.monotonic()
            cpu0 = _thread_cpu(self._loop_ident)
            stacks: Counter[str] = Counter()
            while self._beat == beat and not self._stop.is_set():
                stacks[self._stack()] += 1
                time.sleep(self.tick)
            now = time.monotonic()
            lasted, watched = now - beat, now - seen
            cpu = _thread_cpu(self._loop_ident) - cpu0
            stall = {
                "at": time.time() - lasted,
                "seconds": round(lasted, 3),
                "watched_s": round(watched, 3),
                "loop_cpu_s": round(cpu, 3),
            }
            self.stalls = [*self.stalls[-99:], stall]
            top = "\n".join(f"-- seen {n}x:\n{stack}" for stack, n in stacks.most_common(3))
            log.warning(
                "event loop stalled %.0f ms; in the last %.0f ms of it, the loop thread computed %.0f ms\n%s",
                lasted * 1000,
                watched * 1000,
                cpu * 1000,
                top,
            )


@contextlib.asynccontextmanager
async def watching(threshold_ms: int) -> AsyncIterator[LoopWatch | None]:
    """A :class:`LoopWatch` on the running loop for the block's duration; none when ``threshold_ms`` is 0."""
    if not threshold_ms:
        yield None
        return
    watch = LoopWatch(threshold_ms / 1000)
    watch.start()
    try:
        yield watch
    finally:
        await watch.close()
