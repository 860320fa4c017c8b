"""`lotline audit verify`: recompute the audit trail's hash chain; exit 1 when anything was tampered with."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from sqlalchemy.exc import OperationalError, ProgrammingError

from domain.audit.verify import VerifyReport, verify_chain
from domain.db import make_engine, make_session_factory
from lotline.settings import get_settings

audit_app = typer.Typer(help="The audit trail (21 CFR Part 11).", no_args_is_help=True)


async def _verify(anchor: tuple[int, str] | None) -> VerifyReport:
    engine = make_engine(get_settings().database_url)
    try:
        async with make_session_factory(engine)() as session:
            return await verify_chain(session, anchor=anchor)
    finally:
        await engine.dispose()


def _anchor(value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    seq, sep, digest = value.partition(":")
    if not sep or not seq.isdigit() or len(digest) != 64:
        raise typer.BadParameter("give SEQ:HASH as printed by an earlier `lotline audit verify`")
    return int(seq), digest.lower()


@audit_app.command("verify")
def verify(
    anchor: Annotated[
        str | None,
        typer.Option(help="SEQ:HASH of a head recorded earlier; catches entries cut from the end"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Recompute every hash and link; print OK or each changed, deleted or reordered entry (exit 1)."""
    try:
        report = asyncio.run(_verify(_anchor(anchor)))
    except (OperationalError, ProgrammingError) as exc:
        typer.secho(
            f"error: the store is not ready ({exc.orig}); run `lotline db upgrade` first",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(code=2) from exc
    if as_json:
        typer.echo(json.dumps(report.model_dump(), indent=2))
    elif report.ok:
        head = f"; head {report.head_seq}:{report.head_hash}" if report.head_seq else ""
        typer.echo(f"OK: {report.entries} entries, chain intact{head}")
    else:
        for finding in report.findings:
            seqs = ", ".join(str(s) for s in finding.seqs)
            typer.secho(f"{finding.kind.upper()} seq {seqs}: {finding.detail}", fg=typer.colors.RED)
        typer.echo(f"{len(report.findings)} finding(s) in {report.entries} entries")
    if not report.ok:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add ``lotline audit`` to the CLI."""
    app.add_typer(audit_app, name="audit")
