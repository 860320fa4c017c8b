"""`lotline user add` and `lotline user list`: manage the people who sign in."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import make_engine, make_session_factory
from domain.enums import Role
from domain.errors import DomainError
from domain.users import MIN_PASSWORD_LENGTH, create_user, list_users
from lotline.settings import get_settings

T = TypeVar("T")

ROLE_NAMES = ", ".join(r.value for r in Role)


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction on the configured store; refusals exit 2, a missing schema exits 1."""

    async def _main() -> T:
        engine = make_engine(get_settings().database_url)
        try:
            async with make_session_factory(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(_main())
    except DomainError as exc:
        where = f"{exc.field}: " if exc.field else ""
        typer.secho(f"error: {where}{exc.reason}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from exc
    except (OperationalError, ProgrammingError) as exc:
        # Most often the schema is not there yet; say how to make it instead of a traceback.
        typer.secho(
            f"error: the store is not ready ({exc.orig}); run `lotline db upgrade` first",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(code=1) from exc


def add(
    username: Annotated[str, typer.Argument(help="Sign-in name, no spaces.")],
    role: Annotated[list[str], typer.Option("--role", "-r", help=f"A role ({ROLE_NAMES}); repeat for more.")],
    full_name: Annotated[str | None, typer.Option("--full-name", help="Printed name on signatures.")] = None,
    email: Annotated[str | None, typer.Option("--email", help="E-mail for tasks and reminders.")] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            help=f"At least {MIN_PASSWORD_LENGTH} characters; asked for (hidden, twice) when left out.",
        ),
    ] = None,
) -> None:
    """Add a user with one or more roles."""
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def _add(session: AsyncSession) -> list[str]:
        user = await create_user(
            session,
            username=username,
            full_name=full_name or username,
            roles=role,
            password=password,
            email=email,
        )
        return list(user.roles)

    roles = _run(_add)
    typer.echo(f"added user {username.strip()} with roles: {', '.join(roles)}")


def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List users with their roles and whether they may sign in."""

    async def _list(session: AsyncSession) -> list[dict[str, object]]:
        return [
            {
                "username": u.username,
                "full_name": u.full_name,
                "email": u.email,
                "roles": list(u.roles),
                "active": u.active,
            }
            for u in await list_users(session)
        ]

    users = _run(_list)
    if as_json:
        import json

        typer.echo(json.dumps(users, ensure_ascii=False, indent=2))
        return
    if not users:
        typer.echo("no users yet: add one with `lotline user add USERNAME --role ROLE`")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("username", "full name", "roles", "e-mail", "active")
    for u in users:
        table.add_row(
            str(u["username"]),
            str(u["full_name"]),
            ", ".join(u["roles"]),  # type: ignore[arg-type]
            str(u["email"] or ""),
            "yes" if u["active"] else "no",
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the `user` command group to the `lotline` command."""
    user_app = typer.Typer(help="People who sign in, and their roles.", no_args_is_help=True)
    user_app.command("add")(add)
    user_app.command("list")(list_)
    app.add_typer(user_app, name="user")
