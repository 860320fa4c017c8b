"""Sending rounds: plan notices for every consignee that needs one, then send them in bounded batches
(SMTP connections kept open through the round, concurrent SMS requests, a few batches in flight),
recording each result in the store.

No notice is sent twice for the same consignee, channel and attempt: the plan is committed first
(unique key), each batch is marked *sending* and committed before it goes out, and a round resumed
after a crash never resends a notice it finds in that state (its outcome is unknown; the next
follow-up attempt covers the consignee if it does not acknowledge).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, date, datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from domain.db import transaction
from domain.enums import Language
from domain.models import Consignee, Lot, Product
from domain.recalls import service as recalls
from domain.recalls.links import ack_path
from domain.recalls.models import Notice, Recall, RecallConsignee, RecallExposure
from domain.recalls.payloads import Channel, ConsigneeState, NoticeState, SendReport, SendRound
from domain.recalls.receipts import apply_receipts
from lotline.settings import Settings
from notifications.content import (
    Contact,
    EmailSpec,
    NoticeContent,
    NoticeLot,
    NoticeProduct,
    Party,
    RequiredAction,
    SendResult,
    SmsSpec,
)
from notifications.email import EmailChannel
from notifications.labels import regulators_informed
from notifications.sms import SmsChannel
from workflows import names

# Pages of a sending round in flight at once (claimed and rendered while others are on the wire). Each
# page has its own SMTP connections (notifications/email.py); the SMS gate is the channel's. Measured
# with bench/recall_fanout.py (2,000 consignees, PostgreSQL): 2 pages, 8 SMS in flight 22.6 s; 32 SMS
# in flight 16.9 s; 4 pages 16.4 s (the CPU, not the lanes, is the limit there).
PAGES_IN_FLIGHT = 3


def channels_for(
    consignee: Consignee, *, attempt: int, switch: bool, delivered: set[Channel], dead: set[Channel]
) -> list[Channel]:
    """Which channels a notice goes on this round.

    Round 1 uses every channel the consignee has (a recall is urgent; the SMS carries the link and
    the reply code), so a missing or failing channel is covered by the other. A resend uses every
    channel not known to be dead; a channel switch uses the channels that have shown no delivery,
    or SMS when all have (a phone is answered sooner than a mailbox).
    """
    have = [c for c, addr in ((Channel.email, consignee.email), (Channel.sms, consignee.phone)) if addr]
    live = [c for c in have if c not in dead] or have
    if attempt == 1 or not switch:
        return live
    undelivered = [c for c in live if c not in delivered]
    if undelivered:
        return undelivered
    return [Channel.sms] if Channel.sms in live else live


async def exposures_by_consignee(
    s: AsyncSession, recall_id: int, consignee_ids: set[int]
) -> list[tuple[int, dict]]:
    """(consignee id, exposure) for many consignees in one query; each exposure as
    ``domain.recalls.acknowledgements.exposures_of`` gives it, in the same order."""
    rows = (
        await s.execute(
            select(
                RecallExposure.consignee_id,
                RecallExposure.lot_id,
                Product.code,
                Product.name,
                Product.gtin,
                Lot.lot_number,
                Lot.expires_on,
                RecallExposure.quantity,
                RecallExposure.first_shipped_on,
                RecallExposure.last_shipped_on,
            )
            .join(Lot, Lot.id == RecallExposure.lot_id)
            .join(Product, Product.id == Lot.product_id)
            .where(RecallExposure.recall_id == recall_id, RecallExposure.consignee_id.in_(consignee_ids))
            .order_by(RecallExposure.consignee_id, Product.code, Lot.lot_number)
        )
    ).all()
    return [
        (
            r[0],
            {
                "lot_id": r[1],
                "product_code": r[2],
                "product_name": r[3],
                "gtin": r[4],
                "lot_number": r[5],
                "expires_on": r[6],
                "quantity": int(r[7]),
                "first_shipped_on": r[8],
                "last_shipped_on": r[9],
            },
        )
        for r in rows
    ]


class NoticeSender:
    """The sending-round activity, bound to the store and both channels at worker start."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        email: EmailChannel | None = None,
        sms: SmsChannel | None = None,
        *,
        pages_in_flight: int = PAGES_IN_FLIGHT,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.email = email or EmailChannel(settings)
        self.sms = sms or SmsChannel(settings)
        self.pages_in_flight = pages_in_flight

    @activity.defn(name=names.SEND_ROUND)
    async def send_round(self, r: SendRound) -> SendReport:
        """Plan and send one round of notices for a recall."""
        report = SendReport(attempt=r.attempt)
        report.planned = await self._plan(r)
        # A batch left in "sending" by a worker that died: its outcome is unknown, never resend it.
        async with transaction(self.sessions) as s:
            await s.execute(
                update(Notice)
                .where(
                    Notice.recall_id == r.recall_id,
                    Notice.attempt == r.attempt,
                    Notice.state == NoticeState.sending,
                )
                .values(
                    state=NoticeState.failed,
                    error="outcome unknown: the sender stopped mid-batch; not resent in this attempt",
                )
            )
        async with self.email.reusing_connections():
            await self._send_pages(r, report)
        report.unreachable = await self._finish_round(r)
        report.skipped_already_sent = report.planned - report.sent - report.failed if report.planned else 0
        return report

    async def _send_pages(self, r: SendRound, report: SendReport) -> None:
        """Claim, send and record pages of notices, up to ``pages_in_flight`` at once: while one page
        waits for the SMTP server and the SMS endpoint, the next is claimed and rendered. Claims are
        taken one at a time; after a failure no page is claimed, the pages in flight finish (their
        results are recorded) and the failure is raised (the activity is retried; pages it left in
        "sending" are never resent in this attempt)."""
        page = self.settings.notice_page_size
        room = asyncio.Semaphore(self.pages_in_flight)
        in_flight: set[asyncio.Task[None]] = set()
        failures: list[BaseException] = []

        async def send_and_record(batch: list[tuple[Notice, NoticeContent, Language]]) -> None:
            try:
                results = await self._send(batch)
                sent, failed = await self._record(r, batch, results)
                report.sent += sent
                report.failed += failed
                if activity.in_activity():  # also runs outside a worker (fault tests, the fan-out bench)
                    activity.heartbeat(report.sent + report.failed)
            except BaseException as exc:
                failures.append(exc)
                raise
            finally:
                room.release()

        try:
            while not failures:
                await room.acquire()
                if failures:
                    break
                batch = await self._claim(r, page)
                if not batch:
                    break
                task = asyncio.ensure_future(send_and_record(batch))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
        finally:
            # Let the pages in flight finish (also when this task is cancelled: their notices are sent).
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
        if failures:
            raise failures[0]

    async def _plan(self, r: SendRound) -> int:
        """Insert the round's notices (idempotent by recall, consignee, channel and attempt)."""
        async with transaction(self.sessions) as s:
            q = (
                select(RecallConsignee, Consignee)
                .join(Consignee, Consignee.id == RecallConsignee.consignee_id)
                .where(RecallConsignee.recall_id == r.recall_id, RecallConsignee.last_attempt < r.attempt)
                .order_by(RecallConsignee.id)
            )
            if r.attempt == 1:
                q = q.where(RecallConsignee.last_attempt == 0)
                if r.only_new_since_version is not None:
                    q = q.where(RecallConsignee.version >= r.only_new_since_version)
            else:
                q = q.where(RecallConsignee.state != ConsigneeState.acknowledged)
            rows = (await s.execute(q)).all()
            if not rows:
                return 0
            history: dict[int, list[Notice]] = defaultdict(list)
            if r.attempt > 1:
                for n in await s.scalars(select(Notice).where(Notice.recall_id == r.recall_id)):
                    history[n.consignee_id].append(n)
            planned: list[dict] = []
            for rc, consignee in rows:
                past = history.get(consignee.id, [])
                delivered = {
                    n.channel for n in past if n.state in (NoticeState.delivered, NoticeState.opened)
                }
                dead = {
                    n.channel
                    for n in past
                    if n.state == NoticeState.failed and (n.error or "").startswith("permanent")
                }
                for channel in channels_for(
                    consignee, attempt=r.attempt, switch=r.switch_channel, delivered=delivered, dead=dead
                ):
                    address = consignee.email if channel == Channel.email else consignee.phone
                    planned.append(
                        {
                            "recall_id": r.recall_id,
                            "consignee_id": consignee.id,
                            "channel": channel,
                            "attempt": r.attempt,
                            "address": address or "",
                            "state": NoticeState.planned,
                        }
                    )
                rc.last_attempt = r.attempt
                if not consignee.email and not consignee.phone:
                    recalls.advance_state(rc, ConsigneeState.unreachable, datetime.now(UTC))
            if planned:  # one multi-row INSERT: ORM objects cost seconds at ten thousand consignees
                await s.execute(insert(Notice), planned)
            return len(planned)

    async def _claim(self, r: SendRound, limit: int) -> list[tuple[Notice, NoticeContent, Language]]:
        """Mark the next batch of planned notices as sending (committed) and build their contents."""
        async with transaction(self.sessions) as s:
            notices = list(
                await s.scalars(
                    select(Notice)
                    .where(
                        Notice.recall_id == r.recall_id,
                        Notice.attempt == r.attempt,
                        Notice.state == NoticeState.planned,
                    )
                    .order_by(Notice.id)
                    .limit(limit)
                )
            )
            if not notices:
                return []
            recall = await recalls.get_recall(s, r.recall_id)
            contents = await self._contents(s, recall, {n.consignee_id for n in notices})
            out = []
            for n in notices:
                n.state = NoticeState.sending
                content, language = contents[n.consignee_id]
                out.append((n, content, language))
            return out

    async def _contents(
        self, s: AsyncSession, recall: Recall, consignee_ids: set[int]
    ) -> dict[int, tuple[NoticeContent, Language]]:
        """The notice of each consignee in the batch, read in two queries for the whole batch (not three
        per consignee: at ten thousand consignees the round trips were a large part of a round)."""
        parties = (
            await s.execute(
                select(RecallConsignee, Consignee)
                .join(Consignee, Consignee.id == RecallConsignee.consignee_id)
                .where(
                    RecallConsignee.recall_id == recall.id, RecallConsignee.consignee_id.in_(consignee_ids)
                )
            )
        ).all()
        exposures: dict[int, list[dict]] = defaultdict(list)
        for consignee_id, e in await exposures_by_consignee(s, recall.id, consignee_ids):
            exposures[consignee_id].append(e)
        return {
            consignee.id: self._content(recall, rc, consignee, exposures[consignee.id])
            for rc, consignee in parties
        }

    def _content(
        self, recall: Recall, rc: RecallConsignee, consignee: Consignee, exposures: list[dict]
    ) -> tuple[NoticeContent, Language]:
        products: dict[str, dict] = {}
        first: date | None = None
        last: date | None = None
        for e in exposures:
            p = products.setdefault(
                e["product_code"],
                {
                    "name": e["product_name"],
                    "model": e["product_code"],
                    "catalogue_number": e["product_code"],
                    "udi_di": e["gtin"],
                    "lots": [],
                },
            )
            p["lots"].append(
                NoticeLot(
                    lot_number=e["lot_number"], expires_on=e["expires_on"], quantity_shipped=e["quantity"]
                )
            )
            first = min(filter(None, [first, e["first_shipped_on"]]), default=None)
            last = max(filter(None, [last, e["last_shipped_on"]]), default=None)
        st = self.settings
        reply_by = (recall.notify_deadline or datetime.now(UTC)).date()
        content = NoticeContent(
            jurisdiction="EU"
            if recall.jurisdictions == ["EU"]
            else ("US" if "CN" not in recall.jurisdictions and "US" in recall.jurisdictions else "CN"),
            reference=recall.reference,
            issued_on=(recall.decided_at or datetime.now(UTC)).date(),
            consignee_name=consignee.name,
            manufacturer=Party(name=st.manufacturer_name, address=st.manufacturer_address),
            products=[NoticeProduct(**p) for p in products.values()],
            shipped_from=first,
            shipped_to=last,
            reason=recall.reason,
            hazard=recall.hazard,
            nmpa_level=recall.nmpa_level,
            fda_class=recall.fda_class_proposed,
            depth=recall.depth,
            forward_to_sub_accounts=True,
            required_actions=[RequiredAction(a) for a in recall.required_actions]
            or [RequiredAction.stop_use],
            regulators_informed=regulators_informed(recall.jurisdictions, Language(consignee.language)),
            contact=Contact(
                name=st.recall_contact_name, phone=st.recall_contact_phone, email=st.recall_contact_email
            ),
            reply_by=reply_by,
            acknowledgement_url=st.public_base_url.rstrip("/") + ack_path(rc.id, secret=st.secret_key),
            sms_reply_code=rc.reply_code,
        )
        return content, Language(consignee.language)

    async def _send(self, batch: list[tuple[Notice, NoticeContent, Language]]) -> dict[str, SendResult]:
        emails = [
            EmailSpec(notice_key=_key(n), to=n.address, language=lang, content=c)
            for n, c, lang in batch
            if n.channel == Channel.email
        ]
        texts = [
            SmsSpec(notice_key=_key(n), to=n.address, language=lang, content=c)
            for n, c, lang in batch
            if n.channel == Channel.sms
        ]
        email_results, sms_results = await asyncio.gather(
            self.email.send_many(emails) if emails else _none(),
            self.sms.send_many(texts) if texts else _none(),
        )
        return {res.notice_key: res for res in [*email_results, *sms_results]}

    async def _record(self, r: SendRound, batch, results: dict[str, SendResult]) -> tuple[int, int]:
        now = datetime.now(UTC)
        sent = failed = 0
        reached: list[int] = []
        async with transaction(self.sessions) as s:
            rcs = {
                rc.consignee_id: rc
                for rc in await s.scalars(
                    select(RecallConsignee).where(
                        RecallConsignee.recall_id == r.recall_id,
                        RecallConsignee.consignee_id.in_({n.consignee_id for n, _c, _l in batch}),
                    )
                )
            }
            # One query for the batch's notices, not one per notice.
            notices = {
                x.id: x
                for x in await s.scalars(select(Notice).where(Notice.id.in_([n.id for n, _c, _l in batch])))
            }
            for n, _content, _lang in batch:
                notice = notices[n.id]
                res = results.get(_key(n))
                if res is not None and res.accepted:
                    notice.state, notice.provider_id, notice.sent_at = NoticeState.sent, res.provider_id, now
                    reached.append(rcs[n.consignee_id].id)
                    sent += 1
                    kind = "sent"
                else:
                    reason = (res.error_reason if res else None) or "no result from the channel"
                    notice.state = NoticeState.failed
                    notice.error = ("permanent: " if res and res.permanent else "temporary: ") + reason
                    failed += 1
                    kind = "failed"
                await recalls.add_event(
                    s,
                    recall_id=r.recall_id,
                    consignee_id=n.consignee_id,
                    kind=kind,
                    channel=n.channel.value,
                    notice_id=n.id,
                    detail={"attempt": r.attempt, "provider_id": notice.provider_id, "error": notice.error},
                )
            await recalls.advance_in_store(
                s, recall_consignee_ids=reached, state=ConsigneeState.sent, at=now, count_moved=False
            )
            # Receipts that overtook this record (a fast provider) are applied now.
            await apply_receipts(s, provider_ids=[r.provider_id for r in results.values() if r.provider_id])
        return sent, failed

    async def _finish_round(self, r: SendRound) -> list[str]:
        """Consignees no channel reached become unreachable; notification completes when all have a notice."""
        async with transaction(self.sessions) as s:
            reached = select(Notice.consignee_id).where(
                Notice.recall_id == r.recall_id,
                Notice.state != NoticeState.failed,
                Notice.state != NoticeState.planned,
            )
            lost = (
                await s.execute(
                    select(RecallConsignee, Consignee.code)
                    .join(Consignee, Consignee.id == RecallConsignee.consignee_id)
                    .where(
                        RecallConsignee.recall_id == r.recall_id,
                        RecallConsignee.state == ConsigneeState.planned,
                        RecallConsignee.consignee_id.not_in(reached),
                    )
                )
            ).all()
            now = datetime.now(UTC)
            await recalls.advance_in_store(
                s,
                recall_consignee_ids=[rc.id for rc, _code in lost],
                state=ConsigneeState.unreachable,
                at=now,
            )
            recall = await recalls.get_recall(s, r.recall_id)
            unsent = await s.scalar(
                select(func.count()).where(
                    RecallConsignee.recall_id == r.recall_id, RecallConsignee.first_sent_at.is_(None)
                )
            )
            if unsent == 0 and recall.notification_completed_at is None:
                recall.notification_completed_at = now
            return [code for _rc, code in lost]


def _key(n: Notice) -> str:
    return f"recall-{n.recall_id}/consignee-{n.consignee_id}/{n.channel.value}/attempt-{n.attempt}"


async def _none() -> list[SendResult]:
    return []
