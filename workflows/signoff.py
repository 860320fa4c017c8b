"""Human sign-off, built once for every process: a task, a reminder/escalation ladder, and a signed
decision delivered as a workflow Update whose validator checks role, task state and separation of duties.

A workflow holds one :class:`SignOffGates`; each task it opens becomes a gate. The workflow's
``sign_off`` Update calls :meth:`SignOffGates.validate` (validator) and :meth:`SignOffGates.record`
(handler); the business step awaits :meth:`SignOffGates.wait`.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.policy import escalation
    from domain.tasks.payloads import (
        SIGN_OFF,
        Nudge,
        Rung,
        SignOff,
        SignOffResult,
        TaskRef,
        TaskSpec,
        TaskStatus,
    )

from workflows import names
from workflows.common import STORE


class SignOffGates:
    """The open tasks of one workflow and the decisions signed on them."""

    def __init__(self) -> None:
        self.tasks: dict[int, TaskRef] = {}
        self.decisions: dict[int, SignOffResult] = {}
        self._signing: set[int] = set()
        self._opening = 0  # tasks whose row exists (or is being written) but whose id is not back yet

    async def open(self, spec: TaskSpec) -> TaskRef:
        """Open a task (idempotent by its business key) and track it; the task is marked as signed
        through this mechanism (the inbox offers "sign" on it, and only on such tasks)."""
        spec = spec.model_copy(update={"details": {**spec.details, SIGN_OFF: True}})
        self._opening += 1
        try:
            ref = await workflow.execute_activity(names.OPEN_TASK, spec, result_type=TaskRef, **STORE)
        finally:
            self._opening -= 1
        self.tasks[ref.task_id] = ref
        return ref

    def validate(self, s: SignOff) -> None:
        """Refuse, before anything enters history, a sign-off this person may not give now."""
        task = self.tasks.get(s.task_id)
        if task is None:
            if self._opening:
                # The task's row is committed (the inbox shows it) but the activity's result has not
                # reached the workflow yet: the handler waits for it and validates then.
                return
            raise ValueError(f"task {s.task_id} does not belong to this record")
        if task.status != TaskStatus.open or s.task_id in self.decisions or s.task_id in self._signing:
            raise ValueError(f"task {s.task_id} is already decided")
        if not set(s.roles).intersection(task.candidate_roles):
            raise ValueError(
                f"signing this task needs the role {' or '.join(task.candidate_roles)}; {s.username} has "
                f"{', '.join(s.roles) or 'no role'}"
            )
        if s.username in task.excluded_users:
            raise ValueError(
                f"{s.username} initiated this record and may not approve it (separation of duties)"
            )
        if s.meaning.value not in ("approved", "rejected", "reviewed", "released", "closed", "overridden"):
            raise ValueError(f"'{s.meaning.value}' is not a decision on this task")
        if s.meaning.value == "rejected" and not s.reason.strip():
            raise ValueError("a rejection needs a reason")

    async def record(self, s: SignOff, *, record_type: str, record_id: int) -> SignOffResult:
        """Store the signature (activity) and release whoever waits on the task."""
        if s.task_id not in self.tasks:  # admitted while its task was being opened: check it now
            await workflow.wait_condition(lambda: s.task_id in self.tasks or not self._opening)
            try:
                self.validate(s)
            except ValueError as exc:
                raise ApplicationError(str(exc), non_retryable=True) from exc
        self._signing.add(s.task_id)
        try:
            result = await workflow.execute_activity(
                names.SIGN_TASK,
                args=[s, record_type, record_id],
                result_type=SignOffResult,
                **STORE,
            )
        finally:
            self._signing.discard(s.task_id)
        self.decisions[s.task_id] = result
        task = self.tasks[s.task_id]
        task.status = TaskStatus.rejected if s.meaning.value == "rejected" else TaskStatus.completed
        return result

    async def wait(self, task: TaskRef, ladder: list[Rung], *, stop=lambda: False) -> SignOffResult | None:
        """Wait for the decision, walking the ladder: each rung reminds or escalates when it times out.

        The last rung repeats until someone signs; returns None if ``stop()`` becomes true first.
        """
        step = 0
        while True:
            rung = ladder[min(step, len(ladder) - 1)] if ladder else escalation.FALLBACK_RUNG
            try:
                await workflow.wait_condition(
                    lambda: task.task_id in self.decisions or stop(), timeout=rung.wait
                )
            except TimeoutError:
                await workflow.execute_activity(
                    names.NUDGE_TASK,
                    Nudge(task_id=task.task_id, action=rung.action, to_roles=rung.to_roles, step=step),
                    **STORE,
                )
                step += 1
                continue
            return self.decisions.get(task.task_id)
