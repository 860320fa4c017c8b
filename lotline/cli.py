"""The ``lotline`` command: run the stack, trace, import and export, manage users and the store."""

from __future__ import annotations

import asyncio

import typer

from lotline.settings import get_settings

app = typer.Typer(help="Lotline: medical-device lot traceability and recalls.", no_args_is_help=True)
db_app = typer.Typer(help="The store's schema.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    app_role: str | None = typer.Option(
        None,
        "--app-role",
        help="After migrating (as the schema owner), create and grant the role the API and worker connect "
        "as on PostgreSQL: it owns nothing and cannot update or delete the audit trail.",
    ),
    app_role_password: str | None = typer.Option(
        None, "--app-role-password", envvar="POSTGRES_APP_PASSWORD", help="Login password for --app-role."
    ),
) -> None:
    """Apply every migration to the configured database."""
    from domain.db import make_engine
    from domain.db_roles import grant_app_role
    from domain.errors import DomainError
    from domain.migrate import upgrade

    async def _run() -> list[str]:
        engine = make_engine(get_settings().database_url)
        try:
            await upgrade(engine)
            if app_role:
                return await grant_app_role(engine, app_role, password=app_role_password)
            return []
        finally:
            await engine.dispose()

    try:
        granted = asyncio.run(_run())
    except DomainError as exc:
        typer.echo(f"{exc.field}: {exc.reason}", err=True)
        raise typer.Exit(2) from exc
    typer.echo("store is at the newest schema")
    for statement in granted:
        typer.echo(f"  {statement}")


# Each area registers its commands (after the `db` group above, so the help lists it first).
from lotline.commands import audit, data, stack, trace, users  # noqa: E402

for _area in (users, stack, trace, data, audit):
    _area.register(app)
