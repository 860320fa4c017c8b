"""CAPA records on SQLite and PostgreSQL: what the service refuses (naming the field, changing nothing),
the stage rules, the overdue ladder applied in batch, the signature hash, and the link to a recall."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from domain.capa import policy
from domain.capa import service as capas
from domain.capa.models import Capa, CapaAction
from domain.capa.payloads import (
    ActionInput,
    ActionKind,
    ActionStatus,
    CapaStatus,
    ClosureDecision,
    EffectivenessResult,
    PlanDecision,
)
from domain.errors import Conflict, DomainError, InvalidInput, NotFound
from domain.models import User
from domain.recalls import service as recalls
from domain.recalls.reports import report_data
from domain.tasks.models import Task
from tests import factories as f

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
TODAY = NOW.date()


async def _users(s, *names: str, active: bool = True) -> None:
    for name in names:
        s.add(User(username=name, full_name=name.upper(), password_hash="-", roles=["qa"], active=active))
    await s.flush()


async def _capa(s, **kw) -> Capa:
    args = {
        "source": "complaint",
        "source_reference": "CMP-77",
        "title": "Seal leaks on pump housings",
        "description": "Three complaints of leaking seals in May",
        "owner": "owner1",
        "initiated_by": "qa1",
        "at": NOW,
    }
    args.update(kw)
    return await capas.create_capa(s, **args)


def _action(kind=ActionKind.corrective, owner="owner1", due=TODAY + timedelta(days=10), text="Replace seal"):
    return ActionInput(kind=kind, description=text, owner=owner, due_on=due)


async def _to_implementation(s, capa: Capa, actions: list[ActionInput]) -> list[CapaAction]:
    await capas.record_investigation(
        s, capa_id=capa.id, method="5-why", root_causes=["Seal material too soft"], by="owner1", at=NOW
    )
    created = await capas.propose_action_plan(
        s, capa_id=capa.id, actions=actions, by="owner1", effectiveness_criteria="No leak for 90 days", at=NOW
    )
    await capas.decide_plan(
        s,
        decision=PlanDecision(
            capa_id=capa.id,
            cycle=1,
            approved=True,
            signature_id=1,
            actor="mgr1",
            decided_at=NOW,
            workflow_id="capa-x",
        ),
    )
    return created


async def _snapshot(s, capa_id: int) -> tuple:
    capa = await s.get(Capa, capa_id)
    await s.refresh(capa)
    actions = await s.scalar(
        select(func.count()).select_from(CapaAction).where(CapaAction.capa_id == capa_id)
    )
    return (
        capa.status,
        capa.cycle,
        capa.plan_version,
        list(capa.root_causes),
        capa.effectiveness_result,
        actions,
    )


async def test_references_count_up_per_year_and_the_capa_starts_in_investigation(store):
    async with store.sessions() as s, s.begin():
        await _users(s, "owner1")
        a = await _capa(s)
        b = await _capa(s, source="audit_finding", source_reference="AUD-2026-03 #4")
        c = await _capa(s, at=datetime(2027, 1, 2, tzinfo=UTC))
    assert (a.reference, b.reference, c.reference) == ("CAPA-2026-0001", "CAPA-2026-0002", "CAPA-2027-0001")
    assert a.status == CapaStatus.investigation and a.workflow_id == f"capa-{a.id}" and a.cycle == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"source": "rumour"}, "source"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 256}, "title"),
        ({"description": ""}, "description"),
        ({"source_reference": " "}, "source_reference"),
        ({"owner": "nobody"}, "owner"),
        ({"owner": "gone"}, "owner"),  # deactivated
        ({"effectiveness_period_days": 0}, "effectiveness_period_days"),
        ({"effectiveness_period_days": 731}, "effectiveness_period_days"),
        ({"source": "recall", "source_reference": None}, "recall_id"),
        ({"source": "recall", "recall_id": 999}, "recall_id"),
    ],
)
async def test_create_refuses_bad_input_naming_the_field_and_stores_nothing(store, change, field):
    async with store.sessions() as s, s.begin():
        await _users(s, "owner1")
        await _users(s, "gone", active=False)
        with pytest.raises(DomainError) as err:
            await _capa(s, **change)
        assert err.value.field == field, err.value.reason
        assert await s.scalar(select(func.count()).select_from(Capa)) == 0


async def test_a_capa_from_a_recall_takes_its_reference_and_shows_on_the_recall_report(store):
    async with store.sessions() as s, s.begin():
        await _users(s, "owner1")
        p = await f.product(s, "PUMP")
        lot = await f.lot(s, p, "P-100")
        recall = await recalls.create_recall(
            s,
            suspect_lot_ids=[lot.id],
            reason="Seal may leak",
            hazard="Delayed infusion",
            nmpa_level=2,
            fda_class=None,
            jurisdictions=["CN"],
            depth="user",
            required_actions=["stop_use"],
            initiated_by="qa1",
        )
        capa = await _capa(s, source="recall", source_reference=None, recall_id=recall.id)
        assert capa.source_reference == recall.reference and capa.recall_id == recall.id
        assert [c.reference for c in await capas.capas_for_recall(s, recall_id=recall.id)] == [capa.reference]
        data = await report_data(s, recall_id=recall.id)
        assert data["capas"] == [
            {"reference": capa.reference, "title": capa.title, "status": "investigation"}
        ]
        # No summary yet: nothing to reissue.
        assert (await capas.recall_link(s, capa_id=capa.id)).next_summary_sequence is None


async def test_investigation_refuses_bad_input_and_a_plan_needs_this_cycles_investigation(store):
    async with store.sessions() as s, s.begin():
        await _users(s, "owner1")
        capa = await _capa(s)
        with pytest.raises(InvalidInput) as err:
            await capas.record_investigation(s, capa_id=capa.id, method="guess", root_causes=["x"], by="o")
        assert err.value.field == "method"
        with pytest.raises(InvalidInput) as err:
            await capas.record_investigation(
                s, capa_id=capa.id, method="fishbone", root_causes=[" ", ""], by="o"
            )
        assert err.value.field == "root_causes"
        with pytest.raises(Conflict) as err:
            await capas.propose_action_plan(s, capa_id=capa.id, actions=[_action()], by="owner1", at=NOW)
        assert err.value.field == "root_causes"
        with pytest.raises(NotFound):
            await capas.record_investigation(s, capa_id=999, method="fishbone", root_causes=["x"], by="o")
        assert await _snapshot(s, capa.id) == (CapaStatus.investigation, 1, 0, [], None, 0)
        await capas.record_investigation(
            s,
            capa_id=capa.id,
            method="fault-tree",
            root_causes=["Soft seal", "Soft seal", " Torque "],
            by="o",
        )
        assert capa.root_causes == ["Soft seal", "Torque"] and capa.investigation_cycle == 1


@pytest.mark.parametrize(
    ("actions", "criteria", "field"),
    [
        ([], "crit", "actions"),
        ([_action(text="  ")], "crit", "actions.0.description"),
        ([_action(), _action(owner="nobody")], "crit", "actions.1.owner"),
        ([_action(due=TODAY - timedelta(days=1))], "crit", "actions.0.due_on"),
        ([_action()], None, "effectiveness_criteria"),
    ],
)
async def test_a_plan_with_bad_input_is_refused_naming_the_field_and_changes_nothing(
    store, actions, criteria, field
):
    async with store.sessions() as s, s.begin():
        await _users(s, "owner1")
        capa = await _capa(s)
        await capas.record_investigation(
            s, capa_id=capa.id, method="5-why", root_causes=["Soft seal"], by="o"
        )
        before = await _snapshot(s, capa.id)
        with pytest.raises(InvalidInput) as err:
            await capas.propose_action_plan(
                s, capa_id=capa.id, actions=actions, by="owner1", effectiveness_criteria=criteria, at=NOW
            )
        assert err.value.field == field, err.value.reason
        assert await _snapshot(s, capa.id) == before


async def test_a_proposed_plan_goes_to_approval_and_a_rejection_withdraws_it(store):
    async with store.sessions() as s, s.begin():
        await _users(s, "owner1", "eng2")
        capa = await _capa(s, effectiveness_criteria="No leak complaints for 90 days")
        await capas.record_investigation(
            s, capa_id=capa.id, method="5-why", root_causes=["Soft seal"], by="o"
        )
        first = await capas.propose_action_plan(s, capa_id=capa.id, actions=[_action()], by="owner1", at=NOW)
        assert capa.status == CapaStatus.plan_approval and capa.plan_version == 1
        with pytest.raises(Conflict) as err:  # a second plan while the first waits for approval
            await capas.propose_action_plan(s, capa_id=capa.id, actions=[_action()], by="owner1", at=NOW)
        assert err.value.field == "status"
        with pytest.raises(Conflict):  # nor may the investigation change under the approver
            await capas.record_investigation(s, capa_id=capa.id, method="other", root_causes=["x"], by="o")
        opened = await capas.decide_plan(
            s,
            decision=PlanDecision(
                capa_id=capa.id,
                cycle=1,
                approved=False,
                signature_id=1,
                actor="mgr1",
                reason="Add a supplier action",
                decided_at=NOW,
                workflow_id="capa-x",
            ),
        )
        assert opened.action_ids == []
        assert (
            capa.status == CapaStatus.investigation and capa.plan_rejection_reason == "Add a supplier action"
        )
        assert first[0].status == ActionStatus.withdrawn
        second = await capas.propose_action_plan(
            s,
            capa_id=capa.id,
            actions=[_action(), _action(kind=ActionKind.preventive, owner="eng2", text="Audit supplier")],
            by="owner1",
            at=NOW,
        )
        assert capa.plan_version == 2 and {a.plan_version for a in second} == {2}


async def test_approval_opens_one_task_per_action_at_once_and_completion_needs_evidence(store):
    async with store.sessions() as s, s.begin():
        await _users(s, "owner1", "eng2")
        capa = await _capa(s)
        created = await _to_implementation(s, capa, [_action(), _action(owner="eng2", text="Retrain")])
        assert capa.status == CapaStatus.implementation
        task_rows = list(await s.scalars(select(Task).where(Task.kind == "capa_action").order_by(Task.id)))
        assert [t.assignee for t in task_rows] == ["owner1", "eng2"]
        assert [a.task_id for a in created] == [t.id for t in task_rows]
        assert task_rows[0].due_at == policy.due_end(created[0].due_on)
        with pytest.raises(InvalidInput) as err:
            await capas.complete_action(
                s, capa_id=capa.id, action_id=created[0].id, evidence=" ", by="owner1"
            )
        assert err.value.field == "evidence"
        with pytest.raises(NotFound) as err:
            await capas.complete_action(s, capa_id=capa.id, action_id=9999, evidence="done", by="owner1")
        assert err.value.field == "action_id"
        done = await capas.complete_action(
            s, capa_id=capa.id, action_id=created[0].id, evidence="New seal spec DOC-12 rev B", by="owner1"
        )
        assert done.status == ActionStatus.completed and done.completed_by == "owner1"
        await s.refresh(task_rows[0])
        assert task_rows[0].status.value == "completed"
        with pytest.raises(Conflict) as err:
            await capas.complete_action(s, capa_id=capa.id, action_id=created[0].id, evidence="again", by="x")
        assert "already completed" in err.value.reason
        with pytest.raises(Conflict):  # the effectiveness check waits for every action
            await capas.await_effectiveness(s, capa_id=capa.id, cycle=1, due_at=NOW + timedelta(days=90))
        state = await capas.state(s, capa_id=capa.id, as_of=NOW)
        assert (state.open_actions, state.completed_actions) == (1, 1)


async def test_one_overdue_step_nudges_every_overdue_action_in_one_call(store):
    async with store.sessions() as s, s.begin():
        await _users(s, "owner1", "eng2")
        capa = await _capa(s)
        due = TODAY + timedelta(days=3)
        a, b, later = await _to_implementation(
            s,
            capa,
            [_action(due=due), _action(owner="eng2", due=due), _action(due=TODAY + timedelta(days=60))],
        )
        state = await capas.state(s, capa_id=capa.id, as_of=NOW)
        assert state.next_escalation_at == policy.due_end(due) and state.overdue_actions == 0
        assert (await capas.escalate_overdue(s, capa_id=capa.id, as_of=NOW)).reminded == []  # not yet due

        step1 = policy.due_end(due) + timedelta(hours=1)
        report = await capas.escalate_overdue(s, capa_id=capa.id, as_of=step1)
        assert report.reminded == [a.id, b.id] and report.escalated == []
        state = await capas.state(s, capa_id=capa.id, as_of=step1)
        assert state.overdue_actions == 2
        assert state.next_escalation_at == policy.nudge_at(due, 1)  # the next rung, for both at once
        # The same step again does nothing: each rung is applied once.
        assert (await capas.escalate_overdue(s, capa_id=capa.id, as_of=step1)).reminded == []

        report = await capas.escalate_overdue(s, capa_id=capa.id, as_of=policy.nudge_at(due, 1))
        assert report.escalated == [a.id, b.id]
        tasks = {t.id: t for t in await s.scalars(select(Task).where(Task.kind == "capa_action"))}
        for action in (a, b):
            await s.refresh(tasks[action.task_id])
            assert tasks[action.task_id].reminders_sent == 2
            assert tasks[action.task_id].escalated_to == ["qa_manager"]
        assert tasks[later.task_id].reminders_sent == 0 and later.escalation_step == 0


def test_the_overdue_ladder_skips_missed_rungs_and_repeats_the_last():
    due = date(2026, 6, 1)
    end = policy.due_end(due)
    assert end == datetime(2026, 6, 2, tzinfo=UTC)
    assert policy.overdue_step(due, 0, end - timedelta(seconds=1)) is None
    assert policy.overdue_step(due, 0, end)[0] == 0
    step, rung = policy.overdue_step(due, 0, end + timedelta(days=30))  # nobody looked for a month
    assert step >= len(policy.ACTION_OVERDUE_LADDER) and rung == policy.ACTION_OVERDUE_LADDER[-1]
    last = policy.ACTION_OVERDUE_LADDER[-1].wait
    assert policy.nudge_at(due, step + 1) - policy.nudge_at(due, step) == last


async def test_effectiveness_stage_rules_and_an_ineffective_result_starts_a_new_cycle(store):
    async with store.sessions() as s, s.begin():
        await _users(s, "owner1")
        capa = await _capa(s, effectiveness_period_days=30)
        (a,) = await _to_implementation(s, capa, [_action()])
        with pytest.raises(Conflict) as err:  # too early: no check is open
            await capas.record_effectiveness(s, capa_id=capa.id, result="effective", summary="ok", by="qa1")
        assert err.value.field == "status"
        await capas.complete_action(s, capa_id=capa.id, action_id=a.id, evidence="done", by="owner1")
        due = NOW + policy.effectiveness_period(capa.effectiveness_period_days)
        assert due - NOW == timedelta(days=30)
        assert await capas.await_effectiveness(s, capa_id=capa.id, cycle=1, due_at=due) == due
        # A retry keeps the first due time.
        assert await capas.await_effectiveness(s, capa_id=capa.id, cycle=1, due_at=due + timedelta(1)) == due
        await capas.begin_verification(s, capa_id=capa.id, cycle=1)
        assert capa.status == CapaStatus.effectiveness_check
        for bad, field in (({"result": "maybe"}, "result"), ({"summary": "  "}, "summary")):
            kw = {"result": "effective", "summary": "No leaks", **bad}
            with pytest.raises(InvalidInput) as err:
                await capas.record_effectiveness(s, capa_id=capa.id, by="qa1", **kw)
            assert err.value.field == field
        assert capa.status == CapaStatus.effectiveness_check and capa.effectiveness_result is None

        await capas.record_effectiveness(
            s, capa_id=capa.id, result=EffectivenessResult.ineffective, summary="Two leaks in May", by="qa1"
        )
        assert capa.status == CapaStatus.investigation and capa.cycle == 2
        assert capa.effectiveness_result is None and capa.effectiveness_due_at is None
        assert capa.effectiveness_history[-1]["result"] == "ineffective"
        assert capa.effectiveness_history[-1]["summary"] == "Two leaks in May"
        with pytest.raises(Conflict) as err:  # cycle 2 needs its own investigation
            await capas.propose_action_plan(s, capa_id=capa.id, actions=[_action()], by="owner1", at=NOW)
        assert err.value.field == "root_causes"


async def test_closure_approved_closes_and_rejected_verifies_again(store):
    async with store.sessions() as s, s.begin():
        await _users(s, "owner1")
        capa = await _capa(s)
        (a,) = await _to_implementation(s, capa, [_action()])
        await capas.complete_action(s, capa_id=capa.id, action_id=a.id, evidence="done", by="owner1")
        await capas.await_effectiveness(s, capa_id=capa.id, cycle=1, due_at=NOW + timedelta(days=90))
        await capas.begin_verification(s, capa_id=capa.id, cycle=1)
        await capas.record_effectiveness(s, capa_id=capa.id, result="effective", summary="No leaks", by="qa1")
        assert capa.status == CapaStatus.closure_approval
        hash_before = await capas.record_hash(s, capa.id)
        decision = {"capa_id": capa.id, "cycle": 1, "signature_id": 5, "actor": "mgr1", "decided_at": NOW}
        await capas.decide_closure(
            s, decision=ClosureDecision(approved=False, reason="Sample too small", **decision)
        )
        assert capa.status == CapaStatus.effectiveness_check and capa.effectiveness_result is None
        assert capa.effectiveness_history[-1]["outcome"] == "closure rejected: Sample too small"
        assert await capas.record_hash(s, capa.id) != hash_before  # the signed version is bound by its hash
        await capas.record_effectiveness(
            s, capa_id=capa.id, result="effective", summary="300 units", by="qa1"
        )
        await capas.decide_closure(s, decision=ClosureDecision(approved=True, **decision))
        assert capa.status == CapaStatus.closed and capa.closed_at == NOW
        await capas.decide_closure(s, decision=ClosureDecision(approved=False, **decision))  # a retry: no-op
        assert capa.status == CapaStatus.closed


async def test_list_filters(store):
    async with store.sessions() as s, s.begin():
        await _users(s, "owner1", "eng2")
        late = await _capa(s)
        await _to_implementation(s, late, [_action(due=TODAY)])
        other = await _capa(s, owner="eng2", source="nonconformance", source_reference="NC-9")
    async with store.sessions() as s:
        after_due = TODAY + timedelta(days=1)
        assert [c.id for c in await capas.list_capas(s, overdue=True, today=after_due)] == [late.id]
        assert [c.id for c in await capas.list_capas(s, overdue=False, today=after_due)] == [other.id]
        assert [c.id for c in await capas.list_capas(s, owner="eng2")] == [other.id]
        assert [c.id for c in await capas.list_capas(s, source="nonconformance")] == [other.id]
        assert [c.id for c in await capas.list_capas(s, status=CapaStatus.implementation)] == [late.id]
        assert [c.id for c in await capas.list_capas(s)] == [other.id, late.id]
