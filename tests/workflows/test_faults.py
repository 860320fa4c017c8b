"""Durability: a sender that dies mid-batch never makes a notice go twice; an acknowledgement that
arrives while Temporal is unreachable is stored, not lost."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from sqlalchemy import select

from activities.notify import NoticeSender
from api.app import create_app
from domain.models import DevSmsMessage
from domain.recalls import service as recalls
from domain.recalls.links import ack_path
from domain.recalls.models import Notice, RecallConsignee, Response
from domain.recalls.payloads import NoticeState, SendRound
from notifications.devmail import list_messages
from notifications.email import EmailChannel
from notifications.sms import SmsChannel
from tests.workflows.conftest import ON_BOTH_DATABASES, build_world, free_port

pytestmark = pytest.mark.temporal


class WorkerDied(BaseException):
    """Stands for the worker process dying: not an Exception, nothing in the activity catches it."""


class DiesAfterSecondBatch(EmailChannel):
    """The real e-mail channel; the process 'dies' right after the provider accepted the second batch."""

    batches = 0  # per instance (set on the first batch): each parametrized run starts from zero

    async def send_many(self, specs):
        results = await super().send_many(specs)
        self.batches += 1
        if self.batches == 2:
            raise WorkerDied()
        return results


async def make_recall(stack) -> int:
    world = await build_world(stack.sessions, users=False)
    async with stack.sessions() as s, s.begin():
        recall = await recalls.create_recall(
            s,
            suspect_lot_ids=[world.component],
            reason="r",
            hazard="h",
            nmpa_level=2,
            fda_class=None,
            jurisdictions=["CN"],
            depth="user",
            required_actions=["stop_use"],
            initiated_by="qa1",
        )
        await recalls.freeze_scope(s, recall_id=recall.id, version=1)
        return recall.id


@ON_BOTH_DATABASES
async def test_a_sender_dying_mid_batch_never_sends_a_notice_twice(recall_stack):
    stack = recall_stack
    settings = stack.settings.model_copy(update={"notice_page_size": 2})
    recall_id = await make_recall(stack)
    dying = NoticeSender(
        stack.sessions,
        settings,
        email=DiesAfterSecondBatch(settings),
        sms=SmsChannel(settings),
        pages_in_flight=1,  # one batch on the wire when it dies (more would be more "unknown" notices)
    )
    with pytest.raises(WorkerDied):
        await dying.send_round(SendRound(recall_id=recall_id, attempt=1))
    # The activity is retried on a fresh worker.
    fresh = NoticeSender(stack.sessions, settings)
    report = await fresh.send_round(SendRound(recall_id=recall_id, attempt=1))
    again = await fresh.send_round(
        SendRound(recall_id=recall_id, attempt=1)
    )  # and once more, for good measure
    assert again.planned == 0 and again.sent == 0

    mails = Counter(m.headers.get("Message-ID") or m.key for m in list_messages(stack.maildir))
    assert mails and max(mails.values()) == 1, mails
    async with stack.sessions() as s:
        texts = Counter(
            m.to_number
            for m in await s.scalars(select(DevSmsMessage).where(DevSmsMessage.direction == "outbound-api"))
        )
        assert texts and max(texts.values()) == 1, texts
        notices = list(await s.scalars(select(Notice).where(Notice.recall_id == recall_id)))
    assert len(notices) == 6  # three consignees × two channels, attempt 1, each planned once
    unknown = [n for n in notices if n.state == NoticeState.failed and "outcome unknown" in (n.error or "")]
    assert len(unknown) == 2  # the batch in flight when the sender died: not resent in this attempt
    assert report.sent + len(unknown) + 2 == 6  # 2 recorded before the death, the rest after the restart
    # Every notice recorded as sent reached its provider exactly once; the unknown ones at most once.
    sent = [n for n in notices if n.state in (NoticeState.sent, NoticeState.delivered)]
    assert len(sent) == 4 and len(list_messages(stack.maildir)) + sum(texts.values()) <= 6


async def test_an_acknowledgement_is_stored_while_temporal_is_unreachable(recall_stack):
    stack = recall_stack
    recall_id = await make_recall(stack)
    async with stack.sessions() as s:
        rc = await s.scalar(select(RecallConsignee).where(RecallConsignee.recall_id == recall_id))
    # An API whose Temporal is down (nothing listens on that port).
    settings = stack.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            r = await http.post(
                ack_path(rc.id, secret=settings.secret_key),
                json={"received_and_understood": True, "name": "Nurse Li"},
            )
    assert r.status_code == 201, r.text
    async with stack.sessions() as s:
        stored = await s.scalar(select(Response).where(Response.recall_id == recall_id))
        assert stored is not None and stored.name == "Nurse Li"
