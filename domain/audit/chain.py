"""The hash chain: canonical JSON of an entry, its SHA-256, and appending entries in ``seq`` order.

Concurrency: entries are numbered and linked by reading the last one and inserting after it, so two
writers must never interleave. The session hooks (``domain.audit.hooks``) collect a transaction's
changes as it runs and hand them over all at once at its commit:
- PostgreSQL (:func:`stage`): one INSERT into ``audit_pending`` of each entry's canonical JSON,
  less the time and the previous hash; a deferred trigger (migration 0014) chains them inside the
  server as the COMMIT runs: advisory lock, read the last entry, hash, insert, clear the staging
  rows. The lock is held for that and the COMMIT's WAL flush, never across a client round trip, so
  a busy application's event loop does not stretch it. A very large transaction (a bulk import)
  uses the Python path below instead.
- SQLite, and bulk transactions (:func:`append_attributed`): ``lock`` (the advisory lock; SQLite's
  single write lock), read the last entry, insert, then the COMMIT.
Either way the lock is taken only once the transaction's own work is done and its holder waits for
nothing else, so audit writers cannot deadlock on it. The read of the last entry runs under READ
COMMITTED after the lock is granted, so it sees the previous holder's commit. (Under REPEATABLE READ
the stale snapshot would reuse a ``seq`` and the unique index fails the transaction: an error, never
a fork.) Entries are chained in commit order, and both paths write the same hash over the same
canonical JSON.
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

from domain.audit.models import AuditEntry, AuditPending
from domain.models import utcnow

GENESIS = "0" * 64
# Any constant works as long as nothing else in the database takes the same advisory lock.
ADVISORY_LOCK_KEY = 0x4C4F544C494E45  # "LOTLINE"

TABLE = AuditEntry.__table__
# A transaction with more entries than this (a bulk import) chains them here, in Python, rather than
# staging them for the database's per-row trigger: hashing in bulk is cheaper there.
STAGE_AT_MOST = 1000
PENDING = AuditPending.__table__


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


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical(content: Mapping[str, Any]) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8."""
    return _dumps(content).encode("utf-8")


def canonical_parts(
    change: Change, *, actor: str, reason: str | None, changes_json: str
) -> tuple[str, str, str]:
    """The canonical JSON of an entry without its time and previous hash, as (head, middle, tail):
    ``head + json(at) + middle + json(prev_hash) + tail`` is exactly :func:`canonical` of
    :func:`entry_content` (its keys in sorted order: action, actor, at, changes, prev_hash, reason,
    record_id, record_type). ``changes_json`` is ``change.changes`` as canonical JSON, made once by the
    caller, which stores it too. The database completes and hashes it at commit (migration 0014)."""
    head = f'{{"action":{_dumps(change.action)},"actor":{_dumps(actor)},"at":'
    middle = f',"changes":{changes_json},"prev_hash":'
    tail = (
        f',"reason":{_dumps(reason)},"record_id":{_dumps(change.record_id)},'
        f'"record_type":{_dumps(change.record_type)}}}'
    )
    return head, middle, tail


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

    PostgreSQL: nothing to do here, the pre-images are read ``FOR NO KEY UPDATE`` (which waits for a
    concurrent writer and returns its committed row). SQLite has no row locks: take its single write
    lock first, as :func:`lock` does.
    """
    if conn.dialect.name == "sqlite":
        conn.execute(text("DELETE FROM audit_entries WHERE 0"))


def append(conn: Connection, changes: Sequence[Change], *, actor: str, reason: str | None) -> int:
    """Number, chain and insert ``changes`` after the last entry; returns the last ``seq`` written.

    The caller's ``reason`` wins over a record's own (``Change.reason``, from its reason column)."""
    return append_attributed(conn, [(change, actor, reason) for change in changes])


_STAGED = ("actor", "action", "record_type", "record_id", "changes", "reason", "head", "middle", "tail")
_STAGE = text(
    f"INSERT INTO audit_pending ({', '.join(_STAGED)}) "
    f"SELECT {', '.join('changes::json' if n == 'changes' else n for n in _STAGED)} FROM unnest("
    # text[] only: a driver knows it without asking the server (json[] costs asyncpg a type
    # introspection on every new connection)
    + ", ".join(f"CAST(:{name} AS text[])" for name in _STAGED)
    + f") AS staged({', '.join(_STAGED)})"
)


def stage(conn: Connection, items: Sequence[tuple[Change, str, str | None]]) -> None:
    """PostgreSQL: hand ``items`` to the database, which numbers, times, chains and inserts them as
    this transaction commits (a deferred trigger, migration 0014), under the trail's lock, with no
    client round trip while the lock is held. One INSERT; nothing is locked here."""
    columns: dict[str, list[Any]] = {name: [] for name in _STAGED}
    for change, actor, reason in items:
        why = reason if reason is not None else change.reason
        changes_json = _dumps(jsonable(change.changes))
        head, middle, tail = canonical_parts(change, actor=actor, reason=why, changes_json=changes_json)
        row = (actor, change.action, change.record_type, change.record_id, changes_json)
        for name, value in zip(_STAGED, (*row, why, head, middle, tail), strict=True):
            columns[name].append(value)
    if items:
        conn.execute(_STAGE, columns)  # one statement whatever the count (executemany costs more)


def warm_sealing(conn: Connection) -> None:
    """PostgreSQL: run the sealing trigger once in this connection and roll it back (nothing stays).

    A connection's first seal compiles the trigger and plans its statements, several milliseconds
    spent while holding the trail's lock; a pool opened at start (``domain.db.warm_pool``) pays that
    here instead of in the first burst of commits."""
    with conn.begin_nested() if conn.in_transaction() else conn.begin() as tx:
        stage(conn, [(Change("create", "warm-up", "0", {}), "system", None)])
        conn.execute(text("SET CONSTRAINTS audit_pending_seal IMMEDIATE"))
        tx.rollback()


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
