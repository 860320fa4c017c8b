"""The pages' sign-in, permissions, CSRF protection, languages and headers, over HTTP against the real app.

The browser suite (``tests/browser``) drives the same pages in Chromium on the real recall stack; these
tests prove the rules every page relies on, quickly, for every page route registered (so a page added
later is checked the day it is added).
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import Depends, FastAPI
from fastapi.routing import RouteContext, iter_route_contexts

from api.app import create_app
from api.pages import i18n
from api.pages.render import static_url
from api.pages.routing import PageRoute, page_router
from api.pages.security import SESSION_COOKIE, require_page_roles
from api.routes import recalls as recalls_api
from domain.enums import Role
from domain.recalls.payloads import RecallStatus
from domain.tasks.payloads import SIGN_OFF, SignatureMeaning, TaskSpec, TaskStatus
from domain.tasks.service import open_task
from domain.users import create_user, set_active
from lotline.settings import Settings

PASSWORD = "correct horse battery"
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # test accounts only
SECRET = "pages-test-secret-0123456789abcdef0123456789"
PUBLIC_PAGES = {"/", "/login", "/logout"}
API_DIR = Path(__file__).resolve().parents[2] / "api"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _app(store) -> FastAPI:
    settings = Settings(
        database_url=store.url, secret_key=SECRET, temporal_address=f"127.0.0.1:{_closed_port()}"
    )
    return create_app(settings)


@pytest.fixture
async def pages(sqlite_store) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The real app on a store with a QA user, a QA manager and a releaser, and a browser-like client."""
    async with sqlite_store.sessions() as s, s.begin():
        for name, roles in (("qa1", [Role.qa]), ("mgr1", [Role.qa_manager]), ("rel1", [Role.releaser])):
            await create_user(
                s,
                username=name,
                full_name=name.upper(),
                roles=roles,
                password=PASSWORD,
                password_hasher=CHEAP,
            )
    app = _app(sqlite_store)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test", headers={"Accept-Language": "en"}
        ) as client,
    ):
        yield app, client


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token in its form"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, username: str, password: str = PASSWORD, next_: str = "/inbox"):
    form = await client.get("/login", params={"next": next_})
    return await client.post(
        "/login",
        data={"username": username, "password": password, "next": next_, "csrf_token": _csrf(form.text)},
    )


def _page_routes(app: FastAPI) -> list[RouteContext]:
    """Every page route as served (included routers' dependencies merged in)."""
    return [r for r in iter_route_contexts(app.routes) if isinstance(r.original_route, PageRoute)]


def _guards(route: RouteContext) -> list[set[Role]]:
    found = []
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, "required_roles", None)
        if roles is not None:
            found.append(set(roles))
        stack.extend(dep.dependencies)
    return found


def _checks_csrf(route: RouteContext) -> bool:
    return any(getattr(d.call, "checks_csrf", False) for d in route.dependant.dependencies)


async def test_a_page_sends_a_signed_out_visitor_to_sign_in_and_back(pages):
    _app, client = pages
    r = await client.get("/inbox", params={"process": "recall"})
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/inbox%3Fprocess%3Drecall"
    form = await client.get(r.headers["location"])
    assert (
        form.status_code == 200 and 'name="password"' in form.text and 'autocomplete="username"' in form.text
    )
    cookie = form.headers["set-cookie"].lower()
    assert SESSION_COOKIE in cookie and "httponly" in cookie and "samesite=lax" in cookie

    wrong = await sign_in(client, "mgr1", "not the password", next_="/inbox?process=recall")
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
    assert (await client.get("/inbox")).status_code == 303  # still signed out

    ok = await sign_in(client, "mgr1", next_="/inbox?process=recall")
    assert ok.status_code == 303 and ok.headers["location"] == "/inbox?process=recall"
    inbox = await client.get("/inbox")
    assert inbox.status_code == 200 and "MGR1" in inbox.text and "Nothing is waiting for you" in inbox.text


async def test_sign_in_never_redirects_off_the_site(pages):
    _app, client = pages
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
        client.cookies.clear()
        r = await sign_in(client, "qa1", next_=target)
        assert r.status_code == 303 and r.headers["location"] == "/inbox", target


async def test_a_post_without_the_sessions_csrf_token_is_refused_and_changes_nothing(pages):
    _app, client = pages
    await client.get("/login")
    r = await client.post("/login", data={"username": "qa1", "password": PASSWORD})
    assert r.status_code == 403 and "did not come from this site" in r.text
    r = await client.post("/login", data={"username": "qa1", "password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 403
    assert (await client.get("/inbox")).status_code == 303  # not signed in

    assert (await sign_in(client, "qa1")).status_code == 303
    assert (await client.post("/logout", data={"csrf_token": "forged"})).status_code == 403
    assert (await client.get("/inbox")).status_code == 200  # still signed in
    page = await client.get("/inbox")
    assert (await client.post("/logout", data={"csrf_token": _csrf(page.text)})).status_code == 303
    assert (await client.get("/inbox")).status_code == 303  # signed out


async def test_a_forged_session_cookie_is_not_a_session(pages):
    _app, client = pages
    client.cookies.set(SESSION_COOKIE, "eyJ1c2VyIjogIm1ncjEifQ==.forged.signature")
    assert (await client.get("/inbox")).status_code == 303


async def test_a_deactivated_account_loses_its_session_at_once(pages, sqlite_store):
    _app, client = pages
    assert (await sign_in(client, "mgr1")).status_code == 303
    assert (await client.get("/inbox")).status_code == 200
    async with sqlite_store.sessions() as s, s.begin():
        await set_active(s, username="mgr1", active=False)
    assert (await client.get("/inbox")).status_code == 303
    r = await sign_in(client, "mgr1")
    assert r.status_code == 401 and "deactivated" in r.text


def test_every_page_admits_the_roles_of_an_api_route_and_every_form_checks_csrf(sqlite_store):
    app = _app(sqlite_store)
    routes = _page_routes(app)
    assert {"/inbox", "/tasks/{task_id}"} <= {r.path for r in routes}
    for route in routes:
        if route.path not in PUBLIC_PAGES:
            assert _guards(route), f"page {route.path} has no require_page_roles dependency"
        if route.methods & {"POST", "PUT", "PATCH", "DELETE"}:
            assert _checks_csrf(route), f"{sorted(route.methods)} {route.path} does not check the CSRF token"


async def test_every_guarded_page_sends_a_signed_out_visitor_to_sign_in(pages):
    app, client = pages
    for route in _page_routes(app):
        if route.path in PUBLIC_PAGES or "GET" not in route.methods:
            continue
        url = re.sub(r"\{[^}]+\}", "1", route.path)
        r = await client.get(url)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), route.path


async def test_a_page_refuses_a_role_its_api_route_does_not_admit_with_a_403_page(pages):
    app, client = pages
    probe = page_router()

    @probe.get("/_probe")
    async def _probe(user=Depends(require_page_roles(recalls_api.MANAGER))) -> dict:
        return {"who": user.username}

    app.include_router(probe)
    await sign_in(client, "qa1")
    r = await client.get("/_probe")
    assert r.status_code == 403 and "qa_manager" in r.text and "Not allowed" in r.text
    client.cookies.clear()
    await sign_in(client, "mgr1")
    r = await client.get("/_probe")
    assert r.status_code == 200 and r.json() == {"who": "mgr1"}


async def test_the_language_follows_the_choice_then_the_browser(pages):
    _app, client = pages
    zh = await client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert '<html lang="zh-CN">' in zh.text and "登录" in zh.text
    en = await client.get("/login", headers={"Accept-Language": "de-DE, en-GB;q=0.7, zh;q=0.5"})
    assert (
        '<html lang="en">' in en.text and "Sign in" in en.text and "登录" not in en.text.split("</header>")[1]
    )
    chosen = await client.get("/login?lang=en", headers={"Accept-Language": "zh-CN"})
    assert '<html lang="en">' in chosen.text and i18n.LANG_COOKIE in chosen.headers["set-cookie"]
    later = await client.get("/login", headers={"Accept-Language": "zh-CN"})
    assert '<html lang="en">' in later.text  # the choice is remembered


def test_accept_language_negotiation():
    assert i18n.negotiate("en-US,en;q=0.9") == "en"
    assert i18n.negotiate("fr, zh-Hant-TW;q=0.8, en;q=0.5") == "zh-CN"
    assert i18n.negotiate("en;q=0, zh;q=0.1") == "zh-CN"
    assert i18n.negotiate("fr, de") is None
    assert i18n.negotiate("en;q=garbage, zh") == "zh-CN"
    assert i18n.negotiate(None) is None
    # A kind of task nobody worded yet still reads as words, not as an identifier.
    assert i18n.translate("zh-CN", "kind.file:cn.plan") == "file cn.plan"
    assert i18n.translate("en", "kind.approve_recall") == "Approve a recall"


def test_every_message_the_pages_use_has_its_chinese_wording():
    literal = re.compile(
        r"""(?:\b_|translate)\(\s*(?:lang,\s*)?(?:"((?:[^"\\]|\\.)+)"|'((?:[^'\\]|\\.)+)')"""
    )
    sources = [*API_DIR.glob("templates/pages/**/*.html"), *API_DIR.glob("templates/ack/*.html")]
    sources += [p for p in API_DIR.glob("pages/*.py") if p.name != "i18n.py"]
    sources.append(API_DIR / "routes" / "acknowledgements.py")
    used = set()
    for path in sources:
        text = path.read_text()
        # Adjacent string literals in Python are one message.
        text = re.sub(r'"\s*\n\s*"', "", text)
        used |= {a or b for a, b in literal.findall(text)} - {""}
    used = {m for m in used if not m.endswith(".")}  # _("role." ~ r): the symbolic sets below
    from api.pages import inbox, nav
    from api.routes import acknowledgements

    used |= {item.label for item in nav.NAV}
    used |= set(inbox.BUTTONS.values()) | set(inbox.SUBMITS.values())
    used |= {label for _f, label in acknowledgements.QUANTITY_LABELS}
    symbolic = {f"role.{r.value}" for r in Role} | {f"status.{s.value}" for s in TaskStatus}
    symbolic |= {f"meaning.{m.value}" for m in SignatureMeaning} | {
        f"recall_status.{s.value}" for s in RecallStatus
    }
    symbolic |= {f"process.{p}" for p in inbox.PROCESSES}
    assert len(used) > 80  # the scan finds the templates' messages
    missing_zh = sorted(m for m in used | symbolic if "{" not in m[:1] and m not in i18n.ZH_CN)
    assert not missing_zh, f"messages without a zh-CN wording: {missing_zh}"
    missing_en = sorted(m for m in symbolic if m not in i18n.EN)
    assert not missing_en, f"symbolic messages without an English wording: {missing_en}"


async def test_pages_are_never_framed_cached_or_leaked_and_static_files_are_versioned(pages):
    _app, client = pages
    r = await client.get("/login")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store" and r.headers["referrer-policy"] == "no-referrer"
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in r.text
    css = await client.get(static_url("pages.css"))
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "immutable" in css.headers["cache-control"] and len(css.content) < 20_000
    js = await client.get(static_url("pages.js"))
    assert js.status_code == 200 and len(js.content) < 5_000


async def _task(sqlite_store, **over) -> int:
    spec = {
        "process": "capa",
        "kind": "approve_capa_plan",
        "title": "Approve CAPA plan CAPA-7",
        "record_type": "capa",
        "record_id": 7,
        "candidate_roles": ["qa_manager"],
        "excluded_users": ["qa1"],
        "workflow_id": "capa-7",
        "business_key": "capa-7-plan",
        "details": {SIGN_OFF: True},  # opened by the sign-off mechanism, as workflows/signoff.py does
        **over,
    }
    async with sqlite_store.sessions() as s, s.begin():
        return (await open_task(s, spec=TaskSpec(**spec))).task_id


async def test_the_task_page_offers_signing_to_a_candidate_and_says_why_not_to_others(pages, sqlite_store):
    _app, client = pages
    task_id = await _task(sqlite_store)
    await sign_in(client, "mgr1")
    inbox = await client.get("/inbox")
    assert f'href="/tasks/{task_id}"' in inbox.text and "Approve CAPA plan CAPA-7" in inbox.text
    page = await client.get(f"/tasks/{task_id}")
    assert page.status_code == 200
    assert f'href="/tasks/{task_id}/sign?decision=approved"' in page.text
    assert '<dialog id="sign-rejected"' in page.text and "21 CFR Part 11" in page.text
    # Without JavaScript, the dialog's form is a page of its own.
    alone = await client.get(f"/tasks/{task_id}/sign", params={"decision": "rejected"})
    assert alone.status_code == 200 and 'name="reason"' in alone.text and 'name="password"' in alone.text
    assert 'autocomplete="current-password"' in alone.text

    client.cookies.clear()
    await sign_in(client, "rel1")
    other = await client.get(f"/tasks/{task_id}")
    assert other.status_code == 200 and "sign?decision=" not in other.text
    assert "signing this task needs the role qa_manager" in other.text
    assert (await client.get("/inbox")).text.count(f'href="/tasks/{task_id}"') == 0  # not in their inbox


async def test_a_missing_task_or_a_malformed_id_is_a_page_not_json(pages):
    _app, client = pages
    await sign_in(client, "mgr1")
    missing = await client.get("/tasks/999999")
    assert missing.status_code == 404 and "task 999999 not found" in missing.text and "<html" in missing.text
    bad = await client.get("/tasks/abc")
    assert bad.status_code == 422 and "task_id" in bad.text and "<html" in bad.text


async def test_the_inbox_puts_overdue_first_and_filters_by_process_and_overdue(pages, sqlite_store):
    _app, client = pages
    now = datetime.now(UTC)
    late = await _task(
        sqlite_store, title="Late CAPA plan", business_key="late", due_at=now - timedelta(hours=30)
    )
    soon = await _task(
        sqlite_store, title="Soon CAPA plan", business_key="soon", due_at=now + timedelta(hours=5)
    )
    change = await _task(
        sqlite_store,
        process="change",
        kind="verify_change",
        record_type="change",
        title="Verify change CC-1",
        business_key="cc",
        due_at=now + timedelta(hours=1),
    )
    await sign_in(client, "mgr1")
    page = (await client.get("/inbox")).text
    order = [page.index(f'href="/tasks/{t}"') for t in (late, change, soon)]
    assert order == sorted(order), "overdue first, then by due time"
    assert "overdue by 30 h" in page and "in 5 h" in page
    overdue = (await client.get("/inbox", params={"overdue": "true"})).text
    assert f'href="/tasks/{late}"' in overdue and f'href="/tasks/{soon}"' not in overdue
    changes = (await client.get("/inbox", params={"process": "change"})).text
    assert f'href="/tasks/{change}"' in changes and f'href="/tasks/{late}"' not in changes
    assert '<option value="change" selected>' in changes
