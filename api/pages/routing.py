"""Page routers: a route class that turns every refusal into a page a person can read.

``page_router()`` is an ``APIRouter`` whose routes answer, instead of JSON:
not signed in → 303 to ``/login?next=<this page>``; wrong role or bad CSRF token → the 403 page;
an ``HTTPException`` or ``DomainError`` (404, 409, 422...) → the error page with its reason and status;
malformed path or query values → the 422 page naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from api.pages.i18n import translate
from api.pages.render import page_language, render
from api.pages.security import LoginRequired, PageForbidden
from domain.errors import DomainError

TITLES = {403: "Not allowed", 404: "Not found"}


def reasons_of(exc: HTTPException | DomainError | RequestValidationError) -> list[dict[str, Any]]:
    """The ``{field, reason}`` items of an API-style refusal."""
    if isinstance(exc, DomainError):
        return [exc.as_dict()]
    if isinstance(exc, RequestValidationError):
        return [
            {
                "field": ".".join(str(p) for p in e["loc"] if p not in ("body", "query", "path")),
                "reason": e["msg"],
            }
            for e in exc.errors()
        ]
    detail = exc.detail
    if isinstance(detail, list):
        return [d if isinstance(d, dict) else {"field": None, "reason": str(d)} for d in detail]
    return [{"field": None, "reason": str(detail)}]


def error_page(request: Request, status_code: int, reasons: list[dict[str, Any]]) -> Response:
    """The error page: what went wrong, in the page's language where the message is ours."""
    title = TITLES.get(status_code, "Something is wrong with the request")
    return render(request, "pages/error.html", {"title": title, "reasons": reasons}, status_code=status_code)


class PageRoute(APIRoute):
    """An ``APIRoute`` whose refusals are pages (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                # After a form's POST, come back to the page of the same path (its GET).
                query = request.url.query if request.method == "GET" else ""
                here = request.url.path + (f"?{query}" if query else "")
                return RedirectResponse(f"/login?next={quote(here, safe='/')}", status_code=303)
            except PageForbidden as exc:
                text = translate(page_language(request), exc.message, **exc.values)
                return error_page(request, 403, [{"field": None, "reason": text}])
            except (HTTPException, DomainError, RequestValidationError) as exc:
                status_code = exc.status_code if not isinstance(exc, RequestValidationError) else 422
                return error_page(request, status_code, reasons_of(exc))

        return page_handler


def page_router(**kwargs: Any) -> APIRouter:
    """A router for pages: :class:`PageRoute` routes, left out of the OpenAPI schema."""
    return APIRouter(route_class=PageRoute, include_in_schema=False, **kwargs)
