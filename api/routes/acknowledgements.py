"""Consignees acknowledge: a signed web link (notice + form), SMS replies, and delivery receipts.

Every inbound fact is committed to the store before the recall's workflow is told (coalesced signal).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from temporalio.client import Client
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from api.deps import SessionDep, SettingsDep
from api.pages.i18n import translate
from api.pages.render import page_language, render
from api.workflow_calls import RecallWaker
from domain.enums import Language
from domain.errors import DomainError
from domain.recalls import acknowledgements as acks
from domain.recalls.links import ack_path, verify_ack
from domain.recalls.models import Response as AckResponse
from domain.recalls.receipts import record_receipt
from lotline.temporal import connect
from notifications.labels import LABELS, TITLES, regulators_informed, regulators_sentence

router = APIRouter(tags=["acknowledgements"])
QUANTITY_FIELDS = ("on_hand", "returned", "corrected", "destroyed", "used")
# Each quantity field and its label on the form (messages of api/pages/i18n.py).
QUANTITY_LABELS = (
    ("on_hand", "On hand"),
    ("returned", "Returned"),
    ("corrected", "Corrected"),
    ("destroyed", "Destroyed"),
    ("used", "Used"),
)


async def _temporal_of(state) -> Client | None:
    """The app's Temporal client if reachable; an inbound fact is stored either way."""
    if getattr(state, "temporal", None) is None:
        try:
            state.temporal = await connect(state.settings, wait=0)
        except RuntimeError:
            return None
    return state.temporal


def _waker(request: Request) -> RecallWaker:
    """The app's waker: workflows are told of committed facts in the background, coalesced."""
    state = request.app.state
    if getattr(state, "recall_waker", None) is None:
        state.recall_waker = RecallWaker(state.sessions, lambda: _temporal_of(state))
    return state.recall_waker


def _check_link(rc_id: int, signature: str, secret: str) -> None:
    if not verify_ack(rc_id, signature, secret=secret):
        raise HTTPException(status_code=403, detail=[{"field": "link", "reason": "this link is not valid"}])


def _levels(recall, lang: Language) -> list[str]:
    """The recall's NMPA level and FDA class as the notice words them."""
    t = LABELS[lang]
    out = []
    if recall.nmpa_level:
        out.append(t["nmpa_level"].format(level=t["level_names"].split(",")[recall.nmpa_level - 1]))
    if recall.fda_class_proposed:
        out.append(t["fda_class"].format(cls=recall.fda_class_proposed))
    return out


def _jurisdiction(recall) -> str:
    """Which regulator's words the notice title uses (as the e-mail's: FSN for an EU-only recall)."""
    if recall.jurisdictions == ["EU"]:
        return "EU"
    return "US" if "CN" not in recall.jurisdictions and "US" in recall.jurisdictions else "CN"


def _error_items(errors: list[dict], lots: list[dict], lang: Language) -> list[dict]:
    """Errors with a label a consignee understands (``quantities.0.on_hand`` → "P-100: On hand")."""
    labels = dict(QUANTITY_LABELS)
    out = []
    for e in errors:
        parts = (e.get("field") or "").split(".")
        item = dict(e)
        if len(parts) >= 2 and parts[0] == "quantities" and parts[1].isdigit() and int(parts[1]) < len(lots):
            lot = lots[int(parts[1])]
            what = translate(lang, labels.get(parts[2], parts[2])) if len(parts) > 2 else ""
            item["label"] = f"{lot['lot_number']}: {what}".rstrip(": ")
            item["input"] = f"{parts[2]}_{lot['lot_id']}" if len(parts) > 2 else None
        elif parts and parts[0]:
            item["input"] = parts[0]
        out.append(item)
    return out


async def _page(
    request: Request,
    session,
    rc_id: int,
    *,
    status_code: int = 200,
    errors: list[dict] | None = None,
    done=None,
    values: dict | None = None,
) -> HTMLResponse:
    rc, recall, consignee = await acks.load_link(session, rc_id)
    lots = await acks.exposures_of(session, rc)
    lang = page_language(request, preferred=consignee.language.value)
    response = await session.scalar(
        select(AckResponse).where(
            AckResponse.recall_id == rc.recall_id, AckResponse.consignee_id == rc.consignee_id
        )
    )
    settings = request.app.state.settings
    items = _error_items(errors or [], lots, lang)
    return render(
        request,
        "ack/form.html",
        {
            "recall": recall,
            "consignee": consignee,
            "rc": rc,
            "lots": lots,
            "errors": items,
            "invalid": {e.get("input") for e in items if e.get("input")},
            "done": done,
            "values": values or {},
            "response": response,
            "response_complete": bool(response and response.quantities_reported),
            "title": TITLES[(_jurisdiction(recall), lang)],
            "levels": _levels(recall, lang),
            "regulators": regulators_sentence(regulators_informed(recall.jurisdictions, lang), lang),
            "manufacturer": settings.manufacturer_name,
            "contact": {
                "name": settings.recall_contact_name,
                "phone": settings.recall_contact_phone,
                "email": settings.recall_contact_email,
            },
            "reply_by": recall.notify_deadline.date().isoformat() if recall.notify_deadline else None,
            "quantity_fields": QUANTITY_LABELS,
            "form_action": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        },
        status_code=status_code,
        lang=lang,
        public=True,
    )


@router.get("/ack/{rc_id}/{signature}", response_class=HTMLResponse)
async def open_link(
    rc_id: int, signature: str, request: Request, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """The consignee opens their link: the notice is marked opened and the form shown."""
    if not verify_ack(rc_id, signature, secret=settings.secret_key):
        # A person followed a damaged or forged link: say so in words, and whom to ask (403, nothing changed).
        contact = {"name": settings.recall_contact_name, "phone": settings.recall_contact_phone}
        return render(request, "ack/invalid.html", {"contact": contact}, status_code=403, public=True)
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
    raw: dict[str, str] = {}
    if is_json:  # record_web_response reads the link itself (and refuses one that names nothing)
        try:
            payload = await request.json()
        except ValueError:
            return JSONResponse(
                status_code=422, content={"detail": [{"field": "body", "reason": "not JSON"}]}
            )
    else:
        rc, _recall, _c = await acks.load_link(session, rc_id)
        lot_ids = [e["lot_id"] for e in await acks.exposures_of(session, rc)]
        raw = {k: str(v) for k, v in (await request.form()).items()}
        payload = _form_to_ack(raw, lot_ids)
    try:
        form = acks.AckForm.model_validate(payload)
        outcome = await acks.record_web_response(session, recall_consignee_id=rc_id, form=form)
    except ValidationError as exc:
        await session.rollback()
        if is_json:
            return JSONResponse(status_code=422, content={"detail": _errors(exc)})
        return await _page(request, session, rc_id, status_code=422, errors=_errors(exc), values=raw)
    except DomainError as exc:
        await session.rollback()
        if is_json:
            return JSONResponse(status_code=exc.status_code, content={"detail": [exc.as_dict()]})
        return await _page(
            request, session, rc_id, status_code=exc.status_code, errors=[exc.as_dict()], values=raw
        )
    await session.commit()
    if outcome.recorded:
        _waker(request).poke(outcome.recall_id)
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
    for recall_id in dict.fromkeys(a.recall_id for a in outcome.acknowledged if a.recorded):
        _waker(request).poke(recall_id)
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
