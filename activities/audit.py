"""Who an activity acts for, for the audit trail: a worker interceptor that wraps every activity in
``domain.audit.acting_as``.

The actor is the person the workflow acts on behalf of when its payload names one (a field
``actor``, else ``username`` or ``requested_by`` on a pydantic argument: a signer's
SignOff, a CloseRequest), otherwise ``system:<workflow id>``. A ``reason`` or ``justification``
field becomes the entries' reason. Activities need no code of their own for this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from domain.audit import SYSTEM, acting_as

# The person acting in THIS step. Not ``initiated_by``: a record's initiator is not who acts when a
# timer fires weeks later.
ACTOR_FIELDS = ("actor", "username", "requested_by")
REASON_FIELDS = ("reason", "justification")


def _first(args: Sequence[Any], fields: Sequence[str]) -> str | None:
    for name in fields:
        for arg in args:
            if isinstance(arg, BaseModel):
                value = getattr(arg, name, None)
                if isinstance(value, str) and value.strip():
                    return value
    return None


def actor_for(args: Sequence[Any], workflow_id: str | None) -> tuple[str, str | None]:
    """(actor, reason) for an activity called with ``args`` by the workflow ``workflow_id``."""
    actor = _first(args, ACTOR_FIELDS) or (f"{SYSTEM}:{workflow_id}" if workflow_id else SYSTEM)
    return actor, _first(args, REASON_FIELDS)


class _ActingInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        actor, reason = actor_for(input.args, activity.info().workflow_id)
        with acting_as(actor, reason=reason):
            return await super().execute_activity(input)


class AuditActorInterceptor(Interceptor):
    """Worker interceptor: every activity runs as the person (or workflow) it acts for."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap the activity inbound chain."""
        return _ActingInbound(next)
