"""Task and signature activities: open a task, store a signed decision, remind, close; and the reminder
digest round (one e-mail per person per period)."""

from __future__ import annotations

from datetime import datetime

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.db import transaction
from domain.enums import Language
from domain.policy import escalation
from domain.record_hashes import record_hash
from domain.tasks import service as tasks
from domain.tasks.payloads import (
    DigestPlan,
    DigestReport,
    DigestRound,
    Nudge,
    SignOff,
    SignOffResult,
    TaskRef,
    TaskSpec,
)
from lotline.settings import Settings
from notifications.email import EmailChannel, message_id
from notifications.task_digest import DigestContent, DigestItem, render_task_digest
from workflows import names


class TaskActivities:
    """Activities on the task inbox and signatures, bound to the store at worker start."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    @activity.defn(name=names.OPEN_TASK)
    async def open_task(self, spec: TaskSpec) -> TaskRef:
        """Open a task (idempotent by business key)."""
        async with transaction(self.sessions) as s:
            return await tasks.open_task(s, spec=spec)

    @activity.defn(name=names.SIGN_TASK)
    async def sign_task(self, signoff: SignOff, record_type: str, record_id: int) -> SignOffResult:
        """Store the signature bound to the hash of the record as it is now, and complete the task."""
        async with transaction(self.sessions) as s:
            digest = await record_hash(s, record_type, record_id)
            sig = await tasks.sign(
                s, signoff=signoff, record_type=record_type, record_id=record_id, record_hash=digest
            )
            return SignOffResult(
                signature_id=sig.id,
                task_id=signoff.task_id,
                meaning=sig.meaning,
                signed_at=sig.signed_at,
                record_hash=sig.record_hash,
            )

    @activity.defn(name=names.NUDGE_TASK)
    async def nudge_task(self, n: Nudge) -> None:
        """Record a reminder or an escalation (the inbox shows it; the digest mail reads it)."""
        async with transaction(self.sessions) as s:
            await tasks.nudge(s, task_id=n.task_id, action=n.action, to_roles=n.to_roles)

    @activity.defn(name=names.CLOSE_TASKS)
    async def close_tasks(self, record_type: str, record_id: int) -> int:
        """Cancel the open tasks of a record that has ended."""
        async with transaction(self.sessions) as s:
            return await tasks.close_for_record(s, record_type=record_type, record_id=record_id)


class TaskDigests:
    """The reminder digest round: one e-mail per person per period (aiosmtplib through the e-mail channel)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        self.email = EmailChannel(settings)

    def all(self) -> list:
        """The activities to register."""
        return [self.digest_plan, self.send_digests]

    @activity.defn(name=names.DIGEST_PLAN)
    async def digest_plan(self) -> DigestPlan:
        """The digest period from the escalation policy."""
        sched = escalation.digest_schedule()
        return DigestPlan(
            every_seconds=sched.every.total_seconds(), offset_seconds=sched.offset.total_seconds()
        )

    @activity.defn(name=names.SEND_DIGESTS)
    async def send_digests(self, r: DigestRound) -> DigestReport:
        """Send every person their digest for the period (each recorded once: a retry skips the sent ones);
        failures are retried by raising after the others went out."""
        period = r.period_start
        async with self.sessions() as s:
            entries = await tasks.digest_entries(s, at=period)
        report = DigestReport(period_start=period, people=len(entries))
        language = Language(self.settings.default_language)
        for n, entry in enumerate(entries):
            activity.heartbeat(n)
            async with transaction(self.sessions) as s:
                digest = await tasks.plan_digest(s, entry=entry, period_start=period)
                digest_id, done = digest.id, digest.status == "sent"
            if done:
                report.already_sent += 1
                continue
            subject, html, text = render_task_digest(self._content(entry, period), language)
            key = f"task-digest-{entry.username}-{period:%Y%m%dT%H%M%SZ}"
            try:
                accepted = await self.email.send_document(
                    key=key,
                    to=[entry.email],
                    subject=subject,
                    text=text,
                    html=html,
                    headers={"X-Lotline-Digest": f"{entry.username} {period.isoformat()}"},
                )
                error = None if accepted else "the server refused the address"
            except (aiosmtplib.SMTPException, OSError) as exc:
                error = f"SMTP: {exc}"
            async with transaction(self.sessions) as s:
                await tasks.digest_sent(
                    s, digest_id=digest_id, message_id=message_id(key, self.email.domain), error=error
                )
            if error:
                report.failed.append(f"{entry.username}: {error}")
            else:
                report.sent += 1
        if report.failed:
            # The sent ones are recorded; the retry sends only the rest.
            raise ApplicationError("; ".join(report.failed), type="DigestNotSent")
        return report

    def _content(self, entry: tasks.DigestEntry, period: datetime) -> DigestContent:
        overdue = {t.id for t in entry.overdue}
        standing_in = set(entry.standing_in)
        return DigestContent(
            username=entry.username,
            full_name=entry.full_name,
            period_start=period,
            inbox_url=f"{self.settings.public_base_url.rstrip('/')}/inbox",
            items=[
                DigestItem(
                    task_id=t.id,
                    title=t.title,
                    process=t.process,
                    record_type=t.record_type,
                    record_id=t.record_id,
                    due_at=t.due_at,
                    overdue=t.id in overdue,
                    priority=t.priority,
                    assignee=t.assignee,
                    standing_in_for=(
                        t.assignee
                        if t.assignee in standing_in
                        else t.deputy_for
                        if t.assignee == entry.username
                        else None
                    ),
                    escalated_to=list(t.escalated_to or []),
                )
                for t in entry.tasks
            ],
        )
