"""E-mail notices reach a real SMTP server (aiosmtpd, started here) over one connection per batch."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from domain.enums import Language
from lotline.settings import Settings
from notifications.content import EmailSpec
from notifications.email import EmailChannel, message_id
from tests.notifications.samples import notice


@dataclass
class RecordingHandler:
    """Accepts mail, refuses some recipients the way real servers do, and drops one connection on cue."""

    connections: int = 0
    received: list[tuple[list[str], bytes]] = field(default_factory=list)
    dropped: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options):
        if address.startswith("nobody@"):
            return "550 5.1.1 <nobody@hospital.example>: mailbox unavailable"
        if address.startswith("busy@"):
            return "452 4.2.2 mailbox full, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope):
        drop = next((r for r in envelope.rcpt_tos if r.startswith("drop-once@")), None)
        if drop and drop not in self.dropped:
            self.dropped.add(drop)
            server.transport.abort()  # the connection dies before the server says 250
            return "421 gone"
        self.received.append((list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 Ok: queued"


@dataclass
class SmtpServer:
    handler: RecordingHandler
    port: int

    def messages(self) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(raw, policy=email.policy.default) for _, raw in self.handler.received
        ]


@pytest.fixture
async def smtp_server() -> AsyncIterator[SmtpServer]:
    """A real SMTP server on an ephemeral port, on this test's event loop, counting connections."""
    handler = RecordingHandler()

    class CountingSMTP(SMTP):
        def connection_made(self, transport) -> None:
            handler.connections += 1
            super().connection_made(transport)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: CountingSMTP(handler, hostname="test-smtp", enable_SMTPUTF8=True), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    yield SmtpServer(handler, port)
    server.close()


def _channel(port: int, **settings) -> EmailChannel:
    return EmailChannel(Settings(smtp_host="127.0.0.1", smtp_port=port, **settings))


def _spec(key: str, to: str, language: Language = Language.en) -> EmailSpec:
    return EmailSpec(notice_key=key, to=to, language=language, content=notice())


async def test_a_batch_goes_over_one_connection_and_refusals_are_reported_not_raised(smtp_server):
    specs = [
        _spec("recall-7/c-1/email/1", "a@hospital.example", Language.zh_CN),
        _spec("recall-7/c-2/email/1", "nobody@hospital.example"),
        _spec("recall-7/c-3/email/1", "b@hospital.example", Language.en),
        _spec("recall-7/c-4/email/1", "busy@hospital.example"),
        _spec("recall-7/c-5/email/1", "c@hospital.example", Language.zh_CN),
    ]
    results = await _channel(smtp_server.port).send_many(specs)

    assert smtp_server.handler.connections == 1
    assert [r.notice_key for r in results] == [s.notice_key for s in specs]
    assert [r.accepted for r in results] == [True, False, True, False, True]
    refused, busy = results[1], results[3]
    assert (refused.error_code, refused.permanent) == (
        "550",
        True,
    ) and "mailbox unavailable" in refused.error_reason
    assert (busy.error_code, busy.permanent) == ("452", False)

    messages = smtp_server.messages()
    assert [m["To"] for m in messages] == ["a@hospital.example", "b@hospital.example", "c@hospital.example"]
    for msg, result in zip(messages, [results[0], results[2], results[4]], strict=True):
        assert msg.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
        assert msg["Message-ID"] == result.provider_id
    zh, en = messages[0], messages[1]
    assert zh["Subject"].startswith("紧急：医疗器械召回通知")
    assert "紧急：医疗器械召回通知" in zh.get_body(("html",)).get_content()
    assert "批号" in zh.get_body(("plain",)).get_content()
    assert zh["Content-Language"] == "zh-CN"
    assert en["Subject"].startswith("URGENT: MEDICAL DEVICE RECALL")
    assert "Actions required" in en.get_body(("plain",)).get_content()
    assert 'lang="en"' in en.get_body(("html",)).get_content()


async def test_the_same_notice_key_always_gets_the_same_message_id(smtp_server):
    spec = _spec("recall-7/c-1/email/2", "a@hospital.example")
    first = await _channel(smtp_server.port).send_many([spec])
    again = await _channel(smtp_server.port).send_many([spec])
    other = await _channel(smtp_server.port).send_many([_spec("recall-7/c-1/email/3", "a@hospital.example")])
    ids = [m["Message-ID"] for m in smtp_server.messages()]
    assert ids[0] == ids[1] == first[0].provider_id == again[0].provider_id
    assert ids[0] == message_id("recall-7/c-1/email/2", "lotline.local")
    assert ids[2] != ids[0] and other[0].accepted


async def test_a_dropped_connection_is_reopened_once_and_the_message_sent(smtp_server):
    specs = [
        _spec("k1", "a@hospital.example"),
        _spec("k2", "drop-once@hospital.example"),
        _spec("k3", "b@hospital.example"),
    ]
    results = await _channel(smtp_server.port).send_many(specs)
    assert all(r.accepted for r in results), results
    assert smtp_server.handler.connections == 2
    assert [m["To"] for m in smtp_server.messages()] == [s.to for s in specs]


async def test_the_rate_limit_spaces_the_messages(smtp_server):
    specs = [_spec(f"k{i}", f"r{i}@hospital.example") for i in range(5)]
    started = time.monotonic()
    results = await _channel(smtp_server.port, email_rate_per_second=20).send_many(specs)
    assert all(r.accepted for r in results)
    assert time.monotonic() - started >= 4 / 20  # five messages, four gaps of 50 ms


async def test_an_unreachable_server_fails_every_notice_transiently_without_raising():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    specs = [_spec("k1", "a@hospital.example"), _spec("k2", "b@hospital.example")]
    results = await _channel(port).send_many(specs)
    assert [(r.accepted, r.permanent) for r in results] == [(False, False), (False, False)]
    assert all(r.error_reason for r in results)
