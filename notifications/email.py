"""The e-mail channel: recall notices over reused SMTP connections, a few per batch (aiosmtplib).

Every notice gets a ``Message-ID`` derived from its notice key, so a notice sent again for the same
attempt (after a worker died between the server's 250 and our record of it) is recognisable as the
same message by the recipient's mail system and by whoever reads the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import AsyncIterator, Sequence
from email.charset import BASE64, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, parseaddr

import aiosmtplib

from lotline.settings import Settings
from notifications.content import Channel, EmailSpec, SendResult
from notifications.ratelimit import RateLimiter
from notifications.render import render_email

SMTP_TIMEOUT_SECONDS = 30.0
# A batch is shared out over parallel connections, each carrying at least this many messages...
MESSAGES_PER_CONNECTION = 12
# ...and at most this many at once: each connection waits on four round trips per message, so the
# lanes, not the CPU, set the pace (bench/recall_fanout.py: 4 -> 10 lanes took 2,000 notices from 27 s
# to 17 s); relays limit connections per client (Postfix: 50 by default), 8 stays well inside, and so
# do the 24 of a sending round's three batches in flight (activities/notify.py, PAGES_IN_FLIGHT).
MAX_CONNECTIONS = 8

_UTF8_BASE64 = Charset("utf-8")
_UTF8_BASE64.body_encoding = BASE64


def message_id(notice_key: str, domain: str) -> str:
    """A Message-ID that is the same every time the same notice key is sent."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", notice_key).strip("-")[:64] or "notice"
    digest = hashlib.sha256(notice_key.encode()).hexdigest()[:16]
    return f"<{readable}.{digest}@{domain}>"


class _Dropped(Exception):
    """The SMTP connection went away in the middle of a message."""


class EmailChannel:
    """Sends recall notices by e-mail: HTML and text alternatives, rate-limited, one connection per batch."""

    channel = Channel.email

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._sender = parseaddr(settings.mail_from)[1]
        self._domain = self._sender.rpartition("@")[2] or "lotline.local"
        self._limiter = RateLimiter(settings.email_rate_per_second)
        self._idle: list[aiosmtplib.SMTP] | None = None  # open connections kept between batches

    @contextlib.asynccontextmanager
    async def reusing_connections(self) -> AsyncIterator[None]:
        """Keep SMTP connections open from one :meth:`send_many` to the next inside this block (the
        batches of a sending round), instead of a new connection, EHLO (and STARTTLS, login) per
        batch; they are closed with QUIT when the block ends."""
        if self._idle is not None:  # already inside one
            yield
            return
        self._idle = []
        try:
            yield
        finally:
            idle, self._idle = self._idle, None
            for smtp in idle:
                await self._quit(smtp)

    @property
    def domain(self) -> str:
        """The domain this channel's Message-IDs are made in (the sender's)."""
        return self._domain

    def build_message(self, spec: EmailSpec) -> Message:
        """The notice as a multipart/alternative message (text first, HTML preferred)."""
        subject, html, text = render_email(spec.content, spec.language)
        # The compat32 MIME classes with base64 bodies: several times faster than EmailMessage's header
        # parser and quoted-printable, which matters at ten thousand notices per recall.
        # "=_" never occurs in base64, so this boundary is safe and the generator need not hunt for one.
        boundary = "=_lotline_" + hashlib.sha256(spec.notice_key.encode()).hexdigest()[:32]
        msg = MIMEMultipart("alternative", boundary=boundary)
        msg["From"] = formataddr(parseaddr(self._settings.mail_from), charset="utf-8")
        msg["To"] = spec.to
        msg["Subject"] = Header(subject, "utf-8")
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = message_id(spec.notice_key, self._domain)
        msg["Content-Language"] = spec.language.value
        msg["Importance"] = "high"
        # RFC 3834: no vacation auto-replies to a machine-sent notice; replies go through the link or SMS.
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Lotline-Notice"] = spec.notice_key
        msg.attach(MIMEText(text, "plain", _UTF8_BASE64))
        msg.attach(MIMEText(html, "html", _UTF8_BASE64))
        return msg

    async def send_many(self, specs: Sequence[EmailSpec]) -> list[SendResult]:
        """Send every spec over reused SMTP connections; one result per spec, in order, never raising.

        A batch of up to MESSAGES_PER_CONNECTION messages goes over one connection; a bigger one is
        shared out over up to MAX_CONNECTIONS connections working at once, because a message costs four
        round trips to the server and one connection spends most of its time waiting for answers.
        """
        if not specs:
            return []
        n = min(MAX_CONNECTIONS, -(-len(specs) // MESSAGES_PER_CONNECTION))
        size = -(-len(specs) // n)
        shares = [specs[i : i + size] for i in range(0, len(specs), size)]
        parts = await asyncio.gather(*(self._send_over_one_connection(share) for share in shares))
        return [result for part in parts for result in part]

    async def _send_over_one_connection(self, specs: Sequence[EmailSpec]) -> list[SendResult]:
        """Send specs in order over one SMTP connection.

        A connection that drops mid-way is reopened once; if it drops again, the rest of the specs are
        reported as not accepted (transient) for the caller to retry.
        """
        results: list[SendResult] = []
        smtp: aiosmtplib.SMTP | None = self._reuse()
        reconnects_left = 1 if smtp is None else 2  # a kept connection may have been closed by the server
        try:
            for index, spec in enumerate(specs):
                msg = self.build_message(spec)
                await self._limiter.wait()
                while True:
                    try:
                        if smtp is None:
                            smtp = await self._connect()
                        results.append(await self._send_one(smtp, spec, msg))
                        break
                    except (_Dropped, aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as exc:
                        if smtp is not None:
                            smtp.close()
                            smtp = None
                        if reconnects_left:
                            reconnects_left -= 1
                            continue
                        results.extend(
                            self._unsent(specs[index:], "connection", f"connection dropped: {exc}")
                        )
                        return results
                    except (aiosmtplib.SMTPException, OSError) as exc:  # refused, TLS or login failed
                        code = str(getattr(exc, "code", "connection"))
                        results.extend(self._unsent(specs[index:], code, f"SMTP session failed: {exc}"))
                        if smtp is not None:  # in an unknown state: not for reuse
                            smtp.close()
                            smtp = None
                        return results
            return results
        finally:
            if smtp is not None:
                await self._release(smtp)

    def _reuse(self) -> aiosmtplib.SMTP | None:
        """An open connection left by an earlier batch, if any (a dropped one is reopened on use)."""
        while self._idle:
            smtp = self._idle.pop()
            if smtp.is_connected:
                return smtp
            smtp.close()
        return None

    async def _release(self, smtp: aiosmtplib.SMTP) -> None:
        """Keep the connection for the next batch inside :meth:`reusing_connections`, else QUIT."""
        if self._idle is not None and smtp.is_connected:
            self._idle.append(smtp)
        else:
            await self._quit(smtp)

    async def send_document(
        self,
        *,
        key: str,
        to: Sequence[str],
        subject: str,
        text: str,
        html: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> list[str]:
        """Mail a document (a report, a reminder digest) to people; returns the addresses the server
        accepted.

        The Message-ID comes from ``key``, so a document mailed again is recognisable as the same one.
        """
        msg = MIMEMultipart("alternative")
        msg["From"] = formataddr(parseaddr(self._settings.mail_from), charset="utf-8")
        msg["To"] = ", ".join(to)
        msg["Subject"] = Header(subject, "utf-8")
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = message_id(key, self._domain)
        msg["Auto-Submitted"] = "auto-generated"
        for name, value in (headers or {}).items():
            msg[name] = value
        msg.attach(MIMEText(text, "plain", _UTF8_BASE64))
        if html:
            msg.attach(MIMEText(html, "html", _UTF8_BASE64))
        smtp = await self._connect()
        try:
            refused, _reply = await smtp.send_message(msg, sender=self._sender, recipients=list(to))
        finally:
            await self._quit(smtp)
        return [a for a in to if a not in refused]

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self._settings
        smtp = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username or None,
            password=s.smtp_password or None,
            start_tls=s.smtp_starttls,
            timeout=SMTP_TIMEOUT_SECONDS,
        )
        try:
            await smtp.connect()  # STARTTLS and login too, when the settings ask for them
        except BaseException:
            smtp.close()
            raise
        return smtp

    async def _send_one(self, smtp: aiosmtplib.SMTP, spec: EmailSpec, msg: Message) -> SendResult:
        """One message on an open connection; raises :class:`_Dropped` when the connection went away."""
        try:
            await smtp.send_message(msg, sender=self._sender, recipients=[spec.to])
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if not smtp.is_connected:  # 421: the server closed the session, not a verdict on the address
                raise _Dropped(str(exc)) from exc
            refused = exc.recipients[0]
            return self._refused(spec, refused.code, refused.message)
        except aiosmtplib.SMTPServerDisconnected as exc:
            raise _Dropped(str(exc)) from exc
        except aiosmtplib.SMTPResponseException as exc:  # sender refused, data refused
            if not smtp.is_connected:
                raise _Dropped(f"{exc.code} {exc.message}") from exc
            return self._refused(spec, exc.code, exc.message)
        except (aiosmtplib.SMTPNotSupported, ValueError) as exc:  # e.g. a non-ASCII address without SMTPUTF8
            return SendResult(
                notice_key=spec.notice_key,
                channel=Channel.email,
                accepted=False,
                error_code="address",
                error_reason=str(exc),
                permanent=True,
            )
        return SendResult(
            notice_key=spec.notice_key, channel=Channel.email, accepted=True, provider_id=msg["Message-ID"]
        )

    def _refused(self, spec: EmailSpec, code: int, message: str) -> SendResult:
        # 5xx is the server's final word on this message; 4xx may pass on a later try.
        return SendResult(
            notice_key=spec.notice_key,
            channel=Channel.email,
            accepted=False,
            error_code=str(code),
            error_reason=message,
            permanent=code >= 500,
        )

    @staticmethod
    def _unsent(specs: Sequence[EmailSpec], code: str, reason: str) -> list[SendResult]:
        # Nothing was decided about these addresses: the caller may try them again later.
        return [
            SendResult(
                notice_key=s.notice_key,
                channel=Channel.email,
                accepted=False,
                error_code=code,
                error_reason=reason,
                permanent=False,
            )
            for s in specs
        ]

    @staticmethod
    async def _quit(smtp: aiosmtplib.SMTP) -> None:
        try:
            await smtp.quit()
        except aiosmtplib.SMTPException:
            smtp.close()
