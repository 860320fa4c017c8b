"""Change control (ISO 13485 7.3.9): change requests, their impact on product in stock and already
delivered, approvals per role, implementation tasks, verification, and controlled documents whose
versions take effect on a date.

- ``payloads``: enums and pydantic models carried through Temporal (sandbox-safe).
- ``policy``: THE place for who approves which kind of change, ladders and durations.
- ``models``: the tables. ``service``: keyword-only functions on the store, among them
  ``open_changes_blocking_release`` (QC release asks it) and ``version_in_force``.

Kept light on purpose: workflows import ``domain.changes.payloads`` inside Temporal's sandbox.
"""
