"""`lotline user add` and `lotline user list` on a migrated SQLite file: roles, prompts, exit code 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from domain.db import make_engine, make_session_factory
from domain.models import User
from domain.users import verify_password
from lotline.cli import app
from lotline.settings import get_settings
from tests.conftest import run_in_thread


@pytest.fixture
def cli(sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run `lotline user ...` against a fresh migrated SQLite file; also returns a reader of stored users."""
    path = tmp_path / "users.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    monkeypatch.setenv("LOTLINE_DATABASE_URL", url)
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, ["user", *args], input=input)

    async def _users() -> dict[str, User]:
        engine = make_engine(url)
        try:
            async with make_session_factory(engine)() as s:
                return {u.username: u for u in await s.scalars(select(User))}
        finally:
            await engine.dispose()

    yield invoke, lambda: run_in_thread(_users)
    get_settings.cache_clear()


def test_add_a_user_with_several_roles_and_list_them(cli):
    invoke, users = cli
    r = invoke(
        "add", "zhang.wei", "--role", "releaser", "--role", "qa", "--full-name", "张伟",
        "--email", "zhang.wei@example.org", "--password", "release-me-1",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "added user zhang.wei with roles: releaser, qa" in r.output
    stored = users()["zhang.wei"]
    assert stored.full_name == "张伟" and stored.email == "zhang.wei@example.org"
    assert verify_password(password_hash=stored.password_hash, password="release-me-1")
    listed = json.loads(invoke("list", "--json").stdout)
    assert listed == [
        {
            "username": "zhang.wei",
            "full_name": "张伟",
            "email": "zhang.wei@example.org",
            "roles": ["releaser", "qa"],
            "active": True,
        }
    ]
    table = invoke("list")
    assert table.exit_code == 0 and "zhang.wei" in table.stdout and "releaser, qa" in table.stdout


def test_the_password_is_asked_for_twice_when_not_given(cli):
    invoke, users = cli
    # The first pair does not match, so the prompt asks again.
    r = invoke(
        "add", "li.jing", "--role", "qa", input="first-try-1\nsecond-try-2\nfinal-pass-3\nfinal-pass-3\n"
    )
    assert r.exit_code == 0, r.output
    assert "final-pass-3" not in r.output  # typed without echo
    stored = users()["li.jing"]
    assert stored.full_name == "li.jing"  # defaults to the username
    assert verify_password(password_hash=stored.password_hash, password="final-pass-3")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "boss"], "role: unknown role 'boss'"),
        (["--role", "qa", "--role", "superuser"], "role: unknown role 'superuser'"),
        (["--role", "qa", "--password", "short"], "password: password must be at least 8 characters"),
        (["--role", "qa", "--email", "nowhere"], "email: not an e-mail address"),
    ],
)
def test_bad_input_exits_2_with_the_field_and_reason_and_adds_nobody(cli, args, message):
    invoke, users = cli
    if "--password" not in args:
        args = [*args, "--password", "long-enough-1"]
    r = invoke("add", "wang", *args)
    assert r.exit_code == 2
    assert message in r.output
    assert users() == {}


def test_a_duplicate_username_exits_2_and_keeps_the_first_user(cli):
    invoke, users = cli
    assert invoke("add", "wang", "--role", "qa", "--password", "first-pass-1").exit_code == 0
    r = invoke("add", "wang", "--role", "admin", "--password", "second-pass-2")
    assert r.exit_code == 2
    assert "username: user 'wang' already exists" in r.output
    assert users()["wang"].roles == ["qa"]


def test_a_role_is_required(cli):
    invoke, users = cli
    r = invoke("add", "wang", "--password", "long-enough-1")
    assert r.exit_code == 2 and "--role" in r.output
    assert users() == {}


def test_list_on_an_empty_store_says_how_to_add_someone(cli):
    invoke, _ = cli
    r = invoke("list")
    assert r.exit_code == 0 and "lotline user add" in r.stdout
