"""The audit trail (21 CFR Part 11): append-only, hash-chained, written for every change to a
regulated record by session hooks, attributed to the acting user.

Light on purpose (no SQLAlchemy models here), so any model module can ``from domain.audit import
Audited``. The table is ``domain.audit.models.AuditEntry``; the hooks ``domain.audit.hooks``
(installed by ``domain.db.make_session_factory``); checking the chain ``domain.audit.verify``.
"""

from domain.audit.context import SYSTEM, acting_as, current_actor, current_reason, with_reason
from domain.audit.policy import Audited, register

__all__ = ["SYSTEM", "Audited", "acting_as", "current_actor", "current_reason", "register", "with_reason"]
