"""A big batch of e-mail notices is shared out over a few parallel SMTP connections: every message goes
exactly once, results come back in the caller's order, and a refusal stays with its own notice."""

from __future__ import annotations

from notifications import email as email_channel
from tests.notifications.test_email import _channel, _spec, smtp_server  # noqa: F401 - the fixture

N = 40


async def test_a_big_batch_goes_over_a_few_connections_once_each_and_in_order(smtp_server):  # noqa: F811
    specs = [
        _spec(f"recall-9/c-{i}/email/1", ("nobody" if i == 17 else f"h{i}") + "@hospital.example")
        for i in range(N)
    ]
    results = await _channel(smtp_server.port).send_many(specs)

    lanes = -(-N // email_channel.MESSAGES_PER_CONNECTION)
    assert smtp_server.handler.connections == min(email_channel.MAX_CONNECTIONS, lanes) > 1
    assert [r.notice_key for r in results] == [s.notice_key for s in specs]
    assert [r.accepted for r in results] == [i != 17 for i in range(N)]
    assert results[17].permanent and results[17].error_code == "550"
    received = sorted(rcpt for rcpts, _raw in smtp_server.handler.received for rcpt in rcpts)
    assert received == sorted(s.to for i, s in enumerate(specs) if i != 17)  # each once, none lost


async def test_a_small_batch_still_uses_one_connection(smtp_server):  # noqa: F811
    specs = [_spec(f"recall-9/c-{i}/email/1", f"h{i}@hospital.example") for i in range(3)]
    results = await _channel(smtp_server.port).send_many(specs)
    assert smtp_server.handler.connections == 1 and all(r.accepted for r in results)
    assert await _channel(smtp_server.port).send_many([]) == []
