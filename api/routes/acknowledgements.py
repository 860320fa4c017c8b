"""Consignees acknowledge: a signed web link (notice + form), SMS replies, and delivery receipts.

Every inbound fact is committed to the store before the recall's workflow is told (coalesced signal).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from temporalio.client import Client
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from api.deps import SessionDep, SettingsDep
from api.workflow_calls import wake_recall
from domain.errors import DomainError
from domain.recalls import acknowledgements as acks
from domain.recalls.links import ack_path, verify_ack
from domain.recalls.receipts import record_receipt
from lotline.temporal import connect

router = APIRouter(tags=["acknowledgements"])
TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")
QUANTITY_FIELDS = ("on_hand", "returned", "corrected", "destroyed", "used")


async def _client(request: Request) -> Client | None:
    """The Temporal client if reachable; an inbound fact is stored either way."""
    state = request.app.state
    if getattr(state, "temporal", None) is None:
        try:
            state.temporal = await connect(state.settings, wait=0)
        except RuntimeError:
            return None
    return state.temporal


def _check_link(rc_id: int, signature: str, secret: str) -> None:
    if not verify_ack(rc_id, signature, secret=secret):
        raise HTTPException(status_code=403, detail=[{"field": "link", "reason": "this link is not valid"}])


async def _page(request: Request, session, rc_id: int, *, status_code: int = 200, **extra) -> HTMLResponse:
    rc, recall, consignee = await acks.load_link(session, rc_id)
    lots = await acks.exposures_of(session, rc)
    zh = consignee.language.value == "zh-CN"
    return TEMPLATES.TemplateResponse(
        request,
        "ack/form.html",
        {
            "recall": recall,
            "consignee": consignee,
            "rc": rc,
            "lots": lots,
            "zh": zh,
            "errors": [],
            "done": None,
            "values": {},
            **extra,
        },
        status_code=status_code,
    )


@router.get("/ack/{rc_id}/{signature}", response_class=HTMLResponse)
async def open_link(
    rc_id: int, signature: str, request: Request, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """The consignee opens their link: the notice is marked opened and the form shown."""
    _check_link(rc_id, signature, settings.secret_key)
    rc, _recall, _c = await acks.load_link(session, rc_id)
    await acks.mark_opened(session, rc)
    await session.commit()
    return await _page(request, session, rc_id)


def _form_to_ack(form: dict[str, str], lot_ids: list[int]) -> dict:
    """The HTML form's fields as an AckForm dict; quantities named ``<field>_<lot id>``."""

    def flag(name: str) -> bool:
        return form.get(name, "").lower() in ("on", "true", "1", "yes")

    quantities = []
    for lot_id in lot_ids:
        q: dict = {"lot_id": lot_id}
        for f in QUANTITY_FIELDS:
            raw = (form.get(f"{f}_{lot_id}") or "").strip()
            q[f] = raw if raw else 0
        quantities.append(q)
    return {
        "received_and_understood": flag("received_and_understood"),
        "actions_completed": flag("actions_completed"),
        "forwarded_to_sub_accounts": flag("forwarded_to_sub_accounts"),
        "no_affected_stock": flag("no_affected_stock"),
        "name": (form.get("name") or "").strip(),
        "role": form.get("role") or None,
        "site": form.get("site") or None,
        "contact": form.get("contact") or None,
        "sub_consignees": [s.strip() for s in (form.get("sub_consignees") or "").splitlines() if s.strip()],
        "quantities": quantities,
    }


def _errors(exc: ValidationError) -> list[dict]:
    return [{"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors()]


@router.post("/ack/{rc_id}/{signature}")
async def submit(
    rc_id: int, signature: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """Record the acknowledgement once; a repeat changes nothing and says so. JSON or the HTML form."""
    _check_link(rc_id, signature, settings.secret_key)
    is_json = request.headers.get("content-type", "").startswith("application/json")
    rc, _recall, _c = await acks.load_link(session, rc_id)
    if is_json:
        try:
            payload = await request.json()
        except ValueError:
            return JSONResponse(
                status_code=422, content={"detail": [{"field": "body", "reason": "not JSON"}]}
            )
    else:
        lot_ids = [e["lot_id"] for e in await acks.exposures_of(session, rc)]
        raw = dict((await request.form()).items())
        payload = _form_to_ack({k: str(v) for k, v in raw.items()}, lot_ids)
    try:
        form = acks.AckForm.model_validate(payload)
        outcome = await acks.record_web_response(session, recall_consignee_id=rc_id, form=form)
    except ValidationError as exc:
        await session.rollback()
        if is_json:
            return JSONResponse(status_code=422, content={"detail": _errors(exc)})
        return await _page(request, session, rc_id, status_code=422, errors=_errors(exc), values=payload)
    except DomainError as exc:
        await session.rollback()
        if is_json:
            return JSONResponse(status_code=exc.status_code, content={"detail": [exc.as_dict()]})
        return await _page(request, session, rc_id, status_code=exc.status_code, errors=[exc.as_dict()])
    await session.commit()
    if outcome.recorded:
        await wake_recall(session, await _client(request), outcome.recall_id)
    if is_json:
        return JSONResponse(
            status_code=201 if outcome.recorded else 200,
            content={"recorded": outcome.recorded, "message": outcome.message},
        )
    return await _page(request, session, rc_id, status_code=201 if outcome.recorded else 200, done=outcome)


def _validate_twilio(request: Request, settings, params: dict[str, str]) -> None:
    url = settings.public_base_url.rstrip("/") + request.url.path
    signature = request.headers.get("X-Twilio-Signature", "")
    if not RequestValidator(settings.twilio_auth_token).validate(url, params, signature):
        raise HTTPException(
            status_code=403,
            detail=[{"field": "X-Twilio-Signature", "reason": "the request is not signed by Twilio"}],
        )


@router.post("/webhooks/twilio/sms")
async def inbound_sms(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """A consignee replied by SMS: YES, ACK, 确认 or the code acknowledges receipt; answered with the link."""
    params = {k: str(v) for k, v in (await request.form()).items()}
    _validate_twilio(request, settings, params)
    sender, body = params.get("From", ""), params.get("Body", "")
    base = settings.public_base_url.rstrip("/")
    outcome = await acks.record_sms_reply(
        session,
        from_number=sender,
        body=body,
        link_for=lambda rc_id: base + ack_path(rc_id, secret=settings.secret_key),
    )
    await session.commit()
    client = await _client(request) if any(a.recorded for a in outcome.acknowledged) else None
    for recall_id in dict.fromkeys(a.recall_id for a in outcome.acknowledged if a.recorded):
        await wake_recall(session, client, recall_id)
    twiml = MessagingResponse()
    if not outcome.matched:
        twiml.message("This number has no recall notice from us. Please contact the sender directly.")
    elif outcome.reply:
        twiml.message(outcome.reply)
    return Response(content=str(twiml), media_type="application/xml")


@router.post("/webhooks/twilio/status")
async def sms_status(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Delivery receipts for SMS notices (signed by Twilio); a repeat changes nothing."""
    params = {k: str(v) for k, v in (await request.form()).items()}
    _validate_twilio(request, settings, params)
    sid, status_ = params.get("MessageSid", ""), params.get("MessageStatus", "")
    if not sid or not status_:
        raise HTTPException(
            status_code=422,
            detail=[{"field": "MessageSid", "reason": "MessageSid and MessageStatus are required"}],
        )
    await record_receipt(session, provider_id=sid, status=status_, error_code=params.get("ErrorCode") or None)
    await session.commit()
    return Response(status_code=204)
