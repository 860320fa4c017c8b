"""Which records are regulated: the ``Audited`` marker for new models, ``register`` for existing ones.

Kept free of SQLAlchemy and of the store's models, so any model module can import ``Audited``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

# Column names whose values never enter the trail, whatever the class says (a change is still
# recorded, with both values redacted): a leaked audit export must not leak credentials.
ALWAYS_REDACTED = re.compile(r"password|secret|token", re.IGNORECASE)
REDACTED = "[redacted]"


class Audited:
    """Mixin for a regulated model: every create, update and delete of its rows goes to the audit trail.

    Class attributes tune it (all optional):
    ``__audit_type__`` the record type in the trail (default: the class name in snake_case, so
    ``ChangeRequest`` -> ``change_request``; use the same name as tasks and signatures use);
    ``__audit_redact__`` columns recorded as changed but never with their values;
    ``__audit_ignore__`` bookkeeping columns whose changes are not recorded at all;
    ``__audit_reason__`` a column whose new value is the entry's reason when the caller gave none.
    """

    __audit_type__: ClassVar[str | None] = None
    __audit_redact__: ClassVar[Iterable[str]] = ()
    __audit_ignore__: ClassVar[Iterable[str]] = ()
    __audit_reason__: ClassVar[str | None] = None


@dataclass(frozen=True)
class AuditPolicy:
    """How one regulated class is audited."""

    record_type: str
    redact: frozenset[str] = field(default_factory=frozenset)
    ignore: frozenset[str] = field(default_factory=frozenset)
    reason_column: str | None = None

    def redacts(self, column: str) -> bool:
        """True when the column's values must never be written to the trail."""
        return column in self.redact or bool(ALWAYS_REDACTED.search(column))


# Classes registered without the mixin (the store's models that predate the trail).
REGULATED: dict[type, AuditPolicy] = {}
_resolved: dict[type, AuditPolicy | None] = {}


def snake_case(name: str) -> str:
    """``ResponseQuantity`` -> ``response_quantity``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def register(
    cls: type,
    *,
    record_type: str | None = None,
    redact: Iterable[str] = (),
    ignore: Iterable[str] = (),
    reason_column: str | None = None,
) -> type:
    """Make ``cls`` a regulated record without touching its definition."""
    REGULATED[cls] = AuditPolicy(
        record_type=record_type or snake_case(cls.__name__),
        redact=frozenset(redact),
        ignore=frozenset(ignore),
        reason_column=reason_column,
    )
    _resolved.clear()
    return cls


def policy_for(cls: type) -> AuditPolicy | None:
    """The audit policy of a mapped class (or of the class it inherits it from); None if not regulated."""
    try:
        return _resolved[cls]
    except KeyError:
        pass
    policy: AuditPolicy | None = None
    for base in cls.__mro__:
        if base in REGULATED:
            policy = REGULATED[base]
            break
    if policy is None and issubclass(cls, Audited):
        policy = AuditPolicy(
            record_type=cls.__audit_type__ or snake_case(cls.__name__),
            redact=frozenset(cls.__audit_redact__),
            ignore=frozenset(cls.__audit_ignore__),
            reason_column=cls.__audit_reason__,
        )
    _resolved[cls] = policy
    return policy
