"""The access matrix: every /api route except health and sign-in needs a token and the right role.

Everything is derived from the app's own routes, so a route added later is checked the day it is
registered: it must carry a ``require_roles`` dependency, and calling it without a valid token (none,
forged, expired) or with a token for a role it does not admit must be refused before anything runs.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from api.app import create_app
from api.deps import require_roles
from api.security import Principal, issue_token
from domain.enums import Role
from lotline.settings import Settings

OPEN = {"/api/health", "/api/auth/token"}
SECRET = "access-matrix-test-secret-0123456789abcdef"
# A refusal is immediate; waiting longer means something ran for an anonymous caller.
REFUSAL_TIMEOUT = 10.0


@dataclass(frozen=True)
class Endpoint:
    """One method of one /api route, with the roles it admits."""

    method: str
    path: str
    url: str
    admitted: frozenset[Role]  # a caller needs one of these (admin passes every check)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _role_checks(dependant: Dependant) -> list[frozenset[Role]]:
    """The role sets of every require_roles dependency in the tree, route-level ones included."""
    found: list[frozenset[Role]] = []
    for dep in dependant.dependencies:
        roles = getattr(dep.call, "required_roles", None)
        if roles is not None:
            found.append(frozenset(roles))
        found.extend(_role_checks(dep))
    return found


def _protected_routes(app: FastAPI) -> Iterator[RouteContext]:
    """Every route under /api but the open ones, as served: included routers' dependencies merged in."""
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if (path == "/api" or path.startswith("/api/")) and path not in OPEN:
            yield route


def _endpoints(app: FastAPI) -> list[Endpoint]:
    result = []
    for route in _protected_routes(app):
        assert isinstance(route.original_route, APIRoute)  # checked with a message in its own test
        checks = _role_checks(route.dependant)
        admitted = frozenset.intersection(*checks) if checks else frozenset()
        url = re.sub(r"\{[^}]+\}", "1", route.path)  # any value: the refusal comes before the lookup
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            result.append(Endpoint(method, route.path, url, admitted))
    return result


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _app(store) -> FastAPI:
    # Temporal points at a port nobody listens on: a route that reaches for it before the role
    # check answers 503 instead of passing by luck when some Temporal server happens to run.
    settings = Settings(
        database_url=store.url, secret_key=SECRET, temporal_address=f"127.0.0.1:{_closed_port()}"
    )
    return create_app(settings)


@pytest.fixture
async def app_client(sqlite_store) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The real app on an empty store, and a client for it."""
    app = _app(sqlite_store)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield app, client


def _token(*roles: Role, secret: str = SECRET, minutes: int = 5) -> dict[str, str]:
    principal = Principal(username="tester", full_name="Tester", roles=list(roles))
    return {"Authorization": f"Bearer {issue_token(principal, secret=secret, minutes=minutes)}"}


async def _call(client: httpx.AsyncClient, endpoint: Endpoint, headers: dict[str, str]) -> httpx.Response:
    try:
        return await asyncio.wait_for(
            client.request(endpoint.method, endpoint.url, headers=headers), REFUSAL_TIMEOUT
        )
    except TimeoutError:
        pytest.fail(
            f"{endpoint} did not answer within {REFUSAL_TIMEOUT}s: work started before the role check"
        )


def _hint(endpoint: Endpoint, r: httpx.Response) -> str:
    return (
        f"{endpoint} answered {r.status_code} {r.text[:200]}: the role check must come first, e.g. "
        "dependencies=[Depends(require_roles(...))] in the route decorator, so that nothing (store, "
        "Temporal, body) is touched for a caller who may not use the route"
    )


def test_every_protected_route_declares_a_role_check(sqlite_store):
    app = _app(sqlite_store)
    routes = list(_protected_routes(app))
    assert any(r.path == "/api/auth/me" for r in routes)  # the walk finds the routers' routes
    for route in routes:
        assert isinstance(route.original_route, APIRoute), (
            f"{route.original_route!r} under /api is not an APIRoute: it escapes the role checks"
        )
        assert _role_checks(route.dependant), (
            f"{sorted(route.methods or [])} {route.path} has no require_roles dependency"
        )


async def test_the_open_routes_answer_without_a_token(app_client):
    app, client = app_client
    assert {r.path for r in iter_route_contexts(app.routes)} >= OPEN
    assert (await client.get("/api/health")).status_code == 200
    r = await client.post("/api/auth/token", data={"username": "nobody", "password": "whatever-it-is"})
    assert r.status_code == 401 and r.json()["detail"][0]["reason"] == "wrong username or password"


async def test_every_protected_route_refuses_a_caller_without_a_valid_token(app_client):
    app, client = app_client
    endpoints = _endpoints(app)
    assert endpoints
    bad_tokens = {
        "no token": {},
        "not a JWT": {"Authorization": "Bearer not-a-token"},
        "wrong scheme": {"Authorization": _token(Role.admin)["Authorization"].replace("Bearer", "Basic")},
        "forged (wrong secret)": _token(Role.admin, secret="someone-elses-secret-0123456789abcdef"),
        "expired": _token(Role.admin, minutes=-1),
    }
    wrong: list[str] = []
    for endpoint in endpoints:
        for what, headers in bad_tokens.items():
            r = await _call(client, endpoint, headers)
            if r.status_code != 401 or r.headers.get("www-authenticate") != "Bearer":
                wrong.append(f"{what}: " + _hint(endpoint, r))
                break  # one finding per route is enough to fix it
    assert not wrong, "\n".join(wrong)


async def test_every_protected_route_refuses_a_role_it_does_not_admit(app_client):
    app, client = app_client
    wrong: list[str] = []
    for endpoint in _endpoints(app):
        for role in sorted(set(Role) - endpoint.admitted - {Role.admin}):
            r = await _call(client, endpoint, _token(role))
            if r.status_code != 403 or r.json()["detail"][0]["field"] != "role":
                wrong.append(f"role {role}: " + _hint(endpoint, r))
                break
    assert not wrong, "\n".join(wrong)


async def test_require_roles_admits_the_named_roles_and_admin_only(sqlite_store):
    # A probe route, so the rule is proven even while every real route admits every role.
    app = _app(sqlite_store)

    @app.get("/api/_probe", dependencies=[Depends(require_roles(Role.releaser, Role.qa_manager))])
    async def probe() -> dict[str, bool]:
        return {"ok": True}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        for role in Role:
            r = await client.get("/api/_probe", headers=_token(role))
            expected = 200 if role in {Role.releaser, Role.qa_manager, Role.admin} else 403
            assert r.status_code == expected, (role, r.text)
        r = await client.get("/api/_probe", headers=_token(Role.qa, Role.releaser))  # one of several roles
        assert r.status_code == 200
        assert (await client.get("/api/_probe", headers=_token())).status_code == 403  # no roles at all
        assert (await client.get("/api/_probe")).status_code == 401
