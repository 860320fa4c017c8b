"""TaskDigestWorkflow on the time-skipping test server with the real store and the local SMTP server:
at each period boundary ONE e-mail per person lists all their open tasks, overdue first (assigned ones,
those of people they deputise for, those open or escalated to their roles); a person away gets none;
a retried round sends nothing twice; the next period sends again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from activities.tasks import TaskDigests
from domain.enums import Language
from domain.tasks import service as tasks
from domain.tasks.models import Digest
from domain.tasks.payloads import DigestReport, DigestRound, DigestStart, TaskSpec
from notifications.devmail import list_messages
from notifications.task_digest import DigestContent, DigestItem, render_task_digest
from tests.workflows.conftest import build_world, wait_for
from workflows.task_digest import TaskDigestWorkflow

pytestmark = pytest.mark.temporal

DAY = timedelta(days=1)


def digests(stack) -> list:
    return [m for m in list_messages(stack.maildir) if "X-Lotline-Digest" in m.headers]


async def seed(stack) -> dict[str, int]:
    """Users (qa1, mgr1, reg1, qamgr, with e-mail) and four tasks; qa1 is away with qamgr as deputy."""
    await build_world(stack.sessions)
    now = datetime.now(UTC)
    specs = {
        "late": dict(kind="approve_recall", candidate_roles=["qa_manager"], excluded_users=["qamgr"], due=-1),
        "owned": dict(kind="capa_investigate", candidate_roles=["qa"], assignee="qa1", due=240),
        "filing": dict(kind="file:cn.plan", candidate_roles=["regulatory"], due=240),
        "new": dict(kind="capa_verify", candidate_roles=["qa"], assignee="qa1", due=240),
    }
    ids: dict[str, int] = {}
    async with stack.sessions() as s, s.begin():
        for key, sp in specs.items():
            if key == "new":  # opened for qa1 once qa1 is away: it goes to the deputy
                await tasks.set_absence(
                    s, username="qa1", deputy="qamgr", starts_at=now - DAY, ends_at=now + 10 * DAY
                )
            ref = await tasks.open_task(
                s,
                spec=TaskSpec(
                    process="recall",
                    kind=sp["kind"],
                    title=f"Task {key} 任务",
                    record_type="recall",
                    record_id=1,
                    candidate_roles=sp["candidate_roles"],
                    excluded_users=sp.get("excluded_users", []),
                    assignee=sp.get("assignee"),
                    due_at=now + timedelta(hours=sp["due"]),
                    business_key=f"digest-test-{key}",
                ),
            )
            ids[key] = ref.task_id
        await tasks.nudge(s, task_id=ids["filing"], action="escalate", to_roles=["qa_manager"])
    return ids


async def test_one_digest_per_person_per_period_on_the_time_skipping_server(recall_stack, time_env):
    stack = recall_stack
    ids = await seed(stack)
    handle = await stack.client.start_workflow(
        TaskDigestWorkflow.run,
        DigestStart(every_seconds=DAY.total_seconds()),
        id=f"task-digest-{uuid.uuid4().hex[:8]}",
        task_queue=stack.settings.temporal_task_queue,
    )
    assert digests(stack) == []  # nothing before the first boundary
    await time_env.sleep(DAY)

    async def sent(s, n: int):
        rows = list(await s.scalars(select(Digest).where(Digest.status == "sent").order_by(Digest.username)))
        return rows if len(rows) >= n else None

    rows = await wait_for(lambda s: sent(s, 3), stack)
    mails = digests(stack)
    assert len(mails) == 3
    by_person = {m.envelope_to[0].split("@")[0]: m for m in mails}
    # qa1 is away: their task is in their deputy's digest; qamgr started "late" and never sees it.
    assert sorted(by_person) == ["mgr1", "qamgr", "reg1"]
    mgr1 = by_person["mgr1"].text
    assert "Task late" in mgr1 and "Task filing" in mgr1 and "Task owned" not in mgr1
    assert mgr1.index("已逾期") < mgr1.index("Task late") < mgr1.index("待办 (1)") < mgr1.index("Task filing")
    assert "1 项已逾期" in by_person["mgr1"].subject  # zh-CN, the site's default language
    qamgr = by_person["qamgr"].text
    assert "Task owned" in qamgr and "Task new" in qamgr and "Task late" not in qamgr
    assert qamgr.count("代 qa1 处理") == 2  # the task qa1 held and the one opened while they are away
    assert "Task filing" in qamgr and "已升级至 qa_manager" in qamgr
    assert "Task filing" in by_person["reg1"].text and "Task late" not in by_person["reg1"].text
    assert f"{stack.base_url}/inbox" in mgr1

    assert [(d.username, d.status, d.overdue) for d in rows] == [
        ("mgr1", "sent", 1),
        ("qamgr", "sent", 0),
        ("reg1", "sent", 0),
    ]
    assert set(rows[0].task_ids) == {ids["late"], ids["filing"]}
    period = rows[0].period_start

    # The same round again (an activity retry): nothing is sent twice.
    env = ActivityEnvironment()
    report: DigestReport = await env.run(
        TaskDigests(stack.sessions, stack.settings).send_digests, DigestRound(period_start=period)
    )
    assert (report.people, report.sent, report.already_sent) == (3, 0, 3)
    assert len(digests(stack)) == 3

    # The next period: one more each.
    await time_env.sleep(DAY)
    rows = await wait_for(lambda s: sent(s, 6), stack)
    assert sorted({d.period_start for d in rows}) == [period, period + DAY]
    assert len(digests(stack)) == 6

    async def round_recorded(_s):
        state = await handle.query("status")
        last = state["last"]
        return state if last and datetime.fromisoformat(last["period_start"]) == period + DAY else None

    state = await wait_for(round_recorded, stack)
    assert state["last"]["sent"] == 3 and datetime.fromisoformat(state["next_at"]) == period + 2 * DAY


def test_the_digest_renders_in_english_and_chinese_and_escapes_titles():
    content = DigestContent(
        username="mgr1",
        full_name="Wang Li",
        period_start=datetime(2026, 3, 3, tzinfo=UTC),
        inbox_url="https://lotline.example.org/inbox",
        items=[
            DigestItem(
                task_id=1,
                title="Approve <b>RC-1</b>",
                process="recall",
                record_type="recall",
                record_id=1,
                due_at=datetime(2026, 3, 2, tzinfo=UTC),
                overdue=True,
            ),
            DigestItem(task_id=2, title="Sign closure", process="capa", record_type="capa", record_id=4),
        ],
    )
    subject, html, text = render_task_digest(content, Language.en)
    assert subject == "Your tasks: 2 open, 1 overdue (2026-03-03 00:00 UTC)"
    assert (
        "Dear Wang Li," in text and "[Recall] Approve <b>RC-1</b>" in text and "[CAPA] Sign closure" in text
    )
    assert "&lt;b&gt;RC-1&lt;/b&gt;" in html and "<b>RC-1</b>" not in html
    subject, _html, text = render_task_digest(content, Language.zh_CN)
    assert subject.startswith("待办任务汇总：2 项待办，其中 1 项已逾期")
    assert "[召回] Approve <b>RC-1</b>" in text and "[纠正预防措施] Sign closure" in text
