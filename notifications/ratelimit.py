"""An even-paced rate limit shared by the concurrent sends of one channel."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    """Lets callers through at most ``rate_per_second``, evenly spaced (no burst); 0 means unlimited.

    Providers cap messages per second (an SMTP relay's policy, Twilio's queue per sender), and an even
    pace keeps a large batch under the cap instead of bursting into refusals.
    """

    def __init__(self, rate_per_second: float) -> None:
        if rate_per_second < 0:
            raise ValueError("rate_per_second must not be negative")
        self._interval = 1.0 / rate_per_second if rate_per_second else 0.0
        self._next_at = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        """Return when the caller may send its next message."""
        if not self._interval:
            return
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next_at)
            self._next_at = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)
