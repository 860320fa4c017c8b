"""The dev mailbox page: what the local SMTP server received, read from its Maildir (development only)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from notifications.devmail import DevMessage, list_messages

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")
PAGE_SIZE = 200

router = APIRouter(tags=["dev"], include_in_schema=False)


def _maildir(request: Request) -> Path:
    return Path(request.app.state.settings.var_dir) / "mailbox"


@router.get("/dev/mailbox", response_class=HTMLResponse)
async def mailbox(request: Request) -> HTMLResponse:
    """The newest messages the dev mailbox received."""
    messages = list_messages(_maildir(request))
    return TEMPLATES.TemplateResponse(
        request,
        "dev/mailbox.html",
        {"messages": messages[:PAGE_SIZE], "total": len(messages), "maildir": _maildir(request)},
    )


@router.get("/dev/mailbox/{key}", response_class=HTMLResponse)
async def mailbox_message(request: Request, key: str) -> HTMLResponse:
    """One message: headers, its text part, and its HTML part in a sandboxed frame."""
    found: DevMessage | None = next((m for m in list_messages(_maildir(request)) if m.key == key), None)
    if found is None:
        raise HTTPException(
            status_code=404, detail=[{"field": "key", "reason": "no such message in the mailbox"}]
        )
    return TEMPLATES.TemplateResponse(request, "dev/mailbox_message.html", {"m": found})
