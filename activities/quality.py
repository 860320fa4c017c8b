"""QC release activities on the store: the plan, evaluation, the review before a signature, status and
the disposition. Each is idempotent (the inspection decides whether work is already done)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from domain.db import transaction
from domain.errors import LotBlocked
from domain.quality import policy
from domain.quality import service as quality
from domain.quality.payloads import (
    Dispose,
    DisposeResult,
    ReleaseCheck,
    ReleasePlan,
    ReleaseReview,
    StatusChange,
)
from workflows import names


class QualityActivities:
    """QC release activities bound to the store at worker start."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    @activity.defn(name=names.QC_RELEASE_PLAN)
    async def release_plan(self, inspection_id: int) -> ReleasePlan:
        """Who signs and the SLA ladders (domain/quality/policy.py), recorded in the workflow's history."""
        return policy.release_plan()

    @activity.defn(name=names.QC_EVALUATE)
    async def evaluate(self, inspection_id: int) -> ReleaseReview:
        """Evaluate the results, keep the verdict on the inspection, and read blockers and stock."""
        async with transaction(self.sessions) as s:
            await quality.store_evaluation(s, inspection_id=inspection_id)
            return await quality.review_release(s, inspection_id=inspection_id)

    @activity.defn(name=names.QC_REVIEW)
    async def review(self, check: ReleaseCheck) -> ReleaseReview:
        """Read what a proposed decision depends on, and why it cannot stand, just before it is signed."""
        async with self.sessions() as s:
            return await quality.review_release(
                s,
                inspection_id=check.inspection_id,
                outcome=check.outcome,
                split=check.disposition,
                signer=check.signer,
            )

    @activity.defn(name=names.QC_SET_STATUS)
    async def set_status(self, change: StatusChange) -> None:
        """Move the inspection to a new status."""
        async with transaction(self.sessions) as s:
            await quality.set_status(s, inspection_id=change.inspection_id, status=change.status)

    @activity.defn(name=names.QC_DISPOSE)
    async def dispose(self, d: Dispose) -> DisposeResult:
        """Apply the signed decision through the ledger; a hold that arrived since the signature refuses
        it (nothing applied) and the workflow asks for a new decision."""
        try:
            async with transaction(self.sessions) as s:
                disposition = await quality.apply_disposition(
                    s,
                    inspection_id=d.inspection_id,
                    outcome=d.outcome,
                    split=d.disposition,
                    decided_by=d.decided_by,
                    signature_id=d.signature_id,
                    approval_signature_id=d.approval_signature_id,
                    justification=d.justification,
                    capa=d.capa,
                )
                ncs = await quality.nonconformances_of(s, inspection_id=d.inspection_id)
                return DisposeResult(
                    applied=True,
                    disposition_id=disposition.id,
                    nonconformance_id=ncs[-1].id if ncs else None,
                )
        except LotBlocked as exc:
            return DisposeResult(applied=False, blockers=[exc.reason])
