"""Sign-in and sign-out for the pages: the same accounts and password check as ``POST /api/auth/token``."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from api.deps import SessionDep
from api.pages.i18n import translate
from api.pages.render import flash, local_path, page_language, render
from api.pages.routing import page_router
from api.pages.security import CsrfChecked, sign_in, sign_out, signed_in
from domain.users import InactiveUser, authenticate

router = page_router()
HOME = "/inbox"


@router.get("/")
async def home() -> RedirectResponse:
    """The start page is the inbox."""
    return RedirectResponse(HOME, status_code=303)


@router.get("/login")
async def login_form(request: Request, session: SessionDep, next: str | None = None) -> Response:
    """The sign-in form (already signed in: straight on to ``next``)."""
    if await signed_in(request, session) is not None:
        return RedirectResponse(local_path(next, HOME), status_code=303)
    return render(
        request, "pages/login.html", {"next": local_path(next, HOME), "error": None, "username": ""}
    )


@router.post("/login", dependencies=[CsrfChecked])
async def login(request: Request, session: SessionDep) -> Response:
    """Check the username and password (argon2, as the API does) and start a session."""
    form = await request.form()
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    target = local_path(str(form.get("next") or ""), HOME)
    try:
        user = await authenticate(session, username=username, password=password)
        error = None if user is not None else "Wrong username or password."
    except InactiveUser:
        user, error = None, "This account is deactivated; ask an administrator."
    if user is None:
        context = {"next": target, "error": translate(page_language(request), error), "username": username}
        return render(request, "pages/login.html", context, status_code=401)
    await session.commit()  # keeps a password hash upgraded to the current parameters
    sign_in(request, user.username)
    return RedirectResponse(target, status_code=303)


@router.post("/logout", dependencies=[CsrfChecked])
async def logout(request: Request) -> RedirectResponse:
    """End the session and go back to the sign-in form."""
    sign_out(request)
    flash(request, translate(page_language(request), "You have signed out."))
    return RedirectResponse("/login", status_code=303)
