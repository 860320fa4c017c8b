"""Alembic environment: runs on the connection handed in by ``domain.migrate``."""

from __future__ import annotations

from alembic import context

from domain.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - migrations always run through domain.migrate
    raise RuntimeError("run migrations through domain.migrate.upgrade(engine)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
