"""The authorization matrix: every sign-off, rejection, closure, claim and delegation endpoint against
every role, and the initiator against their own record, through the real API on the time-skipping
server with the real store. Each cell's status (2xx / 403 / 409) comes from ONE table; a refusal
changes nothing (the record's tasks, signatures and audit entries, the workflow's state and history).

Which endpoints belong in the table is derived from the app's routes: every POST whose body carries a
``password`` (a Part 11 signature is re-authenticated) and every POST on one task
(``/api/tasks/{task_id}/...``). A new one without a row fails ``test_every_signoff_endpoint_has_rows``;
a new kind of task signed through the one sign-off mechanism without a row fails the row that meets it.

Who may do what (decided in ``domain.tasks.service`` and the workflows' validators), as the table shows:
route-level role checks answer 403 (admin passes them all); a signature by someone without the step's
role, by the record's initiator (separation of duties), or on a task someone else holds is a 409 from
the validator or the claim check; a claim or delegation by someone who is not a candidate (or the
initiator) is a 403, a claim of a task someone else holds a 409.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count

import httpx
import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from sqlalchemy import func, or_, select
from temporalio.api.enums.v1 import EventType

from api.app import create_app
from api.security import Principal, issue_token
from domain import inventory
from domain.audit.models import AuditEntry
from domain.enums import MovementKind, Role
from domain.models import Location, Product
from domain.tasks.models import Signature, Task
from domain.tasks.payloads import SIGN_OFF
from domain.users import create_user
from tests import factories as f
from tests.workflows.conftest import PASSWORD, build_world, wait_for

pytestmark = pytest.mark.temporal
CHEAP = PasswordHasher.from_parameters(CHEAPEST)  # public test passwords: a cheap hash keeps it fast

# ------------------------------------------------------------------------------------ who calls

COLUMNS = ("qa", "qa_manager", "regulatory", "releaser", "warehouse", "production", "admin", "initiator")
CALLER = {col: f"u_{col}" for col in COLUMNS[:-1]} | {"initiator": "init"}
PEOPLE: dict[str, list[Role]] = {f"u_{r.value}": [r] for r in Role} | {
    # The initiator of every record holds every role but admin: a refusal is separation of duties,
    # never a missing role.
    "init": [Role.qa, Role.qa_manager, Role.regulatory, Role.releaser, Role.warehouse, Role.production],
    # Helpers who move records to the step under test (never a column).
    "mgr2": [Role.qa_manager],
    "reg2": [Role.regulatory],
    "rel2": [Role.releaser],
    "qa2": [Role.qa],
}

# ------------------------------------------------------------------------------------ targets


@dataclass
class Target:
    """A record at the step a row tests: the path's values and how to look at it."""

    record_type: str
    record_id: int
    workflow_id: str
    task_id: int | None = None
    path: dict[str, int] = field(default_factory=dict)
    kind: str | None = None


def token(stack, username: str) -> dict[str, str]:
    principal = Principal(username=username, full_name=username.upper(), roles=PEOPLE[username])
    return {"Authorization": f"Bearer {issue_token(principal, secret=stack.settings.secret_key, minutes=60)}"}


async def call(stack, method: str, path: str, username: str, json: dict | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        return await http.request(method, path, json=json, headers=token(stack, username))


async def ok(stack, method: str, path: str, username: str, json: dict | None = None) -> dict:
    r = await call(stack, method, path, username, json)
    assert r.status_code < 300, f"{method} {path} as {username}: {r.status_code} {r.text}"
    return r.json()


async def state(stack, workflow_id: str, predicate: Callable[[dict], object]) -> dict:
    """Poll the workflow's status query until ``predicate(state)`` holds: what it accepts right now."""
    handle = stack.client.get_workflow_handle(workflow_id)

    async def holds(_s):
        st = await handle.query("status")
        return st if predicate(st) else None

    return await wait_for(holds, stack)


async def gate(stack, t: Target, kind: str) -> int:
    """The open task of ``kind`` on the record, once the workflow names it its current task."""

    async def opened(s):
        return await s.scalar(
            select(Task.id).where(
                Task.record_type == t.record_type,
                Task.record_id == t.record_id,
                Task.kind == kind,
                Task.status == "open",
            )
        )

    tid = await wait_for(opened, stack)
    await state(stack, t.workflow_id, lambda st: st["current_task"] == tid)
    return tid


async def task_of(stack, task_id: int) -> Task:
    async with stack.sessions() as s:
        return await s.get(Task, task_id)


def sign_body(decision: str, reason: str = "") -> Callable[[Target], dict]:
    return lambda _t: {"password": PASSWORD, "decision": decision, "reason": reason}


JUSTIFIED = {"password": PASSWORD, "justification": "Raised against the wrong lot, see NC-77"}

# Recall ----------------------------------------------------------------------------------------


async def recall(stack, *, eu: bool = False) -> Target:
    """A recall by the initiator, its approval task open (level 3 / class II)."""
    body = {
        "suspects": [{"product_code": "RESIN", "lot_number": "R-001"}],
        "reason": "Seal may leak",
        "hazard": "Leak can delay infusion therapy",
    }
    body |= {"jurisdictions": ["EU"], "fda_class": "II"} if eu else {"nmpa_level": 3}
    created = await ok(stack, "POST", "/api/recalls", "init", body)
    st = await state(stack, created["workflow_id"], lambda st: st["approval_task"])
    return Target(
        "recall",
        created["id"],
        created["workflow_id"],
        st["approval_task"],
        {"recall_id": created["id"], "task_id": st["approval_task"]},
        "approve_recall",
    )


async def recall_claimed(stack, by: str) -> Target:
    t = await recall(stack)
    await ok(stack, "POST", f"/api/tasks/{t.task_id}/claim", by)
    return t


async def recall_at_fsca_gate(stack) -> Target:
    """An EU recall approved (by mgr2), waiting for its FSCA report before any notice goes out."""
    t = await recall(stack, eu=True)
    await ok(stack, "POST", f"/api/tasks/{t.task_id}/sign", "mgr2", sign_body("approved")(t))
    st = await state(
        stack, t.workflow_id, lambda st: st["fsca_task"] and st["status"] == "awaiting_fsca_report"
    )
    t.task_id = t.path["task_id"] = st["fsca_task"]
    t.kind = "report_fsca"
    return t


async def recall_filing(stack) -> Target:
    """A US recall approved (by mgr2): its 806 report to file, a task no process step awaits, which the
    regulatory affairs person reports done with the receipt number and their signature."""
    body = {
        "suspects": [{"product_code": "RESIN", "lot_number": "R-001"}],
        "reason": "Seal may leak",
        "hazard": "Leak can delay infusion therapy",
        "jurisdictions": ["US"],
        "fda_class": "II",
    }
    created = await ok(stack, "POST", "/api/recalls", "init", body)
    st = await state(stack, created["workflow_id"], lambda st: st["approval_task"])
    await ok(stack, "POST", f"/api/tasks/{st['approval_task']}/sign", "mgr2", sign_body("approved")(None))

    async def filing(s):
        return await s.scalar(
            select(Task.id).where(Task.record_id == created["id"], Task.kind == "file:us.806_report")
        )

    tid = await wait_for(filing, stack)
    kind = "file:us.806_report"
    return Target("recall", created["id"], created["workflow_id"], tid, {"task_id": tid}, kind)


FILED = {"password": PASSWORD, "reference": "FDA RES 2026-0042", "note": "Filed with the district office"}

# CAPA ------------------------------------------------------------------------------------------


async def capa_at_plan_approval(stack, **extra) -> Target:
    """A CAPA by the initiator, investigated and its plan proposed by its owner (u_production)."""
    created = await ok(
        stack,
        "POST",
        "/api/capas",
        "init",
        {
            "source": "complaint",
            "source_reference": "CMP-9",
            "title": "Seal leaks",
            "description": "Complaints of leaking seals",
            "owner": "u_production",
            "effectiveness_criteria": "No leak complaint on lots made after the change",
            **extra,
        },
    )
    cid, wid = created["id"], created["workflow_id"]
    await gate(stack, Target("capa", cid, wid), "capa_investigate")
    await ok(
        stack,
        "POST",
        f"/api/capas/{cid}/investigation",
        "u_production",
        {"method": "5-why", "root_causes": ["Seal durometer below spec"]},
    )
    due = (datetime.now(UTC).date() + timedelta(days=10)).isoformat()
    await ok(
        stack,
        "POST",
        f"/api/capas/{cid}/actions",
        "u_production",
        {
            "actions": [
                {"kind": "corrective", "description": "Change seal", "owner": "u_production", "due_on": due}
            ]
        },
    )
    t = Target("capa", cid, wid, kind="approve_capa_plan")
    t.task_id = await gate(stack, t, "approve_capa_plan")
    t.path = {"task_id": t.task_id}
    return t


async def capa_at_closure(stack, time_env) -> Target:
    """A CAPA whose plan mgr2 approved, whose action is done, whose effectiveness period (1 day, skipped)
    passed and whose effectiveness qa2 verified: the closure sign-off is open."""
    t = await capa_at_plan_approval(stack, effectiveness_period_days=1)
    await ok(stack, "POST", f"/api/tasks/{t.task_id}/sign", "mgr2", sign_body("approved")(t))
    await state(stack, t.workflow_id, lambda st: st["status"] == "implementation")
    record = await ok(stack, "GET", f"/api/capas/{t.record_id}", "qa2")
    (act,) = record["actions"]
    await ok(
        stack,
        "POST",
        f"/api/capas/{t.record_id}/actions/{act['id']}/complete",
        "u_production",
        {"evidence": "Done, see DOC-12"},
    )
    await state(stack, t.workflow_id, lambda st: st["status"] == "effectiveness_pending")
    await time_env.sleep(timedelta(days=1, hours=1))
    await gate(stack, t, "capa_verify")
    await ok(
        stack,
        "POST",
        f"/api/capas/{t.record_id}/effectiveness",
        "qa2",
        {"result": "effective", "summary": "No leak in 300 units"},
    )
    t.task_id = t.path["task_id"] = await gate(stack, t, "approve_capa_closure")
    t.kind = "approve_capa_closure"
    return t


# Change control --------------------------------------------------------------------------------


async def change_at_approval(stack, role: str = "qa_manager") -> Target:
    """A design change by the initiator, its impact submitted: four approval tasks open in parallel
    (qa_manager and regulatory required, production optional, releaser comment-only); the target is
    ``role``'s task."""
    created = await ok(
        stack,
        "POST",
        "/api/changes",
        "init",
        {
            "kind": "design",
            "title": "Softer seal",
            "description": "60 to 50 Shore A",
            "product_codes": ["VALVE"],
        },
    )
    cid, wid = created["id"], created["workflow_id"]
    await state(stack, wid, lambda st: st["impact_task"])
    due = (datetime.now(UTC).date() + timedelta(days=5)).isoformat()
    await ok(
        stack,
        "POST",
        f"/api/changes/{cid}/impact",
        "init",
        {
            "risk_assessment": "Reviewed against the risk file",
            "risk_rating": "medium",
            "tasks": [{"title": "Update drawing", "owner": "u_production", "due_on": due}],
        },
    )
    st = await state(stack, wid, lambda st: len(st["approval_tasks"]) == 4)
    by_role = {v["role"]: int(k) for k, v in st["approval_tasks"].items()}
    kind = "comment_change" if role == "releaser" else "approve_change"
    tid = by_role[role]
    return Target("change", cid, wid, tid, {"change_id": cid, "task_id": tid}, kind)


async def change_at_verification(stack) -> Target:
    """A change approved by its required roles (mgr2, reg2), its implementation task done: verifying."""
    t = await change_at_approval(stack)
    st = await stack.client.get_workflow_handle(t.workflow_id).query("status")
    by_role = {v["role"]: int(k) for k, v in st["approval_tasks"].items()}
    await ok(stack, "POST", f"/api/tasks/{by_role['qa_manager']}/sign", "mgr2", sign_body("approved")(t))
    await ok(stack, "POST", f"/api/tasks/{by_role['regulatory']}/sign", "reg2", sign_body("approved")(t))
    st = await state(stack, t.workflow_id, lambda st: st["status"] == "implementing" and st["open_tasks"])
    for change_task in st["open_tasks"]:
        await ok(
            stack, "POST", f"/api/changes/{t.record_id}/tasks/{change_task}/complete", "u_production", {}
        )
    st = await state(stack, t.workflow_id, lambda st: st["status"] == "verifying" and st["verify_task"])
    t.task_id = t.path["task_id"] = st["verify_task"]
    t.kind = "verify_change"
    return t


# QC lot release --------------------------------------------------------------------------------

PASSING = [
    {"characteristic": "flow", "value": 10.0},
    {"characteristic": "leak", "passed": True},
]
FAILING = [
    {"characteristic": "flow", "value": 11.0},
    {"characteristic": "leak", "passed": True},
]
_lots = count(1)


async def release_task(stack, results: list[dict] = PASSING) -> Target:
    """A fresh VALVE lot in quarantine, inspected by the initiator, results recorded by u_production:
    the release task is open."""
    number = f"V-{next(_lots)}"
    async with stack.sessions() as s, s.begin():
        valve = await s.scalar(select(Product).where(Product.code == "VALVE"))
        wh = await s.scalar(select(Location).where(Location.code == "WH1"))
        lot = await f.lot(s, valve, number)
        await inventory.post(s, kind=MovementKind.receipt, lot=lot, location=wh, quantity=20)
    started = await ok(stack, "POST", f"/api/lots/VALVE/{number}/inspections", "init")
    await ok(stack, "POST", f"/api/inspections/{started['id']}/results", "u_production", {"results": results})
    st = await state(
        stack, started["workflow_id"], lambda st: st["release_task"] and st["status"] == "awaiting_release"
    )
    tid = st["release_task"]
    return Target("lot_release", started["id"], started["workflow_id"], tid, {"task_id": tid}, "release_lot")


async def concession_task(stack) -> Target:
    """A failed lot that rel2 signed for release with a justification: the concession approval is open."""
    t = await release_task(stack, FAILING)
    await ok(
        stack,
        "POST",
        f"/api/tasks/{t.task_id}/sign",
        "rel2",
        sign_body("released", "Flow 11.0 ml/h accepted: design review DR-7")(t),
    )
    st = await state(stack, t.workflow_id, lambda st: st["concession_task"])
    t.task_id = t.path["task_id"] = st["concession_task"]
    t.kind = "approve_concession"
    return t


# ------------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Row:
    """One endpoint at one step: the expected status per column of COLUMNS."""

    name: str
    endpoint: str  # "POST <route path>"
    make: Callable[..., Awaitable[Target]]
    body: Callable[[Target], dict | None]
    expect: tuple[int, ...]
    # What the initiator's refusal says (their own record: separation of duties), where it is refused.
    initiator_says: str | None = "separation of duties"

    def __str__(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


SIGN = "POST /api/tasks/{task_id}/sign"
DELEGATE_BODY = {"to": "mgr2", "reason": "Away at a supplier audit this week"}


def no_body(_t: Target) -> None:
    return None


ROWS = [
    # name                               endpoint / setup / body
    #                                               qa   qa_mgr  reg  rel   wh  prod  admin init
    Row("recall: approve", SIGN, recall, sign_body("approved"),
        (409, 200, 409, 409, 409, 409, 409, 409)),
    Row("recall: reject", SIGN, recall, sign_body("rejected", "Scope is wrong"),
        (409, 200, 409, 409, 409, 409, 409, 409)),
    Row("recall: approve a task claimed by someone else", SIGN,
        lambda stack: recall_claimed(stack, "mgr2"), sign_body("approved"),
        (409, 409, 409, 409, 409, 409, 409, 409), initiator_says="claimed by mgr2"),
    Row("recall: report the FSCA (EU gate)", SIGN, recall_at_fsca_gate, sign_body("approved"),
        (409, 409, 200, 409, 409, 409, 409, 200)),
    Row("recall: cancel before approval", "POST /api/recalls/{recall_id}/close", recall,
        lambda _t: JUSTIFIED,
        (403, 200, 403, 403, 403, 403, 409, 200)),
    Row("recall: urgent override of the FSCA gate", "POST /api/recalls/{recall_id}/urgent-override",
        recall_at_fsca_gate, lambda _t: JUSTIFIED,
        (403, 200, 200, 403, 403, 403, 409, 200)),
    Row("CAPA: approve the action plan", SIGN, capa_at_plan_approval, sign_body("approved"),
        (409, 200, 409, 409, 409, 409, 409, 409)),
    Row("CAPA: reject the action plan", SIGN, capa_at_plan_approval, sign_body("rejected", "Too vague"),
        (409, 200, 409, 409, 409, 409, 409, 409)),
    Row("CAPA: sign the closure", SIGN, capa_at_closure, sign_body("approved"),
        (409, 200, 409, 409, 409, 409, 409, 409)),
    Row("change: approve as qa_manager", SIGN, change_at_approval, sign_body("approved"),
        (409, 200, 409, 409, 409, 409, 409, 409)),
    Row("change: approve as regulatory", SIGN, lambda stack: change_at_approval(stack, "regulatory"),
        sign_body("approved"),
        (409, 409, 200, 409, 409, 409, 409, 409)),
    Row("change: reject as qa_manager", SIGN, change_at_approval, sign_body("rejected", "Risk file gap"),
        (409, 200, 409, 409, 409, 409, 409, 409)),
    Row("change: comment as releaser (comment-only)", "POST /api/changes/{change_id}/comments",
        lambda stack: change_at_approval(stack, "releaser"),
        lambda t: {"task_id": t.task_id, "password": PASSWORD, "comment": "Checklist needs a line"},
        (409, 409, 409, 200, 409, 409, 409, 409)),
    Row("change: verify the implementation", SIGN, change_at_verification, sign_body("approved"),
        (200, 409, 409, 409, 409, 409, 409, 409)),
    Row("change: withdraw", "POST /api/changes/{change_id}/withdraw", change_at_approval,
        lambda _t: JUSTIFIED,
        (409, 200, 409, 403, 403, 409, 409, 200)),
    Row("QC: release the lot", SIGN, release_task, sign_body("released"),
        (409, 409, 409, 200, 409, 409, 409, 409)),
    Row("QC: reject the lot", SIGN, release_task, sign_body("rejected", "Batch record deviation"),
        (409, 409, 409, 200, 409, 409, 409, 409)),
    Row("QC: approve a concession", SIGN, concession_task, sign_body("approved"),
        (409, 200, 409, 409, 409, 409, 409, 409)),
    Row("task: claim", "POST /api/tasks/{task_id}/claim", recall, no_body,
        (403, 200, 403, 403, 403, 403, 403, 403)),
    Row("task: claim a task someone else claimed", "POST /api/tasks/{task_id}/claim",
        lambda stack: recall_claimed(stack, "mgr2"), no_body,
        (403, 409, 403, 403, 403, 403, 403, 403)),
    Row("task: release a claim", "POST /api/tasks/{task_id}/release",
        lambda stack: recall_claimed(stack, "u_qa_manager"), no_body,
        (403, 200, 403, 403, 403, 403, 403, 403), initiator_says="claimed by u_qa_manager"),
    Row("task: delegate", "POST /api/tasks/{task_id}/delegate",
        lambda stack: recall_claimed(stack, "u_qa_manager"), lambda _t: DELEGATE_BODY,
        (403, 200, 403, 403, 403, 403, 403, 403), initiator_says="claimed by u_qa_manager"),
    Row("task: report a filing done", "POST /api/tasks/{task_id}/complete", recall_filing,
        lambda _t: FILED,
        (403, 403, 200, 403, 403, 403, 403, 200)),  # the initiator may: filing is work, not approval
]  # fmt: skip
SIGNED_KINDS = {
    "approve_recall",
    "report_fsca",
    "approve_capa_plan",
    "approve_capa_closure",
    "approve_change",
    "comment_change",
    "verify_change",
    "release_lot",
    "approve_concession",
}

# ------------------------------------------------------------------------------------ deriving rows


def signoff_endpoints() -> set[str]:
    """From the app's OpenAPI: every POST whose JSON body has a ``password`` (a signature), and every
    POST on one task."""
    app = create_app()
    spec = app.openapi()
    schemas = spec["components"]["schemas"]
    found = set()
    for path, ops in spec["paths"].items():
        op = ops.get("post")
        if op is None or not path.startswith("/api/"):
            continue
        if path.startswith("/api/tasks/{task_id}/"):
            found.add(f"POST {path}")
            continue
        content = op.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None:
            continue  # sign-in is a form post, not a signature on a record
        ref = content["schema"].get("$ref", "")
        props = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
        if "password" in props:
            found.add(f"POST {path}")
    return found


def test_every_signoff_endpoint_has_rows():
    derived = signoff_endpoints()
    assert {"POST /api/tasks/{task_id}/sign", "POST /api/recalls/{recall_id}/close"} <= derived
    rows = {row.endpoint for row in ROWS}
    assert derived - rows == set(), "sign-off endpoints without a row in the matrix"
    assert rows - derived == set(), "rows for endpoints the app no longer has"
    assert len(COLUMNS) == len(set(Role)) + 1 and all(len(r.expect) == len(COLUMNS) for r in ROWS)


# ------------------------------------------------------------------------------------ running a row


WORKFLOW_TASK_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
}
FINGERPRINT = ("tasks", "signatures", "audit entries", "workflow state", "workflow history")


async def fingerprint(stack, t: Target) -> tuple:
    """Everything a refusal must leave as it was: the record's tasks, signatures and audit entries, and
    the workflow's state and history."""
    async with stack.sessions() as s:
        tasks = list(
            await s.scalars(
                select(Task)
                .where(Task.record_type == t.record_type, Task.record_id == t.record_id)
                .order_by(Task.id)
            )
        )
        task_rows = [
            (x.id, x.status, x.assignee, x.claimed_at, x.delegated_by, x.completed_by, x.outcome)
            for x in tasks
        ]
        signatures = list(
            await s.scalars(
                select(Signature.id).where(
                    Signature.record_type == t.record_type, Signature.record_id == t.record_id
                )
            )
        )
        audit = await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(
                or_(
                    (AuditEntry.record_type == t.record_type) & (AuditEntry.record_id == str(t.record_id)),
                    (AuditEntry.record_type == "task") & AuditEntry.record_id.in_([str(x.id) for x in tasks]),
                )
            )
        )
    handle = stack.client.get_workflow_handle(t.workflow_id)
    # A rejected Update leaves only workflow-task events on a server without speculative workflow tasks
    # (the time-skipping server): what counts is that nothing was accepted, scheduled or recorded.
    history = [
        e.event_type
        for e in (await handle.fetch_history()).events
        if e.event_type not in WORKFLOW_TASK_EVENTS
    ]
    return (task_rows, signatures, audit, await handle.query("status"), history)


async def settled(stack, t: Target) -> None:
    """Wait until the workflow is idle at the step (no activity in flight), so that a fingerprint taken
    now is stable: a refusal must then change nothing."""
    first = await fingerprint(stack, t)
    for _ in range(50):
        await asyncio.sleep(0.2)
        again = await fingerprint(stack, t)
        if again == first:
            return
        first = again
    raise AssertionError(f"{t.workflow_id} never settled")


async def world(stack) -> None:
    await build_world(stack.sessions, users=False)
    async with stack.sessions() as s, s.begin():
        for name, roles in PEOPLE.items():
            await create_user(
                s,
                username=name,
                full_name=name.upper(),
                roles=roles,
                password=PASSWORD,
                password_hasher=CHEAP,
            )
        await f.product(s, "VALVE")
    await ok(
        stack,
        "PUT",
        "/api/products/VALVE/inspection-plan",
        "u_qa",
        {
            "characteristics": [
                {"name": "flow", "kind": "numeric", "lower": 9.5, "upper": 10.5, "unit": "ml/h"},
                {"name": "leak", "kind": "pass_fail"},
            ]
        },
    )


@pytest.mark.parametrize("row", ROWS, ids=str)
async def test_authorization_matrix(recall_stack, time_env, row: Row):
    stack = recall_stack
    await world(stack)
    method, route = row.endpoint.split(" ", 1)

    async def make() -> Target:
        args = (stack, time_env) if row.make is capa_at_closure else (stack,)
        t = await row.make(*args)
        await settled(stack, t)
        return t

    def url(t: Target) -> str:
        return route.format(**t.path)

    wrong: list[str] = []
    target = await make()
    assert (await task_of(stack, target.task_id)).kind == target.kind
    allowed = [c for c, code in zip(COLUMNS, row.expect, strict=True) if code < 300]
    for col, expected in zip(COLUMNS, row.expect, strict=True):
        if expected < 300:
            continue
        before = await fingerprint(stack, target)
        r = await call(stack, method, url(target), CALLER[col], row.body(target))
        if r.status_code != expected:
            wrong.append(f"{col}: expected {expected}, got {r.status_code} {r.text[:300]}")
            continue
        why = r.json()["detail"][0]["reason"]
        assert why, r.text  # every refusal says why
        if col == "initiator" and row.initiator_says and row.initiator_says not in why:
            wrong.append(f"initiator: refused, but not for {row.initiator_says!r}: {why}")
        after = await fingerprint(stack, target)
        if after != before:
            changed = [name for name, a, b in zip(FINGERPRINT, before, after, strict=True) if a != b]
            wrong.append(f"{col}: refused with {expected} but changed {changed}: {before} -> {after}")
    for n, col in enumerate(allowed):
        t = target if n == 0 else await make()
        before = await fingerprint(stack, t)
        r = await call(stack, method, url(t), CALLER[col], row.body(t))
        if r.status_code != 200:
            wrong.append(f"{col}: expected 200, got {r.status_code} {r.text[:300]}")
        elif await fingerprint(stack, t) == before:
            wrong.append(f"{col}: answered 200 but nothing changed")
    assert not wrong, f"{row.endpoint} ({row.name}):\n" + "\n".join(wrong)

    # Every task the workflows opened for a signature is of a kind the table covers.
    async with stack.sessions() as s:
        kinds = {t.kind for t in await s.scalars(select(Task)) if (t.details or {}).get(SIGN_OFF)}
    assert kinds <= SIGNED_KINDS, (
        f"tasks signed through the sign-off mechanism without a row: {kinds - SIGNED_KINDS}"
    )


async def test_a_delegate_signs_with_their_own_signature_and_the_initiator_never_can(recall_stack):
    stack = recall_stack
    await world(stack)
    t = await recall_claimed(stack, "u_qa_manager")
    r = await call(
        stack, "POST", f"/api/tasks/{t.task_id}/delegate", "u_qa_manager", {"to": "init", "reason": "x"}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "to"  # separation of duties holds
    await ok(stack, "POST", f"/api/tasks/{t.task_id}/delegate", "u_qa_manager", DELEGATE_BODY)
    r = await call(stack, "POST", f"/api/tasks/{t.task_id}/sign", "u_qa_manager", sign_body("approved")(t))
    assert r.status_code == 409 and "claimed by mgr2" in r.json()["detail"][0]["reason"]
    signed = await ok(stack, "POST", f"/api/tasks/{t.task_id}/sign", "mgr2", sign_body("approved")(t))
    async with stack.sessions() as s:
        sig = await s.get(Signature, signed["signature_id"])
        assert (sig.signer, sig.printed_name, sig.task_id) == ("mgr2", "MGR2", t.task_id)
        entries = list(
            await s.scalars(
                select(AuditEntry).where(
                    AuditEntry.record_type == "task", AuditEntry.record_id == str(t.task_id)
                )
            )
        )
    assert any(
        e.actor == "u_qa_manager" and e.reason and DELEGATE_BODY["reason"] in e.reason for e in entries
    )
