"""The FastAPI application factory."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.pages import install as install_pages
from api.routes import (
    acknowledgements,
    audit,
    auth,
    capa,
    changes,
    dev,
    health,
    imports,
    quality,
    recalls,
    tasks,
    trace,
)
from domain.db import make_session_factory, warm_pool
from domain.errors import DomainError
from lotline.heap import freeze_what_start_made
from lotline.loopwatch import watching
from lotline.settings import Settings, get_settings, store_engine

# The API's areas, each a router, in the order their routes are matched.
AREAS = (health, recalls, tasks, acknowledgements, auth, trace, imports, capa, quality, audit, changes)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API around one settings object; the engine lives as long as the app."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = store_engine(settings)
        app.state.engine = engine
        app.state.sessions = make_session_factory(engine)
        await warm_pool(engine)
        freeze_what_start_made()  # lives as long as the process: out of every later GC pass
        try:
            async with watching(settings.loop_stall_warn_ms):
                yield
        finally:
            if getattr(app.state, "recall_waker", None) is not None:
                await app.state.recall_waker.close()  # wake-ups still due, before the store closes
            await engine.dispose()

    app = FastAPI(
        title="Lotline",
        version="0.1.0",
        description="Medical-device lot traceability and recalls",
        lifespan=lifespan,
    )
    app.state.settings = settings

    @app.exception_handler(DomainError)
    async def _domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"detail": [exc.as_dict()]})

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {
                "field": ".".join(str(p) for p in err["loc"] if p not in ("body", "query", "path")),
                "reason": err["msg"],
            }
            for err in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": detail})

    for area in AREAS:
        app.include_router(area.router)
    if settings.dev_endpoints:
        app.include_router(dev.router)
    install_pages(app, settings)  # pages, session, /static
    return app
