"""The approver's inbox, a task page (the record, its history, what signing means) and the sign-off.

Reading and signing go through the API's own handlers in ``api/routes/tasks.py`` (``list_tasks``,
``get_one``, ``sign_task``): the same filters, the same password re-authentication, the same workflow
Update and its validator. A refusal (wrong password 401, validator 409, bad input 422) is shown on
the sign-off form, and nothing is signed.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from api.deps import SessionDep, TemporalDep
from api.pages.i18n import EN, translate
from api.pages.records import load_record
from api.pages.releases import sign_off_input
from api.pages.render import flash, page_language, render
from api.pages.routing import page_router, reasons_of
from api.pages.security import CsrfChecked, require_page_roles
from api.routes import tasks as tasks_api
from api.schemas.tasks import SignRequest, TaskPublic
from api.security import Principal
from domain.errors import DomainError
from domain.tasks.payloads import TaskStatus
from domain.tasks.service import get_task, signatures_for

router = page_router()

# The inbox and task pages admit whom GET /api/tasks admits.
TASK_READER = require_page_roles(tasks_api.ANY_ROLE)
Reader = Annotated[Principal, Depends(TASK_READER)]

EXCEPTION_NAME = re.compile(r"^[A-Za-z]*Error: ")
PROCESSES = ("recall", "capa", "change", "release")

# The decisions a task kind is signed with (the buttons on its page); others: approve or reject.
DECISIONS: dict[str, tuple[str, ...]] = {"release_lot": ("released", "rejected")}
DEFAULT_DECISIONS = ("approved", "rejected")
BUTTONS = {"approved": "Approve…", "rejected": "Reject…", "released": "Release…"}
SUBMITS = {"approved": "Sign: approve", "rejected": "Sign: reject", "released": "Sign: release"}

# Partial templates drawn under the sign-off buttons of a task page, each given ``task`` (TaskPublic:
# ``task.actions`` says whether claim / release / delegate are allowed, ``task.refusals`` why not),
# ``row``, ``user`` and ``csrf_token``. The claim, release and delegation forms go here
# (e.g. TASK_ACTION_PARTIALS.append("pages/tasks/_delegate.html")), posting to page routes that call
# ``tasks_api.claim`` / ``release`` / ``delegate`` as :func:`sign` calls ``sign_task``.
TASK_ACTION_PARTIALS: list[str] = []
# Coroutines ``(session, user, task) -> dict`` adding what those partials draw to the task page's context
# (e.g. the people a task may be delegated to), registered by the module that adds the partials.
TASK_CONTEXT_HOOKS: list[Callable[..., Awaitable[dict[str, Any]]]] = []


def due_text(lang, task: TaskPublic, now: datetime) -> str:
    """When the task is due, as people say it: "overdue by 3 h", "in 2 d", or "No due date"."""
    if task.due_at is None:
        return translate(lang, "No due date")
    due = task.due_at if task.due_at.tzinfo else task.due_at.replace(tzinfo=UTC)
    seconds = (due - now).total_seconds()
    hours = round(abs(seconds) / 3600)
    if seconds < 0:
        return (
            translate(lang, "overdue by {n} d", n=hours // 24)
            if hours >= 48
            else translate(lang, "overdue by {n} h", n=max(hours, 1))
        )
    if hours == 0:
        return translate(lang, "in under an hour")
    return translate(lang, "in {n} d", n=hours // 24) if hours >= 48 else translate(lang, "in {n} h", n=hours)


@router.get("/inbox")
async def inbox(
    request: Request,
    session: SessionDep,
    user: Reader,
    process: str | None = None,
    overdue: bool = False,
    mine: bool = False,
) -> Response:
    """My tasks and my roles' tasks, overdue first; filter by process, overdue, assigned to me."""
    process = process if process in PROCESSES else None
    tasks = await tasks_api.list_tasks(
        session=session,
        user=user,
        status=TaskStatus.open,
        process=process,
        record_type=None,
        record_id=None,
        mine=mine,
        my_roles=False,
        overdue=overdue,
    )
    lang = page_language(request)
    now = datetime.now(UTC)
    return render(
        request,
        "pages/inbox.html",
        {
            "tasks": tasks,
            "due": {t.id: due_text(lang, t, now) for t in tasks},
            "processes": PROCESSES,
            "filters": {"process": process or "", "overdue": overdue, "mine": mine},
        },
        user=user,
        lang=lang,
    )


def sign_options(task: TaskPublic) -> tuple[tuple[str, ...], str | None]:
    """The decisions the caller may sign now, or why not, as the task service decides it for the API
    (``TaskPublic.actions`` / ``refusals``). The workflow's validator keeps the last word: a race still
    ends in a 409 shown on the form."""
    if "sign" in task.actions:
        return DECISIONS.get(task.kind, DEFAULT_DECISIONS), None
    return (), task.refusals.get("sign")


def consequence(kind: str, decision: str) -> str:
    """The catalogue message saying what this decision on this kind of task sets off."""
    key = f"consequence.{kind}.{decision}"
    return key if key in EN else f"consequence.default.{decision}"


async def _task_context(session, user: Principal, task_id: int) -> dict[str, Any]:
    """Everything the task page and the sign-off page draw."""
    task = await tasks_api.get_one(task_id=task_id, session=session, user=user)
    row = await get_task(session, task_id)
    record = await load_record(session, task.record_type, task.record_id)
    record_tasks = await tasks_api.list_tasks(
        session=session,
        user=user,
        status=None,
        process=None,
        record_type=task.record_type,
        record_id=task.record_id,
        mine=False,
        my_roles=False,
        overdue=False,
    )
    signatures = await signatures_for(session, record_type=task.record_type, record_id=task.record_id)
    decisions, why_not = sign_options(task)
    extra: dict[str, Any] = {}
    for hook in TASK_CONTEXT_HOOKS:
        extra.update(await hook(session, user, task))
    return {
        **extra,
        "task": task,
        "row": row,
        "record": record,
        "record_tasks": sorted(record_tasks, key=lambda t: (t.created_at, t.id)),
        "signatures": signatures,
        "decisions": decisions,
        "why_not": why_not,
        "buttons": BUTTONS,
        "submits": SUBMITS,
        "consequence": lambda d: consequence(task.kind, d),
        "action_partials": TASK_ACTION_PARTIALS,
        "errors": [],
        "values": {},
    }


@router.get("/tasks/{task_id}")
async def task_page(request: Request, task_id: int, session: SessionDep, user: Reader) -> Response:
    """A task: the record it belongs to, its history and signatures, and the sign-off."""
    context = await _task_context(session, user, task_id)
    return render(request, "pages/task.html", context, user=user)


@router.get("/tasks/{task_id}/sign")
async def sign_page(
    request: Request, task_id: int, session: SessionDep, user: Reader, decision: str = "approved"
) -> Response:
    """The sign-off form as a page of its own (what the dialog shows when JavaScript is off)."""
    context = await _task_context(session, user, task_id)
    if decision not in context["decisions"]:
        return RedirectResponse(f"/tasks/{task_id}", status_code=303)
    return render(request, "pages/sign.html", {**context, "decision": decision}, user=user)


@router.post("/tasks/{task_id}/sign", dependencies=[CsrfChecked])
async def sign(
    request: Request, task_id: int, session: SessionDep, client: TemporalDep, user: Reader
) -> Response:
    """Sign off through ``POST /api/tasks/{id}/sign``'s own handler; a refusal is shown on the form."""
    form = await request.form()
    decision = str(form.get("decision") or "")
    values = {"reason": str(form.get("reason") or "")}
    release, shown = sign_off_input(form)  # a lot release's disposition split and CAPA request
    values.update(shown)
    errors: list[dict[str, Any]]
    status_code = 422
    try:
        body = SignRequest(
            password=str(form.get("password") or ""), decision=decision, reason=values["reason"], **release
        )
        result = await tasks_api.sign_task(
            task_id=task_id, body=body, session=session, client=client, user=user
        )
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors()]
    except (HTTPException, DomainError) as exc:
        status_code = exc.status_code
        # The validator's refusal reaches the API as "ValueError: <reason>": a person needs the reason.
        errors = [{**e, "reason": EXCEPTION_NAME.sub("", str(e["reason"]))} for e in reasons_of(exc)]
    else:
        lang = page_language(request)
        flash(
            request,
            translate(lang, "Signed: {meaning}.", meaning=translate(lang, f"meaning.{result.meaning}")),
        )
        return RedirectResponse(f"/tasks/{task_id}", status_code=303)
    await session.rollback()
    context = await _task_context(session, user, task_id)
    if decision not in ("approved", "rejected", "released"):
        decision = context["decisions"][0] if context["decisions"] else "approved"
    return render(
        request,
        "pages/sign.html",
        {**context, "decision": decision, "errors": errors, "values": values},
        status_code=status_code,
        user=user,
    )
