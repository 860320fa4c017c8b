"""QcReleaseWorkflow, one per lot (id ``qc-release-<lot id>``): QC lot release, ISO 13485 8.2.6 and 8.3.

Lifecycle:

1. Quarantine. The API stored the inspection before starting this workflow, and with it put the lot
   in quarantine (``qc_status`` quarantined, its stock blocked by ledger entries ``qc-<lot id>``).
2. Results are recorded through the API, which stores them first and then signals
   ``results_recorded``; the workflow also re-reads the store every ``results_recheck`` so a lost
   signal delays the evaluation, never loses it.
3. Automatic evaluation (activity) after each batch of results: incomplete until every characteristic
   has its sample size, then passed or failed with the failing characteristics.
4. A release task for the role ``releaser``, never the initiator nor anyone who recorded results
   (separation of duties), with the release SLA ladder from ``domain.quality.policy`` (reminder, then
   escalation to qa_manager). Sign-off goes through :class:`SignOffGates` (``POST /api/tasks/{id}/sign``).
5. The releaser signs one of:
   - ``released``: the evaluation passed and nothing blocks release (the validator refuses otherwise,
     the API answers 409 with the reason; the handler re-reads the store before the signature);
   - ``released`` on a failed evaluation with a justification: a concession, which needs a second
     signature: a task for qa_manager (not the releaser, not the initiator) with its own ladder;
   - ``rejected`` with a reason (and optionally ``capa``): a nonconformance is opened, the CAPA request
     recorded on it; a refused concession ends the same way.
   The disposition split (unrestricted / blocked / scrap / sample) comes with the sign-off and must add
   up to the quantity on hand.
6. The decision is applied (activity): ledger entries split the quantity, the QC status is set. If a
   hold arrived between the signature and the ledger, nothing is applied and a new release task asks
   again once it is cleared.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.quality.payloads import (
        RECORD_TYPE,
        Dispose,
        DisposeResult,
        DispositionOutcome,
        DispositionSplit,
        EvaluationOutcome,
        InspectionStatus,
        ReleaseCheck,
        ReleaseOutcome,
        ReleasePlan,
        ReleaseReview,
        ReleaseStart,
        ResultsRecorded,
        StatusChange,
    )
    from domain.tasks.payloads import SignatureMeaning, SignOff, SignOffResult, TaskRef, TaskSpec

from workflows import names
from workflows.common import STORE
from workflows.signoff import SignOffGates

RELEASE_MEANINGS = (SignatureMeaning.released, SignatureMeaning.rejected)
CONCESSION_MEANINGS = (SignatureMeaning.approved, SignatureMeaning.rejected)


@workflow.defn
class QcReleaseWorkflow:
    """One lot from quarantine to its signed release, concession or rejection (see module docstring)."""

    @workflow.init
    def __init__(self, start: ReleaseStart) -> None:
        self._start = start
        self._status = InspectionStatus.awaiting_results
        self._gates = SignOffGates()
        self._plan: ReleasePlan | None = None
        self._review: ReleaseReview | None = None
        self._results_pending = False
        self._release_task: int | None = None
        self._concession_task: int | None = None
        self._checking: set[int] = set()
        self._signoffs: dict[int, SignOff] = {}
        self._outcomes: dict[int, DispositionOutcome] = {}

    # ---- queries, signals and updates -------------------------------------------------------

    @workflow.query
    def status(self) -> dict:
        """Where the release stands (process state; the store has the records)."""
        ev = self._review.evaluation if self._review else None
        return {
            "status": self._status.value,
            "evaluation": ev.outcome.value if ev else None,
            "release_task": self._release_task,
            "concession_task": self._concession_task,
        }

    @workflow.signal
    def results_recorded(self, _r: ResultsRecorded) -> None:
        """Results were stored: evaluate now."""
        self._results_pending = True

    @workflow.update
    async def sign_off(self, s: SignOff) -> SignOffResult:
        """Sign the release task (released / rejected) or the concession approval (approved / rejected)."""
        if s.task_id == self._release_task:
            outcome = self._release_outcome(s)
            await self._check(s, outcome, self._split(s))
            self._outcomes[s.task_id] = outcome
        elif s.task_id == self._concession_task and s.meaning == SignatureMeaning.approved:
            first = self._signoffs[self._release_task] if self._release_task else None
            await self._check(s, DispositionOutcome.concession, self._split(first) if first else None)
        result = await self._gates.record(s, record_type=RECORD_TYPE, record_id=self._start.inspection_id)
        self._signoffs[s.task_id] = s  # before the waiting step resumes: no await after the record
        return result

    @sign_off.validator
    def _may_sign(self, s: SignOff) -> None:
        # Refuse here what cannot change under the signer (role, duties, meaning, justification, input);
        # blockers, stock and fresh results are re-read from the store by the handler before signing,
        # since a refusal here, on a stale copy, would outlive a hold that has been lifted.
        release = s.task_id == self._release_task
        review = self._review
        if release and review and s.username in review.evaluation.recorded_by:
            if s.username != self._start.initiated_by:
                raise ValueError(
                    f"{s.username} recorded results of this lot and may not decide its release "
                    "(separation of duties)"
                )
        self._gates.validate(s)
        if s.task_id in self._checking:
            raise ValueError(f"a decision on task {s.task_id} is being checked; try again in a moment")
        if release:
            if s.meaning not in RELEASE_MEANINGS:
                raise ValueError("a lot release is signed as released or rejected")
            split = self._split(s)
            if review is not None:
                problems = self._refusals(review, s, self._release_outcome(s), split)
                if problems:
                    raise ValueError("; ".join(problems))
        elif s.task_id == self._concession_task and s.meaning not in CONCESSION_MEANINGS:
            raise ValueError("a concession is signed as approved or rejected")

    # ---- the process ------------------------------------------------------------------------

    @workflow.run
    async def run(self, start: ReleaseStart) -> ReleaseOutcome:
        self._plan = await workflow.execute_activity(
            names.QC_RELEASE_PLAN, start.inspection_id, result_type=ReleasePlan, **STORE
        )
        await self._await_results()
        attempt = 1
        while True:
            result, outcome = await self._decide(attempt)
            if result.applied:
                break
            # A hold arrived between the signature and the ledger: nothing was applied; ask again.
            attempt += 1
            await self._set_status(InspectionStatus.awaiting_release)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await workflow.execute_activity(names.CLOSE_TASKS, args=[RECORD_TYPE, start.inspection_id], **STORE)
        self._status = (
            InspectionStatus.rejected if outcome == DispositionOutcome.rejected else InspectionStatus.released
        )
        return ReleaseOutcome(
            inspection_id=start.inspection_id,
            lot_id=start.lot_id,
            status=self._status,
            outcome=outcome,
            disposition_id=result.disposition_id,
            nonconformance_id=result.nonconformance_id,
        )

    async def _await_results(self) -> None:
        """Evaluate after each batch of results (and at each recheck) until the evaluation is complete."""
        assert self._plan is not None
        while True:
            self._results_pending = False  # before reading: a signal during the read is not lost
            self._review = await workflow.execute_activity(
                names.QC_EVALUATE, self._start.inspection_id, result_type=ReleaseReview, **STORE
            )
            if self._review.evaluation.outcome != EvaluationOutcome.incomplete:
                self._status = InspectionStatus.awaiting_release
                return
            try:
                await workflow.wait_condition(
                    lambda: self._results_pending,
                    timeout=timedelta(seconds=self._plan.results_recheck_seconds),
                )
            except TimeoutError:
                pass

    async def _decide(self, attempt: int) -> tuple[DisposeResult, DispositionOutcome]:
        """One release task, its decision, the concession approval if it needs one, and the ledger."""
        assert self._plan is not None and self._review is not None
        task = await self._open(
            kind="release_lot",
            title=f"Release lot {self._start.lot_label}",
            roles=self._plan.releaser_roles,
            excluded=[self._start.initiated_by, *self._review.evaluation.recorded_by],
            due_in=self._plan.due_in_seconds,
            key=f"release-{attempt}",
        )
        self._release_task = task.task_id
        decision = await self._gates.wait(task, self._plan.ladder)
        assert decision is not None  # no stop condition: only a signature ends the wait
        signoff = self._signoffs[task.task_id]
        outcome = self._outcomes[task.task_id]
        approval: SignOffResult | None = None
        if outcome == DispositionOutcome.concession:
            self._status = InspectionStatus.awaiting_concession
            await self._set_status(InspectionStatus.awaiting_concession)
            concession = await self._open(
                kind="approve_concession",
                title=f"Approve the concession to release lot {self._start.lot_label}",
                roles=self._plan.concession_roles,
                excluded=[self._start.initiated_by, signoff.username],
                due_in=self._plan.concession_due_in_seconds,
                key=f"concession-{attempt}",
                details={"justification": signoff.reason},
            )
            self._concession_task = concession.task_id
            approval = await self._gates.wait(concession, self._plan.concession_ladder)
            assert approval is not None
            if approval.meaning == SignatureMeaning.rejected:
                refusal = self._signoffs[concession.task_id]
                outcome = DispositionOutcome.rejected
                signoff = signoff.model_copy(
                    update={"disposition": None, "reason": f"concession refused: {refusal.reason}"}
                )
        result = await workflow.execute_activity(
            names.QC_DISPOSE,
            Dispose(
                inspection_id=self._start.inspection_id,
                outcome=outcome,
                disposition=self._split(signoff),
                decided_by=signoff.username,
                signature_id=decision.signature_id,
                approval_signature_id=approval.signature_id if approval else None,
                justification=signoff.reason or None,
                capa=signoff.capa,
            ),
            result_type=DisposeResult,
            **STORE,
        )
        return result, outcome

    async def _open(
        self,
        *,
        kind: str,
        title: str,
        roles: list[str],
        excluded: list[str],
        due_in: float,
        key: str,
        details: dict | None = None,
    ) -> TaskRef:
        assert self._review is not None
        ev = self._review.evaluation
        return await self._gates.open(
            TaskSpec(
                process="release",
                kind=kind,
                title=title,
                record_type=RECORD_TYPE,
                record_id=self._start.inspection_id,
                candidate_roles=roles,
                excluded_users=sorted(set(excluded)),
                due_at=workflow.now() + timedelta(seconds=due_in),
                workflow_id=workflow.info().workflow_id,
                business_key=f"qc-release-{self._start.inspection_id}-{key}",
                details={
                    "evaluation": ev.outcome.value,
                    "summary": ev.summary(),
                    "blockers": self._review.blockers,
                    "on_hand": self._review.on_hand,
                    **(details or {}),
                },
            )
        )

    # ---- rules of a decision (pure: used by the validator and after the store was re-read) ----

    def _release_outcome(self, s: SignOff) -> DispositionOutcome:
        if s.meaning == SignatureMeaning.rejected:
            return DispositionOutcome.rejected
        failed = self._review is not None and self._review.evaluation.outcome == EvaluationOutcome.failed
        return DispositionOutcome.concession if failed else DispositionOutcome.released

    @staticmethod
    def _split(s: SignOff) -> DispositionSplit | None:
        return DispositionSplit.model_validate(s.disposition) if s.disposition is not None else None

    def _justification_problem(
        self, s: SignOff, outcome: DispositionOutcome, review: ReleaseReview
    ) -> str | None:
        assert self._plan is not None
        if outcome != DispositionOutcome.concession or len(s.reason.strip()) >= self._plan.min_justification:
            return None
        return (
            f"the evaluation failed ({', '.join(review.evaluation.failing)}): releasing the lot is a "
            f"concession and needs a justification (reason) of at least "
            f"{self._plan.min_justification} characters"
        )

    def _refusals(
        self,
        review: ReleaseReview,
        s: SignOff,
        outcome: DispositionOutcome,
        split: DispositionSplit | None,
    ) -> list[str]:
        """The validator's refusals: the ones a later fact cannot lift (results are append-only, so a
        failed evaluation stays failed)."""
        problems: list[str] = []
        ev = review.evaluation
        if outcome != DispositionOutcome.rejected and ev.outcome == EvaluationOutcome.incomplete:
            problems.append(ev.summary())
        justification = self._justification_problem(s, outcome, review)
        if justification:
            problems.append(justification)
        if outcome == DispositionOutcome.rejected and split and (split.unrestricted or split.sample):
            problems.append("a rejected lot is never released: its quantity is scrapped or stays blocked")
        return problems

    async def _check(self, s: SignOff, outcome: DispositionOutcome, split: DispositionSplit | None) -> None:
        """Re-read the store just before the signature: a recall hold, or a failing result recorded since
        the last evaluation, refuses the decision (the API answers 409 with the reason)."""
        self._checking.add(s.task_id)
        try:
            review = await workflow.execute_activity(
                names.QC_REVIEW,
                ReleaseCheck(
                    inspection_id=self._start.inspection_id,
                    outcome=outcome,
                    disposition=split,
                    signer=s.username,
                ),
                result_type=ReleaseReview,
                **STORE,
            )
        finally:
            self._checking.discard(s.task_id)
        self._review = review
        problems = list(review.problems)
        if s.task_id == self._release_task:
            # The evaluation may have changed under the signer: decide on what is true now.
            if self._release_outcome(s) != outcome:
                problems.insert(
                    0,
                    f"the evaluation is now {review.evaluation.outcome.value} "
                    f"({review.evaluation.summary()}); review it and sign again",
                )
            justification = self._justification_problem(s, outcome, review)
            if justification:
                problems.append(justification)
        if problems:
            raise ApplicationError("; ".join(problems), non_retryable=True)

    async def _set_status(self, status: InspectionStatus) -> None:
        self._status = status
        await workflow.execute_activity(
            names.QC_SET_STATUS, StatusChange(inspection_id=self._start.inspection_id, status=status), **STORE
        )
