"""The SMS channel: recall notices through the official twilio SDK, concurrently and within Twilio's limits.

The SDK talks to Twilio's cloud, or, when ``settings.twilio_base_url`` is set, to the built-in
Twilio-compatible endpoint (``api/routes/dev_twilio.py``): :class:`LocalTwilioHttpClient` swaps
the host and leaves everything else (auth, form encoding, error parsing) to the SDK.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from lotline.settings import Settings
from notifications.content import Channel, SendResult, SmsSpec
from notifications.ratelimit import RateLimiter
from notifications.render import render_sms

TWILIO_API = "https://api.twilio.com"
REQUEST_TIMEOUT_SECONDS = 30.0
# Twilio does not always say how long to back off; without Retry-After wait this long, and never
# longer than the cap (a longer pause belongs to the workflow's retry, not to a running activity).
DEFAULT_RETRY_AFTER_SECONDS = 1.0
MAX_RETRY_AFTER_SECONDS = 30.0

# Twilio error codes that condemn the address, not the request: switch channel rather than retry.
# https://www.twilio.com/docs/api/errors
PERMANENT_TWILIO_ERRORS = frozenset(
    {
        21211,  # invalid 'To' phone number
        21214,  # 'To' phone number cannot be reached
        21217,  # phone number does not appear to be valid
        21401,  # invalid phone number
        21407,  # this phone number type does not support SMS
        21408,  # permission to send to this region is not enabled
        21421,  # phone number is invalid
        21610,  # the recipient replied STOP (unsubscribed)
        21612,  # the 'To' number is not reachable by this route
        21614,  # 'To' number is not a valid mobile number
    }
)


def retry_after_seconds(headers: Mapping[str, str] | None) -> float:
    """Seconds a 429 asks us to wait: Retry-After in seconds or as an HTTP date, capped."""
    value = (headers or {}).get("Retry-After")
    if not value:
        return DEFAULT_RETRY_AFTER_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER_SECONDS
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class LocalTwilioHttpClient(AsyncTwilioHttpClient):
    """The SDK's async HTTP client, pointed at ``base_url`` instead of api.twilio.com when one is given.

    It also honours 429: the answer's Retry-After pauses every request of this client (one account,
    one limit), then the request is tried again, at most ``retries_429`` times.
    """

    def __init__(self, base_url: str | None = None, *, retries_429: int = 3, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", REQUEST_TIMEOUT_SECONDS)
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/") if base_url else None
        self.retries_429 = retries_429
        self._paused_until = 0.0

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the SDK's signature
        allow_redirects: bool = False,
    ) -> Response:
        """Send one request to Twilio (or the local endpoint), waiting out 429s."""
        if self.base_url and url.startswith(TWILIO_API):
            url = self.base_url + url[len(TWILIO_API) :]
        if auth is not None:  # as a header: aiohttp deprecates its ``auth`` argument
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers = {**(headers or {}), "Authorization": f"Basic {token}"}
            auth = None
        attempt = 0
        while True:
            await self._wait_out_pause()
            response = await super().request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                auth=auth,
                timeout=timeout or self.timeout,  # the SDK passes None, which aiohttp reads as "wait forever"
                allow_redirects=allow_redirects,
            )
            if response.status_code != 429 or attempt >= self.retries_429:
                return response
            attempt += 1
            self._paused_until = max(
                self._paused_until, time.monotonic() + retry_after_seconds(response.headers)
            )

    def log_request(self, kwargs: dict[str, Any]) -> None:
        """One DEBUG line per request: the SDK's own is eleven INFO lines (headers and all) per message,
        the worker's busiest log and a measurable cost at ten thousand notices."""
        self.logger.debug("%s %s", kwargs["method"], kwargs["url"])

    def log_response(self, status_code: int, response: Any) -> None:
        """The answer's status, at DEBUG."""
        self.logger.debug("answered %s", status_code)

    async def _wait_out_pause(self) -> None:
        # A loop, not one sleep: another 429 may push the pause further while we wait.
        while (delay := self._paused_until - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)


class SmsChannel:
    """Sends recall notices as text messages: bounded concurrency, an even rate, 429 honoured."""

    channel = Channel.sms

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._limiter = RateLimiter(settings.sms_rate_per_second)
        # One gate for the channel: concurrent send_many calls (the pages a round has in flight) share it.
        self._gate = asyncio.Semaphore(settings.sms_concurrency)
        self._status_callback = settings.public_base_url.rstrip("/") + "/webhooks/twilio/status"

    async def send_many(self, specs: Sequence[SmsSpec]) -> list[SendResult]:
        """Send every spec; one result per spec, in order, never raising for one."""
        if not specs:
            return []
        s = self._settings
        gate = self._gate
        async with LocalTwilioHttpClient(s.twilio_base_url, retries_429=s.sms_429_retries) as http:
            client = Client(s.twilio_account_sid, s.twilio_auth_token, http_client=http)

            async def send(spec: SmsSpec) -> SendResult:
                async with gate:
                    await self._limiter.wait()
                    return await self._send_one(client, spec)

            return list(await asyncio.gather(*(send(spec) for spec in specs)))

    async def _send_one(self, client: Client, spec: SmsSpec) -> SendResult:
        try:
            message = await client.messages.create_async(
                to=spec.to,
                from_=self._settings.twilio_from_number,
                body=render_sms(spec.content, spec.language),
                status_callback=self._status_callback,
            )
        except TwilioRestException as exc:
            return self._refused(spec, exc.status, exc.code, exc.msg)
        except TwilioServiceException as exc:
            return self._refused(spec, exc.status, exc.code, exc.detail or exc.title)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return SendResult(
                notice_key=spec.notice_key,
                channel=Channel.sms,
                accepted=False,
                error_code="network",
                error_reason=f"{type(exc).__name__}: {exc}",
                permanent=False,
            )
        return SendResult(
            notice_key=spec.notice_key, channel=Channel.sms, accepted=True, provider_id=message.sid
        )

    @staticmethod
    def _refused(spec: SmsSpec, status: int, code: int | None, reason: str | None) -> SendResult:
        return SendResult(
            notice_key=spec.notice_key,
            channel=Channel.sms,
            accepted=False,
            error_code=str(code or status),
            error_reason=reason or f"HTTP {status}",
            permanent=code in PERMANENT_TWILIO_ERRORS,
        )
