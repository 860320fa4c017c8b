"""Capture every change to a regulated record, whoever makes it: session events write the audit
entries in the same transaction as the change, so a change cannot commit without its entries, and
an error while auditing fails the transaction (nothing is skipped silently).

Three paths reach the store through a session, and each is covered:
- the unit of work (``session.add``, attribute changes, ``session.delete``): ``before_flush``
  takes the audit lock and collects updates and deletes with their old values, read from the
  database under the lock (so they are what the row really held, whatever the session loaded);
  ``after_flush`` adds the creates (their keys exist by then) and appends all of them;
- ORM-enabled UPDATE and DELETE statements (``session.execute(update(Task)...)``): the rows they
  match are read before and after, and each real change is recorded;
- INSERT statements (``session.execute(insert(Lot), rows)``): run with RETURNING so every created
  row is recorded with its key.
Statements that cannot be audited faithfully (an upsert, an INSERT ... SELECT, an INSERT that
returns columns of its own, an executemany DELETE, or an executemany UPDATE other than the ORM's
bulk update by primary key) are refused with
:class:`AuditError` on a regulated table. SQL sent around the session (a raw connection, COPY)
is not seen: write regulated records through a session.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, and_, event, inspect, or_, select
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper, ORMExecuteState, Session
from sqlalchemy.sql.dml import Delete, Insert, Update

from domain.audit import chain
from domain.audit.context import current_actor, current_reason
from domain.audit.models import AuditEntry
from domain.audit.policy import REDACTED, AuditPolicy, policy_for
from domain.models import Base

_PENDING = "lotline_audit_pending"
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


def _before_flush(session: Session, _flush_context, _instances) -> None:
    _refuse_direct_entries(session)
    session.info[_PENDING] = []
    changed = [
        (obj, reg)
        for obj in session.dirty
        if (reg := _regulated(obj)) is not None and _columns_changed(obj, *reg)
    ]
    deleted = [(obj, reg) for obj in session.deleted if (reg := _regulated(obj)) is not None]
    if not (changed or deleted or any(_regulated(obj) for obj in session.new)):
        return
    # Lock before any regulated row is written (and before reading pre-images): whoever holds a
    # regulated row lock then already holds the audit lock, so the two cannot deadlock.
    conn = session.connection()
    chain.lock(conn)
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
    changes = creates + pending
    if changes:
        chain.append(conn, changes, actor=current_actor(), reason=current_reason())


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
    """Rows of ``table`` by primary key (``FOR UPDATE`` on PostgreSQL when asked)."""
    pk = list(table.primary_key.columns)
    if not keys:
        return []
    if len(pk) == 1:
        where = pk[0].in_([k[0] for k in keys])
    else:
        where = or_(*(and_(*(c == v for c, v in zip(pk, k, strict=True))) for k in keys))
    stmt = select(*table.c).where(where)
    return list(conn.execute(stmt.with_for_update() if for_update else stmt).mappings())


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
    chain.lock(conn)
    pk = list(table.primary_key.columns)
    verb = "INSERT" if isinstance(stmt, Insert) else "UPDATE" if isinstance(stmt, Update) else "DELETE"
    what = f"{verb} on {table.name} (a regulated record)"

    if isinstance(stmt, Insert):
        upsert = isinstance(stmt, PgInsert | SqliteInsert) and stmt._post_values_clause is not None
        if upsert or stmt.select is not None or stmt._returning:
            raise AuditError(f"{what}: only plain INSERTs without RETURNING can be audited; use session.add")
        result = orm_state.invoke_statement(statement=stmt.returning(*table.c))
        rows = list(result.mappings())
        changes = _row_changes(policy, "create", table, rows)
    else:
        params = orm_state.parameters
        if orm_state.is_executemany:
            # ORM bulk UPDATE by primary key: the keys are in the parameter sets.
            if not (isinstance(stmt, Update) and stmt.whereclause is None and orm_state.is_orm_statement):
                raise AuditError(f"{what}: an executemany with a WHERE clause cannot be audited")
            keys = [tuple(p[mapper.get_property_by_column(c).key] for c in pk) for p in params]
            before_rows = _by_keys(conn, table, keys, for_update=True)
        else:
            probe = select(*table.c).with_for_update()
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
    if changes:
        chain.append(conn, changes, actor=current_actor(), reason=current_reason())
    return result


async def record_rows(session: AsyncSession, model: type, rows: list[dict[str, Any]], *, action: str) -> int:
    """Append entries for rows written AROUND the session (a COPY, a Core bulk load): ``rows`` are the
    stored rows by column name, keys included, read back after the write. Returns how many."""
    policy = policy_for(model)
    if policy is None:
        raise AuditError(f"{model.__name__} is not a regulated record")
    if action not in ("create", "delete"):
        raise AuditError("record_rows records created or deleted rows; updates go through the session")
    table = inspect(model).local_table
    changes = _row_changes(policy, action, table, rows)

    def _append(sync_session: Session) -> None:
        conn = sync_session.connection()
        chain.lock(conn)
        chain.append(conn, changes, actor=current_actor(), reason=current_reason())

    if changes:
        await session.run_sync(_append)
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
    _installed = True


install()  # on import: see domain.audit.models
