"""Documents: recall reports rendered from the records, stored, and mailed to regulatory affairs."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from domain.db import transaction
from domain.models import User
from domain.recalls import reports
from domain.recalls.models import RecallReport
from domain.recalls.payloads import ReportRef, ReportRequest
from lotline.settings import Settings
from notifications.email import EmailChannel
from workflows import names

REPORT_READERS = ("regulatory",)


class RecallDocuments:
    """Report activities, bound to the store and the e-mail channel at worker start."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        email: EmailChannel | None = None,
    ) -> None:
        self.sessions = sessions
        self.email = email or EmailChannel(settings)

    @activity.defn(name=names.RENDER_REPORT)
    async def render_report(self, req: ReportRequest) -> ReportRef:
        """Render and store the report (once per kind and sequence), then mail it to every active user
        with the regulatory role who has an address; a retry never mails it twice once recorded."""
        async with transaction(self.sessions) as s:
            report = await reports.render_and_store(
                s, recall_id=req.recall_id, kind=req.kind, sequence=req.sequence
            )
            ref = ReportRef(report_id=report.id, kind=report.kind, sequence=report.sequence)
            if report.mailed_to:
                return ref
            users = await s.scalars(select(User).where(User.active.is_(True), User.email.is_not(None)))
            to = sorted({u.email for u in users if set(u.roles) & set(REPORT_READERS) and u.email})
            subject, text, html = report.title, report.body_text, report.body_html
        if to:
            accepted = await self.email.send_document(
                key=f"recall-{req.recall_id}/report/{req.kind}/{req.sequence}",
                to=to,
                subject=subject,
                text=text,
                html=html,
            )
            async with transaction(self.sessions) as s:
                stored = await s.get(RecallReport, ref.report_id)
                assert stored is not None
                stored.mailed_to = accepted
        return ref
