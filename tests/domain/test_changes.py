"""Change control in the store, on SQLite and PostgreSQL: the impact reaches lots in stock and lots
already delivered (with consignee counts), input is refused naming the field, open blocking changes
are named for release, and document versions answer "which was in force on date X"."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from domain import inventory
from domain.changes import policy
from domain.changes import service as changes
from domain.changes.models import ChangeImpactLot, ChangeTask, DocumentVersion
from domain.changes.payloads import (
    ChangeKind,
    ChangeStatus,
    DocumentChange,
    DocumentStatus,
    ImpactSubmission,
    ImplementationStart,
    ImplementationTaskSpec,
    OverdueCheck,
    RiskRating,
)
from domain.enums import MovementKind, Role
from domain.errors import Conflict, InvalidInput, NotFound
from domain.models import Shipment, ShipmentLine
from domain.tasks.models import Task
from domain.users import create_user
from tests import factories as f

NOW = datetime(2026, 6, 10, 3, 0, tzinfo=UTC)  # 11:00 at the site (Asia/Shanghai)
TODAY = policy.site_date(NOW)


async def _ship(s, code: str, consignee, lot, quantity: int, on: date) -> None:
    sh = Shipment(ref=code, consignee_id=consignee.id, shipped_on=on)
    s.add(sh)
    await s.flush()
    s.add(ShipmentLine(shipment_id=sh.id, lot_id=lot.id, quantity=quantity))
    await s.flush()


async def _world(s):
    """Product CATH with lots C1 (stock, part blocked, shipped to two hospitals), C2 (only shipped),
    C3 (only stock), C4 (nothing); product OTHER with stock and a shipment that must not count."""
    cath, other = await f.product(s, "CATH"), await f.product(s, "OTHER")
    c1, c2, c3, c4 = [await f.lot(s, cath, n) for n in ("C1", "C2", "C3", "C4")]
    o1 = await f.lot(s, other, "O1")
    wh = await f.location(s, "WH1")
    await inventory.post(s, kind=MovementKind.receipt, lot=c1, location=wh, quantity=50)
    await inventory.post(s, kind=MovementKind.block, lot=c1, location=wh, quantity=10)
    await inventory.post(s, kind=MovementKind.receipt, lot=c3, location=wh, quantity=7)
    await inventory.post(s, kind=MovementKind.receipt, lot=o1, location=wh, quantity=99)
    h1, h2, h3 = [await f.consignee(s, c) for c in ("H1", "H2", "H3")]
    await _ship(s, "S1", h1, c1, 5, date(2026, 3, 1))
    await _ship(s, "S2", h1, c1, 3, date(2026, 3, 9))
    await _ship(s, "S3", h2, c1, 4, date(2026, 3, 5))
    await _ship(s, "S4", h3, c2, 6, date(2026, 4, 1))
    await _ship(s, "S5", h3, o1, 8, date(2026, 4, 2))
    await create_user(
        s, username="owner1", full_name="Owner One", roles=[Role.production], password="pw-123456789"
    )
    return cath, other, (c1, c2, c3, c4)


async def test_impact_counts_lots_in_stock_and_delivered_with_consignees(store):
    async with store.sessions() as s, s.begin():
        cath, _other, (c1, c2, c3, _c4) = await _world(s)
        change = await changes.create_change(
            s,
            kind=ChangeKind.design,
            title="New tip geometry",
            description="Softer tip",
            product_ids=[cath.id],
            initiated_by="qa1",
            at=NOW,
        )
        summary = await changes.compute_impact(s, change_id=change.id, version=1, at=NOW)
        assert summary.products == ["CATH"]
        assert (summary.lots_in_stock, summary.units_on_hand) == (2, 57)  # C1 50 (10 blocked) + C3 7
        assert (summary.lots_delivered, summary.units_delivered) == (2, 18)  # C1 12 + C2 6
        assert summary.consignees == 3  # H1, H2 (C1) and H3 (C2); OTHER's shipment to H3 is not counted
        rows = {
            r.lot_id: r
            for r in await s.scalars(select(ChangeImpactLot).where(ChangeImpactLot.change_id == change.id))
        }
        assert set(rows) == {c1.id, c2.id, c3.id}  # C4 has neither stock nor shipments
        assert (rows[c1.id].on_hand, rows[c1.id].blocked, rows[c1.id].shipped, rows[c1.id].consignees) == (
            50,
            10,
            12,
            2,
        )
        assert (rows[c1.id].first_shipped_on, rows[c1.id].last_shipped_on) == (
            date(2026, 3, 1),
            date(2026, 3, 9),
        )
        assert (rows[c2.id].on_hand, rows[c2.id].shipped, rows[c2.id].consignees) == (0, 6, 1)
        assert (rows[c3.id].on_hand, rows[c3.id].shipped) == (7, 0)

        # Recomputing replaces the snapshot: stock moved meanwhile.
        wh = await f.location(s, "WH2")
        await inventory.post(s, kind=MovementKind.receipt, lot=c2, location=wh, quantity=2)
        again = await changes.compute_impact(s, change_id=change.id, version=2, at=NOW)
        assert (again.version, again.lots_in_stock, again.units_on_hand) == (2, 3, 59)


async def test_references_follow_the_year_and_the_record_hash_binds_the_version(store):
    async with store.sessions() as s, s.begin():
        cath, _o, _lots = await _world(s)
        a = await changes.create_change(
            s, kind="process", title="A", description="a", product_ids=[cath.id], initiated_by="qa1", at=NOW
        )
        b = await changes.create_change(
            s, kind="supplier", title="B", description="b", product_ids=[], initiated_by="qa1", at=NOW
        )
        assert (a.reference, b.reference) == ("CHG-2026-0001", "CHG-2026-0002")
        before = await changes.record_hash(s, a.id)
        await changes.record_impact(
            s,
            submission=ImpactSubmission(
                change_id=a.id,
                username="qa1",
                roles=["qa"],
                risk_assessment="Low: same material",
                risk_rating=RiskRating.low,
                tasks=[ImplementationTaskSpec(title="Update routing", owner="owner1", due_on=TODAY)],
                round=1,
            ),
            at=NOW,
        )
        after = await changes.record_hash(s, a.id)
        assert len(before) == len(after) == 64 and before != after


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"title": "  "}, "title"),
        ({"description": ""}, "description"),
        ({"kind": "colour"}, "kind"),
        ({"product_ids": [], "blocks_release": True}, "blocks_release"),
        ({"effective_on": TODAY - timedelta(days=1)}, "effective_on"),
        ({"kind": ChangeKind.document, "documents": []}, "documents"),
        ({"documents": [DocumentChange(code="NEW-1", version="1")]}, "documents.0.title"),
        ({"documents": [DocumentChange(code="SOP-1", version="A")]}, "documents.0.version"),
        (
            {
                "documents": [
                    DocumentChange(code="X", version="1", title="x"),
                    DocumentChange(code="X", version="2"),
                ]
            },
            "documents.1.code",
        ),
    ],
)
async def test_a_bad_change_is_refused_naming_the_field_and_nothing_is_written(store, override, field):
    async with store.sessions() as s, s.begin():
        cath, _o, _lots = await _world(s)
        await changes.register_document(
            s, code="SOP-1", title="Cleaning", version="A", effective_from=date(2025, 1, 1)
        )
    args = {
        "kind": ChangeKind.design,
        "title": "T",
        "description": "D",
        "product_ids": [cath.id],
        "initiated_by": "qa1",
        "at": NOW,
    } | override
    async with store.sessions() as s:
        with pytest.raises(InvalidInput) as err:
            async with s.begin():
                await changes.create_change(s, **args)
        assert err.value.field == field, err.value.reason
    async with store.sessions() as s:
        assert await changes.open_changes_blocking_release(s, product_id=cath.id) == []
        assert (await s.scalar(select(DocumentVersion).where(DocumentVersion.version != "A"))) is None


async def test_an_impact_submission_is_checked_before_it_reaches_the_workflow(store):
    async with store.sessions() as s, s.begin():
        cath, _o, _lots = await _world(s)
        change = await changes.create_change(
            s,
            kind="design",
            title="T",
            description="D",
            product_ids=[cath.id],
            blocks_release=True,
            initiated_by="qa1",
            at=NOW,
        )
    good = ImplementationTaskSpec(title="Validate", owner="owner1", due_on=TODAY + timedelta(days=3))
    cases = [
        ({"risk_assessment": " "}, "risk_assessment"),
        ({"risk_rating": "extreme"}, "risk_rating"),
        ({"tasks": []}, "tasks"),
        ({"tasks": [good, good.model_copy(update={"owner": "nobody"})]}, "tasks.1.owner"),
        ({"tasks": [good.model_copy(update={"due_on": TODAY - timedelta(days=1)})]}, "tasks.0.due_on"),
        ({"tasks": [good.model_copy(update={"title": ""})]}, "tasks.0.title"),
        ({"product_codes": ["CATH", "NOPE"]}, "product_codes.1"),
        ({"product_codes": []}, "product_codes"),  # it blocks release: it must name products
        ({"effective_on": TODAY - timedelta(days=2)}, "effective_on"),
    ]
    async with store.sessions() as s:
        for override, field in cases:
            args = {"risk_assessment": "r", "risk_rating": "low", "tasks": [good], "today": TODAY} | override
            with pytest.raises(InvalidInput) as err:
                await changes.check_submission(s, change_id=change.id, **args)
            assert err.value.field == field, (override, err.value.reason)
        ids, tasks, docs = await changes.check_submission(
            s, change_id=change.id, risk_assessment="r", risk_rating="high", tasks=[good], today=TODAY
        )
        assert ids is None and docs is None and tasks == [good]
        with pytest.raises(NotFound):
            await changes.check_submission(
                s, change_id=change.id + 99, risk_assessment="r", risk_rating="low", tasks=[good]
            )


async def test_open_blocking_changes_are_named_until_they_end(store):
    async with store.sessions() as s, s.begin():
        cath, other, _lots = await _world(s)
        blocking = await changes.create_change(
            s,
            kind="process",
            title="Sterilisation cycle",
            description="EO cycle change",
            product_ids=[cath.id],
            blocks_release=True,
            initiated_by="qa1",
            at=NOW,
        )
        await changes.create_change(  # affects CATH but does not block its release
            s,
            kind="labelling",
            title="IFU",
            description="typo",
            product_ids=[cath.id],
            initiated_by="qa1",
            at=NOW,
        )
        withdrawn = await changes.create_change(
            s,
            kind="supplier",
            title="Second supplier",
            description="d",
            product_ids=[cath.id, other.id],
            blocks_release=True,
            initiated_by="qa1",
            at=NOW,
        )
        assert await changes.open_changes_blocking_release(s, product_id=cath.id) == [
            blocking.reference,
            withdrawn.reference,
        ]
        assert await changes.open_changes_blocking_release(s, product_id=other.id) == [withdrawn.reference]
        await changes.set_status(s, change_id=withdrawn.id, status=ChangeStatus.withdrawn, note="not needed")
        await changes.set_status(s, change_id=blocking.id, status=ChangeStatus.returned)  # still open
        assert await changes.open_changes_blocking_release(s, product_id=cath.id) == [blocking.reference]
        await changes.set_status(s, change_id=blocking.id, status=ChangeStatus.closed)
        assert await changes.open_changes_blocking_release(s, product_id=cath.id) == []
        assert await changes.open_changes_blocking_release(s, product_id=other.id) == []


async def test_version_in_force_across_versions(store):
    async with store.sessions() as s, s.begin():
        await f.product(s, "CATH")
        v1 = await changes.register_document(
            s, code="SOP-7", title="Final inspection", version="1", effective_from=date(2025, 1, 1)
        )
        with pytest.raises(Conflict):
            await changes.register_document(
                s, code="SOP-7", title="again", version="9", effective_from=date(2025, 1, 1)
            )
        c2 = await changes.create_change(
            s,
            kind="document",
            title="SOP-7 rev 2",
            description="adds a leak test",
            product_ids=[],
            documents=[
                DocumentChange(code="SOP-7", version="2"),
                DocumentChange(code="WI-3", version="A", title="WI"),
            ],
            initiated_by="qa1",
            at=NOW,
        )
        # A draft is never in force.
        assert (await changes.version_in_force(s, document_code="SOP-7", on=TODAY)).version == "1"
        assert await changes.version_in_force(s, document_code="WI-3", on=TODAY) is None
        done = await changes.make_effective(s, change_id=c2.id, at=datetime(2026, 7, 1, 2, 0, tzinfo=UTC))
        assert done.effective_on == date(2026, 7, 1) and done.documents == ["SOP-7 v2", "WI-3 vA"]
        again = await changes.make_effective(s, change_id=c2.id, at=datetime(2026, 9, 1, tzinfo=UTC))
        assert again.effective_on == date(2026, 7, 1)  # a retry changes nothing
        c3 = await changes.create_change(
            s,
            kind="document",
            title="SOP-7 rev 3",
            description="d",
            product_ids=[],
            documents=[DocumentChange(code="SOP-7", version="3")],
            effective_on=date(2026, 8, 15),
            initiated_by="qa1",
            at=NOW,
        )
        # Verified early: it still takes effect on its planned date, never before.
        assert (await changes.make_effective(s, change_id=c3.id, at=NOW)).effective_on == date(2026, 8, 15)

        async def in_force(day: date) -> str | None:
            v = await changes.version_in_force(s, document_code="SOP-7", on=day)
            return v.version if v else None

        assert await in_force(date(2024, 12, 31)) is None
        assert await in_force(date(2025, 1, 1)) == "1"
        assert await in_force(date(2026, 6, 30)) == "1"
        assert await in_force(date(2026, 7, 1)) == "2"
        assert await in_force(date(2026, 8, 14)) == "2"
        assert await in_force(date(2026, 8, 15)) == "3"
        assert await in_force(date(2030, 1, 1)) == "3"
        await s.refresh(v1)
        assert (v1.status, v1.effective_to) == (DocumentStatus.superseded, date(2026, 7, 1))
        versions = await changes.document_versions(s, document_code="SOP-7")
        assert [(v.version, v.effective_from, v.effective_to) for v in versions] == [
            ("1", date(2025, 1, 1), date(2026, 7, 1)),
            ("2", date(2026, 7, 1), date(2026, 8, 15)),
            ("3", date(2026, 8, 15), None),
        ]
        with pytest.raises(NotFound) as err:
            await changes.version_in_force(s, document_code="NOPE", on=TODAY)
        assert err.value.field == "code"


async def test_overdue_tasks_are_escalated_in_one_batch_rung_by_rung(store):
    async with store.sessions() as s, s.begin():
        cath, _o, _lots = await _world(s)
        await create_user(
            s, username="owner2", full_name="Owner Two", roles=[Role.qa], password="pw-123456789"
        )
        change = await changes.create_change(
            s, kind="process", title="T", description="D", product_ids=[cath.id], initiated_by="qa1", at=NOW
        )
        due = TODAY + timedelta(days=1)
        await changes.record_impact(
            s,
            submission=ImpactSubmission(
                change_id=change.id,
                username="qa1",
                roles=["qa"],
                risk_assessment="r",
                risk_rating="low",
                tasks=[
                    ImplementationTaskSpec(title="One", owner="owner1", due_on=due),
                    ImplementationTaskSpec(title="Two", owner="owner2", due_on=due),
                    ImplementationTaskSpec(title="Later", owner="owner2", due_on=due + timedelta(days=30)),
                ],
                round=1,
            ),
            at=NOW,
        )
        state = await changes.start_implementation(
            s, **ImplementationStart(change_id=change.id, workflow_id="change-x").model_dump()
        )
        assert len(state.tasks) == 3 and all(t.inbox_task_id for t in state.tasks)
        due_at = policy.end_of_site_day(due)
        ladder = policy.OVERDUE_LADDER
        state = await changes.escalate_overdue(
            s, check=OverdueCheck(change_id=change.id, at=due_at, ladder=ladder)
        )
        assert [t.level for t in state.tasks] == [1, 1, 0]  # both due tasks reminded at once
        later = due_at + timedelta(days=3)
        state = await changes.escalate_overdue(
            s, check=OverdueCheck(change_id=change.id, at=later, ladder=ladder)
        )
        assert [t.level for t in state.tasks] == [2, 2, 0]
        inbox = {
            t.assignee + t.title: t
            for t in await s.scalars(
                select(Task).where(Task.record_type == "change", Task.record_id == change.id)
            )
        }
        one = next(t for k, t in inbox.items() if k.endswith("One"))
        assert one.reminders_sent == 2 and one.escalated_to == ["qa_manager"]
        # Nothing more is due: a repeat is a no-op.
        state = await changes.escalate_overdue(
            s, check=OverdueCheck(change_id=change.id, at=later, ladder=ladder)
        )
        assert [t.level for t in state.tasks] == [2, 2, 0] and one.reminders_sent == 2
        rows = list(await s.scalars(select(ChangeTask).where(ChangeTask.change_id == change.id)))
        assert {r.overdue_since for r in rows if r.title != "Later"} == {due_at}
