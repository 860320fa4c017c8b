"""Errors the domain raises for a caller's mistake. The API maps them to 4xx, the CLI to a message.

Each names the field that is wrong and why, so a person can fix their input.
"""

from __future__ import annotations


class DomainError(Exception):
    """A rule refused the request; nothing was changed."""

    status_code = 422

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field

    def as_dict(self) -> dict[str, str | None]:
        """The error as the API returns it."""
        return {"field": self.field, "reason": self.reason}


class InvalidInput(DomainError):
    """A value is malformed (bad GTIN check digit, negative quantity, unknown enum value)."""


class NotFound(DomainError):
    """A referenced record does not exist."""

    status_code = 404


class Forbidden(DomainError):
    """The caller may not do this to this record (not a candidate for the task, not its assignee)."""

    status_code = 403


class Conflict(DomainError):
    """The request is well-formed but the record's state forbids it (blocked lot, not enough stock)."""

    status_code = 409


class InsufficientStock(Conflict):
    """A movement would take a balance below zero."""


class LotBlocked(Conflict):
    """The lot is on hold (recall, QC, change) and may not be shipped, picked or released."""


class PermanentRecord(Conflict):
    """The record is kept permanently (implants) and may not be deleted."""
