"""The hash chain: canonical JSON of an entry, its SHA-256, and appending entries in ``seq`` order.

Concurrency: entries are numbered and linked by reading the last one and inserting after it, so two
writers must never interleave. The session hooks (``domain.audit.hooks``) collect a transaction's
changes as it runs and append them all at its commit, in one step: ``lock`` (on PostgreSQL a
transaction-scoped advisory lock, released by the COMMIT that follows; on SQLite the database's single
write lock), read the last entry, insert. The lock is therefore held for three statements and the
COMMIT, never while the transaction is still doing its work, and its holder waits for nothing else
(its row writes are done), so audit writers cannot deadlock on it. The read of the last entry runs
under READ COMMITTED after the lock is granted, so it sees the previous holder's commit. (Under
REPEATABLE READ the stale snapshot would reuse a ``seq`` and the unique index fails the transaction:
an error, never a fork.) Entries are chained in commit order.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, select, text

from domain.audit.models import AuditEntry
from domain.models import utcnow

GENESIS = "0" * 64
# Any constant works as long as nothing else in the database takes the same advisory lock.
ADVISORY_LOCK_KEY = 0x4C4F544C494E45  # "LOTLINE"

TABLE = AuditEntry.__table__


def jsonable(value: Any) -> Any:
    """A stored value as plain JSON data, the same way every time (so a hash can be recomputed)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat(timespec="microseconds")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, Sequence):
        return [jsonable(v) for v in value]
    return str(value)


def canonical(content: Mapping[str, Any]) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_content(
    *,
    at: datetime,
    actor: str,
    action: str,
    record_type: str,
    record_id: str,
    changes: Mapping[str, Any],
    reason: str | None,
    prev_hash: str,
) -> dict[str, Any]:
    """What an entry's hash covers: everything it says, plus the previous entry's hash.

    ``seq`` is left out on purpose: order is proven by the ``prev_hash`` links, so a renumbered
    entry shows up as reordered rather than as altered.
    """
    return {
        "at": jsonable(at),
        "actor": actor,
        "action": action,
        "record_type": record_type,
        "record_id": record_id,
        "changes": jsonable(changes),
        "reason": reason,
        "prev_hash": prev_hash,
    }


def entry_hash(content: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``content``."""
    return hashlib.sha256(canonical(content)).hexdigest()


@dataclass(frozen=True)
class Change:
    """One change to one regulated record, before it is numbered and chained."""

    action: str  # create | update | delete
    record_type: str
    record_id: str
    changes: dict[str, list[Any]]
    reason: str | None = None


def lock(conn: Connection) -> None:
    """Serialise audit writers from here until this transaction ends.

    PostgreSQL: the advisory lock. SQLite: its single write lock, taken now by a write that matches
    no row (the row triggers do not fire).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    elif conn.dialect.name == "sqlite":
        conn.execute(text("DELETE FROM audit_entries WHERE 0"))


def guard_preimages(conn: Connection) -> None:
    """Make the rows read next as pre-images the latest committed, and keep them so until commit.

    PostgreSQL: nothing to do here, the pre-images are read ``FOR UPDATE`` (which waits for a
    concurrent writer and returns its committed row). SQLite has no row locks: take its single write
    lock first, as :func:`lock` does.
    """
    if conn.dialect.name == "sqlite":
        conn.execute(text("DELETE FROM audit_entries WHERE 0"))


def append(conn: Connection, changes: Sequence[Change], *, actor: str, reason: str | None) -> int:
    """Number, chain and insert ``changes`` after the last entry; returns the last ``seq`` written.

    The caller's ``reason`` wins over a record's own (``Change.reason``, from its reason column)."""
    return append_attributed(conn, [(change, actor, reason) for change in changes])


def append_attributed(conn: Connection, items: Sequence[tuple[Change, str, str | None]]) -> int:
    """Like :func:`append`, each change with its own actor and caller's reason (as they were when the
    change was made): one lock, one read of the last entry and one INSERT for all of them."""
    lock(conn)
    last = conn.execute(select(TABLE.c.seq, TABLE.c.hash).order_by(TABLE.c.seq.desc()).limit(1)).first()
    seq, prev = (last.seq, last.hash) if last is not None else (0, GENESIS)
    at = utcnow()
    rows = []
    for change, actor, reason in items:
        seq += 1
        content = entry_content(
            at=at,
            actor=actor,
            action=change.action,
            record_type=change.record_type,
            record_id=change.record_id,
            changes=change.changes,
            reason=reason if reason is not None else change.reason,
            prev_hash=prev,
        )
        prev = entry_hash(content)
        rows.append({**content, "at": at, "seq": seq, "hash": prev})
    if rows:
        conn.execute(insert(TABLE), rows)
    return seq
