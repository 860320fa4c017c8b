"""SMS notices go through the real twilio SDK to the local Twilio-compatible endpoint (served by uvicorn):
recorded, answered with SIDs, followed by signed status callbacks; Twilio's errors and limits honoured."""

from __future__ import annotations

import re
import time

from sqlalchemy import select
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from domain.enums import Language
from domain.models import DevSmsMessage
from notifications.content import SmsSpec
from notifications.render import render_sms
from notifications.sms import LocalTwilioHttpClient, SmsChannel
from tests.notifications.conftest import DevStack, eventually
from tests.notifications.samples import notice

SID = re.compile(r"^SM[0-9a-f]{32}$")


def _spec(key: str, to: str, language: Language = Language.zh_CN) -> SmsSpec:
    return SmsSpec(notice_key=key, to=to, language=language, content=notice())


def _channel(stack: DevStack, **changes) -> SmsChannel:
    return SmsChannel(stack.settings.model_copy(update=changes))


async def _recorded(stack: DevStack, sids: list[str]) -> dict[str, DevSmsMessage]:
    async with stack.sessions() as s:
        rows = await s.scalars(select(DevSmsMessage).where(DevSmsMessage.sid.in_(sids)))
        return {m.sid: m for m in rows}


async def test_texts_are_recorded_and_followed_by_signed_status_callbacks(dev_stack: DevStack):
    await dev_stack.control()
    specs = [
        _spec("recall-7/c-1/sms/1", "+8613800000001", Language.zh_CN),
        _spec("recall-7/c-2/sms/1", "+8613800000002", Language.en),
        _spec("recall-7/c-3/sms/1", "+14155550100", Language.en),
    ]
    results = await _channel(dev_stack).send_many(specs)

    assert [r.notice_key for r in results] == [s.notice_key for s in specs]
    assert all(r.accepted and SID.match(r.provider_id or "") for r in results), results
    sids = [r.provider_id for r in results]
    recorded = await _recorded(dev_stack, sids)
    for spec, sid in zip(specs, sids, strict=True):
        m = recorded[sid]
        assert (m.to_number, m.from_number) == (spec.to, dev_stack.settings.twilio_from_number)
        assert m.body == render_sms(spec.content, spec.language)
        assert m.status_callback == f"{dev_stack.settings.public_base_url}/webhooks/twilio/status"

    hits = dev_stack.receiver.status
    await eventually(lambda: sum(h.params["MessageSid"] in sids for h in hits) == 6)
    validator = RequestValidator(dev_stack.settings.twilio_auth_token)
    for sid in sids:
        mine = [h for h in hits if h.params["MessageSid"] == sid]
        assert [h.params["MessageStatus"] for h in mine] == ["sent", "delivered"]
        for hit in mine:
            assert validator.validate(hit.url, hit.params, hit.signature)
            tampered = {**hit.params, "MessageStatus": "failed"}
            assert not validator.validate(hit.url, tampered, hit.signature)
            assert not RequestValidator("another-token").validate(hit.url, hit.params, hit.signature)
    await eventually(
        lambda: _all_delivered(dev_stack, sids),
    )


async def _all_delivered(stack: DevStack, sids: list[str]) -> bool:
    rows = await _recorded(stack, sids)
    return all(m.status == "delivered" and m.callback_status == 204 for m in rows.values())


async def test_the_sdk_reads_a_recorded_message_back(dev_stack: DevStack):
    await dev_stack.control()
    [result] = await _channel(dev_stack).send_many([_spec("k-fetch", "+8613800000009")])
    s = dev_stack.settings
    async with LocalTwilioHttpClient(s.twilio_base_url) as http:
        client = Client(s.twilio_account_sid, s.twilio_auth_token, http_client=http)
        message = await client.messages(result.provider_id).fetch_async()
    assert message.sid == result.provider_id and message.to == "+8613800000009"
    assert message.direction == "outbound-api" and message.date_created is not None


async def test_an_invalid_number_is_a_permanent_failure_and_the_rest_still_go(dev_stack: DevStack):
    await dev_stack.control()
    specs = [_spec("bad", "+15005550001"), _spec("good", "+8613800000003")]
    bad, good = await _channel(dev_stack).send_many(specs)
    assert (bad.accepted, bad.error_code, bad.permanent) == (False, "21211", True)
    assert "+15005550001" in (bad.error_reason or "")
    assert good.accepted
    async with dev_stack.sessions() as s:
        assert await s.scalar(select(DevSmsMessage).where(DevSmsMessage.to_number == "+15005550001")) is None


async def test_wrong_credentials_are_refused_and_reported(dev_stack: DevStack):
    await dev_stack.control()
    [result] = await _channel(dev_stack, twilio_auth_token="wrong").send_many([_spec("k", "+8613800000004")])
    assert (result.accepted, result.error_code, result.permanent) == (False, "20003", False)


async def test_429_is_honoured_the_send_waits_retry_after_and_then_succeeds(dev_stack: DevStack):
    await dev_stack.control(rate_limit_next=1, retry_after=1)
    started = time.monotonic()
    [result] = await _channel(dev_stack).send_many([_spec("k-429", "+8613800000005")])
    assert result.accepted and SID.match(result.provider_id or "")
    assert time.monotonic() - started >= 1.0
    state = await dev_stack.state()
    assert state["rate_limit_next"] == 0 and state["requests"] == 2  # refused once, then accepted


async def test_429_beyond_the_retry_budget_is_a_transient_failure(dev_stack: DevStack):
    await dev_stack.control(rate_limit_next=1, retry_after=0)
    [result] = await _channel(dev_stack, sms_429_retries=0).send_many([_spec("k", "+8613800000006")])
    assert (result.accepted, result.error_code, result.permanent) == (False, "20429", False)


async def test_requests_in_flight_never_exceed_the_concurrency_setting(dev_stack: DevStack):
    await dev_stack.control(delay=0.2)
    specs = [_spec(f"k{i}", f"+86138000001{i:02d}") for i in range(9)]
    started = time.monotonic()
    results = await _channel(dev_stack, sms_concurrency=3).send_many(specs)
    elapsed = time.monotonic() - started
    state = await dev_stack.state()
    await dev_stack.control(delay=0)
    assert all(r.accepted for r in results)
    assert state["max_in_flight"] == 3  # bounded, and the bound is used
    assert elapsed >= 3 * 0.2


async def test_the_rate_limit_spaces_the_requests(dev_stack: DevStack):
    await dev_stack.control()
    specs = [_spec(f"k{i}", f"+86138000002{i:02d}") for i in range(4)]
    started = time.monotonic()
    results = await _channel(dev_stack, sms_rate_per_second=10).send_many(specs)
    assert all(r.accepted for r in results)
    assert time.monotonic() - started >= 3 / 10


async def test_a_number_marked_undeliverable_ends_undelivered_with_twilios_error_code(dev_stack: DevStack):
    await dev_stack.control(undeliverable=["+8613800000007"])
    [result] = await _channel(dev_stack).send_many([_spec("k", "+8613800000007")])
    hits = dev_stack.receiver.status
    await eventually(
        lambda: any(
            h.params["MessageSid"] == result.provider_id and h.params["MessageStatus"] == "undelivered"
            for h in hits
        )
    )
    last = [h for h in hits if h.params["MessageSid"] == result.provider_id][-1]
    assert last.params["ErrorCode"] == "30003"
    await dev_stack.control(undeliverable=[])
