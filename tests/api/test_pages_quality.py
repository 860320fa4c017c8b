"""CAPA, change-control and lot-release pages over HTTP against the real app: lists, record pages with their
timelines, audit trail (for the roles GET /api/audit admits) and signatures, the task pages' record views,
and the release sign-off form with its disposition split; one release signed from the page on the real
stack (API, worker, time-skipping Temporal)."""

from __future__ import annotations

import re
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from api.pages import capas as capa_pages
from api.pages import changes as change_pages
from api.pages import releases as release_pages
from api.routes import capa as capa_api
from api.routes import changes as changes_api
from api.routes import quality as quality_api
from domain import inventory
from domain.capa import service as capas
from domain.capa.payloads import ActionInput
from domain.changes import service as changes
from domain.enums import MovementKind
from domain.quality import service as quality
from domain.quality.models import Disposition
from domain.quality.payloads import CharacteristicSpec, ResultInput
from domain.tasks.models import Signature, Task
from domain.tasks.payloads import SIGN_OFF, TaskSpec
from domain.tasks.service import open_task
from tests import factories as f
from tests.api.test_pages import sign_in

PLAN = [
    CharacteristicSpec(name="flow", kind="numeric", lower=9.5, upper=10.5, unit="ml/h", sample_size=2),
    CharacteristicSpec(name="leak", kind="pass_fail"),
]


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.mark.parametrize(
    ("module", "api_guard"),
    [
        (capa_pages, capa_api.READERS),
        (change_pages, changes_api.READERS),
        (release_pages, quality_api.READERS),
    ],
)
def test_each_page_admits_the_roles_of_its_api_read_route(module, api_guard):
    for route in module.router.routes:
        guards = [
            d.call.required_roles for d in route.dependant.dependencies if hasattr(d.call, "required_roles")
        ]
        assert guards == [set(api_guard.required_roles)], route.path


async def _capa(sessions) -> int:
    async with sessions() as s, s.begin():
        capa = await capas.create_capa(
            s,
            source="complaint",
            source_reference="CMP-7",
            title="Seal leaks on PUMP",
            description="Three complaints of leaks",
            owner="qa1",
            initiated_by="qa1",
        )
        await capas.record_investigation(
            s, capa_id=capa.id, method="5-why", root_causes=["Seal supplier changed the resin"], by="qa1"
        )
        await capas.propose_action_plan(
            s,
            capa_id=capa.id,
            actions=[
                ActionInput(
                    kind="corrective",
                    description="Requalify the seal",
                    owner="qa1",
                    due_on=date.today() + timedelta(days=30),
                ),
                ActionInput(
                    kind="preventive",
                    description="Add incoming inspection of seals",
                    owner="qa1",
                    due_on=date.today() + timedelta(days=60),
                ),
            ],
            by="qa1",
            effectiveness_criteria="No leak complaint in the six months after the change",
        )
        return capa.id


async def test_the_capa_list_and_page_show_its_plan_timeline_and_audit_trail(pages, sqlite_store):
    _app, client = pages
    capa_id = await _capa(sqlite_store.sessions)
    await sign_in(client, "qa1")
    listing = await client.get("/capas")
    assert listing.status_code == 200 and f'href="/capas/{capa_id}"' in listing.text
    assert "Seal leaks on PUMP" in listing.text and "plan awaiting approval" in listing.text
    assert f'href="/capas/{capa_id}"' not in (await client.get("/capas", params={"status": "closed"})).text
    assert (await client.get("/capas", params={"status": "nope"})).status_code == 422

    page = await client.get(f"/capas/{capa_id}")
    assert page.status_code == 200
    html = page.text
    assert "Seal supplier changed the resin" in html and "5 whys" in html
    assert "Requalify the seal" in html and "Add incoming inspection of seals" in html
    timeline = html.split('id="timeline-h"', 1)[1].split("</ol>")[0]
    order = [
        timeline.index(m) for m in ("CAPA initiated", "Investigation recorded", "Action plan 1 proposed")
    ]
    assert order == sorted(order)
    audit = html.split('id="audit-h"', 1)[1]
    assert "capa 1" in audit and "capa_action" in audit and "<code>root_causes</code>" in audit
    assert "No signatures yet." in html

    client.cookies.clear()
    await sign_in(client, "rel1")  # reads CAPAs (as the API lets every role), not the audit trail
    other = await client.get(f"/capas/{capa_id}")
    assert (
        other.status_code == 200 and "Requalify the seal" in other.text and 'id="audit-h"' not in other.text
    )

    assert (await client.get("/capas/9999")).status_code == 404
    assert (await client.get("/capas/x")).status_code == 422


async def test_the_change_list_and_page(pages, sqlite_store):
    _app, client = pages
    async with sqlite_store.sessions() as s, s.begin():
        pump = await f.product(s, "PUMP")
        change = await changes.create_change(
            s,
            kind="supplier",
            title="New seal supplier",
            description="Second source for the seal",
            product_ids=[pump.id],
            initiated_by="qa1",
            blocks_release=True,
        )
        change_id = change.id
    await sign_in(client, "mgr1")
    listing = await client.get("/changes", params={"open": "true"})
    assert listing.status_code == 200 and f'href="/changes/{change_id}"' in listing.text
    assert "New seal supplier" in listing.text and "blocks release" in listing.text and "PUMP" in listing.text
    assert (await client.get("/changes", params={"kind": "colour"})).status_code == 422
    page = await client.get(f"/changes/{change_id}")
    assert page.status_code == 200
    assert "impact assessment" in page.text and "The impact is being computed." in page.text
    assert "Change requested" in page.text.split('id="timeline-h"', 1)[1]
    assert 'id="audit-h"' in page.text and "change 1" in page.text
    assert (await client.get("/changes/77")).status_code == 404


async def _inspection(sessions, *, failing: bool = False) -> tuple[int, int]:
    """PUMP/P-100 with 50 on hand, inspected against PLAN, results recorded by prod1."""
    async with sessions() as s, s.begin():
        pump = await f.product(s, "PUMP")
        lot = await f.lot(s, pump, "P-100")
        wh = await f.location(s, "WH1")
        await inventory.post(s, kind=MovementKind.receipt, lot=lot, location=wh, quantity=50)
        await quality.put_plan(s, product_id=pump.id, characteristics=PLAN, created_by="qa1")
        insp = await quality.start_inspection(s, lot_id=lot.id, initiated_by="qa1")
        await quality.record_results(
            s,
            inspection_id=insp.id,
            results=[
                ResultInput(characteristic="flow", value=9.9),
                ResultInput(characteristic="flow", value=11.2 if failing else 10.1),
                ResultInput(characteristic="leak", passed=True),
            ],
            recorded_by="prod1",
        )
        return insp.id, lot.id


async def test_the_release_list_and_page_show_the_evaluation_results_and_timeline(pages, sqlite_store):
    _app, client = pages
    inspection_id, _lot = await _inspection(sqlite_store.sessions, failing=True)
    await sign_in(client, "rel1")
    listing = await client.get("/releases")
    assert listing.status_code == 200 and f'href="/releases/{inspection_id}"' in listing.text
    assert "<code>PUMP/P-100</code>" in listing.text and "quarantined" in listing.text
    page = await client.get(f"/releases/{inspection_id}")
    assert page.status_code == 200
    html = page.text
    assert "Release of lot PUMP/P-100" in html and re.search(r'id="release-on-hand">50<', html)
    evaluation = html.split('id="eval-h"', 1)[1].split("</section>")[0]
    assert "failed" in evaluation and "11.2" in evaluation and "9.5" in evaluation
    timeline = html.split('id="timeline-h"', 1)[1].split("</ol>")[0]
    assert "Inspection started; lot in quarantine" in timeline and "3 results recorded" in timeline
    assert 'id="audit-h"' not in html  # a releaser does not read the audit trail
    assert (await client.get("/releases/404")).status_code == 404
    assert (await client.get("/releases", params={"status": "maybe"})).status_code == 422


async def _release_task(sessions, inspection_id: int) -> int:
    spec = TaskSpec(
        process="release",
        kind="release_lot",
        title="Release lot PUMP/P-100",
        record_type="lot_release",
        record_id=inspection_id,
        candidate_roles=["releaser"],
        excluded_users=["qa1", "prod1"],
        workflow_id=f"qc-release-{inspection_id}",
        business_key=f"qc-release-{inspection_id}-release-1",
        details={SIGN_OFF: True},
    )
    async with sessions() as s, s.begin():
        return (await open_task(s, spec=spec)).task_id


async def test_the_release_task_page_asks_for_the_disposition_split_and_refuses_one_that_does_not_add_up(
    pages, sqlite_store
):
    app, client = pages
    # These refusals never reach the workflow: a stand-in that any use of it would break proves it.
    app.state.temporal = object()
    inspection_id, _lot = await _inspection(sqlite_store.sessions)
    task_id = await _release_task(sqlite_store.sessions, inspection_id)
    await sign_in(client, "rel1")
    page = await client.get(f"/tasks/{task_id}")
    assert page.status_code == 200
    html = page.text
    assert f'href="/releases/{inspection_id}"' in html  # the record view links to the record's page
    release = html.split('<dialog id="sign-released"', 1)[1].split("</dialog>")[0]
    assert 'name="disposition_unrestricted" value="50"' in release
    for part in ("blocked", "scrap", "sample"):
        assert f'name="disposition_{part}" value="0"' in release
    rejected = html.split('<dialog id="sign-rejected"', 1)[1].split("</dialog>")[0]
    assert (
        'name="disposition_blocked" value="50"' in rejected
        and 'name="disposition_unrestricted"' not in rejected
    )
    assert 'name="capa"' in rejected

    form = {
        "csrf_token": _csrf(html),
        "decision": "released",
        "password": "correct horse battery",
        "disposition_unrestricted": "45",
        "disposition_blocked": "0",
        "disposition_scrap": "0",
        "disposition_sample": "2",
    }
    refused = await client.post(f"/tasks/{task_id}/sign", data=form)
    assert refused.status_code == 422
    assert "Disposition: the disposition accounts for 47 units but the lot has 50 on hand" in refused.text
    assert 'name="disposition_unrestricted" value="45"' in refused.text  # what was typed comes back
    typo = await client.post(f"/tasks/{task_id}/sign", data={**form, "disposition_scrap": "three"})
    assert typo.status_code == 422 and "Scrap: Input should be a valid integer" in typo.text
    async with sqlite_store.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Signature)) == 0
        assert (await s.get(Task, task_id)).status == "open"


@pytest.mark.temporal
async def test_a_releaser_releases_a_lot_from_the_page_with_a_split(recall_stack):
    """On the real stack: the releaser signs the release on the task page with 45 released, 3 kept as
    samples and 2 scrapped; the workflow applies exactly that split."""
    from tests.workflows.test_qc_release import open_task as release_task
    from tests.workflows.test_qc_release import setup_release

    stack = recall_stack
    started = await setup_release(stack)
    task = await release_task(stack, started["id"])
    async with httpx.AsyncClient(base_url=stack.base_url, headers={"Accept-Language": "en"}) as http:
        login = await http.get("/login")
        await http.post(
            "/login",
            data={
                "username": "rel1",
                "password": "correct horse battery",
                "next": "/inbox",
                "csrf_token": _csrf(login.text),
            },
        )
        page = await http.get(f"/tasks/{task.id}")
        assert page.status_code == 200 and 'name="disposition_unrestricted" value="50"' in page.text
        r = await http.post(
            f"/tasks/{task.id}/sign",
            data={
                "csrf_token": _csrf(page.text),
                "decision": "released",
                "password": "correct horse battery",
                "disposition_unrestricted": "45",
                "disposition_blocked": "",
                "disposition_scrap": "2",
                "disposition_sample": "3",
            },
        )
        assert r.status_code == 303, r.text
        signed = await http.get(r.headers["location"])
        assert "Signed: released." in signed.text

    async def applied(s):
        return await s.scalar(select(Disposition).where(Disposition.inspection_id == started["id"]))

    from tests.workflows.conftest import wait_for

    d = await wait_for(applied, stack)
    assert (d.outcome.value, d.unrestricted, d.blocked, d.scrap, d.sample, d.decided_by) == (
        "released",
        45,
        0,
        2,
        3,
        "rel1",
    )


def test_every_status_kind_and_outcome_the_pages_name_has_english_and_chinese_wording():
    from api.pages import i18n
    from domain.capa.payloads import ActionKind, ActionStatus, CapaSource, CapaStatus, EffectivenessResult
    from domain.changes.payloads import ChangeKind, ChangeStatus, ChangeTaskStatus, Requirement, RiskRating
    from domain.enums import QcStatus, StockStatus
    from domain.quality.payloads import DispositionOutcome, EvaluationOutcome, InspectionStatus
    from domain.recalls.dashboard import SHOWS
    from domain.recalls.payloads import ConsigneeState

    sets = {
        "capa_status": CapaStatus,
        "capa_source": CapaSource,
        "action_kind": ActionKind,
        "action_status": ActionStatus,
        "effectiveness": EffectivenessResult,
        "change_status": ChangeStatus,
        "change_kind": ChangeKind,
        "change_task_status": ChangeTaskStatus,
        "requirement": Requirement,
        "risk": RiskRating,
        "inspection_status": InspectionStatus,
        "qc_status": QcStatus,
        "evaluation": EvaluationOutcome,
        "disposition": DispositionOutcome,
        "consignee_state": ConsigneeState,
        "stock_status": StockStatus,
    }
    ids = {f"{prefix}.{member.value}" for prefix, enum in sets.items() for member in enum}
    ids |= {f"show.{s}" for s in SHOWS} | {f"deadline_kind.{k}" for k in ("notify", "report", "gate")}
    ids |= {f"funnel.{k}" for k in ("planned", "sent", "delivered", "opened", "acknowledged")}
    ids |= {f"audit.{a}" for a in ("create", "update", "delete")}
    ids |= {f"field.disposition.{p}" for p in release_pages.SPLIT_PARTS}
    assert not sorted(m for m in ids if m not in i18n.EN), "without English wording"
    assert not sorted(m for m in ids if m not in i18n.ZH_CN), "without Chinese wording"
