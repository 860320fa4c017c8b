"""The store's regulated records that predate the ``Audited`` mixin, registered here by reference.

A regulator cares about: recalls, tasks, signatures, consignee responses and reported quantities,
products, lots (QC status) and their holds, and users (roles, active; never the password hash).
New models opt in by inheriting ``domain.audit.Audited`` instead of being listed here.
"""

from __future__ import annotations

from domain.audit.policy import Audited, register


def register_store_models() -> None:
    """Register the store's regulated classes (idempotent)."""
    from domain.models import Lot, LotHold, Product, User
    from domain.recalls.models import Recall, Response, ResponseQuantity
    from domain.tasks.models import Signature, Task

    specs: list[tuple[type, dict]] = [
        # last_signalled_at only throttles wake-up signals to the workflow: bookkeeping, not the record.
        (Recall, {"ignore": {"last_signalled_at"}, "reason_column": "closure_justification"}),
        (Task, {}),
        (Signature, {"reason_column": "reason"}),
        (Response, {}),
        (ResponseQuantity, {}),
        (Product, {}),
        (Lot, {}),
        (LotHold, {"reason_column": "note"}),
        (User, {"redact": {"password_hash"}}),
    ]
    for cls, options in specs:
        if not issubclass(cls, Audited):  # a class that adopted the mixin speaks for itself
            register(cls, **options)
