"""Signed, unguessable acknowledgement links and SMS reply codes.

A link names one consignee of one recall and carries an HMAC of it under the deployment's secret, so
it cannot be guessed from another consignee's link nor tampered with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# Letters and digits that cannot be misread on a phone (no 0/O, 1/I/L).
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6


def ack_signature(recall_consignee_id: int, *, secret: str) -> str:
    """The signature part of a consignee's acknowledgement link."""
    mac = hmac.new(secret.encode(), f"ack:{recall_consignee_id}".encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def ack_path(recall_consignee_id: int, *, secret: str) -> str:
    """The path of a consignee's acknowledgement page."""
    return f"/ack/{recall_consignee_id}/{ack_signature(recall_consignee_id, secret=secret)}"


def verify_ack(recall_consignee_id: int, signature: str, *, secret: str) -> bool:
    """True when the signature belongs to this consignee's link (constant-time comparison)."""
    return hmac.compare_digest(ack_signature(recall_consignee_id, secret=secret), signature or "")


def new_reply_code() -> str:
    """A short code a consignee can text back to acknowledge."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
