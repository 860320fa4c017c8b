"""The role guard of an API route that declares it inline (``dependencies=[Depends(require_roles(...))]``),
so a page can admit exactly the roles that route admits without naming them a second time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter


def route_guard(router: APIRouter, path: str, method: str = "GET") -> Callable[..., Any]:
    """The ``require_roles`` dependency of ``method path`` on ``router`` (it carries ``required_roles``)."""
    for route in router.routes:
        if getattr(route, "path", None) == path and method in getattr(route, "methods", ()):
            for dep in getattr(route, "dependencies", ()):
                if getattr(dep.dependency, "required_roles", None) is not None:
                    return dep.dependency
    raise LookupError(f"no role guard on {method} {path}")


def admits(guard: Callable[..., Any], user: Any) -> bool:
    """True when ``user`` (a Principal) holds one of the guard's roles."""
    return user is not None and user.has_any(set(guard.required_roles))
