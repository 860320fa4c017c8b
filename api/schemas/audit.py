"""Audit trail response schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEntryPublic(BaseModel):
    """One entry of the audit trail: who changed which record when, old and new values, why."""

    model_config = ConfigDict(from_attributes=True)

    seq: int
    at: datetime
    actor: str
    action: str
    record_type: str
    record_id: str
    changes: dict[str, list[Any]]
    reason: str | None
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    """A page of entries, oldest first; pass ``next_after`` as ``after`` for the next page."""

    entries: list[AuditEntryPublic]
    next_after: int | None
