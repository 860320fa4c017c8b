"""`lotline trace`: where a lot went (forward) or what it was made from (backward)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import OperationalError, ProgrammingError

from domain.db import make_engine, make_session_factory
from domain.errors import DomainError
from domain.scope import BackwardTrace, ForwardTrace
from domain.trace import backward_trace, forward_trace, resolve_origin
from lotline.settings import get_settings

# Rows of each table printed without --json; the JSON always carries everything.
SHOWN = 50


async def _trace(
    *,
    product: str | None,
    lot: str | None,
    serial: str | None,
    gs1: str | None,
    backward: bool,
    include_shipments: bool,
) -> ForwardTrace | BackwardTrace:
    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        async with make_session_factory(engine)() as session:
            lot_ids = await resolve_origin(
                session, product_code=product, lot_number=lot, serial=serial, gs1=gs1
            )
            if backward:
                return await backward_trace(session, lot_ids, max_depth=settings.trace_max_depth)
            return await forward_trace(
                session, lot_ids, max_depth=settings.trace_max_depth, include_shipments=include_shipments
            )
    finally:
        await engine.dispose()


def _table(title: str, columns: list[str], rows: list[list[object]], total: int) -> Table:
    more = f" (first {SHOWN} of {total}; --json for all)" if total > len(rows) else ""
    table = Table(title=f"{title}{more}", title_justify="left")
    for c in columns:
        table.add_column(c, justify="right" if c in ("depth", "quantity", "lots") else "left")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


def _print(result: ForwardTrace | BackwardTrace) -> None:
    console = Console()
    origin = ", ".join(f"{o.product_code}/{o.lot_number}" for o in result.origin)
    lots = result.lots
    console.print(f"[bold]{result.direction.capitalize()} trace from {origin}[/bold]: {len(lots)} lots")
    console.print(
        _table(
            "Lots",
            ["depth", "product", "lot", "expires", "path"],
            [[x.depth, x.product_code, x.lot_number, x.expires_on, " → ".join(x.path)] for x in lots[:SHOWN]],
            len(lots),
        )
    )
    if isinstance(result, ForwardTrace):
        on_hand = sum(s.quantity for s in result.stock)
        console.print(f"On hand: {on_hand} units at {len({s.location_code for s in result.stock})} locations")
        console.print(
            _table(
                "Stock",
                ["location", "product", "lot", "status", "quantity"],
                [
                    [s.location_code, s.product_code, s.lot_number, s.status.value, s.quantity]
                    for s in result.stock[:SHOWN]
                ],
                len(result.stock),
            )
        )
        shipped = sum(c.quantity for c in result.consignees)
        console.print(f"Shipped: {shipped} units to {len(result.consignees)} consignees")
        console.print(
            _table(
                "Consignees",
                ["code", "name", "region", "quantity", "lots", "first shipped", "last shipped"],
                [
                    [c.code, c.name, c.region, c.quantity, c.lots, c.first_shipped_on, c.last_shipped_on]
                    for c in result.consignees[:SHOWN]
                ],
                len(result.consignees),
            )
        )
    for warning in result.warnings:
        console.print(f"[bold yellow]warning:[/bold yellow] {warning}")


def trace(
    product: Annotated[
        str | None, typer.Option("--product", help="Product code (with --lot or --serial).")
    ] = None,
    lot: Annotated[str | None, typer.Option("--lot", help="Lot number.")] = None,
    serial: Annotated[str | None, typer.Option("--serial", help="Serial number of one unit.")] = None,
    gs1: Annotated[
        str | None,
        typer.Option(
            "--gs1", help="GS1 element string: '(01)…(10)…', or raw with FNC1 (ASCII 29) or '|' separators."
        ),
    ] = None,
    backward: Annotated[
        bool, typer.Option("--backward", help="Trace to the component lots instead.")
    ] = False,
    shipments: Annotated[
        bool, typer.Option("--shipments/--no-shipments", help="List every shipment line (forward, --json).")
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole trace as one JSON object.")
    ] = False,
) -> None:
    """Trace a lot forward (lots made from it, stock, shipments, consignees) or backward (its components)."""
    try:
        result = asyncio.run(
            _trace(
                product=product,
                lot=lot,
                serial=serial,
                gs1=gs1,
                backward=backward,
                include_shipments=shipments,
            )
        )
    except DomainError as exc:
        # --lot rather than lot_number: name the option the person typed.
        option = {"product_code": "--product", "lot_number": "--lot", "serial": "--serial", "gs1": "--gs1"}
        where = f"{option.get(exc.field or '', exc.field)}: " if exc.field else ""
        typer.secho(f"error: {where}{exc.reason}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from exc
    except (OperationalError, ProgrammingError) as exc:
        typer.secho(
            f"error: the store is not ready ({exc.orig}); run `lotline db upgrade` first",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(code=1) from exc
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        _print(result)


def register(app: typer.Typer) -> None:
    """Add `lotline trace` to the command line."""
    app.command("trace")(trace)
