"""The database role the application runs as in production (PostgreSQL).

The schema owner runs the migrations; the API and the worker connect as a role that owns nothing, so
they cannot ``ALTER TABLE ... DISABLE TRIGGER`` past the append-only triggers, and that role holds no
UPDATE, DELETE or TRUNCATE on the audit trail (21 CFR 11.10(e): the application cannot rewrite or
remove its own trail, whatever bug or injection it suffers). Nor may it write the migration marker.

``grant_app_role`` is idempotent and re-run after every ``lotline db upgrade`` (as the owner), so tables
added by new migrations are granted too (``lotline db upgrade --app-role lotline_app``).
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.errors import Conflict, InvalidInput

# Tables the application may read and append to, never change: the audit trail and Alembic's marker.
APPEND_ONLY_FOR_APP = ("audit_entries",)
READ_ONLY_FOR_APP = ("alembic_version",)
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _role(name: str) -> str:
    if not _ROLE_NAME.fullmatch(name):
        raise InvalidInput(
            "a role name is lowercase letters, digits and underscores (at most 63)", field="role"
        )
    return f'"{name}"'


async def grant_app_role(engine: AsyncEngine, role: str, *, password: str | None = None) -> list[str]:
    """Create (if needed) and grant the application's role; returns the statements it ran."""
    if engine.dialect.name != "postgresql":
        raise InvalidInput("application roles exist on PostgreSQL only", field="database_url")
    quoted = _role(role)
    statements: list[str] = []
    async with engine.begin() as conn:
        exists = await conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
        owner = await conn.scalar(
            text("SELECT 1 FROM pg_tables WHERE schemaname = 'public' AND tableowner = :r LIMIT 1"),
            {"r": role},
        )
        if owner:
            raise Conflict(
                f"{role} owns tables of the schema; the application role must own none", field="role"
            )
        if not exists:
            statements.append(f"CREATE ROLE {quoted} LOGIN")
        if password:
            # A literal, not a bind parameter: utility statements take no parameters. Quoted by the server.
            literal = await conn.scalar(text("SELECT quote_literal(:p)"), {"p": password})
            statements.append(f"ALTER ROLE {quoted} LOGIN PASSWORD {literal}")
        statements += [
            f"GRANT USAGE ON SCHEMA public TO {quoted}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}",
            *(f"REVOKE UPDATE, DELETE, TRUNCATE ON {t} FROM {quoted}" for t in APPEND_ONLY_FOR_APP),
            *(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {t} FROM {quoted}" for t in READ_ONLY_FOR_APP),
        ]
        for sql in statements:
            await conn.execute(text(sql))
    return [s.split(" PASSWORD ")[0] + (" PASSWORD ***" if " PASSWORD " in s else "") for s in statements]
