"""Sign-in: the OAuth2 password flow at /api/auth/token and /api/auth/me."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from api.app import create_app
from domain.users import create_user, set_active
from lotline.settings import Settings

CHEAP = PasswordHasher.from_parameters(CHEAPEST)  # argon2 for real, with parameters fast enough for tests
PASSWORD = "right password"


@pytest.fixture
async def client(store) -> AsyncIterator[httpx.AsyncClient]:
    """An API client on a store holding an active releaser/QA user and a deactivated one."""
    async with store.sessions() as s, s.begin():
        await create_user(
            s,
            username="zhang.wei",
            full_name="张伟",
            roles=["releaser", "qa"],
            password=PASSWORD,
            password_hasher=CHEAP,
        )
        await create_user(
            s, username="former", full_name="Left Co.", roles=["qa"], password=PASSWORD, password_hasher=CHEAP
        )
        await set_active(s, username="former", active=False)
    app = create_app(Settings(database_url=store.url, access_token_minutes=30))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c,
    ):
        yield c


async def _token(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/token", data={"username": username, "password": password})


async def test_the_right_password_gets_a_bearer_token_that_says_who_is_signed_in(client):
    r = await _token(client, "zhang.wei", PASSWORD)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 30 * 60 and body["access_token"]
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200, me.text
    assert me.json() == {"username": "zhang.wei", "full_name": "张伟", "roles": ["releaser", "qa"]}


@pytest.mark.parametrize(("username", "password"), [("zhang.wei", "wrong password"), ("nobody", PASSWORD)])
async def test_bad_credentials_get_401_without_saying_which_part_was_wrong(client, username, password):
    r = await _token(client, username, password)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json() == {"detail": [{"field": "username", "reason": "wrong username or password"}]}


async def test_a_deactivated_user_gets_401_with_the_reason(client):
    r = await _token(client, "former", PASSWORD)
    assert r.status_code == 401
    assert "deactivated" in r.json()["detail"][0]["reason"]
    # The account state is no one else's business: a wrong password gets the usual answer.
    r = await _token(client, "former", "wrong password")
    assert r.json()["detail"][0]["reason"] == "wrong username or password"


@pytest.mark.parametrize("form", [{"username": "zhang.wei"}, {"username": "zhang.wei", "password": ""}])
async def test_a_missing_password_is_named(client, form):
    r = await client.post("/api/auth/token", data=form)
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["detail"]] == ["password"]


async def test_who_am_i_needs_a_valid_token(client):
    assert (await client.get("/api/auth/me")).status_code == 401
    r = await client.get("/api/auth/me", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and r.json()["detail"][0]["field"] == "Authorization"
