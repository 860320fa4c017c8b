"""What a task page shows of the record a task belongs to, per record type.

A loader reads the record through the API's own read handler (the same data ``GET /api/...`` shows)
and names the partial template that draws it. Record types without a loader get the generic view
(type, id and the task's details). Add one with::

    @record_view("capa")
    async def _capa(session, record_id):
        return RecordView("pages/records/capa.html", {"capa": await capa_api.get_capa(record_id, session)},
                          title=("CAPA {reference}", {...}), href=f"/capas/{record_id}")
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.routes import recalls as recalls_api
from domain.errors import NotFound


@dataclass
class RecordView:
    """A record, ready to draw: its partial template and context, a title, and its own page (if any)."""

    template: str
    context: dict[str, Any]
    title: tuple[str, dict[str, Any]]  # a message of the catalogue and its values
    href: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


RecordLoader = Callable[[AsyncSession, int], Awaitable[RecordView]]
RECORD_VIEWS: dict[str, RecordLoader] = {}


def record_view(record_type: str) -> Callable[[RecordLoader], RecordLoader]:
    """Register the loader of one record type."""

    def register(loader: RecordLoader) -> RecordLoader:
        RECORD_VIEWS[record_type] = loader
        return loader

    return register


async def load_record(session: AsyncSession, record_type: str, record_id: int) -> RecordView:
    """The record's view, or the generic one for a type without a loader (or a record not found)."""
    loader = RECORD_VIEWS.get(record_type)
    generic = RecordView(
        "pages/records/_generic.html",
        {"record_type": record_type, "record_id": record_id},
        title=("{type} {id}", {"type": record_type, "id": record_id}),
    )
    if loader is None:
        return generic
    try:
        return await loader(session, record_id)
    except NotFound:  # the task outlived its record, or names one this store does not hold
        return generic


@record_view("recall")
async def _recall(session: AsyncSession, record_id: int) -> RecordView:
    recall = await recalls_api.get_recall(recall_id=record_id, session=session)
    return RecordView(
        "pages/records/recall.html",
        {"recall": recall},
        title=("Recall {reference}", {"reference": recall.reference}),
        href=f"/recalls/{record_id}",
    )


@record_view("capa")
async def _capa(session: AsyncSession, record_id: int) -> RecordView:
    from api.routes import capa as capa_api

    capa = await capa_api.get_capa(capa_id=record_id, session=session)
    return RecordView(
        "pages/records/capa.html",
        {"capa": capa},
        title=("CAPA {reference}", {"reference": capa.reference}),
        href=f"/capas/{record_id}",
    )


@record_view("change")
async def _change(session: AsyncSession, record_id: int) -> RecordView:
    from api.routes import changes as changes_api

    change = await changes_api.get_change(change_id=record_id, session=session)
    return RecordView(
        "pages/records/change.html",
        {"change": change},
        title=("Change {reference}", {"reference": change.reference}),
        href=f"/changes/{record_id}",
    )


@record_view("lot_release")
async def _lot_release(session: AsyncSession, record_id: int) -> RecordView:
    """A lot release; ``extra["release"]`` gives the sign-off form the quantity to split."""
    from api.routes import quality as quality_api

    insp = await quality_api.get_inspection(inspection_id=record_id, session=session)
    return RecordView(
        "pages/records/lot_release.html",
        {"insp": insp},
        title=("Release of lot {lot}", {"lot": f"{insp.product_code}/{insp.lot_number}"}),
        href=f"/releases/{record_id}",
        extra={"release": {"on_hand": insp.on_hand, "evaluation": insp.evaluation.outcome.value}},
    )
