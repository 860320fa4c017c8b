"""The ``lotline`` command: run the stack, trace, import and export, manage users and the store."""

from __future__ import annotations

import asyncio

import typer

from lotline.settings import get_settings

app = typer.Typer(help="Lotline: medical-device lot traceability and recalls.", no_args_is_help=True)
db_app = typer.Typer(help="The store's schema.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration to the configured database."""
    from domain.db import make_engine
    from domain.migrate import upgrade

    async def _run() -> None:
        engine = make_engine(get_settings().database_url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(_run())
    typer.echo("store is at the newest schema")


# Each area registers its commands below (one line each).
from lotline.commands import users as _users; _users.register(app)  # noqa: E402, E702, I001
from lotline.commands import stack as _stack; _stack.register(app)  # noqa: E402, E702, I001
from lotline.commands import trace as _trace; _trace.register(app)  # noqa: E402, E702, I001
from lotline.commands import data as _data; _data.register(app)  # noqa: E402, E702, I001
from lotline.commands import audit as _audit; _audit.register(app)  # noqa: E402, E702, I001
