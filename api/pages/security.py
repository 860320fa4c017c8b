"""Who is signed in to the pages, what they may open, and forms that only this site can post.

- The session is a cookie signed with a key derived from the settings' secret (Starlette's
  ``SessionMiddleware``, itsdangerous): HttpOnly, SameSite=Lax, Secure when the site is served over
  https, expiring after ``access_token_minutes`` without a page view (as an API token does) and at
  most :data:`SESSION_HOURS` after sign-in. It holds the username; roles are read from the user's
  account on every request, so a deactivated account or a removed role takes effect at once.
- A page admits the roles of an API route: ``require_page_roles(recalls.READERS)`` takes the role
  set of the API's own ``require_roles`` dependency, so the two never drift apart.
- Every POST form carries the session's CSRF token (:func:`csrf_token`, checked by
  :data:`CsrfChecked`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Depends, Request
from starlette.middleware.sessions import SessionMiddleware

from api.deps import SessionDep
from api.security import Principal
from domain.audit import acting_as
from domain.enums import Role
from domain.users import get_user

SESSION_COOKIE = "lotline_session"
SESSION_HOURS = 12  # sign in again at least once per working day
CSRF_FIELD = "csrf_token"
_KNOWN_ROLES = {r.value for r in Role}


class LoginRequired(Exception):
    """No one is signed in (or the session ended): the page redirects to the sign-in form."""


class PageForbidden(Exception):
    """The signed-in user lacks the roles, or a form's CSRF token is wrong: a 403 page."""

    def __init__(self, message: str, **values: object) -> None:
        super().__init__(message)
        self.message = message
        self.values = values


def session_key(secret: str) -> str:
    """The key that signs page sessions: derived from the secret, so it differs from token keys."""
    return hmac.new(secret.encode(), b"lotline pages session", hashlib.sha256).hexdigest()


def add_session_middleware(app, settings) -> None:
    """Install the signed session cookie on the app."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_key(settings.secret_key),
        session_cookie=SESSION_COOKIE,
        max_age=settings.access_token_minutes * 60,
        same_site="lax",
        https_only=settings.public_base_url.startswith("https://"),
    )


def csrf_token(request: Request) -> str:
    """This session's CSRF token (made on first use)."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def check_csrf(request: Request) -> None:
    """Refuse a POST whose form does not carry this session's CSRF token."""
    form = await request.form()
    sent = str(form.get(CSRF_FIELD) or "")
    expected = request.session.get("csrf") or ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise PageForbidden(
            "The form has expired or did not come from this site. Reload the page and try again."
        )


check_csrf.checks_csrf = True  # type: ignore[attr-defined]  # read by the pages' access test
CsrfChecked = Depends(check_csrf)


def sign_in(request: Request, username: str) -> None:
    """Start a session for ``username`` (a new CSRF token: nothing from before sign-in carries over)."""
    request.session.clear()
    request.session.update({"user": username, "since": int(time.time()), "csrf": secrets.token_urlsafe(32)})


def sign_out(request: Request) -> None:
    """End the session."""
    request.session.clear()


async def signed_in(request: Request, session: SessionDep) -> Principal | None:
    """The signed-in user with their current roles, or None (no session, expired, unknown, inactive)."""
    username = request.session.get("user")
    since = request.session.get("since", 0)
    if not username:
        return None
    if time.time() - since > SESSION_HOURS * 3600:
        sign_out(request)
        return None
    user = await get_user(session, username=username)
    if user is None or not user.active:
        sign_out(request)
        return None
    request.session["seen"] = int(time.time())  # re-sends the cookie: the idle timeout starts again
    return Principal(
        username=user.username,
        full_name=user.full_name,
        roles=[Role(r) for r in user.roles if r in _KNOWN_ROLES],
    )


def require_page_roles(api_guard: Callable[..., Any]) -> Callable[..., AsyncIterator[Principal]]:
    """A page dependency admitting the roles of an API route's ``require_roles`` dependency.

    Not signed in → :class:`LoginRequired` (redirect to sign-in); signed in without one of the
    roles → :class:`PageForbidden` (403 page). Changes the page makes are audited as the user's.
    """
    wanted: set[Role] = set(api_guard.required_roles)

    async def _check(request: Request, session: SessionDep) -> AsyncIterator[Principal]:
        user = await signed_in(request, session)
        if user is None:
            raise LoginRequired()
        if not user.has_any(wanted):
            raise PageForbidden(
                "This page needs one of the roles: {roles}. You have: {mine}.",
                roles=", ".join(sorted(r.value for r in wanted)),
                mine=", ".join(sorted(r.value for r in user.roles)) or "—",
            )
        with acting_as(user.username):
            yield user

    _check.required_roles = wanted  # type: ignore[attr-defined]  # read by the pages' access test
    return _check
