"""Capture every change to a regulated record, whoever makes it: session events write the audit
entries in the same transaction as the change, so a change cannot commit without its entries, and
an error while auditing fails the transaction (nothing is skipped silently).

Changes are collected as the transaction runs, each with the actor and reason in effect when it was
made, and chained at its commit (``before_commit``: one lock, one read of the last entry, one INSERT;
see ``domain.audit.chain``): the trail's lock is held for the commit only, not for the whole
transaction. A rolled-back transaction or savepoint discards what it collected.

Three paths reach the store through a session, and each is covered:
- the unit of work (``session.add``, attribute changes, ``session.delete``): ``before_flush``
  collects updates and deletes with their old values, read from the database under a row lock
  (``FOR NO KEY UPDATE``; SQLite: its write lock), so they are what the row really held, whatever the
  session loaded; ``after_flush`` adds the creates (their keys exist by then);
- ORM-enabled UPDATE and DELETE statements (``session.execute(update(Task)...)``): the rows they
  match are read before and after, and each real change is recorded;
- INSERT statements (``session.execute(insert(Lot), rows)``), also ``ON CONFLICT DO NOTHING``: run
  with RETURNING so every created row is recorded with its key (and the caller can read it back);
  a row the conflict skipped changed nothing and has no entry.
Statements that cannot be audited faithfully (an upsert that updates, an INSERT ... SELECT, an INSERT that
returns columns of its own, an executemany DELETE, or an executemany UPDATE other than the ORM's
bulk update by primary key) are refused with
:class:`AuditError` on a regulated table. SQL sent around the session (a raw connection, COPY)
is not seen: write regulated records through a session.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import NoneType
from typing import Any

from sqlalchemy import Table, and_, event, inspect, or_, select
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql.dml import OnConflictDoNothing as PgDoNothing
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite.dml import OnConflictDoNothing as SqliteDoNothing
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper, ORMExecuteState, Session, SessionTransaction
from sqlalchemy.orm.state_changes import _StateChangeStates
from sqlalchemy.sql.dml import Delete, Insert, Update

from domain.audit import chain
from domain.audit.context import current_actor, current_reason
from domain.audit.models import AuditEntry
from domain.audit.policy import REDACTED, AuditPolicy, policy_for
from domain.models import Base

_PENDING = "lotline_audit_pending"  # updates and deletes of the flush under way
_QUEUED = "lotline_audit_queued"  # the transaction's changes, chained when it commits
_ENTRIES = AuditEntry.__table__


class AuditError(RuntimeError):
    """A change to a regulated record that cannot be audited; the transaction must fail."""


# ------------------------------------------------------------------------------------ values


def _props(mapper: Mapper, policy: AuditPolicy) -> list[tuple[str, Any]]:
    """(attribute key, column) for every column the trail records for this class."""
    return [
        (prop.key, prop.columns[0])
        for prop in mapper.column_attrs
        if prop.columns[0].name not in policy.ignore
    ]


def _show(policy: AuditPolicy, name: str, value: Any) -> Any:
    if value is None:
        return None
    return REDACTED if policy.redacts(name) else chain.jsonable(value)


def _record_id(values: list[Any]) -> str:
    return ",".join(str(v) for v in values)


def _reason(policy: AuditPolicy, new_values: dict[str, Any]) -> str | None:
    value = new_values.get(policy.reason_column) if policy.reason_column else None
    return str(value) if value else None


def _fetch(conn: Connection, mapper: Mapper, pk: list[Any]) -> dict[str, Any]:
    """The row as the database holds it now (this transaction's view), by column name."""
    table = mapper.local_table
    cols = list(mapper.primary_key)
    row = (
        conn.execute(select(*table.c).where(and_(*(c == v for c, v in zip(cols, pk, strict=True)))))
        .mappings()
        .first()
    )
    if row is None:
        raise AuditError(f"{mapper.class_.__name__} {pk} vanished while its change was being audited")
    return dict(row)


def _pk_of(state, mapper: Mapper) -> list[Any]:
    if state.identity is not None:
        return list(state.identity)
    return [state.dict.get(mapper.get_property_by_column(c).key) for c in mapper.primary_key]


# ------------------------------------------------------------------------------ unit of work


def _regulated(obj: object) -> tuple[Mapper, AuditPolicy] | None:
    policy = policy_for(type(obj))
    return (inspect(obj).mapper, policy) if policy is not None else None


def _preimages(conn: Connection, objs: list[tuple[object, Mapper]]) -> dict[int, dict[str, Any]]:
    """Each object's row as the database holds it now, read under the audit lock (by ``id(obj)``).

    The trail records what the row WAS, not what the session happened to load earlier: a value the
    session never loaded, or one another transaction changed since, is still recorded truthfully.
    """
    out: dict[int, dict[str, Any]] = {}
    by_mapper: dict[Mapper, list[object]] = {}
    for obj, mapper in objs:
        by_mapper.setdefault(mapper, []).append(obj)
    for mapper, group in by_mapper.items():
        if mapper.local_table is not mapper.persist_selectable:
            raise AuditError(
                f"{mapper.class_.__name__}: joined-table inheritance is not audited; use one table"
            )
        table = mapper.local_table
        rows = _by_keys(conn, table, [tuple(_pk_of(inspect(o), mapper)) for o in group], for_update=True)
        found = {_record_id([r[c.name] for c in table.primary_key.columns]): r for r in rows}
        for obj in group:
            rid = _record_id(_pk_of(inspect(obj), mapper))
            if rid not in found:
                raise AuditError(
                    f"{mapper.class_.__name__} {rid} vanished while its change was being audited"
                )
            out[id(obj)] = dict(found[rid])
    return out


def _columns_changed(obj: object, mapper: Mapper, policy: AuditPolicy) -> bool:
    state = inspect(obj)
    return any(state.attrs[key].history.added for key, _col in _props(mapper, policy))


def _update(obj: object, mapper: Mapper, policy: AuditPolicy, pre: dict[str, Any]) -> chain.Change | None:
    state = inspect(obj)
    new = {
        col.name: hist.added[0]
        for key, col in _props(mapper, policy)
        if (hist := state.attrs[key].history).added
    }
    diff = {
        name: [_show(policy, name, pre[name]), _show(policy, name, value)]
        for name, value in new.items()
        if chain.jsonable(pre[name]) != chain.jsonable(value)
    }
    if not diff:
        return None
    return chain.Change(
        "update", policy.record_type, _record_id(_pk_of(state, mapper)), diff, _reason(policy, new)
    )


def _delete(obj: object, mapper: Mapper, policy: AuditPolicy, pre: dict[str, Any]) -> chain.Change:
    diff = {
        name: [_show(policy, name, value), None]
        for name, value in pre.items()
        if value is not None and name not in policy.ignore
    }
    return chain.Change("delete", policy.record_type, _record_id(_pk_of(inspect(obj), mapper)), diff)


def _create(conn: Connection, obj: object, mapper: Mapper, policy: AuditPolicy) -> chain.Change:
    state = inspect(obj)
    props = _props(mapper, policy)
    values = {col.name: state.dict[key] for key, col in props if key in state.dict}
    if len(values) < len(props):  # server-generated values were expired: read them back
        values = _fetch(conn, mapper, _pk_of(state, mapper))
    diff = {name: [None, _show(policy, name, v)] for name, v in values.items() if v is not None}
    return chain.Change(
        "create", policy.record_type, _record_id(_pk_of(state, mapper)), diff, _reason(policy, values)
    )


def _refuse_direct_entries(session: Session) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, AuditEntry):
            raise AuditError("audit entries are written by the audit hook only, never through the session")


# ------------------------------------------------------------------------- the transaction's queue


@dataclass(frozen=True)
class _Queued:
    change: chain.Change
    actor: str
    reason: str | None  # the caller's reason (``with_reason``), when one was given
    savepoints: tuple  # the savepoints (nested SessionTransactions) open when the change was made


def _queue(session: Session, changes: list[chain.Change]) -> None:
    """Keep changes for the commit, with the actor and reason in effect now."""
    if not changes:
        return
    savepoints = []
    tx = session.get_nested_transaction()
    while tx is not None:
        if tx.nested:
            savepoints.append(tx)
        tx = tx.parent
    actor, reason, open_savepoints = current_actor(), current_reason(), tuple(savepoints)
    session.info.setdefault(_QUEUED, []).extend(
        _Queued(change, actor, reason, open_savepoints) for change in changes
    )


def _committing(transaction: SessionTransaction | None) -> bool:
    """True while the outermost ``transaction`` is changing state, which during ``before_commit``
    means it is the one being committed (SQLAlchemy marks a transaction whose state is changing)."""
    return getattr(transaction, "_next_state", _StateChangeStates.ANY) is not _StateChangeStates.ANY


def _before_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None and not _committing(session.get_transaction()):
        return  # a savepoint is released: its changes are chained when the transaction commits
    session.flush()  # the commit's own flush comes after this event: its changes are collected now
    queued: list[_Queued] = session.info.pop(_QUEUED, [])
    if not queued:
        return
    conn = session.connection()
    items = [(q.change, q.actor, q.reason) for q in queued]
    if conn.dialect.name == "postgresql" and len(items) <= chain.STAGE_AT_MOST:
        chain.stage(conn, items)  # chained by the database as the COMMIT runs: no lock held from here
    else:
        chain.append_attributed(conn, items)


def _after_soft_rollback(session: Session, previous) -> None:
    queued: list[_Queued] | None = session.info.get(_QUEUED)
    if not queued:
        return
    if previous.nested:  # back to a savepoint: what was changed after it is gone, and so are its entries
        session.info[_QUEUED] = [q for q in queued if previous not in q.savepoints]
    elif previous.parent is None:
        session.info.pop(_QUEUED, None)


def _after_transaction_end(session: Session, transaction) -> None:
    if transaction.parent is None:  # committed (already chained), rolled back or closed: start afresh
        session.info.pop(_QUEUED, None)


# ------------------------------------------------------------------------------ unit of work hooks


def _before_flush(session: Session, _flush_context, _instances) -> None:
    _refuse_direct_entries(session)
    session.info[_PENDING] = []
    changed = [
        (obj, reg)
        for obj in session.dirty
        if (reg := _regulated(obj)) is not None and _columns_changed(obj, *reg)
    ]
    deleted = [(obj, reg) for obj in session.deleted if (reg := _regulated(obj)) is not None]
    if not (changed or deleted):
        return  # creates need no pre-image; they are collected after the flush
    conn = session.connection()
    chain.guard_preimages(conn)
    pre = _preimages(conn, [(obj, reg[0]) for obj, reg in changed + deleted])
    pending: list[chain.Change] = []
    for obj, (mapper, policy) in changed:
        change = _update(obj, mapper, policy, pre[id(obj)])
        if change is not None:
            pending.append(change)
    pending.extend(_delete(obj, mapper, policy, pre[id(obj)]) for obj, (mapper, policy) in deleted)
    session.info[_PENDING] = pending


def _after_flush(session: Session, _flush_context) -> None:
    pending: list[chain.Change] = session.info.pop(_PENDING, [])
    conn = session.connection()
    creates = []
    for obj in session.new:
        reg = _regulated(obj)
        if reg is not None:
            creates.append(_create(conn, obj, *reg))
    _queue(session, creates + pending)


# ------------------------------------------------------------------------------- statements

_by_table: dict[str, Mapper] = {}


def _mapper_of(name: str | None) -> Mapper | None:
    if len(_by_table) != len(Base.registry.mappers):
        _by_table.clear()
        _by_table.update({m.local_table.name: m for m in Base.registry.mappers})
    return _by_table.get(name) if name else None


def _row_changes(policy: AuditPolicy, action: str, table: Table, rows, before=None) -> list[chain.Change]:
    pk = list(table.primary_key.columns)
    names = [c.name for c in table.c if c.name not in policy.ignore]
    out = []
    for row in rows:
        rid = _record_id([row[c.name] for c in pk])
        if action == "update":
            old = before[rid]
            diff = {
                n: [_show(policy, n, old[n]), _show(policy, n, row[n])]
                for n in names
                if chain.jsonable(old[n]) != chain.jsonable(row[n])
            }
            if not diff:
                continue
            reason = _reason(policy, {n: v[1] for n, v in diff.items()})
        elif action == "create":
            diff = {n: [None, _show(policy, n, row[n])] for n in names if row[n] is not None}
            reason = _reason(policy, dict(row))
        else:
            diff = {n: [_show(policy, n, row[n]), None] for n in names if row[n] is not None}
            reason = None
        out.append(chain.Change(action, policy.record_type, rid, diff, reason))
    return out


def _by_keys(conn: Connection, table: Table, keys: list[tuple], *, for_update: bool = False) -> list:
    """Rows of ``table`` by primary key (``FOR NO KEY UPDATE`` on PostgreSQL when asked).

    A pre-image read locks as strongly as the UPDATE it precedes, no more: ``FOR NO KEY UPDATE`` holds
    off every other writer of the row, yet lets a foreign-key check from another table through
    (``FOR UPDATE`` would make every INSERT that names a recall, a response for instance, wait for
    the transaction that touched the recall's row)."""
    pk = list(table.primary_key.columns)
    if not keys:
        return []
    if len(pk) == 1:
        where = pk[0].in_([k[0] for k in keys])
    else:
        where = or_(*(and_(*(c == v for c, v in zip(pk, k, strict=True))) for k in keys))
    stmt = select(*table.c).where(where)
    return list(conn.execute(stmt.with_for_update(key_share=True) if for_update else stmt).mappings())


def _on_execute(orm_state: ORMExecuteState):
    stmt = orm_state.statement
    if not isinstance(stmt, Insert | Update | Delete):
        return None
    table = stmt.table
    name = getattr(table, "name", None)  # ORM statements carry an annotated copy of the Table
    if name == _ENTRIES.name:
        if isinstance(stmt, Insert):
            raise AuditError("audit entries are written by the audit hook only")
        return None  # UPDATE / DELETE: the database triggers refuse them
    mapper = orm_state.bind_mapper  # an ORM statement names its entity (from any registry)
    if mapper is None or mapper.local_table.name != name:
        mapper = _mapper_of(name)  # a Core statement names a table of the store
    policy = policy_for(mapper.class_) if mapper is not None else None
    if policy is None:
        return None
    table = mapper.local_table
    session = orm_state.session
    if session.autoflush:
        session.flush()  # pending unit-of-work changes first, so "before" below is really before
    conn = session.connection()
    if not isinstance(stmt, Insert):
        chain.guard_preimages(conn)
    pk = list(table.primary_key.columns)
    verb = "INSERT" if isinstance(stmt, Insert) else "UPDATE" if isinstance(stmt, Update) else "DELETE"
    what = f"{verb} on {table.name} (a regulated record)"

    if isinstance(stmt, Insert):
        upsert = isinstance(stmt, PgInsert | SqliteInsert) and not isinstance(
            stmt._post_values_clause, NoneType | PgDoNothing | SqliteDoNothing
        )
        if upsert or stmt.select is not None or stmt._returning:
            raise AuditError(
                f"{what}: only plain INSERTs (or ON CONFLICT DO NOTHING) without RETURNING can be "
                "audited; use session.add"
            )
        # The created rows, read for their entries and handed to the caller as well.
        result = orm_state.invoke_statement(statement=stmt.returning(*table.c)).freeze()
        rows = list(result().mappings())
        changes = _row_changes(policy, "create", table, rows)
        result = result()
    else:
        params = orm_state.parameters
        if orm_state.is_executemany:
            # ORM bulk UPDATE by primary key: the keys are in the parameter sets.
            if not (isinstance(stmt, Update) and stmt.whereclause is None and orm_state.is_orm_statement):
                raise AuditError(f"{what}: an executemany with a WHERE clause cannot be audited")
            keys = [tuple(p[mapper.get_property_by_column(c).key] for c in pk) for p in params]
            before_rows = _by_keys(conn, table, keys, for_update=True)
        else:
            probe = select(*table.c).with_for_update(key_share=True)
            if stmt.whereclause is not None:
                probe = probe.where(stmt.whereclause)
            before_rows = list(conn.execute(probe, params or {}).mappings())
        result = orm_state.invoke_statement()
        if isinstance(stmt, Delete):
            changes = _row_changes(policy, "delete", table, before_rows)
        else:
            before = {_record_id([r[c.name] for c in pk]): r for r in before_rows}
            after = _by_keys(conn, table, [tuple(r[c.name] for c in pk) for r in before_rows])
            changes = _row_changes(policy, "update", table, after, before)
    _queue(session, changes)
    return result


async def record_rows(session: AsyncSession, model: type, rows: list[dict[str, Any]], *, action: str) -> int:
    """Record entries for rows written AROUND the session (a COPY, a Core bulk load): ``rows`` are the
    stored rows by column name, keys included, read back after the write; they are chained with the
    transaction's other changes when it commits. Returns how many."""
    policy = policy_for(model)
    if policy is None:
        raise AuditError(f"{model.__name__} is not a regulated record")
    if action not in ("create", "delete"):
        raise AuditError("record_rows records created or deleted rows; updates go through the session")
    table = inspect(model).local_table
    changes = _row_changes(policy, action, table, rows)
    _queue(session.sync_session, changes)  # chained when the transaction commits, like the rest
    return len(changes)


_installed = False


def install() -> None:
    """Install the hooks on every SQLAlchemy session (idempotent); registers the store's regulated models."""
    global _installed
    if _installed:
        return
    from domain.audit.regulated import register_store_models

    register_store_models()
    event.listen(Session, "before_flush", _before_flush)
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "do_orm_execute", _on_execute)
    event.listen(Session, "before_commit", _before_commit)
    event.listen(Session, "after_soft_rollback", _after_soft_rollback)
    event.listen(Session, "after_transaction_end", _after_transaction_end)
    _installed = True


install()  # on import: see domain.audit.models
