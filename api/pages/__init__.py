"""Server-rendered pages for the people who use Lotline (approvers, QA, consignees).

``install(app, settings)`` adds them to the API app: the signed session cookie, ``/static``, and the
page routers in :data:`ROUTERS`. Pages are Jinja2 templates under ``api/templates/pages`` extending
``pages/_base.html``; see ``api/pages/README.md`` for how to add one.
"""

from __future__ import annotations

# Modules whose ``router`` is a page router, included in this order.
ROUTERS = (
    "api.pages.login",
    "api.pages.inbox",
    "api.pages.recalls",
    "api.pages.trace",
    "api.pages.capas",
    "api.pages.changes",
    "api.pages.releases",
    "api.pages.task_actions",
)


def install(app, settings) -> None:
    """Add the pages to ``app``: session middleware, static files and every page router."""
    from importlib import import_module

    from api.pages.render import STATIC_DIR, STATIC_PREFIX, CachedStatic
    from api.pages.security import add_session_middleware

    add_session_middleware(app, settings)
    app.mount(STATIC_PREFIX, CachedStatic(directory=STATIC_DIR), name="static")
    for name in ROUTERS:
        app.include_router(import_module(name).router)
