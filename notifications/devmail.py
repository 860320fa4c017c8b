"""The dev mailbox: a local SMTP server (aiosmtpd) that keeps every message it receives in a Maildir.

`make run` starts it so that notices sent by the embedded stack can be read on a page instead of
leaving the machine. ``list_messages`` reads the Maildir back for that page and for tests.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import signal
import threading
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

ENVELOPE_FROM = "X-Lotline-Envelope-From"
ENVELOPE_TO = "X-Lotline-Envelope-To"


@dataclass(frozen=True)
class DevMessage:
    """One message as the dev mailbox received it."""

    key: str
    received_at: datetime
    envelope_from: str
    envelope_to: list[str]
    subject: str
    from_header: str
    to_header: str
    date: datetime | None
    text: str | None
    html: str | None
    headers: dict[str, str] = field(default_factory=dict)


class MaildirHandler:
    """aiosmtpd handler that stores each accepted message, with its envelope, into a Maildir."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = Path(maildir)
        for sub in ("tmp", "new", "cur"):  # a Maildir is these three folders; create them if missing
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        # Maildir writes are atomic (tmp/ then rename), so readers never see half a message.
        self._box = mailbox.Maildir(self.maildir, create=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Keep the message; the envelope goes into headers because Bcc recipients appear nowhere else."""
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        # Stored as received, with the envelope prepended as headers (SMTP lines cannot hold CR/LF).
        envelope_headers = (
            f"{ENVELOPE_FROM}: {envelope.mail_from or ''}\n{ENVELOPE_TO}: {', '.join(envelope.rcpt_tos)}\n"
        ).encode()
        self._box.add(envelope_headers + raw.replace(b"\r\n", b"\n"))
        return "250 Message accepted for delivery"


def _accept_any_login(*_args) -> AuthResult:
    # The dev mailbox takes any credentials so a sender configured for a real relay works unchanged.
    return AuthResult(success=True)


def start(host: str, port: int, maildir: Path) -> Controller:
    """Start the SMTP server on a background thread; the caller stops it with ``.stop()``."""
    controller = Controller(
        MaildirHandler(maildir),
        hostname=host,
        port=port,
        # A fixed name: aiosmtpd would otherwise resolve the machine's FQDN, which can hang offline.
        server_hostname="lotline-devmail",
        enable_SMTPUTF8=True,
        authenticator=_accept_any_login,
        auth_require_tls=False,
    )
    controller.start()
    return controller


def serve(host: str, port: int, maildir: Path) -> None:
    """Run the dev mailbox in the foreground until SIGINT or SIGTERM."""
    # aiosmtpd warns about its own use of Session.login_data on every AUTH; nothing to act on here.
    warnings.filterwarnings("ignore", message="Session.login_data is deprecated")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    controller = start(host, port, maildir)
    print(f"dev mailbox: SMTP on {host}:{port}, messages kept in {maildir}", flush=True)
    try:
        while not stop.wait(timeout=1.0):
            pass
    finally:
        controller.stop()


def _body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    try:
        return part.get_content()
    except (LookupError, UnicodeDecodeError):
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", errors="replace")


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def list_messages(maildir: Path) -> list[DevMessage]:
    """Every message in the dev mailbox, newest first."""
    maildir = Path(maildir)
    if not (maildir / "new").is_dir() and not (maildir / "cur").is_dir():
        return []
    box = mailbox.Maildir(maildir, factory=None, create=False)
    found: list[DevMessage] = []
    for key in box.keys():
        try:
            # get_date() of a MaildirMessage is the delivery time (the file's mtime).
            received = datetime.fromtimestamp(box.get_message(key).get_date(), tz=UTC)
            message = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        except (KeyError, FileNotFoundError):  # removed between listing and reading
            continue
        assert isinstance(message, EmailMessage)
        recipients = [r.strip() for r in str(message.get(ENVELOPE_TO, "")).split(",") if r.strip()]
        found.append(
            DevMessage(
                key=key,
                received_at=received,
                envelope_from=str(message.get(ENVELOPE_FROM, "")),
                envelope_to=recipients,
                subject=str(message.get("Subject", "")),
                from_header=str(message.get("From", "")),
                to_header=str(message.get("To", "")),
                date=_date(message.get("Date")),
                text=_body(message, "plain"),
                html=_body(message, "html"),
                headers={k: str(v) for k, v in message.items()},
            )
        )
    found.sort(key=lambda m: (m.received_at, m.key), reverse=True)
    return found
