"""The production role on PostgreSQL: the API and worker run as a role that owns nothing, appends to the
audit trail but cannot update, delete or truncate it, nor disable its triggers, nor move the schema
marker; everything else the application does still works under it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from domain import inventory
from domain.audit import acting_as
from domain.audit.models import AuditEntry
from domain.audit.verify import verify_chain
from domain.db import make_engine, make_session_factory, warm_pool
from domain.db_roles import grant_app_role
from domain.enums import MovementKind
from domain.errors import Conflict, InvalidInput
from domain.models import Lot
from tests import factories as f
from tests.conftest import Store, make_store, run_in_thread

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg_store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Store]:
    s = await make_store("postgres", request, tmp_path)
    yield s
    await s.engine.dispose()


@pytest.fixture
async def app_role(pg_store: Store) -> AsyncIterator[str]:
    """A fresh role name; the role (cluster-wide) is dropped afterwards."""
    role = f"lotline_app_{uuid.uuid4().hex[:8]}"
    yield role
    await _drop_role(pg_store.url, role)


def _as(store: Store, role: str):
    return make_engine(make_url(store.url).set(username=role, password=None).render_as_string(False))


async def _refused(engine, sql: str) -> str:
    with pytest.raises(DBAPIError) as caught:
        async with engine.begin() as conn:
            await conn.execute(text(sql))
    return str(caught.value.orig)


async def test_the_app_role_appends_to_the_trail_but_cannot_rewrite_or_unprotect_it(pg_store, app_role):
    granted = await grant_app_role(pg_store.engine, app_role, password="s3cret-app")
    assert granted[0] == f'CREATE ROLE "{app_role}" LOGIN'
    assert all("s3cret" not in g for g in granted)  # the password is never echoed

    app = _as(pg_store, app_role)
    try:
        sessions = make_session_factory(app)
        # Ordinary work under the role: a lot, stock, an audited change.
        with acting_as("qa.li"):
            async with sessions() as s, s.begin():
                lot = await f.lot(s, await f.product(s, "PUMP"), "L-1", quantity=5)
                wh = await f.location(s, "WH1")
                await inventory.post(s, kind=MovementKind.receipt, lot=lot, location=wh, quantity=5)
            async with sessions() as s, s.begin():
                (await s.get(Lot, lot.id)).quantity = 6
        async with sessions() as s:
            entries = list(await s.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        assert [(e.record_type, e.action) for e in entries][-1] == ("lot", "update")
        assert entries[-1].actor == "qa.li"
        # The API's start under the role: its pool is opened and the sealing trigger warmed, writing nothing.
        assert await warm_pool(app) == app.pool.size()
        async with sessions() as s:
            assert await s.scalar(select(func.count()).select_from(AuditEntry)) == len(entries)

        for sql in (
            "UPDATE audit_entries SET actor = 'someone else'",
            "DELETE FROM audit_entries",
            "TRUNCATE audit_entries",
            "INSERT INTO alembic_version VALUES ('9999')",
            "DELETE FROM alembic_version",
        ):
            assert "permission denied" in await _refused(app, sql), sql
        assert "must be owner" in await _refused(app, "ALTER TABLE audit_entries DISABLE TRIGGER ALL")
    finally:
        await app.dispose()

    async with pg_store.sessions() as s:
        report = await verify_chain(s)
        assert report.ok and report.entries == len(entries)
        assert await s.scalar(select(AuditEntry.actor).where(AuditEntry.seq == entries[-1].seq)) == "qa.li"


async def test_granting_is_idempotent_and_refuses_an_owner_or_a_bad_name(pg_store, app_role):
    await grant_app_role(pg_store.engine, app_role)
    again = await grant_app_role(pg_store.engine, app_role)
    assert not any(g.startswith("CREATE ROLE") for g in again)

    owner = make_url(pg_store.url).username
    with pytest.raises(Conflict) as caught:
        await grant_app_role(pg_store.engine, owner)
    assert caught.value.field == "role" and "owns tables" in caught.value.reason
    with pytest.raises(InvalidInput) as caught:
        await grant_app_role(pg_store.engine, 'x"; DROP TABLE lots; --')
    assert caught.value.field == "role"
    async with pg_store.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM lots")) == 0  # still there


def test_lotline_db_upgrade_grants_the_app_role_named_on_the_command_line(pg_database: str) -> None:
    """What the compose file's migrate job runs: migrate as the owner, then create and grant the role."""
    role = f"lotline_app_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "LOTLINE_DATABASE_URL": pg_database, "POSTGRES_APP_PASSWORD": "from-the-env"}
    lotline = [sys.executable, "-m", "lotline"]
    try:
        done = subprocess.run(
            [*lotline, "db", "upgrade", "--app-role", role],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert f'CREATE ROLE "{role}" LOGIN' in done.stdout and "PASSWORD ***" in done.stdout
        assert "from-the-env" not in done.stdout + done.stderr
        bad = subprocess.run(
            [*lotline, "db", "upgrade", "--app-role", "Bad-Name"], env=env, capture_output=True, text=True
        )
        assert bad.returncode == 2 and "role:" in bad.stderr
    finally:
        run_in_thread(_drop_role, pg_database, role)


async def _drop_role(url: str, role: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            if await conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}):
                await conn.execute(text(f'DROP OWNED BY "{role}"'))
                await conn.execute(text(f'DROP ROLE "{role}"'))
    finally:
        await engine.dispose()
