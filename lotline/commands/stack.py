"""Commands that run Lotline's processes: the embedded dev stack and each part on its own."""

from __future__ import annotations

import asyncio

import typer

from lotline.settings import get_settings


def register(app: typer.Typer) -> None:
    """Add `dev`, `api`, `worker` and `mailserver` to the `lotline` command."""
    app.command("dev")(dev)
    app.command("api")(api)
    app.command("worker")(worker)
    app.command("mailserver")(mailserver)


def dev() -> None:
    """Run the embedded stack (Temporal dev server, API, worker, dev mailbox) until Ctrl-C."""
    from lotline import devstack

    code = asyncio.run(devstack.run(get_settings()))
    raise typer.Exit(code)


def api() -> None:
    """Serve the REST API with uvicorn on LOTLINE_API_HOST:LOTLINE_API_PORT."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        # Behind a proxy in production the client address comes from X-Forwarded-For.
        proxy_headers=True,
    )


def worker() -> None:
    """Run the Temporal worker for every registered workflow and activity until SIGINT/SIGTERM."""
    from lotline.worker import main

    main(get_settings())


def mailserver() -> None:
    """Run the dev mailbox: SMTP on LOTLINE_SMTP_HOST:LOTLINE_SMTP_PORT, mail kept in var/mailbox."""
    from notifications.devmail import serve

    settings = get_settings()
    serve(settings.smtp_host, settings.smtp_port, settings.var_dir / "mailbox")
