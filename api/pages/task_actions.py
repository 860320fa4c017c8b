"""Task actions on the task page (claim, release, delegate, report done) and the out-of-office page.

Every change goes through the API's own handlers in ``api/routes/tasks.py`` (``claim``, ``release``,
``delegate``, ``complete``, ``set_absence``, ``cancel_absence``), so the task service's rules are never
repeated here. The forms are drawn only when the task's ``actions`` allow them; a refusal (403, 409, 422,
401 for a wrong password) re-renders the page with the reasons next to the form, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import SessionDep
from api.pages import inbox
from api.pages.i18n import translate
from api.pages.nav import NAV, NavItem
from api.pages.render import flash, page_language, render
from api.pages.routing import page_router, reasons_of
from api.pages.security import CsrfChecked, require_page_roles
from api.routes import tasks as tasks_api
from api.schemas.tasks import AbsenceCreate, CompleteRequest, DelegateRequest, TaskPublic
from api.security import Principal
from domain.errors import DomainError, InvalidInput
from domain.models import User
from domain.tasks.service import NEEDS_REFERENCE, completion_of, get_task

router = page_router()

# The pages admit whom the task API's routes admit.
Actor = Annotated[Principal, Depends(require_page_roles(tasks_api.ANY_ROLE))]

inbox.TASK_ACTION_PARTIALS.append("pages/tasks/_actions.html")
NAV.append(NavItem("/out-of-office", "Out of office", tasks_api.ANY_ROLE))

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


async def _active_users(session: AsyncSession) -> list[User]:
    rows = await session.scalars(select(User).where(User.active.is_(True)).order_by(User.username))
    return list(rows)


async def delegates_for(session: AsyncSession, user: Principal, task: TaskPublic) -> list[User]:
    """People the task may be handed to: active, holding a candidate role, not excluded, not me.
    (A list to choose from; the task service still decides, and says why not.)"""
    roles = set(task.candidate_roles)
    excluded = {*task.excluded_users, user.username}
    return [
        u for u in await _active_users(session) if set(u.roles or []) & roles and u.username not in excluded
    ]


async def _context_hook(session: AsyncSession, user: Principal, task: TaskPublic) -> dict[str, Any]:
    row = await get_task(session, task.id)
    verb = completion_of(row)
    return {
        "delegates": await delegates_for(session, user, task) if "delegate" in task.actions else [],
        "completion": verb,
        "needs_reference": verb in NEEDS_REFERENCE,
        "action_form": None,
        "action_errors": [],
        "action_values": {},
    }


inbox.TASK_CONTEXT_HOOKS.append(_context_hook)


def _utc(value: str, field: str) -> datetime | None:
    """A ``datetime-local`` value read as UTC (the form says so); empty: None."""
    value = value.strip()
    if not value:
        return None
    try:
        return datetime.strptime(value[:16], DATETIME_LOCAL).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInput("enter a date and time (YYYY-MM-DDTHH:MM, UTC)", field=field) from None


def _validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors()]


async def _act(
    request: Request,
    session: AsyncSession,
    user: Principal,
    task_id: int,
    form_name: str,
    action: Callable[[], Awaitable[Any]],
    done: str,
    values: dict[str, str] | None = None,
) -> Response:
    """Run one API handler; on success flash ``done`` and go back to the task, else show why not."""
    status_code = 422
    try:
        await action()
    except ValidationError as exc:
        errors = _validation_errors(exc)
    except (HTTPException, DomainError) as exc:
        status_code = exc.status_code
        errors = [{**e, "reason": inbox.EXCEPTION_NAME.sub("", str(e["reason"]))} for e in reasons_of(exc)]
    else:
        flash(request, translate(page_language(request), done))
        return RedirectResponse(f"/tasks/{task_id}", status_code=303)
    await session.rollback()
    context = await inbox._task_context(session, user, task_id)
    context.update(action_form=form_name, action_errors=errors, action_values=values or {})
    return render(request, "pages/task.html", context, status_code=status_code, user=user)


@router.post("/tasks/{task_id}/claim", dependencies=[CsrfChecked])
async def claim(request: Request, task_id: int, session: SessionDep, user: Actor) -> Response:
    """Take the task (``POST /api/tasks/{id}/claim``)."""

    async def run() -> Any:
        return await tasks_api.claim(task_id=task_id, session=session, user=user)

    return await _act(request, session, user, task_id, "claim", run, "You claimed this task.")


@router.post("/tasks/{task_id}/release", dependencies=[CsrfChecked])
async def release(request: Request, task_id: int, session: SessionDep, user: Actor) -> Response:
    """Give the task back to its candidate roles (``POST /api/tasks/{id}/release``)."""

    async def run() -> Any:
        return await tasks_api.release(task_id=task_id, session=session, user=user)

    return await _act(request, session, user, task_id, "release", run, "You released this task.")


@router.post("/tasks/{task_id}/delegate", dependencies=[CsrfChecked])
async def delegate(request: Request, task_id: int, session: SessionDep, user: Actor) -> Response:
    """Hand the task to a named person with a reason (``POST /api/tasks/{id}/delegate``)."""
    form = await request.form()
    values = {"to": str(form.get("to") or ""), "reason": str(form.get("reason") or "")}

    async def run() -> Any:
        body = DelegateRequest(to=values["to"], reason=values["reason"])
        return await tasks_api.delegate(task_id=task_id, body=body, session=session, user=user)

    return await _act(request, session, user, task_id, "delegate", run, "The task was delegated.", values)


@router.post("/tasks/{task_id}/complete", dependencies=[CsrfChecked])
async def complete(request: Request, task_id: int, session: SessionDep, user: Actor) -> Response:
    """Report a work task done under one's signature (``POST /api/tasks/{id}/complete``)."""
    form = await request.form()
    values = {k: str(form.get(k) or "") for k in ("reference", "note", "done_at")}

    async def run() -> Any:
        body = CompleteRequest(
            password=str(form.get("password") or ""),
            reference=values["reference"].strip() or None,
            note=values["note"],
            done_at=_utc(values["done_at"], "done_at"),
        )
        return await tasks_api.complete(task_id=task_id, body=body, session=session, user=user)

    return await _act(request, session, user, task_id, "complete", run, "Reported done and signed.", values)


# ------------------------------------------------------------------------------------ out of office


async def _absence_page(
    request: Request,
    session: AsyncSession,
    user: Principal,
    *,
    errors: list[dict[str, Any]] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    periods = await tasks_api.list_absences(session=session, user=user)
    deputies = [u for u in await _active_users(session) if u.username != user.username]
    return render(
        request,
        "pages/out_of_office.html",
        {
            "mine": [p for p in periods if p.username == user.username],
            "standing_in": [p for p in periods if p.deputy == user.username],
            "deputies": deputies,
            "errors": errors or [],
            "values": values or {},
        },
        status_code=status_code,
        user=user,
    )


@router.get("/out-of-office")
async def out_of_office(request: Request, session: SessionDep, user: Actor) -> Response:
    """My out-of-office periods, those I stand in for, and a form to set one."""
    return await _absence_page(request, session, user)


@router.post("/out-of-office", dependencies=[CsrfChecked])
async def set_out_of_office(request: Request, session: SessionDep, user: Actor) -> Response:
    """Set a period with a deputy (``POST /api/tasks/out-of-office``)."""
    form = await request.form()
    values = {k: str(form.get(k) or "") for k in ("deputy", "starts_at", "ends_at", "reason")}
    status_code = 422
    try:
        body = AbsenceCreate(
            deputy=values["deputy"],
            starts_at=_utc(values["starts_at"], "starts_at"),
            ends_at=_utc(values["ends_at"], "ends_at"),
            reason=values["reason"].strip() or None,
        )
        await tasks_api.set_absence(body=body, session=session, user=user)
    except ValidationError as exc:
        errors = _validation_errors(exc)
    except (HTTPException, DomainError) as exc:
        status_code = exc.status_code
        errors = reasons_of(exc)
    else:
        flash(request, translate(page_language(request), "Out of office set."))
        return RedirectResponse("/out-of-office", status_code=303)
    await session.rollback()
    return await _absence_page(request, session, user, errors=errors, values=values, status_code=status_code)


@router.post("/out-of-office/{absence_id}/cancel", dependencies=[CsrfChecked])
async def cancel_out_of_office(
    request: Request, absence_id: int, session: SessionDep, user: Actor
) -> Response:
    """End or drop one of my periods (``DELETE /api/tasks/out-of-office/{id}``)."""
    await tasks_api.cancel_absence(absence_id=absence_id, session=session, user=user)
    flash(request, translate(page_language(request), "Out of office cancelled."))
    return RedirectResponse("/out-of-office", status_code=303)
