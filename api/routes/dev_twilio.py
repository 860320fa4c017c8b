"""The built-in Twilio-compatible SMS endpoint and the dev phone page (development only).

The official twilio SDK is pointed here (``settings.twilio_base_url``, see ``notifications/sms.py``)
so that the whole loop closes on one machine:

- ``POST /dev/twilio/2010-04-01/Accounts/{sid}/Messages.json`` answers as Twilio does (Basic auth
  with the account SID and auth token, form fields To, From, Body, StatusCallback, Twilio's JSON
  and error codes, including its magic test numbers), records the message, then sends signed
  status callbacks (sent, then delivered) to StatusCallback in the background.
- ``POST /dev/twilio/_control`` makes it answer 429 for the next requests, answer slowly, or fail
  delivery to given numbers, so tests and demos can watch the sender cope.
- ``GET /dev/phone`` lists the texts by phone number; a person replies as the consignee, and the
  reply goes to ``/webhooks/twilio/sms`` signed exactly as Twilio would sign it.

Mounted only when ``settings.dev_endpoints`` is on. Control state lives in the app (one process
serves the embedded stack); messages live in the store table ``dev_sms_messages``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import re
import secrets
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import httpx
from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from twilio.request_validator import RequestValidator

from domain.db import transaction
from domain.models import DevSmsMessage, utcnow
from lotline.settings import Settings

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
MAX_BODY_CHARS = 1600
CALLBACK_WORKERS = 2  # batches in flight at once
CALLBACK_BATCH = 50  # texts whose statuses are recorded together
CALLBACK_CONCURRENCY = 8  # status callback POSTs in flight at once, per batch
_KEEP = object()
TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")

# Twilio's magic test numbers (https://www.twilio.com/docs/iam/test-credentials), answered the same way.
TEST_TO_ERRORS: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number {to} is not currently reachable from the 'From' number."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for the region of {to}."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}
TEST_FROM_ERRORS: dict[str, tuple[int, str]] = {
    "+15005550001": (21212, "The 'From' number {from_} is not a valid phone number."),
    "+15005550007": (21606, "The 'From' phone number is not a valid, SMS-capable number of this account."),
    "+15005550008": (21611, "This 'From' number has exceeded the maximum number of queued messages."),
}


def new_sid() -> str:
    """A message SID as Twilio writes them: "SM" and 32 hex digits."""
    return "SM" + uuid.uuid4().hex


def twilio_error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error body in Twilio's format, which the SDK turns into ``TwilioRestException``."""
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(status_code=status, content=body, headers=headers)


def segments(body: str) -> int:
    """How many SMS segments a body takes: GSM-7 (160, 153 when joined) or UCS-2 (70, 67)."""
    single, joined = (160, 153) if body.isascii() else (70, 67)
    return 1 if len(body) <= single else math.ceil(len(body) / joined)


def _rfc2822(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; the store writes UTC
        moment = moment.replace(tzinfo=UTC)
    return format_datetime(moment.astimezone(UTC))


def message_resource(m: DevSmsMessage) -> dict[str, Any]:
    """The message as Twilio's Message resource (every field the SDK's ``MessageInstance`` reads)."""
    uri = f"/{API_VERSION}/Accounts/{m.account_sid}/Messages/{m.sid}.json"
    return {
        "account_sid": m.account_sid,
        "api_version": API_VERSION,
        "body": m.body,
        "date_created": _rfc2822(m.created_at),
        "date_sent": _rfc2822(m.updated_at) if m.status in ("sent", "delivered") else None,
        "date_updated": _rfc2822(m.updated_at),
        "direction": m.direction,
        "error_code": None,
        "error_message": None,
        "from": m.from_number,
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": str(segments(m.body)),
        "price": None,
        "price_unit": "USD",
        "sid": m.sid,
        "status": m.status,
        "subresource_uris": {
            "media": uri.replace(".json", "/Media.json"),
            "feedback": uri.replace(".json", "/Feedback.json"),
        },
        "to": m.to_number,
        "uri": uri,
    }


class ControlRequest(BaseModel):
    """How the endpoint should misbehave from now on (fields left out keep their value)."""

    rate_limit_next: int | None = Field(default=None, ge=0, description="answer 429 to this many requests")
    retry_after: int | None = Field(default=None, ge=0, le=3600, description="seconds, sent as Retry-After")
    delay: float | None = Field(default=None, ge=0, le=30, description="seconds each send request takes")
    undeliverable: list[str] | None = Field(default=None, description="numbers whose texts end 'undelivered'")
    reset_stats: bool = False


@dataclass(frozen=True)
class _Outbound:
    """What the status callbacks of one accepted text need (so they need no read of the store)."""

    sid: str
    account_sid: str
    from_number: str
    to_number: str
    phone: str
    status_callback: str | None
    status: str

    @classmethod
    def of(cls, m: DevSmsMessage) -> _Outbound:
        return cls(m.sid, m.account_sid, m.from_number, m.to_number, m.phone, m.status_callback, m.status)


class DevTwilio:
    """The endpoint's per-app runtime: control knobs, request statistics and the status-callback queue.

    It costs the process it runs in as little as it can, since it stands in for a service that costs
    us nothing: accepted texts are written in small groups (one transaction for the requests that
    arrive together), and status callbacks go out in batches, each status recorded for the whole
    batch in one statement before it is announced, the POSTs of a batch concurrently."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.validator = RequestValidator(settings.twilio_auth_token)
        self.http = httpx.AsyncClient(timeout=10.0, headers={"User-Agent": "TwilioProxy/1.1"})
        # Status callbacks go through aiohttp: a fraction of httpx's CPU per request, which counts at
        # two callbacks per text when the stand-in shares its process with the API.
        self.callbacks: aiohttp.ClientSession | None = None
        self.queue: asyncio.Queue[_Outbound] = asyncio.Queue()
        self.rate_limit_next = 0
        self.retry_after = 1
        self.delay = 0.0
        self.undeliverable: set[str] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0
        self._workers: list[asyncio.Task[None]] = []
        self._to_record: list[tuple[DevSmsMessage, asyncio.Future[None]]] = []
        self._recorder: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the callback workers and pick up messages a previous run left half-delivered."""
        self.callbacks = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10.0),
            headers={"User-Agent": "TwilioProxy/1.1"},
            connector=aiohttp.TCPConnector(limit=CALLBACK_WORKERS * CALLBACK_CONCURRENCY),
        )
        self._workers = [asyncio.create_task(self._work()) for _ in range(CALLBACK_WORKERS)]
        async with self.sessions() as session:
            pending = await session.scalars(
                select(DevSmsMessage)
                .where(
                    DevSmsMessage.direction == "outbound-api", DevSmsMessage.status.in_(("queued", "sent"))
                )
                .order_by(DevSmsMessage.id)
            )
            for message in pending:
                self.queue.put_nowait(_Outbound.of(message))

    async def stop(self) -> None:
        """Stop the workers (callbacks not yet sent are picked up on the next start) and the HTTP client."""
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with suppress(asyncio.CancelledError):
                await task
        if self._recorder is not None:
            with suppress(Exception):
                await self._recorder
        await self.http.aclose()
        if self.callbacks is not None:
            await self.callbacks.close()

    def snapshot(self) -> dict[str, Any]:
        """The control knobs and statistics, for tests and the curious."""
        return {
            "rate_limit_next": self.rate_limit_next,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "undeliverable": sorted(self.undeliverable),
            "requests": self.requests,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "callbacks_pending": self.queue.qsize(),
        }

    async def record(self, message: DevSmsMessage) -> None:
        """Store an accepted text; returns once it is committed (with the others that came meanwhile)."""
        done = asyncio.get_running_loop().create_future()
        self._to_record.append((message, done))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_groups())
        await done

    async def _record_groups(self) -> None:
        while self._to_record:
            await asyncio.sleep(0)  # requests being parsed right now join this group
            group, self._to_record = self._to_record, []
            try:
                async with transaction(self.sessions) as session:
                    session.add_all([message for message, _done in group])
            except Exception as exc:  # each request answers with the error
                for _message, done in group:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _message, done in group:
                    if not done.done():
                        done.set_result(None)

    async def post_signed(self, url: str, params: dict[str, str]) -> int | None:
        """POST ``params`` signed as Twilio signs webhooks; the answer's status, None when unreachable."""
        signature = self.validator.compute_signature(url, params)
        assert self.callbacks is not None, "start() first"
        try:
            async with self.callbacks.post(
                url, data=params, headers={"X-Twilio-Signature": signature}
            ) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("dev twilio: POST %s failed: %s", url, exc)
            return None

    async def _work(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < CALLBACK_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self._deliver(batch)
            except Exception:  # one bad batch must not stop the worker
                log.exception("dev twilio: delivering %s failed", [m.sid for m in batch])
            finally:
                for _ in batch:
                    self.queue.task_done()

    async def _deliver(self, batch: list[_Outbound]) -> None:
        """Walk texts through sent and delivered (or undelivered), telling each StatusCallback each time;
        a status is recorded before it is announced, as Twilio's log would show it."""
        fresh = [m for m in batch if m.status != "sent"]
        await self._set(fresh, status="sent")
        codes = await self._announce(fresh, "sent")
        for final in ("delivered", "undelivered"):
            group = [m for m in batch if (m.phone in self.undeliverable) == (final == "undelivered")]
            for code in {codes.get(m.sid) for m in group}:
                await self._set([m for m in group if codes.get(m.sid) == code], status=final, code=code)
            for code, sids in _by_code(await self._announce(group, final)).items():
                await self._set([m for m in group if m.sid in sids], code=code)

    async def _announce(self, messages: list[_Outbound], status: str) -> dict[str, int | None]:
        """POST ``status`` to each message's StatusCallback; the answers' HTTP statuses by sid."""
        gate = asyncio.Semaphore(CALLBACK_CONCURRENCY)

        async def one(m: _Outbound) -> tuple[str, int | None]:
            params = {
                "AccountSid": m.account_sid,
                "ApiVersion": API_VERSION,
                "From": m.from_number,
                "MessageSid": m.sid,
                "MessageStatus": status,
                "SmsSid": m.sid,
                "SmsStatus": status,
                "To": m.to_number,
            }
            if status == "undelivered":
                params["ErrorCode"] = "30003"  # Unreachable destination handset
            async with gate:
                return m.sid, await self.post_signed(m.status_callback or "", params)

        answers = await asyncio.gather(*(one(m) for m in messages if m.status_callback))
        return dict(answers)

    async def _set(self, messages: list[_Outbound], *, status: str | None = None, code: Any = _KEEP) -> None:
        """Record a status and/or the last callback's answer for these messages, in one statement."""
        if not messages:
            return
        values: dict[str, Any] = {"updated_at": utcnow()}
        if status is not None:
            values["status"] = status
        if code is not _KEEP:
            values["callback_status"] = code
        async with transaction(self.sessions) as session:
            await session.execute(
                update(DevSmsMessage)
                .where(DevSmsMessage.sid.in_([m.sid for m in messages]))
                .values(**values)
                .execution_options(synchronize_session=False)
            )


def _by_code(codes: dict[str, int | None]) -> dict[int | None, set[str]]:
    out: dict[int | None, set[str]] = {}
    for sid, code in codes.items():
        out.setdefault(code, set()).add(sid)
    return out


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One runtime per app, started after the app's store is open and stopped before it closes."""
    runtime = DevTwilio(app.state.settings, app.state.sessions)
    app.state.dev_twilio = runtime
    await runtime.start()
    try:
        yield
    finally:
        await runtime.stop()


router = APIRouter(tags=["dev"], include_in_schema=False, lifespan=lifespan)


def _runtime(request: Request) -> DevTwilio:
    return request.app.state.dev_twilio


def _authorised(request: Request, account_sid: str) -> bool:
    """Basic auth with this account's SID and auth token, for this account's URL, as Twilio checks it."""
    s = _runtime(request).settings
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return (
        secrets.compare_digest(username.encode(), s.twilio_account_sid.encode())
        and secrets.compare_digest(password.encode(), s.twilio_auth_token.encode())
        and secrets.compare_digest(account_sid.encode(), s.twilio_account_sid.encode())
    )


def _unauthorised() -> JSONResponse:
    response = twilio_error(401, 20003, "Authenticate")
    response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    return response


@router.post(f"/dev/twilio/{API_VERSION}/Accounts/{{account_sid}}/Messages.json")
async def create_message(request: Request, account_sid: str) -> JSONResponse:
    """Accept a text as Twilio's Messages API does, record it, and queue its status callbacks."""
    runtime = _runtime(request)
    runtime.requests += 1
    runtime.in_flight += 1
    runtime.max_in_flight = max(runtime.max_in_flight, runtime.in_flight)
    try:
        if runtime.delay:
            await asyncio.sleep(runtime.delay)
        if not _authorised(request, account_sid):
            return _unauthorised()
        if runtime.rate_limit_next > 0:
            runtime.rate_limit_next -= 1
            return twilio_error(429, 20429, "Too Many Requests", {"Retry-After": str(runtime.retry_after)})
        form = await request.form()
        to, from_ = str(form.get("To") or "").strip(), str(form.get("From") or "").strip()
        body, callback = str(form.get("Body") or ""), str(form.get("StatusCallback") or "").strip()
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not from_:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return twilio_error(400, 21602, "Message body is required.")
        if not E164.match(to):
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if to in TEST_TO_ERRORS:
            code, text = TEST_TO_ERRORS[to]
            return twilio_error(400, code, text.format(to=to))
        if from_ in TEST_FROM_ERRORS:
            code, text = TEST_FROM_ERRORS[from_]
            return twilio_error(400, code, text.format(from_=from_))
        if not E164.match(from_):
            return twilio_error(400, 21212, f"The 'From' number {from_} is not a valid phone number.")
        if len(body) > MAX_BODY_CHARS:
            return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if callback and not re.match(r"^https?://\S+$", callback):
            return twilio_error(400, 21609, "The StatusCallback URL is not a valid URL.")
        message = DevSmsMessage(
            sid=new_sid(),
            account_sid=account_sid,
            direction="outbound-api",
            phone=to,
            from_number=from_,
            to_number=to,
            body=body,
            status="queued",
            status_callback=callback or None,
        )
        await runtime.record(message)
        runtime.queue.put_nowait(_Outbound.of(message))
        return JSONResponse(status_code=201, content=message_resource(message))
    finally:
        runtime.in_flight -= 1


@router.get(f"/dev/twilio/{API_VERSION}/Accounts/{{account_sid}}/Messages/{{message_sid}}.json")
async def fetch_message(request: Request, account_sid: str, message_sid: str) -> JSONResponse:
    """One message as Twilio's Message resource (``client.messages(sid).fetch_async()``)."""
    runtime = _runtime(request)
    if not _authorised(request, account_sid):
        return _unauthorised()
    async with runtime.sessions() as session:
        message = await session.scalar(
            select(DevSmsMessage).where(
                DevSmsMessage.sid == message_sid, DevSmsMessage.account_sid == account_sid
            )
        )
    if message is None:
        resource = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{message_sid}.json"
        return twilio_error(404, 20404, f"The requested resource {resource} was not found")
    return JSONResponse(content=message_resource(message))


@router.get("/dev/twilio/_control")
async def read_control(request: Request) -> dict[str, Any]:
    """The endpoint's knobs and request statistics."""
    return _runtime(request).snapshot()


@router.post("/dev/twilio/_control")
async def control(request: Request, change: ControlRequest) -> dict[str, Any]:
    """Set how the endpoint behaves: 429s for the next n requests, slow answers, undeliverable numbers."""
    runtime = _runtime(request)
    if change.rate_limit_next is not None:
        runtime.rate_limit_next = change.rate_limit_next
    if change.retry_after is not None:
        runtime.retry_after = change.retry_after
    if change.delay is not None:
        runtime.delay = change.delay
    if change.undeliverable is not None:
        runtime.undeliverable = set(change.undeliverable)
    if change.reset_stats:
        runtime.requests = 0
        runtime.max_in_flight = runtime.in_flight
    return runtime.snapshot()


# --- The dev phone: read the texts a number received and reply as that consignee ---------------------


@router.get("/dev/phone", response_class=HTMLResponse)
async def phone(
    request: Request,
    number: Annotated[str | None, Query(max_length=20)] = None,
    webhook: Annotated[str | None, Query(max_length=16)] = None,
) -> HTMLResponse:
    """The numbers that received texts, and the conversation of the chosen one with a reply form."""
    runtime = _runtime(request)
    async with runtime.sessions() as session:
        numbers = (
            await session.execute(
                select(DevSmsMessage.phone, func.count(), func.max(DevSmsMessage.id).label("last"))
                .group_by(DevSmsMessage.phone)
                .order_by(func.max(DevSmsMessage.id).desc())
            )
        ).all()
        messages = []
        if number:
            messages = list(
                await session.scalars(
                    select(DevSmsMessage).where(DevSmsMessage.phone == number).order_by(DevSmsMessage.id)
                )
            )
    return TEMPLATES.TemplateResponse(
        request,
        "dev/phone.html",
        {
            "numbers": [(row.phone, row.count) for row in numbers],
            "number": number,
            "messages": messages,
            "webhook": webhook,
            "webhook_url": _inbound_webhook(runtime.settings),
        },
    )


def _inbound_webhook(settings: Settings) -> str:
    return settings.public_base_url.rstrip("/") + "/webhooks/twilio/sms"


def _twiml_replies(text: str) -> list[str]:
    """The ``<Message>`` bodies of a TwiML answer (Twilio texts them back to the sender)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return []
    replies = []
    for element in root.iter("Message"):
        body = element.find("Body")
        content = (body.text if body is not None else element.text) or ""
        if content.strip():
            replies.append(content.strip())
    return replies


@router.post("/dev/phone/reply")
async def phone_reply(
    request: Request,
    number: Annotated[str, Form(pattern=E164.pattern, description="the consignee's number, E.164")],
    text: Annotated[str, Form(min_length=1, max_length=MAX_BODY_CHARS)],
) -> RedirectResponse:
    """Send ``text`` from ``number`` as an inbound SMS: recorded, then POSTed signed to the SMS webhook."""
    runtime = _runtime(request)
    s = runtime.settings
    async with runtime.sessions() as session:
        # Reply to the number that texted this phone last, as a handset's reply button does.
        our_number = await session.scalar(
            select(DevSmsMessage.from_number)
            .where(DevSmsMessage.phone == number, DevSmsMessage.direction == "outbound-api")
            .order_by(DevSmsMessage.id.desc())
            .limit(1)
        )
    inbound = DevSmsMessage(
        sid=new_sid(),
        account_sid=s.twilio_account_sid,
        direction="inbound",
        phone=number,
        from_number=number,
        to_number=our_number or s.twilio_from_number,
        body=text,
        status="received",
    )
    async with transaction(runtime.sessions) as session:
        session.add(inbound)
    params = {
        "AccountSid": inbound.account_sid,
        "ApiVersion": API_VERSION,
        "Body": text,
        "From": number,
        "MessageSid": inbound.sid,
        "NumMedia": "0",
        "NumSegments": str(segments(text)),
        "SmsMessageSid": inbound.sid,
        "SmsSid": inbound.sid,
        "SmsStatus": "received",
        "To": inbound.to_number,
    }
    url = _inbound_webhook(s)
    signature = runtime.validator.compute_signature(url, params)
    replies: list[str] = []
    try:
        response = await runtime.http.post(url, data=params, headers={"X-Twilio-Signature": signature})
        status: int | None = response.status_code
        if response.is_success:
            replies = _twiml_replies(response.text)
    except httpx.HTTPError as exc:
        log.warning("dev phone: POST %s failed: %s", url, exc)
        status = None
    async with transaction(runtime.sessions) as session:
        row = await session.scalar(select(DevSmsMessage).where(DevSmsMessage.sid == inbound.sid))
        if row is not None:
            row.callback_status = status
        for reply in replies:
            session.add(
                DevSmsMessage(
                    sid=new_sid(),
                    account_sid=s.twilio_account_sid,
                    direction="outbound-reply",
                    phone=number,
                    from_number=inbound.to_number,
                    to_number=number,
                    body=reply,
                    status="delivered",
                )
            )
    return RedirectResponse(
        request.url_for("phone").include_query_params(number=number, webhook=str(status or "unreachable")),
        status_code=303,
    )
