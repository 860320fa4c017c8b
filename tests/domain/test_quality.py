"""QC lot release in the store, on SQLite and PostgreSQL: plans, quarantine, results validation,
evaluation, release blockers and the disposition split through the ledger."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from domain import inventory
from domain.enums import MovementKind, QcStatus, StockStatus
from domain.errors import Conflict, InvalidInput, LotBlocked, NotFound
from domain.models import Lot, LotHold, StockEntry
from domain.quality import service as quality
from domain.quality.models import Disposition, Inspection, InspectionResult, Nonconformance
from domain.quality.payloads import (
    CharacteristicKind,
    CharacteristicSpec,
    DispositionOutcome,
    DispositionSplit,
    EvaluationOutcome,
    InspectionStatus,
    NonconformanceStatus,
    ResultInput,
)
from domain.tasks import service as tasks
from tests import factories as f

NUM, PF = CharacteristicKind.numeric, CharacteristicKind.pass_fail
PLAN = [
    CharacteristicSpec(name="diameter", kind=NUM, lower=3.9, upper=4.1, unit="mm", sample_size=2),
    CharacteristicSpec(name="seal", kind=PF, sample_size=1),
    CharacteristicSpec(name="burst", kind=NUM, lower=2.0, unit="bar", sample_size=1),
]
PASSING = [
    ResultInput(characteristic="diameter", value=3.9),  # the limits are inclusive
    ResultInput(characteristic="diameter", value=4.1),
    ResultInput(characteristic="seal", passed=True),
    ResultInput(characteristic="burst", value=2.5, unit="bar"),
]


async def _world(s) -> tuple[Lot, Lot, Inspection]:
    """STENT/S-1 (30 at WH1, 20 at WH2) made from WIRE/W-1, under inspection against PLAN."""
    stent, wire = await f.product(s, "STENT"), await f.product(s, "WIRE")
    comp = await f.lot(s, wire, "W-1")
    lot = await f.lot(s, stent, "S-1")
    await f.edge(s, comp, lot, 3)
    wh1, wh2 = await f.location(s, "WH1"), await f.location(s, "WH2")
    await inventory.post(s, kind=MovementKind.receipt, lot=lot, location=wh1, quantity=30)
    await inventory.post(s, kind=MovementKind.receipt, lot=lot, location=wh2, quantity=20)
    await quality.put_plan(s, product_id=stent.id, characteristics=PLAN, created_by="qa1")
    inspection = await quality.start_inspection(s, lot_id=lot.id, initiated_by="qa1")
    return lot, comp, inspection


async def _signature(s, inspection: Inspection, who: str = "rel1", meaning: str = "released") -> int:
    sig = await tasks.sign_record(
        s,
        record_type="lot_release",
        record_id=inspection.id,
        username=who,
        printed_name=who.upper(),
        meaning=meaning,
        reason="",
        record_hash=await quality.record_hash(s, inspection.id),
        auth_method="password re-entered at signing",
    )
    return sig.id


async def test_a_plan_gets_a_new_version_per_change_and_inspections_keep_theirs(store):
    async with store.sessions() as s, s.begin():
        lot, _, inspection = await _world(s)
        assert inspection.plan_version == 1
        v2 = await quality.put_plan(
            s, product_id=lot.product_id, characteristics=[PLAN[1]], created_by="qa2", note="seal only"
        )
        assert v2.version == 2 and [c.name for c in v2.characteristics] == ["seal"]
        current = await quality.current_plan(s, product_id=lot.product_id)
        assert current is not None and current.version == 2
        # The running inspection is still judged against version 1: all three characteristics.
        ev = await quality.evaluate(s, inspection_id=inspection.id)
        assert [c.name for c in ev.characteristics] == ["diameter", "seal", "burst"]


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"name": "d", "kind": NUM, "unit": "mm"}, "characteristics.0.lower", "lower limit, an upper limit"),
        (
            {"name": "d", "kind": NUM, "lower": 5, "upper": 4, "unit": "mm"},
            "characteristics.0.lower",
            "above",
        ),
        ({"name": "d", "kind": NUM, "lower": 1}, "characteristics.0.unit", "unit"),
        ({"name": "s", "kind": PF, "upper": 1}, "characteristics.0.upper", "pass/fail"),
        ({"name": "s", "kind": PF, "sample_size": 0}, "characteristics.0.sample_size", "at least 1"),
        ({"name": " ", "kind": PF}, "characteristics.0.name", "name"),
    ],
)
async def test_a_wrong_plan_is_refused_naming_the_field(store, spec, field, words):
    async with store.sessions() as s, s.begin():
        p = await f.product(s, "STENT")
        with pytest.raises(InvalidInput) as err:
            await quality.put_plan(
                s, product_id=p.id, characteristics=[CharacteristicSpec(**spec)], created_by="qa1"
            )
        assert err.value.field == field and words in err.value.reason
        with pytest.raises(InvalidInput) as err:
            await quality.put_plan(s, product_id=p.id, characteristics=[PLAN[1], PLAN[1]], created_by="qa1")
        assert err.value.field == "characteristics.1.name" and "twice" in err.value.reason
        assert await quality.current_plan(s, product_id=p.id) is None


async def test_starting_an_inspection_quarantines_the_lot_and_blocks_its_stock(store):
    async with store.sessions() as s, s.begin():
        lot, _, inspection = await _world(s)
        ref = f"qc-{lot.id}"
        assert (
            inspection.status == InspectionStatus.awaiting_results and lot.qc_status == QcStatus.quarantined
        )
        assert inspection.workflow_id == f"qc-release-{lot.id}"
        assert await inventory.balance(s, lot_id=lot.id, status=StockStatus.unrestricted) == 0
        assert await inventory.balance(s, lot_id=lot.id, status=StockStatus.blocked) == 50
        entries = list(await s.scalars(select(StockEntry).where(StockEntry.reference == ref)))
        assert sorted((e.kind, e.quantity) for e in entries) == [
            (MovementKind.block, 20),
            (MovementKind.block, 30),
        ]
        assert [(h.reason, h.reference) for h in await inventory.active_holds(s, lot.id)] == [("qc", ref)]
        # Idempotent: asking again returns the inspection under way and blocks nothing twice.
        again = await quality.start_inspection(s, lot_id=lot.id, initiated_by="qa2")
        assert again.id == inspection.id
        assert (
            await s.scalar(select(func.count()).select_from(StockEntry).where(StockEntry.reference == ref))
            == 2
        )
        wh1 = await s.scalar(select(StockEntry.location_id).where(StockEntry.reference == ref).limit(1))
        from domain.models import Location

        with pytest.raises(LotBlocked):
            await inventory.post(
                s, kind=MovementKind.shipment, lot=lot, location=await s.get(Location, wh1), quantity=1
            )


async def test_an_inspection_needs_a_plan_and_an_undecided_lot(store):
    async with store.sessions() as s, s.begin():
        p = await f.product(s, "BARE")
        lot = await f.lot(s, p, "B-1")
        with pytest.raises(Conflict) as err:
            await quality.start_inspection(s, lot_id=lot.id, initiated_by="qa1")
        assert err.value.field == "product_code" and "no inspection plan" in err.value.reason
        await quality.put_plan(s, product_id=p.id, characteristics=[PLAN[1]], created_by="qa1")
        lot.qc_status = QcStatus.released
        with pytest.raises(Conflict) as err:
            await quality.start_inspection(s, lot_id=lot.id, initiated_by="qa1")
        assert "already released" in err.value.reason
        with pytest.raises(NotFound):
            await quality.get_lot(s, product_code="BARE", lot_number="nope")
        assert await s.scalar(select(func.count()).select_from(Inspection)) == 0


@pytest.mark.parametrize(
    ("result", "field", "words"),
    [
        ({"characteristic": "diameter"}, "results.0.value", "give its value"),
        ({"characteristic": "diameter", "value": 4.0, "passed": True}, "results.0.passed", "not passed"),
        ({"characteristic": "diameter", "value": float("nan")}, "results.0.value", "finite"),
        ({"characteristic": "diameter", "value": 4.0, "unit": "in"}, "results.0.unit", "recorded in mm"),
        ({"characteristic": "seal", "value": 1.0}, "results.0.value", "pass/fail"),
        ({"characteristic": "seal"}, "results.0.passed", "pass/fail"),
        ({"characteristic": "colour", "passed": True}, "results.0.characteristic", "no characteristic"),
    ],
)
async def test_results_are_checked_against_the_characteristic_kind(store, result, field, words):
    async with store.sessions() as s, s.begin():
        _, _, inspection = await _world(s)
        good = ResultInput(characteristic="seal", passed=True)
        with pytest.raises(InvalidInput) as err:
            await quality.record_results(
                s, inspection_id=inspection.id, results=[ResultInput(**result), good], recorded_by="prod1"
            )
        assert err.value.field == field and words in err.value.reason
        # All or nothing: the good result in the same batch was not stored either.
        assert await s.scalar(select(func.count()).select_from(InspectionResult)) == 0
        with pytest.raises(InvalidInput) as err:
            await quality.record_result(s, inspection_id=inspection.id, recorded_by="prod1", **result)
        assert err.value.field == field.removeprefix("results.0.")


async def test_results_record_who_and_when_and_freeze_after_the_decision(store):
    async with store.sessions() as s, s.begin():
        _, _, inspection = await _world(s)
        rows = await quality.record_results(
            s, inspection_id=inspection.id, results=PASSING, recorded_by="prod1"
        )
        assert {r.recorded_by for r in rows} == {"prod1"} and all(r.recorded_at.tzinfo for r in rows)
        assert rows[0].unit == "mm" and rows[2].passed is True and rows[2].value is None
        await quality.apply_disposition(
            s,
            inspection_id=inspection.id,
            outcome=DispositionOutcome.released,
            split=None,
            decided_by="rel1",
            signature_id=await _signature(s, inspection),
        )
        with pytest.raises(Conflict) as err:
            await quality.record_result(
                s, inspection_id=inspection.id, characteristic="seal", passed=False, recorded_by="prod1"
            )
        assert err.value.field == "inspection_id" and "no longer change" in err.value.reason


async def test_evaluation_is_incomplete_until_every_sample_then_passes_or_names_the_failures(store):
    async with store.sessions() as s, s.begin():
        _, _, inspection = await _world(s)
        iid = inspection.id
        ev = await quality.evaluate(s, inspection_id=iid)
        assert ev.outcome == EvaluationOutcome.incomplete
        assert ev.missing == {"diameter": 2, "seal": 1, "burst": 1}
        await quality.record_results(s, inspection_id=iid, results=PASSING[:3], recorded_by="prod1")
        ev = await quality.evaluate(s, inspection_id=iid)
        assert ev.outcome == EvaluationOutcome.incomplete and ev.missing == {"burst": 1}
        await quality.record_results(s, inspection_id=iid, results=PASSING[3:], recorded_by="prod2")
        ev = await quality.store_evaluation(s, inspection_id=iid)
        assert (
            ev.outcome == EvaluationOutcome.passed
            and ev.failing == []
            and ev.recorded_by == ["prod1", "prod2"]
        )
        assert (await s.get(Inspection, iid)).status == InspectionStatus.awaiting_release
        # One more diameter sample out of limits, a failed seal: failed, naming both, with the values.
        await quality.record_results(
            s,
            inspection_id=iid,
            results=[
                ResultInput(characteristic="diameter", value=4.25),
                ResultInput(characteristic="seal", passed=False),
                ResultInput(characteristic="burst", value=1e9),  # one-sided limit: no upper bound
            ],
            recorded_by="prod1",
        )
        ev = await quality.evaluate(s, inspection_id=iid)
        assert ev.outcome == EvaluationOutcome.failed and ev.failing == ["diameter", "seal"]
        diameter = ev.characteristics[0]
        assert (diameter.recorded, diameter.out_of_spec, diameter.failing_values) == (3, 1, ["4.25"])
        assert "diameter: 1 of 3 out of 3.9–4.1 mm (4.25)" in ev.summary()


async def test_release_is_blocked_by_a_recall_hold_on_a_component_lot(store):
    async with store.sessions() as s, s.begin():
        lot, comp, inspection = await _world(s)
        await quality.record_results(s, inspection_id=inspection.id, results=PASSING, recorded_by="prod1")
        assert await quality.release_blockers(s, lot_id=lot.id) == []
        await inventory.place_hold(s, lot=comp, reason="recall", reference="recall-7")
        await inventory.place_hold(s, lot=lot, reason="manual", reference="deviation-3")
        sig = await _signature(s, inspection)
        iid, lot_id = inspection.id, lot.id
    async with store.sessions() as s:
        assert await quality.release_blockers(s, lot_id=lot_id) == [
            "component lot WIRE/W-1 is under recall hold recall-7",
            "lot STENT/S-1 is on hold (manual deviation-3)",
        ]
    with pytest.raises(LotBlocked) as err:
        async with store.sessions() as s, s.begin():
            await quality.apply_disposition(
                s,
                inspection_id=iid,
                outcome=DispositionOutcome.released,
                split=None,
                decided_by="rel1",
                signature_id=sig,
            )
    assert "component lot WIRE/W-1 is under recall hold recall-7" in err.value.reason
    async with store.sessions() as s, s.begin():  # nothing changed: still quarantined, still blocked
        assert (await s.get(Lot, lot_id)).qc_status == QcStatus.quarantined
        assert await inventory.balance(s, lot_id=lot_id, status=StockStatus.blocked) == 50
        assert await s.scalar(select(func.count()).select_from(Disposition)) == 0
        # Lifting the holds clears the way.
        for hold in await s.scalars(select(LotHold).where(LotHold.reason.in_(["recall", "manual"]))):
            hold.released_at = hold.placed_at
        await s.flush()
        assert await quality.release_blockers(s, lot_id=lot_id) == []


async def test_the_disposition_splits_the_quantity_through_the_ledger(store):
    async with store.sessions() as s, s.begin():
        lot, _, inspection = await _world(s)
        await quality.record_results(s, inspection_id=inspection.id, results=PASSING, recorded_by="prod1")
        with pytest.raises(InvalidInput) as err:
            await quality.apply_disposition(
                s,
                inspection_id=inspection.id,
                outcome=DispositionOutcome.released,
                split=DispositionSplit(unrestricted=40),
                decided_by="rel1",
                signature_id=await _signature(s, inspection),
            )
        assert (
            err.value.field == "disposition"
            and "accounts for 40 units but the lot has 50" in err.value.reason
        )
        d = await quality.apply_disposition(
            s,
            inspection_id=inspection.id,
            outcome=DispositionOutcome.released,
            split=DispositionSplit(unrestricted=30, blocked=10, scrap=6, sample=4),
            decided_by="rel1",
            signature_id=await _signature(s, inspection),
        )
        assert (d.unrestricted, d.blocked, d.scrap, d.sample, d.outcome) == (30, 10, 6, 4, "released")
        assert await inventory.balance(s, lot_id=lot.id, status=StockStatus.unrestricted) == 30
        assert await inventory.balance(s, lot_id=lot.id, status=StockStatus.blocked) == 10
        assert await inventory.balance(s, lot_id=lot.id) == 40  # scrap and samples left the stock
        moves = dict(
            (
                await s.execute(
                    select(StockEntry.kind, func.sum(StockEntry.quantity))
                    .where(StockEntry.reference == f"qc-{lot.id}")
                    .group_by(StockEntry.kind)
                )
            ).all()
        )
        assert moves == {
            MovementKind.block: 50,  # quarantine
            MovementKind.destruction: 6,
            MovementKind.unblock: 34,  # 30 released + 4 samples
            MovementKind.issue: 4,
        }
        assert lot.qc_status == QcStatus.released and inspection.status == InspectionStatus.released
        assert [h.reason for h in await inventory.active_holds(s, lot.id)] == []
        # Applying the same decision again changes nothing.
        again = await quality.apply_disposition(
            s,
            inspection_id=inspection.id,
            outcome=DispositionOutcome.released,
            split=None,
            decided_by="rel1",
            signature_id=d.signature_id,
        )
        assert again.id == d.id and await inventory.balance(s, lot_id=lot.id) == 40


async def test_a_failed_lot_is_released_only_by_an_approved_concession(store):
    async with store.sessions() as s, s.begin():
        lot, _, inspection = await _world(s)
        failing = [*PASSING[:3], ResultInput(characteristic="burst", value=1.5)]
        await quality.record_results(s, inspection_id=inspection.id, results=failing, recorded_by="prod1")
        sig = await _signature(s, inspection)
        with pytest.raises(Conflict) as err:
            await quality.apply_disposition(
                s,
                inspection_id=inspection.id,
                outcome=DispositionOutcome.released,
                split=None,
                decided_by="rel1",
                signature_id=sig,
            )
        assert "failed its inspection (burst)" in err.value.reason
        with pytest.raises(Conflict):  # a concession without the second signature
            await quality.apply_disposition(
                s,
                inspection_id=inspection.id,
                outcome=DispositionOutcome.concession,
                split=None,
                decided_by="rel1",
                signature_id=sig,
                justification="burst margin accepted by design review DR-12",
            )
        d = await quality.apply_disposition(
            s,
            inspection_id=inspection.id,
            outcome=DispositionOutcome.concession,
            split=None,
            decided_by="rel1",
            signature_id=sig,
            approval_signature_id=await _signature(s, inspection, "mgr1", "approved"),
            justification="burst margin accepted by design review DR-12",
        )
        assert d.outcome == DispositionOutcome.concession and lot.qc_status == QcStatus.released
        (nc,) = await quality.nonconformances_of(s, inspection_id=inspection.id)
        assert nc.status == NonconformanceStatus.closed and nc.disposition == DispositionOutcome.concession
        assert "burst: 1 of 1 out of ≥ 2 bar (1.5)" in nc.description and "DR-12" in nc.description


async def test_a_rejection_opens_a_nonconformance_and_keeps_the_lot_segregated(store):
    async with store.sessions() as s, s.begin():
        lot, _, inspection = await _world(s)
        await quality.record_results(s, inspection_id=inspection.id, results=PASSING, recorded_by="prod1")
        sig = await _signature(s, inspection, meaning="rejected")
        with pytest.raises(InvalidInput) as err:
            await quality.apply_disposition(
                s,
                inspection_id=inspection.id,
                outcome=DispositionOutcome.rejected,
                split=DispositionSplit(unrestricted=50),
                decided_by="rel1",
                signature_id=sig,
            )
        assert "never released" in err.value.reason
        await quality.apply_disposition(
            s,
            inspection_id=inspection.id,
            outcome=DispositionOutcome.rejected,
            split=DispositionSplit(blocked=45, scrap=5),
            decided_by="rel1",
            signature_id=sig,
            justification="batch record incomplete",
            capa=True,
        )
        nc = await s.scalar(select(Nonconformance))
        assert nc.status == NonconformanceStatus.open and nc.capa_requested and nc.capa_id is None
        assert "batch record incomplete" in nc.description
        assert lot.qc_status == QcStatus.rejected
        assert await inventory.balance(s, lot_id=lot.id, status=StockStatus.blocked) == 45
        assert await quality.release_blockers(s, lot_id=lot.id) == [
            "lot STENT/S-1 was rejected by QC; nonconforming product is never released"
        ]


async def test_the_record_hash_binds_the_results(store):
    async with store.sessions() as s, s.begin():
        _, _, inspection = await _world(s)
        before = await quality.record_hash(s, inspection.id)
        assert before == await quality.record_hash(s, inspection.id) and len(before) == 64
        await quality.record_result(
            s, inspection_id=inspection.id, characteristic="seal", passed=True, recorded_by="prod1"
        )
        assert await quality.record_hash(s, inspection.id) != before


async def test_the_sign_off_input_is_checked_before_it_reaches_the_workflow(store):
    async with store.sessions() as s, s.begin():
        _, _, inspection = await _world(s)
        iid = inspection.id
        with pytest.raises(InvalidInput) as err:
            await quality.check_sign_off(
                s,
                record_type="lot_release",
                record_id=iid,
                decision="released",
                split=DispositionSplit(scrap=49),
            )
        assert err.value.field == "disposition" and "49" in err.value.reason
        await quality.check_sign_off(
            s,
            record_type="lot_release",
            record_id=iid,
            decision="released",
            split=DispositionSplit(blocked=50),
        )
        await quality.check_sign_off(s, record_type="lot_release", record_id=iid, decision="released")
        with pytest.raises(InvalidInput) as err:
            await quality.check_sign_off(
                s,
                record_type="lot_release",
                record_id=iid,
                decision="rejected",
                split=DispositionSplit(unrestricted=50),
            )
        assert "never released" in err.value.reason
        with pytest.raises(InvalidInput) as err:
            await quality.check_sign_off(
                s, record_type="recall", record_id=1, decision="approved", split=DispositionSplit()
            )
        assert err.value.field == "disposition" and "takes no disposition" in err.value.reason
        with pytest.raises(InvalidInput) as err:  # a recall approval is never signed "released"
            await quality.check_sign_off(s, record_type="recall", record_id=1, decision="released")
        assert err.value.field == "decision"
        await quality.check_sign_off(s, record_type="recall", record_id=1, decision="approved")


async def test_an_open_change_that_blocks_release_of_the_product_refuses_release(store):
    # Change control's own rule (domain.changes.service.open_changes_blocking_release), asked here.
    from domain.changes.models import ChangeProduct, ChangeRequest
    from domain.changes.payloads import ChangeKind, ChangeStatus

    async with store.sessions() as s, s.begin():
        lot, _, inspection = await _world(s)
        await quality.record_results(s, inspection_id=inspection.id, results=PASSING, recorded_by="prod1")
        change = ChangeRequest(
            reference="CHG-2026-0001",
            kind=ChangeKind.design,
            title="New seal material",
            description="Replace the seal",
            status=ChangeStatus.implementing,
            initiated_by="qa1",
            blocks_release=True,
        )
        s.add(change)
        await s.flush()
        s.add(ChangeProduct(change_id=change.id, product_id=lot.product_id))
        await s.flush()
        assert await quality.release_blockers(s, lot_id=lot.id) == [
            "change CHG-2026-0001 is open and blocks release of STENT"
        ]
        with pytest.raises(LotBlocked):
            async with s.begin_nested():
                await quality.apply_disposition(
                    s,
                    inspection_id=inspection.id,
                    outcome=DispositionOutcome.released,
                    split=None,
                    decided_by="rel1",
                    signature_id=await _signature(s, inspection),
                )
        change.status = ChangeStatus.closed
        await s.flush()
        assert await quality.release_blockers(s, lot_id=lot.id) == []
