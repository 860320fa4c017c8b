"""Who is acting, and why: the actor and reason that every audit entry written in this context carries.

The API sets the actor from the bearer token (``api.deps``), the worker from the activity's payload
or ``system:<workflow id>`` (``activities.audit``); anything else is ``system``. Context variables
follow each request and each activity task on their own, so concurrent callers never mix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

SYSTEM = "system"

_actor: ContextVar[str | None] = ContextVar("lotline_audit_actor", default=None)
_reason: ContextVar[str | None] = ContextVar("lotline_audit_reason", default=None)


def current_actor() -> str:
    """The user (or system process) that changes made now are attributed to."""
    return _actor.get() or SYSTEM


def current_reason() -> str | None:
    """The reason the acting caller gave for the changes made now, if any."""
    return _reason.get()


def _reset(var: ContextVar, token: Token) -> None:
    try:
        var.reset(token)
    except ValueError:  # left in another context (a framework ran the exit elsewhere): just clear it
        var.set(None)


@contextmanager
def acting_as(actor: str, *, reason: str | None = None) -> Iterator[None]:
    """Attribute every audited change inside the block to ``actor`` (and ``reason``, when given).

    Entries are written when the session flushes and carry the actor in effect THEN: put the block
    around the whole transaction (its commit included), as the API and the worker do.
    """
    if not actor or not actor.strip():
        raise ValueError("an audit actor needs a name")
    actor_token = _actor.set(actor)
    reason_token = _reason.set(reason) if reason is not None else None
    try:
        yield
    finally:
        if reason_token is not None:
            _reset(_reason, reason_token)
        _reset(_actor, actor_token)


@contextmanager
def with_reason(reason: str | None) -> Iterator[None]:
    """Record ``reason`` (a signature's reason, a closure justification) on the changes inside the block."""
    token = _reason.set(reason or None)
    try:
        yield
    finally:
        _reset(_reason, token)
