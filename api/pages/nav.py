"""The pages' main navigation: each entry is shown only to users its API role set admits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from api.pages.guards import route_guard
from api.routes import capa as capa_api
from api.routes import changes as changes_api
from api.routes import quality as quality_api
from api.routes import recalls as recalls_api
from api.routes import tasks as tasks_api
from api.routes import trace as trace_api
from api.security import Principal


@dataclass(frozen=True)
class NavItem:
    """A link in the header: where it goes, its (translatable) label, and the API guard whose roles see it."""

    href: str
    label: str
    guard: Callable[..., Any]

    def visible_to(self, user: Principal) -> bool:
        """True when the user holds one of the guard's roles (admin sees everything)."""
        return user.has_any(set(self.guard.required_roles))


# In menu order. A new page area adds its entry here (or calls NAV.append from its module).
NAV: list[NavItem] = [
    NavItem("/inbox", "Inbox", tasks_api.ANY_ROLE),
    NavItem("/recalls", "Recalls", recalls_api.READERS),
    NavItem("/trace", "Trace", route_guard(trace_api.router, "/api/trace")),
    NavItem("/capas", "CAPA", capa_api.READERS),
    NavItem("/changes", "Changes", changes_api.READERS),
    NavItem("/releases", "Releases", quality_api.READERS),
]


def nav_for(user: Principal, current_path: str) -> list[dict[str, Any]]:
    """The entries this user sees, the current one marked (``aria-current="page"``)."""
    return [
        {
            "href": item.href,
            "label": item.label,
            "current": current_path == item.href or current_path.startswith(item.href.rstrip("/") + "/"),
        }
        for item in NAV
        if item.visible_to(user)
    ]
