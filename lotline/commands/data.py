"""`lotline import DIR` and `lotline export DIR`: the CSV files of the import contract."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import OperationalError, ProgrammingError

from domain.audit import acting_as
from domain.csvfiles import CSV_COLUMNS, describe
from domain.db import make_engine, make_session_factory
from domain.errors import DomainError
from domain.exports import export_csv
from domain.imports import ImportIssue, ImportRejected, ImportResult, import_csv
from lotline.settings import get_settings

# Files with at least this many rows get a progress bar.
LARGE_FILE_ROWS = 5000
CONTRACT = escape(
    "Files ([optional] columns may be empty or left out):\n\n" + "\n\n".join(describe().splitlines())
)


def _login() -> str | None:
    """Who runs the command, for the ledger entries the import posts."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment
        return None


def _issues_table(title: str, issues: list[ImportIssue]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("file", "line", "column", "reason"):
        table.add_column(column, justify="right" if column == "line" else "left", overflow="fold")
    for i in issues:
        table.add_row(i.file, str(i.line), i.column or "", i.reason)
    return table


async def _import(files: dict[str, Path], progress: Progress) -> ImportResult:
    tasks: dict[str, TaskID] = {}

    def on_progress(step: str, done: int, total: int) -> None:
        if step not in tasks:
            if total < LARGE_FILE_ROWS:
                return
            tasks[step] = progress.add_task(step, total=total)
        progress.update(tasks[step], completed=done, total=total)

    engine = make_engine(get_settings().database_url)
    try:
        login = _login()
        # The audit trail names who imported: the operating-system login running the command.
        with acting_as(f"cli:{login}" if login else "cli"):
            async with make_session_factory(engine)() as session, session.begin():
                return await import_csv(session, files=files, on_progress=on_progress, user=login)
    finally:
        await engine.dispose()


def import_command(
    directory: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, dir_okay=True, help="folder holding the CSV files")
    ],
) -> None:
    """Import the CSV files in DIR in one transaction: all or nothing; the same rows again change nothing."""
    console = Console()
    files = {name: directory / name for name in CSV_COLUMNS if (directory / name).is_file()}
    for other in sorted(directory.glob("*.csv")):
        if other.name not in CSV_COLUMNS:
            console.print(f"[yellow]warning:[/yellow] {other.name} is not a file of the import; ignored")
    if not files:
        console.print(f"[red]no import files in {directory}[/red]; expected any of: {', '.join(CSV_COLUMNS)}")
        raise typer.Exit(1)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    try:
        with progress:
            result = asyncio.run(_import(files, progress))
    except ImportRejected as exc:
        console.print(_issues_table(f"{len(exc.issues)} error(s); nothing was imported", exc.issues))
        raise typer.Exit(1) from None
    except DomainError as exc:
        console.print(f"[red]{exc.reason}[/red]")
        raise typer.Exit(1) from None
    except (OperationalError, ProgrammingError) as exc:
        console.print(f"[red]the store is not ready ({exc.orig}); run `lotline db upgrade` first[/red]")
        raise typer.Exit(1) from None
    if result.warnings:
        console.print(_issues_table("Warnings", result.warnings))
    table = Table(title="Imported", title_justify="left")
    for column in ("file", "created", "unchanged"):
        table.add_column(column, justify="left" if column == "file" else "right")
    for name, counts in result.files.items():
        table.add_row(name, str(counts.created), str(counts.unchanged))
    console.print(table)


def export_command(
    directory: Annotated[Path, typer.Argument(file_okay=False, help="folder to write the CSV files into")],
    bom: Annotated[
        bool, typer.Option("--bom", help="start each file with a UTF-8 byte-order mark (for Excel)")
    ] = False,
) -> None:
    """Write the store as the CSV files of the import contract into DIR (created if missing)."""

    async def _run() -> dict[str, int]:
        engine = make_engine(get_settings().database_url)
        try:
            async with make_session_factory(engine)() as session:
                return await export_csv(session, directory=directory, bom=bom)
        finally:
            await engine.dispose()

    try:
        counts = asyncio.run(_run())
    except (OperationalError, ProgrammingError) as exc:
        Console().print(f"[red]the store is not ready ({exc.orig}); run `lotline db upgrade` first[/red]")
        raise typer.Exit(1) from None
    for name, n in counts.items():
        typer.echo(f"{directory / name}: {n} rows")


def register(app: typer.Typer) -> None:
    """Add `import` and `export` to the `lotline` command."""
    app.command("import", epilog=CONTRACT)(import_command)
    app.command("export", epilog=CONTRACT)(export_command)
