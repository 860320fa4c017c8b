"""Task service on both databases: titles fit their column; the inbox (mine, my roles, overdue, by
process); claim, release and delegation (who may, conflicts, the audit trail with the reason); out of
office (tasks go to the deputy, who sees and may sign them); what a reminder digest lists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from domain.audit.models import AuditEntry
from domain.errors import Conflict, Forbidden, InvalidInput
from domain.models import User
from domain.tasks import service as tasks
from domain.tasks.models import Task
from domain.tasks.payloads import SignatureMeaning, SignOff, TaskSpec, TaskStatus
from domain.tasks.service import open_task

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PEOPLE = {
    "qa1": ["qa"],
    "mgr1": ["qa_manager"],
    "mgr2": ["qa_manager"],
    "mgr3": ["qa_manager"],
    "init": ["qa", "qa_manager"],  # initiates the records below
    "reg1": ["regulatory"],
    "boss": ["admin"],
}


def spec(key: str, **over) -> TaskSpec:
    base = dict(
        process="recall",
        kind="approve_recall",
        title=f"Approve {key}",
        record_type="recall",
        record_id=1,
        candidate_roles=["qa_manager"],
        excluded_users=["init"],
        due_at=NOW + timedelta(hours=8),
        workflow_id="recall-1",
        business_key=key,
    )
    return TaskSpec(**(base | over))


@pytest.fixture
async def people(store):
    async with store.sessions() as s, s.begin():
        for name, roles in PEOPLE.items():
            s.add(
                User(
                    username=name,
                    full_name=name.upper(),
                    email=f"{name}@lotline.example.org",
                    password_hash="x",
                    roles=roles,
                    active=True,
                )
            )
    return store


async def test_a_long_title_is_shortened_to_fit_on_both_databases(store):
    async with store.sessions() as s, s.begin():
        ref = await open_task(
            s,
            spec=TaskSpec(
                process="recall",
                kind="file:cn.plan",
                title="RC-2026-0001: " + "调查评估报告和召回计划 " * 40,
                record_type="recall",
                record_id=1,
                candidate_roles=["regulatory"],
                business_key="k1",
            ),
        )
        task = await s.get(Task, ref.task_id)
        assert len(task.title) == 255 and task.title.endswith("…")


async def test_only_a_candidate_claims_and_a_claimed_task_is_a_conflict_for_others(people):
    async with people.sessions() as s, s.begin():
        tid = (await open_task(s, spec=spec("t1"), at=NOW)).task_id
    async with people.sessions() as s, s.begin():
        with pytest.raises(Forbidden, match="needs the role qa_manager; qa1 has qa"):
            await tasks.claim(s, task_id=tid, username="qa1", roles=["qa"], at=NOW)
        with pytest.raises(Forbidden, match="separation of duties"):
            await tasks.claim(s, task_id=tid, username="init", roles=["qa", "qa_manager"], at=NOW)
        with pytest.raises(Forbidden):  # admin is no candidate: it passes route checks, not task ones
            await tasks.claim(s, task_id=tid, username="boss", roles=["admin"], at=NOW)
        task = await tasks.claim(s, task_id=tid, username="mgr1", roles=["qa_manager"], at=NOW)
        assert task.assignee == "mgr1" and task.claimed_at == NOW
        again = await tasks.claim(s, task_id=tid, username="mgr1", roles=["qa_manager"], at=NOW)
        assert again.assignee == "mgr1"  # claiming what one holds changes nothing
        with pytest.raises(Conflict, match="claimed by mgr1"):
            await tasks.claim(s, task_id=tid, username="mgr2", roles=["qa_manager"], at=NOW)
        task = await s.get(Task, tid)
        # Claimed: only its holder may sign it now.
        assert await tasks.sign_refusal(s, task=task, username="mgr1", at=NOW) is None
        assert "claimed by mgr1" in await tasks.sign_refusal(s, task=task, username="mgr2", at=NOW)
        with pytest.raises(Forbidden, match="only they, their deputy"):
            await tasks.release(s, task_id=tid, username="mgr2", roles=["qa_manager"], at=NOW)
        released = await tasks.release(s, task_id=tid, username="mgr1", roles=["qa_manager"], at=NOW)
        assert released.assignee is None and released.claimed_at is None
        with pytest.raises(Conflict, match="not claimed"):
            await tasks.release(s, task_id=tid, username="mgr1", roles=["qa_manager"], at=NOW)
        assert await tasks.sign_refusal(s, task=released, username="mgr2", at=NOW) is None


async def test_a_decided_task_can_be_neither_claimed_nor_delegated(people):
    async with people.sessions() as s, s.begin():
        tid = (await open_task(s, spec=spec("t2"), at=NOW)).task_id
        await tasks.sign(
            s,
            signoff=SignOff(
                task_id=tid,
                username="mgr1",
                printed_name="MGR1",
                roles=["qa_manager"],
                meaning=SignatureMeaning.approved,
            ),
            record_type="recall",
            record_id=1,
            record_hash="0" * 64,
            at=NOW,
        )
    async with people.sessions() as s, s.begin():
        with pytest.raises(Conflict, match="is completed"):
            await tasks.claim(s, task_id=tid, username="mgr2", roles=["qa_manager"], at=NOW)
        with pytest.raises(Conflict, match="is completed"):
            await tasks.delegate(
                s, task_id=tid, username="mgr2", roles=["qa_manager"], to="mgr3", reason="on leave", at=NOW
            )


async def test_delegation_needs_a_reason_and_an_eligible_delegate_and_is_in_the_audit_trail(people):
    async with people.sessions() as s, s.begin():
        tid = (await open_task(s, spec=spec("t3"), at=NOW)).task_id
        await tasks.claim(s, task_id=tid, username="mgr1", roles=["qa_manager"], at=NOW)
    async with people.sessions() as s, s.begin():
        mgr1 = {"username": "mgr1", "roles": ["qa_manager"], "at": NOW}
        with pytest.raises(InvalidInput) as e:
            await tasks.delegate(s, task_id=tid, to="mgr2", reason="  ", **mgr1)
        assert e.value.field == "reason"
        for to, why in (
            ("nobody", "not an active user"),
            ("reg1", "holds none of the roles"),
            ("init", "separation of duties"),  # the initiator never becomes the delegate
        ):
            with pytest.raises(InvalidInput, match=why) as e:
                await tasks.delegate(s, task_id=tid, to=to, reason="away on audit", **mgr1)
            assert e.value.field == "to"
        with pytest.raises(Forbidden):  # not the holder, not escalated to
            await tasks.delegate(
                s, task_id=tid, username="mgr2", roles=["qa_manager"], to="mgr3", reason="x", at=NOW
            )
        with pytest.raises(Conflict, match="already assigned to mgr1"):
            await tasks.delegate(s, task_id=tid, to="mgr1", reason="again", **mgr1)
        task = await tasks.delegate(s, task_id=tid, to="mgr2", reason="away on a supplier audit", **mgr1)
        assert (task.assignee, task.delegated_by, task.delegation_reason) == (
            "mgr2",
            "mgr1",
            "away on a supplier audit",
        )
    async with people.sessions() as s:
        entry = await s.scalar(
            select(AuditEntry)
            .where(AuditEntry.record_type == "task", AuditEntry.record_id == str(tid))
            .order_by(AuditEntry.seq.desc())
        )
        assert entry.changes["assignee"] == ["mgr1", "mgr2"]
        assert entry.reason == "delegated by mgr1 to mgr2: away on a supplier audit"
        # The delegate signs with their own signature; the one who delegated no longer may.
        task = await s.get(Task, tid)
        assert await tasks.sign_refusal(s, task=task, username="mgr2", at=NOW) is None
        assert await tasks.sign_refusal(s, task=task, username="mgr1", at=NOW)


async def test_someone_a_task_was_escalated_to_may_reassign_it(people):
    async with people.sessions() as s, s.begin():
        tid = (await open_task(s, spec=spec("t4"), at=NOW)).task_id
        await tasks.claim(s, task_id=tid, username="mgr1", roles=["qa_manager"], at=NOW)
        await tasks.nudge(s, task_id=tid, action="escalate", to_roles=["admin"])
        task = await tasks.delegate(
            s, task_id=tid, username="boss", roles=["admin"], to="mgr2", reason="mgr1 is ill", at=NOW
        )
        assert task.assignee == "mgr2"
        access = tasks.access(task, username="boss", roles=["admin"])
        assert "sign" not in access.actions  # escalation lets them reassign, never sign


async def test_out_of_office_sends_new_tasks_to_the_deputy_who_sees_and_may_sign_the_old_ones(people):
    async with people.sessions() as s, s.begin():
        held = (await open_task(s, spec=spec("t5"), at=NOW)).task_id
        await tasks.claim(s, task_id=held, username="mgr1", roles=["qa_manager"], at=NOW)
        with pytest.raises(InvalidInput) as e:
            await tasks.set_absence(
                s, username="mgr1", deputy="mgr1", starts_at=NOW, ends_at=NOW + timedelta(days=1), at=NOW
            )
        assert e.value.field == "deputy"
        with pytest.raises(InvalidInput) as e:
            await tasks.set_absence(s, username="mgr1", deputy="mgr2", starts_at=NOW, ends_at=NOW, at=NOW)
        assert e.value.field == "ends_at"
        away = await tasks.set_absence(
            s,
            username="mgr1",
            deputy="mgr2",
            starts_at=NOW - timedelta(hours=1),
            ends_at=NOW + timedelta(days=7),
            reason="annual leave",
            at=NOW,
        )
        with pytest.raises(Conflict, match="already out of office"):
            await tasks.set_absence(
                s, username="mgr1", deputy="mgr3", starts_at=NOW, ends_at=NOW + timedelta(days=2), at=NOW
            )
        # A task opened for mgr1 goes to mgr2; a delegation to mgr1 too.
        new = (await open_task(s, spec=spec("t6", assignee="mgr1"), at=NOW)).task_id
        other = (await open_task(s, spec=spec("t7"), at=NOW)).task_id
        delegated = await tasks.delegate(
            s, task_id=other, username="mgr3", roles=["qa_manager"], to="mgr1", reason="mgr1 knows it", at=NOW
        )
    async with people.sessions() as s:
        assert (await s.get(Task, new)).assignee == "mgr2" and (await s.get(Task, new)).deputy_for == "mgr1"
        assert delegated.assignee == "mgr2" and delegated.deputy_for == "mgr1"
        mine = await tasks.inbox(s, username="mgr2", roles=["qa_manager"], mine=True, at=NOW)
        assert {t.id for t in mine} == {held, new, other}  # held: still mgr1's, deputised by mgr2
        assert await tasks.sign_refusal(s, task=await s.get(Task, held), username="mgr2", at=NOW) is None
        assert await tasks.sign_refusal(s, task=await s.get(Task, held), username="mgr3", at=NOW)
        # After the period: mgr1's task is theirs alone again.
        later = NOW + timedelta(days=8)
        assert {
            t.id for t in await tasks.inbox(s, username="mgr2", roles=["qa_manager"], mine=True, at=later)
        } == {
            new,
            other,
        }
        assert await tasks.sign_refusal(s, task=await s.get(Task, held), username="mgr2", at=later)
    async with people.sessions() as s, s.begin():
        await tasks.cancel_absence(s, absence_id=away.id, username="mgr1", at=NOW)
        assert await tasks.deputising_for(s, username="mgr2", at=NOW + timedelta(minutes=1)) == []


async def test_a_deputy_who_is_away_hands_on_and_a_circle_keeps_the_task(people):
    week = timedelta(days=7)
    async with people.sessions() as s, s.begin():
        for who, deputy in (("mgr1", "mgr2"), ("mgr2", "mgr3")):
            await tasks.set_absence(s, username=who, deputy=deputy, starts_at=NOW, ends_at=NOW + week, at=NOW)
        assert await tasks.stand_in_for(s, username="mgr1", at=NOW) == "mgr3"
        await tasks.set_absence(s, username="mgr3", deputy="mgr1", starts_at=NOW, ends_at=NOW + week, at=NOW)
        assert await tasks.stand_in_for(s, username="mgr1", at=NOW) == "mgr1"


async def test_the_inbox_filters_mine_my_roles_overdue_and_process(people):
    async with people.sessions() as s, s.begin():
        late = (await open_task(s, spec=spec("a", due_at=NOW - timedelta(hours=1)), at=NOW)).task_id
        soon = (await open_task(s, spec=spec("b", due_at=NOW + timedelta(hours=1)), at=NOW)).task_id
        capa = (
            await open_task(s, spec=spec("c", process="capa", record_type="capa", assignee="mgr1"), at=NOW)
        ).task_id
        reg = (await open_task(s, spec=spec("d", candidate_roles=["regulatory"]), at=NOW)).task_id
        await tasks.claim(s, task_id=soon, username="mgr2", roles=["qa_manager"], at=NOW)

    async def ids(**kw) -> list[int]:
        async with people.sessions() as s:
            return [t.id for t in await tasks.inbox(s, at=NOW, **kw)]

    mgr1 = {"username": "mgr1", "roles": ["qa_manager"]}
    assert await ids(**mgr1) == [late, capa]  # overdue first; mgr2's claim is not mgr1's business
    assert await ids(**mgr1, mine=True) == [capa]
    assert await ids(**mgr1, my_roles=True) == [late]
    assert await ids(**mgr1, overdue=True) == [late]
    assert await ids(**mgr1, process="capa") == [capa]
    assert await ids(username="mgr2", roles=["qa_manager"], mine=True) == [soon]
    assert await ids(username="init", roles=["qa", "qa_manager"]) == []  # excluded from what they started
    assert await ids(username="reg1", roles=["regulatory"]) == [reg]
    assert sorted(await ids(**mgr1, record_type="recall", record_id=1)) == sorted(
        [late, soon, reg]
    )  # a record page


async def test_the_digest_lists_each_persons_open_tasks_and_skips_who_is_away(people):
    async with people.sessions() as s, s.begin():
        late = (await open_task(s, spec=spec("a", due_at=NOW - timedelta(hours=1)), at=NOW)).task_id
        mine = (await open_task(s, spec=spec("b", assignee="qa1", candidate_roles=["qa"]), at=NOW)).task_id
        await tasks.set_absence(
            s, username="mgr3", deputy="mgr2", starts_at=NOW, ends_at=NOW + timedelta(days=1), at=NOW
        )
    async with people.sessions() as s:
        entries = {e.username: e for e in await tasks.digest_entries(s, at=NOW)}
    assert set(entries) == {"mgr1", "mgr2", "qa1"}  # init is excluded, mgr3 is away, others have none
    assert [t.id for t in entries["mgr1"].overdue] == [late]
    assert [t.id for t in entries["qa1"].tasks] == [mine] and entries["qa1"].overdue == []
    assert entries["mgr2"].standing_in == ["mgr3"]


async def test_a_task_signed_by_someone_other_than_its_holder_is_refused_in_the_store(people):
    async with people.sessions() as s, s.begin():
        tid = (await open_task(s, spec=spec("t8"), at=NOW)).task_id
        await tasks.claim(s, task_id=tid, username="mgr1", roles=["qa_manager"], at=NOW)
    async with people.sessions() as s, s.begin():
        with pytest.raises(Conflict, match="claimed by mgr1"):
            await tasks.sign(
                s,
                signoff=SignOff(
                    task_id=tid,
                    username="mgr2",
                    printed_name="MGR2",
                    roles=["qa_manager"],
                    meaning=SignatureMeaning.approved,
                ),
                record_type="recall",
                record_id=1,
                record_hash="0" * 64,
            )
    async with people.sessions() as s:
        assert (await s.get(Task, tid)).status == TaskStatus.open
