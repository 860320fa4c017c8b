"""The API's and the worker's engine on the store: its pool is sized by LOTLINE_DB_POOL_SIZE, so that
every process's connections together fit the server's max_connections."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from api.app import create_app
from lotline.settings import Settings, store_engine


@pytest.mark.postgres
async def test_the_api_keeps_as_many_postgres_connections_as_the_setting_says(pg_database):
    app = create_app(Settings(database_url=pg_database, db_pool_size=3, dev_endpoints=False))
    async with app.router.lifespan_context(app):
        pool = app.state.engine.pool
        assert pool.size() == 3
        assert pool.checkedin() == 3  # warmed at start: all three are open
    engine = store_engine(Settings(database_url=pg_database))
    try:
        assert engine.pool.size() == 32  # the default
    finally:
        await engine.dispose()


async def test_sqlite_ignores_the_pool_size(tmp_path):
    engine = store_engine(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", db_pool_size=3))
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()


def test_a_pool_of_no_connections_is_refused():
    with pytest.raises(ValidationError) as caught:  # SQLAlchemy would read 0 as no limit at all
        Settings(db_pool_size=0)
    assert caught.value.errors()[0]["loc"] == ("db_pool_size",)
