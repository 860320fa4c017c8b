"""Recall reports rendered from the records: event report, progress, US status, CN plan, US 806 and the
summary with effectiveness and reconciliation. Stored once per kind and sequence."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.capa.service import capas_for_recall
from domain.models import Consignee, Lot, Product
from domain.recalls.models import (
    RecallConsignee,
    RecallExposure,
    RecallLot,
    RecallReport,
    Response,
    ResponseQuantity,
)
from domain.recalls.service import get_recall, progress, reconciliation_mismatches
from domain.tasks.service import signatures_for

TITLES = {
    "event": "Recall event report",
    "cn_event": "医疗器械召回事件报告表 / Recall event report",
    "cn_plan": "调查评估报告和召回计划 / Investigation report and recall plan",
    "progress": "召回进展报告 / Recall progress report",
    "us_status": "Recall status report (21 CFR 7.53)",
    "us_806": "Report of correction or removal (21 CFR 806.10)",
    "summary": "召回总结报告 / Recall summary and effectiveness report",
}


@lru_cache
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


async def report_data(session: AsyncSession, *, recall_id: int) -> dict:
    """Everything a report states, read from the store."""
    recall = await get_recall(session, recall_id)
    prog = await progress(session, recall_id=recall_id)
    lots = (
        await session.execute(
            select(
                Product.code,
                Product.name,
                Product.gtin,
                Lot.lot_number,
                Lot.expires_on,
                RecallLot.depth,
                RecallLot.units_on_hand,
                RecallLot.version,
            )
            .join(Lot, Lot.id == RecallLot.lot_id)
            .join(Product, Product.id == Lot.product_id)
            .where(RecallLot.recall_id == recall_id)
            .order_by(RecallLot.depth, Product.code, Lot.lot_number)
        )
    ).all()
    exposures = (
        await session.execute(
            select(
                Consignee.code,
                Consignee.name,
                Consignee.region,
                Product.code,
                Lot.lot_number,
                RecallExposure.quantity,
                RecallExposure.first_shipped_on,
                RecallExposure.last_shipped_on,
                RecallConsignee.state,
                RecallConsignee.first_sent_at,
                RecallConsignee.acknowledged_at,
            )
            .join(Consignee, Consignee.id == RecallExposure.consignee_id)
            .join(Lot, Lot.id == RecallExposure.lot_id)
            .join(Product, Product.id == Lot.product_id)
            .join(
                RecallConsignee,
                (RecallConsignee.recall_id == RecallExposure.recall_id)
                & (RecallConsignee.consignee_id == RecallExposure.consignee_id),
            )
            .where(RecallExposure.recall_id == recall_id)
            .order_by(Consignee.code, Product.code, Lot.lot_number)
        )
    ).all()
    recovered = await session.scalar(
        select(
            func.coalesce(
                func.sum(ResponseQuantity.returned + ResponseQuantity.destroyed + ResponseQuantity.corrected),
                0,
            )
        )
        .join(Response, Response.id == ResponseQuantity.response_id)
        .where(Response.recall_id == recall_id)
    )
    shipped = sum(int(e[5]) for e in exposures)
    mismatches = await reconciliation_mismatches(session, recall_id)
    codes = dict((await session.execute(select(Consignee.id, Consignee.code))).all()) if mismatches else {}
    lot_labels = (
        dict(
            (
                await session.execute(
                    select(Lot.id, Product.code + "/" + Lot.lot_number)
                    .join(Product, Product.id == Lot.product_id)
                    .where(Lot.id.in_({m["lot_id"] for m in mismatches}))
                )
            ).all()
        )
        if mismatches
        else {}
    )
    sigs = await signatures_for(session, record_type="recall", record_id=recall_id)
    linked = await capas_for_recall(session, recall_id=recall_id)
    return {
        "recall": recall,
        "progress": prog,
        "lots": [
            dict(
                zip(
                    ("product", "name", "gtin", "lot", "expires_on", "depth", "on_hand", "version"),
                    r,
                    strict=True,
                )
            )
            for r in lots
        ],
        "exposures": [
            dict(
                zip(
                    (
                        "consignee",
                        "name",
                        "region",
                        "product",
                        "lot",
                        "quantity",
                        "first_shipped",
                        "last_shipped",
                        "state",
                        "sent_at",
                        "acknowledged_at",
                    ),
                    r,
                    strict=True,
                )
            )
            for r in exposures
        ],
        "units_shipped": shipped,
        "units_on_hand_at_scope": sum(int(r[6]) for r in lots),
        "units_recovered": int(recovered or 0),
        "mismatches": [
            {
                **m,
                "consignee": codes.get(m["consignee_id"], m["consignee_id"]),
                "lot": lot_labels.get(m["lot_id"], m["lot_id"]),
            }
            for m in mismatches
        ],
        "signatures": sigs,
        "capas": [{"reference": c.reference, "title": c.title, "status": c.status.value} for c in linked],
        "generated_at": datetime.now(UTC),
    }


async def render_and_store(
    session: AsyncSession, *, recall_id: int, kind: str, sequence: int
) -> RecallReport:
    """Render the report of ``kind`` from the records and store it; the same kind and sequence once."""
    existing = await session.scalar(
        select(RecallReport).where(
            RecallReport.recall_id == recall_id, RecallReport.kind == kind, RecallReport.sequence == sequence
        )
    )
    if existing is not None:
        return existing
    if kind not in TITLES:
        raise ValueError(f"unknown report kind {kind}")
    data = await report_data(session, recall_id=recall_id)
    data["kind"], data["title"], data["sequence"] = kind, TITLES[kind], sequence
    text = _env().get_template("report.txt.j2").render(**data)
    html = _env().get_template("report.html.j2").render(**data)
    prog = data["progress"]
    report = RecallReport(
        recall_id=recall_id,
        kind=kind,
        sequence=sequence,
        title=f"{data['recall'].reference} {TITLES[kind]}",
        body_text=text,
        body_html=html,
        data={
            "consignees": prog.consignees,
            "sent": prog.sent,
            "acknowledged": prog.acknowledged,
            "overdue": prog.overdue,
            "units_shipped": data["units_shipped"],
            "units_recovered": data["units_recovered"],
            "mismatches": len(data["mismatches"]),
        },
    )
    session.add(report)
    await session.flush()
    return report
