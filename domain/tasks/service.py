"""The task inbox of every process, and signatures: open (idempotent), list, claim, release, delegate,
out-of-office deputies, sign (Part 11 fields), remind, close, and what a reminder digest lists.

Who may do what with a task (one rule set, used by the API, the pages and the digest):

- **Claim**: a person holding one of the task's candidate roles who is not excluded from it (the
  record's initiator: separation of duties). A task claimed by someone else is a conflict (409).
- **Sign**: an unassigned task by anyone holding a candidate role (the workflow's validator checks the
  role and separation of duties); a claimed or delegated task ONLY by its assignee, or by the assignee's
  out-of-office deputy while the absence lasts. Either signs with their OWN signature: a signature is
  never transferred, and the initiator stays excluded whoever holds the task.
- **Release** a claim: the assignee, their deputy, or someone holding a role the task was escalated to.
- **Delegate** to a named person with a reason (kept on the task and in the audit trail): the assignee,
  their deputy, anyone who could claim the task while it is unassigned, or someone holding a role the
  task was escalated to. The delegate must hold a candidate role and not be excluded; a delegate who is
  out of office is replaced by their deputy.
- **Out of office**: while a person's absence lasts, tasks that would be assigned to them (opened for
  them, or delegated to them) go to their deputy, and the deputy sees the tasks still assigned to them
  in "mine" and may sign those.

Escalation widens who SEES a task (``escalated_to``): they may reassign it, but signing still needs a
candidate role.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import with_reason
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from domain.models import User
from domain.tasks.models import Absence, Digest, Signature, Task
from domain.tasks.payloads import SIGN_OFF, SignatureMeaning, SignOff, TaskRef, TaskSpec, TaskStatus

MAX_DEPUTY_HOPS = 5  # a deputy who is away too hands on to their own deputy, this many times at most
REASON_LENGTH = 4000

TITLE_LENGTH = Task.__table__.c.title.type.length  # PostgreSQL enforces it; SQLite would not


def _fit(text: str, length: int) -> str:
    """The text, shortened with an ellipsis to fit a column (the full wording stays in the details)."""
    return text if len(text) <= length else text[: length - 1] + "…"


def _ref(task: Task) -> TaskRef:
    return TaskRef(
        task_id=task.id,
        kind=task.kind,
        candidate_roles=list(task.candidate_roles),
        excluded_users=list(task.excluded_users),
        status=task.status,
    )


async def open_task(session: AsyncSession, *, spec: TaskSpec, at: datetime | None = None) -> TaskRef:
    """Open the task, or return it if its business key already opened one. A task opened for a person
    who is out of office goes to their deputy."""
    task = await session.scalar(select(Task).where(Task.business_key == spec.business_key))
    if task is None:
        assignee, deputy_for = spec.assignee, None
        if assignee:
            stand_in = await stand_in_for(session, username=assignee, at=at or _now())
            if stand_in != assignee:
                assignee, deputy_for = stand_in, spec.assignee
        task = Task(
            business_key=spec.business_key,
            process=spec.process,
            kind=spec.kind,
            title=_fit(spec.title, TITLE_LENGTH),
            record_type=spec.record_type,
            record_id=spec.record_id,
            candidate_roles=spec.candidate_roles,
            excluded_users=spec.excluded_users,
            assignee=assignee,
            deputy_for=deputy_for,
            claimed_at=(at or _now()) if assignee else None,
            priority=spec.priority,
            due_at=spec.due_at,
            workflow_id=spec.workflow_id,
            details=spec.details,
            status=TaskStatus.open,
        )
        session.add(task)
        await session.flush()
    return _ref(task)


async def get_task(session: AsyncSession, task_id: int) -> Task:
    """The task, or NotFound."""
    task = await session.get(Task, task_id)
    if task is None:
        raise NotFound(f"task {task_id} not found", field="task_id")
    return task


async def sign(
    session: AsyncSession,
    *,
    signoff: SignOff,
    record_type: str,
    record_id: int,
    record_hash: str,
    at: datetime | None = None,
) -> Signature:
    """Store the signature and complete the task in one transaction; a retry returns the same signature."""
    existing = await session.scalar(select(Signature).where(Signature.task_id == signoff.task_id))
    if existing is not None:
        if existing.signer != signoff.username:
            raise Conflict(f"task {signoff.task_id} was already signed by {existing.signer}", field="task_id")
        return existing
    task = await get_task(session, signoff.task_id)
    if task.status != TaskStatus.open:
        raise Conflict(f"task {task.id} is {task.status.value}", field="task_id")
    if (task.record_type, task.record_id) != (record_type, record_id):
        raise Conflict("the task belongs to another record", field="task_id")
    at = at or datetime.now(UTC)
    refusal = await sign_refusal(session, task=task, username=signoff.username, at=at)
    if refusal:
        raise Conflict(refusal, field="task_id")
    sig = Signature(
        signer=signoff.username,
        printed_name=signoff.printed_name,
        meaning=signoff.meaning,
        signed_at=at,
        record_type=record_type,
        record_id=record_id,
        record_hash=record_hash,
        auth_method=signoff.auth_method,
        reason=signoff.reason or None,
        task_id=task.id,
    )
    session.add(sig)
    task.status = (
        TaskStatus.rejected if signoff.meaning == SignatureMeaning.rejected else TaskStatus.completed
    )
    task.completed_at = at
    task.completed_by = signoff.username
    task.outcome = signoff.meaning.value + (f": {signoff.reason}" if signoff.reason else "")
    await session.flush()
    return sig


async def sign_record(
    session: AsyncSession,
    *,
    record_type: str,
    record_id: int,
    username: str,
    printed_name: str,
    meaning: str,
    reason: str,
    record_hash: str,
    auth_method: str,
    at: datetime | None = None,
) -> Signature:
    """A signature on a record without a task (closure, cancellation, urgent override)."""
    sig = Signature(
        signer=username,
        printed_name=printed_name,
        meaning=SignatureMeaning(meaning),
        signed_at=at or datetime.now(UTC),
        record_type=record_type,
        record_id=record_id,
        record_hash=record_hash,
        auth_method=auth_method,
        reason=reason,
    )
    session.add(sig)
    await session.flush()
    return sig


async def complete(
    session: AsyncSession,
    *,
    task_id: int,
    username: str,
    printed_name: str,
    roles: Iterable[object],
    note: str,
    reference: str | None,
    done_at: datetime | None,
    record_hash: str,
    auth_method: str,
    at: datetime | None = None,
) -> Signature:
    """Report a work task done (a report filed, an announcement published, a consignee called) under the
    person's own signature, meaning "authored", bound to the record's version; ``done_at`` is when it
    was really done (not in the future, not before the task), which is what its deadline is judged by."""
    at = at or _now()
    task = await session.scalar(select(Task).where(Task.id == task_id).with_for_update())
    if task is None:
        raise NotFound(f"task {task_id} not found", field="task_id")
    (await _access(session, task, username, roles, at)).refuse("complete")
    verb = completion_of(task)
    reference = (reference or "").strip() or None
    if verb in NEEDS_REFERENCE and reference is None:
        raise InvalidInput(
            f"a task that is {verb} needs its reference (the authority's receipt number or the URL)",
            field="reference",
        )
    done = _aware(done_at, "done_at") if done_at is not None else at
    if done > at:
        raise InvalidInput("it cannot have been done in the future", field="done_at")
    if done < task.created_at:
        raise InvalidInput(
            f"the task was only opened at {task.created_at:%Y-%m-%d %H:%M} UTC", field="done_at"
        )
    summary = (
        f"{verb}" + (f" ({reference})" if reference else "") + (f": {note.strip()}" if note.strip() else "")
    )
    sig = Signature(
        signer=username,
        printed_name=printed_name,
        meaning=SignatureMeaning.authored,
        signed_at=at,
        record_type=task.record_type,
        record_id=task.record_id,
        record_hash=record_hash,
        auth_method=auth_method,
        reason=summary,
        task_id=task.id,
    )
    session.add(sig)
    task.status = TaskStatus.completed
    task.completed_at = done
    task.completed_by = username
    task.outcome = summary
    task.details = {
        **(task.details or {}),
        "done": {"what": verb, "reference": reference, "note": note.strip(), "reported_at": at.isoformat()},
    }
    await session.flush()
    return sig


async def nudge(session: AsyncSession, *, task_id: int, action: str, to_roles: list[str]) -> Task:
    """Count a reminder, or widen the task to the escalation roles."""
    task = await get_task(session, task_id)
    if task.status != TaskStatus.open:
        return task
    task.reminders_sent = (task.reminders_sent or 0) + 1
    task.follow_up_at = datetime.now(UTC)
    if action == "escalate" and to_roles:
        task.escalated_to = sorted(set(task.escalated_to or []) | set(to_roles))
    await session.flush()
    return task


async def close_for_record(session: AsyncSession, *, record_type: str, record_id: int) -> int:
    """Cancel every task still open on a record that has ended; returns how many."""
    res = await session.execute(
        update(Task)
        .where(Task.record_type == record_type, Task.record_id == record_id, Task.status == TaskStatus.open)
        .values(status=TaskStatus.cancelled, completed_at=datetime.now(UTC), outcome="record ended")
    )
    return res.rowcount or 0


async def signatures_for(session: AsyncSession, *, record_type: str, record_id: int) -> list[Signature]:
    """Every signature on a record, oldest first."""
    rows = await session.scalars(
        select(Signature)
        .where(Signature.record_type == record_type, Signature.record_id == record_id)
        .order_by(Signature.signed_at, Signature.id)
    )
    return list(rows)


# ------------------------------------------------------------------------------------ who holds a task


def _now() -> datetime:
    return datetime.now(UTC)


def _role_names(roles: Iterable[object]) -> set[str]:
    return {str(getattr(r, "value", r)) for r in roles}


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput("give a time zone (e.g. 2026-03-01T08:00:00+08:00)", field=field)
    return value.astimezone(UTC)


def _active(at: datetime):
    return (Absence.cancelled_at.is_(None), Absence.starts_at <= at, Absence.ends_at > at)


async def absence_of(session: AsyncSession, *, username: str, at: datetime | None = None) -> Absence | None:
    """The person's absence in force at ``at`` (now), if any."""
    return await session.scalar(
        select(Absence).where(Absence.username == username, *_active(at or _now())).order_by(Absence.id)
    )


async def stand_in_for(session: AsyncSession, *, username: str, at: datetime | None = None) -> str:
    """Who receives tasks meant for ``username`` at ``at``: them, or their deputy while they are away (a
    deputy who is away too hands on to their own deputy; a circle ends with the person it started from)."""
    at = at or _now()
    current, seen = username, {username}
    for _ in range(MAX_DEPUTY_HOPS):
        away = await absence_of(session, username=current, at=at)
        if away is None:
            return current
        if away.deputy in seen:
            return username  # everyone in the circle is away: the task stays with whom it was meant for
        current = away.deputy
        seen.add(current)
    return current


async def deputising_for(session: AsyncSession, *, username: str, at: datetime | None = None) -> list[str]:
    """The people whose deputy ``username`` is right now (their tasks show in this person's "mine")."""
    rows = await session.scalars(
        select(Absence.username).where(Absence.deputy == username, *_active(at or _now()))
    )
    return sorted(set(rows))


@dataclass(frozen=True)
class TaskAccess:
    """What one person may do with one task now, and why not (for the inbox's buttons and the refusals).

    A refusal is either about the person (``forbidden``: 403) or about the task's state right now
    (``conflicts``: 409, e.g. someone else claimed it, it is already decided)."""

    reasons: dict[str, str]  # action -> why it is refused
    conflicts: frozenset[str]  # the refused actions that are state conflicts rather than authority

    def may(self, action: str) -> bool:
        """Whether ``action`` (claim, release, delegate, sign) is allowed."""
        return action not in self.reasons

    @property
    def actions(self) -> list[str]:
        """The actions allowed, by name."""
        return [a for a in ACTIONS if self.may(a)]

    def refuse(self, action: str) -> None:
        """Raise the refusal of ``action`` (Conflict or Forbidden with the reason); nothing if allowed."""
        if action in self.conflicts:
            raise Conflict(self.reasons[action], field="task_id")
        if action in self.reasons:
            raise Forbidden(self.reasons[action], field="role")


ACTIONS = ("claim", "release", "delegate", "sign", "complete")

# Work tasks a person reports done (with their signature) because no process step awaits them: what
# doing each one means. A filing or a publication needs its reference (receipt number, URL).
WORK_DONE: dict[str, str] = {
    "file:": "filed",
    "publish_announcement": "published",
    "call_consignee": "called",
}
NEEDS_REFERENCE = frozenset({"filed", "published"})


def completion_of(task: Task) -> str | None:
    """What completing ``task`` means ("filed", "published", "called"), or None when a process does it."""
    for kind, verb in WORK_DONE.items():
        if task.kind == kind or (kind.endswith(":") and task.kind.startswith(kind)):
            return verb
    return None


def access(
    task: Task, *, username: str, roles: Iterable[object], deputising: Iterable[str] = ()
) -> TaskAccess:
    """What ``username`` (holding ``roles``, deputy for ``deputising``) may do with ``task`` now.

    The workflow's validator still has the last word on signing (role, state, separation of duties)."""
    held = _role_names(roles)
    reasons: dict[str, str] = {}
    conflicts: set[str] = set()

    def deny(action: str, reason: str, *, conflict: bool = False) -> None:
        reasons.setdefault(action, reason)
        if conflict and reasons[action] == reason:
            conflicts.add(action)

    candidate = bool(held & set(task.candidate_roles))
    excluded = username in (task.excluded_users or [])
    escalated = bool(held & set(task.escalated_to or []))
    holder = task.assignee is not None and (task.assignee == username or task.assignee in set(deputising))
    needs = " or ".join(task.candidate_roles)
    sod = f"{username} initiated this record and may not approve it (separation of duties)"
    # Claim: a candidate who is not excluded; a task someone else holds is a conflict.
    if not candidate:
        deny(
            "claim",
            f"claiming this task needs the role {needs}; {username} has "
            f"{', '.join(sorted(held)) or 'no role'}",
        )
    elif excluded:
        deny("claim", sod)
    elif task.assignee == username:
        deny("claim", _already_claimed(task, username), conflict=True)
    elif task.assignee is not None:
        deny("claim", f"task {task.id} is claimed by {task.assignee}", conflict=True)
    # Release: the holder (or their deputy), or someone it was escalated to.
    if task.assignee is not None and not (holder or escalated):
        deny(
            "release",
            f"task {task.id} is claimed by {task.assignee}; only they, their deputy or someone it was "
            "escalated to may release it",
        )
    elif task.assignee is None:
        deny("release", f"task {task.id} is not claimed", conflict=True)
    # Delegate: the holder (or their deputy), someone it was escalated to, or, unclaimed, any candidate.
    if task.assignee is not None and not (holder or escalated):
        deny(
            "delegate",
            f"task {task.id} is claimed by {task.assignee}; only they, their deputy or someone it was "
            "escalated to may delegate it",
        )
    elif task.assignee is None and not (escalated or (candidate and not excluded)):
        deny(
            "delegate",
            sod if candidate else f"delegating this task needs the role {needs} (or an escalation)",
        )
    # Sign: a candidate who is not excluded; a claimed task only its holder (or their deputy).
    if task.workflow_id is None or not (task.details or {}).get(SIGN_OFF):
        deny("sign", "this task is done on its record's own page, not signed")
    elif not candidate:
        deny("sign", f"signing this task needs the role {needs}")
    elif excluded:
        deny("sign", sod)
    elif task.assignee is not None and not holder:
        deny("sign", _claimed_by_other(task), conflict=True)
    # Complete: a work task no process step awaits (a filing, a publication, a call); its candidates or
    # its holder. The initiator may: doing the work is not approving it.
    if completion_of(task) is None:
        deny("complete", "this task is finished by its process, not reported done", conflict=True)
    elif not (candidate or holder):
        deny("complete", f"completing this task needs the role {needs}")
    elif task.assignee is not None and not holder:
        deny("complete", f"task {task.id} is claimed by {task.assignee}", conflict=True)
    if task.status != TaskStatus.open:  # whoever asks: the task is decided (a state conflict)
        for action in ACTIONS:
            if action not in reasons:
                deny(action, f"task {task.id} is {task.status.value}", conflict=True)
    return TaskAccess(reasons=reasons, conflicts=frozenset(conflicts))


def _already_claimed(task: Task, username: str) -> str:
    return f"task {task.id} is already claimed by {username}"


def _claimed_by_other(task: Task) -> str:
    return (
        f"task {task.id} is claimed by {task.assignee}; only they (or their deputy while they are out of "
        "office) may sign it"
    )


async def sign_refusal(
    session: AsyncSession, *, task: Task, username: str, at: datetime | None = None
) -> str | None:
    """Why ``username`` may not sign ``task`` because someone else holds it; None when they may."""
    if task.assignee is None or task.assignee == username:
        return None
    if task.assignee in await deputising_for(session, username=username, at=at):
        return None
    return _claimed_by_other(task)


async def _access(session: AsyncSession, task: Task, username: str, roles: Iterable[object], at: datetime):
    return access(
        task,
        username=username,
        roles=roles,
        deputising=await deputising_for(session, username=username, at=at),
    )


async def _set_holder(
    session: AsyncSession, task: Task, *, expected: str | None, values: dict, reason: str | None = None
) -> Task:
    """Change who holds the task only if nobody changed it meanwhile (one conditional UPDATE, audited)."""
    holder = Task.assignee.is_(None) if expected is None else Task.assignee == expected
    with with_reason(reason):
        res = await session.execute(
            update(Task)
            .where(Task.id == task.id, Task.status == TaskStatus.open, holder)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    if not res.rowcount:
        await session.refresh(task)
        if task.status != TaskStatus.open:
            raise Conflict(f"task {task.id} is {task.status.value}", field="task_id")
        raise Conflict(
            f"task {task.id} changed hands meanwhile: it is now "
            + (f"claimed by {task.assignee}" if task.assignee else "unclaimed"),
            field="task_id",
        )
    await session.refresh(task)
    return task


async def claim(
    session: AsyncSession, *, task_id: int, username: str, roles: Iterable[object], at: datetime | None = None
) -> Task:
    """Take an open task for oneself: only a candidate who is not excluded; 409 when someone holds it.
    Claiming a task one holds already changes nothing."""
    at = at or _now()
    task = await get_task(session, task_id)
    why = await _access(session, task, username, roles, at)
    if why.reasons.get("claim") == _already_claimed(task, username):
        return task
    why.refuse("claim")
    return await _set_holder(
        session,
        task,
        expected=None,
        values={
            "assignee": username,
            "claimed_at": at,
            "delegated_by": None,
            "delegation_reason": None,
            "deputy_for": None,
        },
    )


async def release(
    session: AsyncSession, *, task_id: int, username: str, roles: Iterable[object], at: datetime | None = None
) -> Task:
    """Give a claimed task back to everyone holding its candidate roles."""
    at = at or _now()
    task = await get_task(session, task_id)
    (await _access(session, task, username, roles, at)).refuse("release")
    return await _set_holder(
        session,
        task,
        expected=task.assignee,
        values={
            "assignee": None,
            "claimed_at": None,
            "delegated_by": None,
            "delegation_reason": None,
            "deputy_for": None,
        },
    )


async def delegate(
    session: AsyncSession,
    *,
    task_id: int,
    username: str,
    roles: Iterable[object],
    to: str,
    reason: str,
    at: datetime | None = None,
) -> Task:
    """Hand a task to a named person with a reason (on the task and in the audit trail). The delegate
    signs with their own signature; the record's initiator can never be the delegate."""
    at = at or _now()
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("a delegation needs a reason", field="reason")
    if len(reason) > REASON_LENGTH:
        raise InvalidInput(f"the reason is longer than {REASON_LENGTH} characters", field="reason")
    task = await get_task(session, task_id)
    (await _access(session, task, username, roles, at)).refuse("delegate")
    target = await _eligible(session, task, to)
    final = await stand_in_for(session, username=target.username, at=at)
    deputy_for = None
    if final != target.username:
        deputy = await _eligible(session, task, final, as_deputy_of=target.username)
        final, deputy_for = deputy.username, target.username
    if final == task.assignee:
        raise Conflict(f"task {task.id} is already assigned to {final}", field="to")
    return await _set_holder(
        session,
        task,
        expected=task.assignee,
        values={
            "assignee": final,
            "claimed_at": at,
            "delegated_by": username,
            "delegation_reason": reason,
            "deputy_for": deputy_for,
        },
        reason=f"delegated by {username} to {final}: {reason}",
    )


async def _eligible(
    session: AsyncSession, task: Task, username: str, *, as_deputy_of: str | None = None
) -> User:
    """The person a task may go to: active, holding a candidate role, not excluded (else 422 on ``to``)."""
    name = (username or "").strip()
    if not name:
        raise InvalidInput("name the person to delegate to", field="to")
    who = f"{name} (out-of-office deputy of {as_deputy_of})" if as_deputy_of else name
    user = await session.scalar(select(User).where(User.username == name))
    if user is None or not user.active:
        raise InvalidInput(f"{who} is not an active user", field="to")
    if not set(user.roles or []) & set(task.candidate_roles):
        raise InvalidInput(
            f"{who} holds none of the roles this task needs ({' or '.join(task.candidate_roles)})", field="to"
        )
    if name in (task.excluded_users or []):
        raise InvalidInput(
            f"{who} initiated this record and may not approve it (separation of duties)", field="to"
        )
    return user


# ------------------------------------------------------------------------------------ out of office


async def set_absence(
    session: AsyncSession,
    *,
    username: str,
    deputy: str,
    starts_at: datetime,
    ends_at: datetime,
    reason: str | None = None,
    at: datetime | None = None,
) -> Absence:
    """Record that ``username`` is out of office over a period, with ``deputy`` standing in."""
    at = at or _now()
    starts_at, ends_at = _aware(starts_at, "starts_at"), _aware(ends_at, "ends_at")
    deputy = (deputy or "").strip()
    if ends_at <= starts_at:
        raise InvalidInput("the period must end after it starts", field="ends_at")
    if ends_at <= at:
        raise InvalidInput("the period has already ended", field="ends_at")
    if deputy == username:
        raise InvalidInput("name someone else as deputy", field="deputy")
    user = await session.scalar(select(User).where(User.username == deputy))
    if user is None or not user.active:
        raise InvalidInput(f"{deputy or 'the deputy'} is not an active user", field="deputy")
    if reason is not None and len(reason) > REASON_LENGTH:
        raise InvalidInput(f"the reason is longer than {REASON_LENGTH} characters", field="reason")
    overlap = await session.scalar(
        select(Absence).where(
            Absence.username == username,
            Absence.cancelled_at.is_(None),
            Absence.starts_at < ends_at,
            Absence.ends_at > starts_at,
        )
    )
    if overlap is not None:
        raise Conflict(
            f"{username} is already out of office from {overlap.starts_at:%Y-%m-%d %H:%M} to "
            f"{overlap.ends_at:%Y-%m-%d %H:%M} UTC (deputy {overlap.deputy}); cancel that period first",
            field="starts_at",
        )
    absence = Absence(
        username=username, deputy=deputy, starts_at=starts_at, ends_at=ends_at, reason=reason or None
    )
    session.add(absence)
    await session.flush()
    return absence


async def cancel_absence(
    session: AsyncSession, *, absence_id: int, username: str, at: datetime | None = None
) -> Absence:
    """End one's own out-of-office period now (or drop it, if it had not begun)."""
    absence = await session.get(Absence, absence_id)
    if absence is None or absence.username != username:
        raise NotFound(f"{username} has no out-of-office period {absence_id}", field="absence_id")
    if absence.cancelled_at is None:
        absence.cancelled_at = at or _now()
        await session.flush()
    return absence


async def absences(session: AsyncSession, *, username: str, at: datetime | None = None) -> list[Absence]:
    """Out-of-office periods not yet over, the person's own and those they are deputy in, soonest first."""
    rows = await session.scalars(
        select(Absence)
        .where(
            or_(Absence.username == username, Absence.deputy == username),
            Absence.cancelled_at.is_(None),
            Absence.ends_at > (at or _now()),
        )
        .order_by(Absence.starts_at, Absence.id)
    )
    return list(rows)


# ------------------------------------------------------------------------------------ the inbox


def is_overdue(task: Task, at: datetime) -> bool:
    """Open past its due time."""
    return task.status == TaskStatus.open and task.due_at is not None and task.due_at < at


async def inbox(
    session: AsyncSession,
    *,
    username: str,
    roles: Iterable[object],
    mine: bool = False,
    my_roles: bool = False,
    overdue: bool = False,
    process: str | None = None,
    status: TaskStatus | None = TaskStatus.open,
    record_type: str | None = None,
    record_id: int | None = None,
    at: datetime | None = None,
) -> list[Task]:
    """A person's tasks, overdue first, then by due time and priority.

    ``mine``: assigned to them, or to someone they are deputy for right now. ``my_roles``: unassigned and
    open to one of their roles (unless they are excluded from it), or escalated to one of their roles.
    Neither: both. With ``record_id`` and neither, every task of that record (a record's page).
    """
    at = at or _now()
    held = _role_names(roles)
    q = select(Task)
    if status is not None:
        q = q.where(Task.status == status)
    if process:
        q = q.where(Task.process == process)
    if record_type:
        q = q.where(Task.record_type == record_type)
    if record_id is not None:
        q = q.where(Task.record_id == record_id)
    if overdue:
        q = q.where(Task.status == TaskStatus.open, Task.due_at.is_not(None), Task.due_at < at)
    whole_record = record_id is not None and not (mine or my_roles)
    standing_in: set[str] = set()
    if not whole_record:
        if not (mine or my_roles):
            mine = my_roles = True
        standing_in = set(await deputising_for(session, username=username, at=at))
        if mine and not my_roles:
            q = q.where(Task.assignee.in_([username, *sorted(standing_in)]))
    rows = list(await session.scalars(q.order_by(Task.due_at, Task.priority, Task.id)))
    if not whole_record:
        rows = [
            t
            for t in rows
            if (mine and t.assignee is not None and (t.assignee == username or t.assignee in standing_in))
            or (my_roles and _open_to_roles(t, username, held))
        ]
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(rows, key=lambda t: (not is_overdue(t, at), t.due_at or far, t.priority, t.id))


def _open_to_roles(task: Task, username: str, held: set[str]) -> bool:
    if held & set(task.escalated_to or []):
        return True
    return (
        task.assignee is None
        and bool(held & set(task.candidate_roles))
        and username not in (task.excluded_users or [])
    )


@dataclass(frozen=True)
class DigestEntry:
    """What one person's reminder digest lists."""

    username: str
    full_name: str
    email: str
    tasks: list[Task]
    overdue: list[Task]
    standing_in: list[str]  # whom this person is out-of-office deputy for during the period


async def digest_entries(session: AsyncSession, *, at: datetime | None = None) -> list[DigestEntry]:
    """For every active person with an e-mail address who is not out of office: their open tasks
    (assigned, deputised, open or escalated to their roles), when they have any. Ordered by username."""
    at = at or _now()
    users = list(
        await session.scalars(
            select(User).where(User.active.is_(True), User.email.is_not(None)).order_by(User.username)
        )
    )
    away = set(await session.scalars(select(Absence.username).where(*_active(at))))
    out: list[DigestEntry] = []
    for user in users:
        if user.username in away or not user.email:
            continue
        tasks = await inbox(session, username=user.username, roles=user.roles or [], at=at)
        if tasks:
            out.append(
                DigestEntry(
                    username=user.username,
                    full_name=user.full_name or user.username,
                    email=user.email,
                    tasks=tasks,
                    overdue=[t for t in tasks if is_overdue(t, at)],
                    standing_in=await deputising_for(session, username=user.username, at=at),
                )
            )
    return out


async def plan_digest(session: AsyncSession, *, entry: DigestEntry, period_start: datetime) -> Digest:
    """The digest of this person for this period: recorded once (unique per person and period), so a
    round that is retried or replayed finds it and never sends it twice."""
    digest = await session.scalar(
        select(Digest).where(Digest.username == entry.username, Digest.period_start == period_start)
    )
    if digest is None:
        digest = Digest(
            username=entry.username,
            period_start=period_start,
            email=entry.email,
            task_ids=[t.id for t in entry.tasks],
            overdue=len(entry.overdue),
            status="planned",
        )
        session.add(digest)
        await session.flush()
    return digest


async def digest_sent(
    session: AsyncSession, *, digest_id: int, message_id: str | None = None, error: str | None = None
) -> Digest:
    """Record that the digest went out (or why it did not: it stays due for the round's retry)."""
    digest = await session.get(Digest, digest_id)
    if digest is None:
        raise NotFound(f"digest {digest_id} not found", field="digest_id")
    if error:
        digest.status, digest.error = "failed", error
    else:
        digest.status, digest.message_id, digest.sent_at, digest.error = "sent", message_id, _now(), None
    await session.flush()
    return digest
