"""The migrations build exactly the schema the models describe, on SQLite and on PostgreSQL: a column,
index or constraint added to a model without a migration (or the other way round) fails here, not in
production."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from domain.migrate import MIGRATIONS, alembic_config
from domain.schema import metadata


def _diff(conn) -> list:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
    return compare_metadata(ctx, metadata)


async def test_the_migrated_schema_matches_the_models(store):
    async with store.engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == [], "\n".join(map(str, diff))


def test_the_migrations_form_one_line_with_one_head():
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1, f"several heads: {script.get_heads()} (chain new migrations)"
    assert MIGRATIONS.is_dir()
