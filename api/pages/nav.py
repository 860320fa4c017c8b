"""The pages' main navigation: each entry is shown only to users its API role set admits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from api.routes import tasks as tasks_api
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
