"""Dev pages: the phone replies as a consignee (a signed inbound SMS); the mailbox shows received mail."""

from __future__ import annotations

import asyncio
import html

import httpx
from aiosmtpd.smtp import SMTP
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from api.app import create_app
from domain.enums import Language
from domain.models import DevSmsMessage
from lotline.settings import Settings
from notifications.content import EmailSpec, SmsSpec
from notifications.devmail import MaildirHandler, list_messages
from notifications.email import EmailChannel
from notifications.sms import SmsChannel
from tests.notifications.conftest import TWIML_REPLY, DevStack
from tests.notifications.samples import notice

PHONE = "+8613900000001"


async def test_a_reply_on_the_dev_phone_reaches_the_sms_webhook_signed_and_is_recorded(dev_stack: DevStack):
    await dev_stack.control()
    spec = SmsSpec(notice_key="k-phone", to=PHONE, language=Language.zh_CN, content=notice())
    [sent] = await SmsChannel(dev_stack.settings).send_many([spec])

    page = await dev_stack.http.get("/dev/phone")
    assert page.status_code == 200 and PHONE in page.text

    response = await dev_stack.http.post("/dev/phone/reply", data={"number": PHONE, "text": "确认 K7Q2M"})
    assert response.status_code == 303

    [hit] = [h for h in dev_stack.receiver.inbound if h.params["From"] == PHONE]
    s = dev_stack.settings
    assert hit.url == f"{s.public_base_url}/webhooks/twilio/sms"
    assert hit.params["Body"] == "确认 K7Q2M" and hit.params["To"] == s.twilio_from_number
    assert hit.params["AccountSid"] == s.twilio_account_sid and hit.params["MessageSid"].startswith("SM")
    assert RequestValidator(s.twilio_auth_token).validate(hit.url, hit.params, hit.signature)

    async with dev_stack.sessions() as session:
        thread = list(
            await session.scalars(
                select(DevSmsMessage).where(DevSmsMessage.phone == PHONE).order_by(DevSmsMessage.id)
            )
        )
    assert [(m.direction, m.sid) for m in thread][:2] == [
        ("outbound-api", sent.provider_id),
        ("inbound", hit.params["MessageSid"]),
    ]
    assert thread[1].callback_status == 200
    assert (thread[2].direction, thread[2].body) == ("outbound-reply", TWIML_REPLY)  # TwiML answered back

    shown = await dev_stack.http.get(response.headers["location"])
    assert "The SMS webhook answered" in shown.text and "200" in shown.text
    assert "确认 K7Q2M" in shown.text and TWIML_REPLY in shown.text


async def test_a_reply_from_a_malformed_number_is_refused_and_records_nothing(dev_stack: DevStack):
    before = len(dev_stack.receiver.inbound)
    response = await dev_stack.http.post("/dev/phone/reply", data={"number": "13900000001", "text": "YES"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "number"
    assert len(dev_stack.receiver.inbound) == before
    async with dev_stack.sessions() as session:
        assert await session.scalar(select(DevSmsMessage).where(DevSmsMessage.phone == "13900000001")) is None


async def test_the_dev_mailbox_lists_mail_the_dev_smtp_server_received_and_shows_it_safely(
    dev_stack: DevStack,
):
    maildir = dev_stack.settings.var_dir / "mailbox"
    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(
        lambda: SMTP(MaildirHandler(maildir), hostname="devmail", enable_SMTPUTF8=True), "127.0.0.1", 0
    )
    settings = dev_stack.settings.model_copy(update={"smtp_port": smtp.sockets[0].getsockname()[1]})
    spec = EmailSpec(
        notice_key="k-mail",
        to="ward@hospital.example",
        language=Language.en,
        content=notice(reason="<i>cracks</i>"),
    )
    try:
        [result] = await EmailChannel(settings).send_many([spec])
    finally:
        smtp.close()
    assert result.accepted
    [received] = list_messages(maildir)
    assert received.headers["Message-ID"] == result.provider_id

    listing = await dev_stack.http.get("/dev/mailbox")
    assert listing.status_code == 200
    assert html.escape(received.subject, quote=False) in listing.text
    assert f"/dev/mailbox/{received.key}" in listing.text

    shown = await dev_stack.http.get(f"/dev/mailbox/{received.key}")
    assert shown.status_code == 200
    assert "<iframe sandbox srcdoc=" in shown.text and "cracks" in shown.text
    assert "<i>cracks</i>" not in shown.text  # the message's markup is data on this page, never markup
    assert (await dev_stack.http.get("/dev/mailbox/no-such-key")).status_code == 404


async def test_without_dev_endpoints_nothing_under_dev_is_served(tmp_path):
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", dev_endpoints=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        for path in ("/dev/phone", "/dev/mailbox", "/dev/twilio/_control"):
            assert (await http.get(path)).status_code == 404
        sid = Settings().twilio_account_sid
        assert (await http.post(f"/dev/twilio/2010-04-01/Accounts/{sid}/Messages.json")).status_code == 404


async def test_the_twilio_endpoint_refuses_as_twilio_does(dev_stack: DevStack):
    s = dev_stack.settings
    url = f"/dev/twilio/2010-04-01/Accounts/{s.twilio_account_sid}/Messages.json"
    form = {"To": "+8613900000002", "From": s.twilio_from_number, "Body": "hi"}
    anonymous = await dev_stack.http.post(url, data=form)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == 20003
    other_account = url.replace(s.twilio_account_sid, "AC" + "1" * 32)
    auth = (s.twilio_account_sid, s.twilio_auth_token)
    assert (await dev_stack.http.post(other_account, data=form, auth=auth)).status_code == 401
    no_body = await dev_stack.http.post(url, data={**form, "Body": ""}, auth=auth)
    assert (no_body.status_code, no_body.json()["code"]) == (400, 21602)
    bad_from = await dev_stack.http.post(url, data={**form, "From": "+15005550008"}, auth=auth)
    assert (bad_from.status_code, bad_from.json()["code"]) == (400, 21611)
    async with dev_stack.sessions() as session:
        recorded = await session.scalar(select(DevSmsMessage).where(DevSmsMessage.phone == "+8613900000002"))
    assert recorded is None

    bad_knob = await dev_stack.http.post("/dev/twilio/_control", json={"rate_limit_next": -1})
    assert bad_knob.status_code == 422 and bad_knob.json()["detail"][0]["field"] == "rate_limit_next"
