"""Rendering a page: one Jinja environment for ``api/templates``, the context every page gets, and the
headers every page is sent with.

Every page template extends ``pages/_base.html`` and receives ``lang``, ``_`` (translate), ``user``
(or None), ``csrf_token``, ``nav``, ``flashes``, ``lang_url`` and ``static_url``; see
:func:`render`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from starlette.datastructures import URL
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from api.pages.i18n import LANG_COOKIE, LANG_NAMES, negotiate, normalise, translate
from api.security import Principal
from domain.enums import Language

API_DIR = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = API_DIR / "templates"
STATIC_DIR = API_DIR / "static"
STATIC_PREFIX = "/static"

# Pages carry people's records and a sign-off form: never framed, never cached, no third-party anything.
# The consignee page is opened from a signed link: the link must not leak through a Referer header.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@cache
def static_version(name: str) -> str:
    """A short hash of a static file, put in its URL so a changed file is fetched again."""
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    """The URL of a file in ``api/static`` (versioned: browsers may keep it for a year)."""
    return f"{STATIC_PREFIX}/{name}?v={static_version(name)}"


class CachedStatic(StaticFiles):
    """``/static``: a versioned URL (``?v=<hash>``, see :func:`static_url`) may be cached for a year."""

    async def get_response(self, path: str, scope: Scope):
        response = await super().get_response(path, scope)
        if response.status_code == 200 and b"v=" in scope.get("query_string", b""):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


@pass_context
def _translate(ctx, message: str, /, **values: object) -> str:
    return translate(ctx.get("lang", Language.en), message, **values)


def format_when(value: datetime | date | None) -> str:
    """A time as people read it on these pages: ``2026-03-01 14:05 UTC``; a date as ``2026-03-01``."""
    if value is None:
        return "—"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


@pass_context
def _notice_label(ctx, key: str) -> str:
    """A phrase of the recall notice (``notifications/labels.py``), as the consignee's e-mail words it."""
    from notifications.labels import LABELS

    return LABELS[Language(ctx.get("lang", Language.en))].get(key, key)


def field_label(field: str) -> str:
    """The catalogue message naming a form field (``field.<name>``), or the field's own name."""
    from api.pages.i18n import EN

    return f"field.{field}" if f"field.{field}" in EN else field


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        _=_translate,
        static_url=static_url,
        field_label=field_label,
        notice_label=_notice_label,
        LANG_NAMES=LANG_NAMES,
    )
    env.filters["when"] = format_when
    env.filters["iso"] = lambda v: v.isoformat() if v else ""
    return env


TEMPLATES = Jinja2Templates(env=_environment())


def page_language(request: Request, *, preferred: Language | str | None = None) -> Language:
    """The language of this response (see :mod:`api.pages.i18n`); ``preferred`` (the consignee's own
    language) comes after an explicit ``?lang=`` but before the cookie and the browser."""
    explicit = normalise(request.query_params.get("lang"))
    if explicit:
        return explicit
    if preferred:
        return Language(preferred)
    return (
        normalise(request.cookies.get(LANG_COOKIE))
        or negotiate(request.headers.get("accept-language"))
        or normalise(request.app.state.settings.default_language)
        or Language.zh_CN
    )


def lang_url(request: Request, lang: Language) -> str:
    """This page's URL (path and query) in another language."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"] + [("lang", lang.value)]
    return f"{request.url.path}?{urlencode(query)}"


def local_path(target: str | None, default: str = "/inbox") -> str:
    """``target`` if it is a path on this site, else ``default`` (no open redirect through ``next=``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    url = URL(target)
    if url.scheme or url.netloc:
        return default
    return target


def flash(request: Request, text: str, kind: str = "ok") -> None:
    """A message shown once, on the next page this browser renders (after a redirect)."""
    request.session.setdefault("flashes", [])
    request.session["flashes"] = [*request.session["flashes"], {"text": text, "kind": kind}]


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    user: Principal | None = None,
    lang: Language | None = None,
    public: bool = False,
) -> HTMLResponse:
    """Render a page with the context every page gets and the page headers.

    ``public`` pages (the consignee's) set no cookie: no session, CSRF token or flashes, and a
    ``?lang=`` choice stays in the URL (the form posts back to it).
    """
    from api.pages.nav import nav_for
    from api.pages.security import csrf_token

    lang = lang or page_language(request)
    has_session = "session" in request.scope and not public
    flashes = request.session.pop("flashes", []) if has_session and "flashes" in request.session else []
    base = {
        "lang": lang,
        "user": user,
        "csrf_token": csrf_token(request) if has_session else "",
        "nav": nav_for(user, request.url.path) if user else [],
        "flashes": flashes,
        "lang_url": lambda code: lang_url(request, Language(code)),
        "current_path": request.url.path,
    }
    response = TEMPLATES.TemplateResponse(
        request, template, {**base, **(context or {})}, status_code=status_code
    )
    response.headers.update(PAGE_HEADERS)
    if not public and normalise(request.query_params.get("lang")):  # remembered for the next pages
        response.set_cookie(LANG_COOKIE, lang.value, max_age=365 * 24 * 3600, samesite="lax", httponly=True)
    return response
