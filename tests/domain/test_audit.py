"""The audit trail on SQLite and PostgreSQL: every change to a regulated record is recorded with its
old and new values and its actor, the entries are append-only, and tampering is found by seq."""

from __future__ import annotations

import asyncio
import itertools
import json
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import Integer, String, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from domain import inventory
from domain.audit import Audited, acting_as, chain, with_reason
from domain.audit.chain import GENESIS, entry_content, entry_hash
from domain.audit.hooks import AuditError, record_rows
from domain.audit.models import AuditEntry, AuditPending
from domain.audit.verify import verify_chain
from domain.db import warm_pool
from domain.enums import MovementKind, QcStatus
from domain.models import Lot, LotHold, Product, User
from domain.tasks.models import Task
from domain.users import create_user
from tests import factories as f

PASSWORD = "correct horse battery"


async def _entries(store) -> list[AuditEntry]:
    async with store.sessions() as s:
        return list(await s.scalars(select(AuditEntry).order_by(AuditEntry.seq)))


async def _trail(store, record_type: str, record_id: int | str) -> list[tuple[str, str, dict]]:
    return [
        (e.action, e.actor, e.changes)
        for e in await _entries(store)
        if e.record_type == record_type and e.record_id == str(record_id)
    ]


async def _lot_with_history(store, updates: int = 4) -> int:
    """A product and a lot (2 entries), then ``updates`` quantity changes (one entry each)."""
    async with store.sessions() as s, s.begin():
        lot = await f.lot(s, await f.product(s, "AUD"), "A-1", quantity=10)
    for n in range(updates):
        async with store.sessions() as s, s.begin():
            (await s.get(Lot, lot.id)).quantity = 11 + n
    return lot.id


async def test_create_update_and_delete_are_recorded_with_old_and_new_values_and_the_actor(store):
    # The actor is the one in effect when the session flushes: wrap the whole transaction.
    with acting_as("qa.li"):
        async with store.sessions() as s, s.begin():
            lot = await f.lot(s, await f.product(s, "PUMP"), "L-7", quantity=40)
            s.add(LotHold(lot_id=lot.id, reason="qc", reference="qc-1", placed_by="qa.li"))
    with acting_as("releaser.wang", reason="inspection passed"):
        async with store.sessions() as s, s.begin():
            (await s.get(Lot, lot.id)).qc_status = QcStatus.released
    with acting_as("qa.li"):
        async with store.sessions() as s, s.begin():
            await s.delete(await s.scalar(select(LotHold).where(LotHold.lot_id == lot.id)))

    trail = await _trail(store, "lot", lot.id)
    assert [(a, who) for a, who, _ in trail] == [("create", "qa.li"), ("update", "releaser.wang")]
    created = trail[0][2]
    assert created["lot_number"] == [None, "L-7"] and created["quantity"] == [None, 40]
    assert created["qc_status"] == [None, "quarantined"]
    assert trail[1][2] == {"qc_status": ["quarantined", "released"]}
    update_entry = next(e for e in await _entries(store) if e.action == "update")
    assert update_entry.reason == "inspection passed"

    hold_trail = await _trail(store, "lot_hold", 1)
    assert [(a, who) for a, who, _ in hold_trail] == [("create", "qa.li"), ("delete", "qa.li")]
    deleted = hold_trail[1][2]
    assert deleted["reference"] == ["qc-1", None] and deleted["lot_id"] == [lot.id, None]
    # Stock movements and locations are not regulated records: no entries for them.
    assert {e.record_type for e in await _entries(store)} == {"product", "lot", "lot_hold"}


async def test_the_old_value_comes_from_the_database_even_when_the_session_never_loaded_it(store):
    lot_id = await _lot_with_history(store, updates=0)
    async with store.sessions() as s, s.begin():
        lot = await s.get(Lot, lot_id)
        s.expire(lot, ["quantity"])  # set without loading: the session has no old value
        lot.quantity = 99
    # Another session changed it meanwhile, behind this one's back: the trail still says what it was.
    async with store.sessions() as a, store.sessions() as b:
        stale = await a.get(Lot, lot_id)
        (await b.get(Lot, lot_id)).quantity = 55
        await b.commit()
        stale.quantity = 60
        await a.commit()
    changes = [c for action, _, c in await _trail(store, "lot", lot_id) if action == "update"]
    assert changes == [{"quantity": [10, 99]}, {"quantity": [99, 55]}, {"quantity": [55, 60]}]


async def test_update_delete_and_insert_statements_are_recorded_too(store):
    lot_id = await _lot_with_history(store, updates=0)
    async with store.sessions() as s, s.begin():
        task = Task(
            business_key="t-1", process="qc", kind="release", title="Release", record_type="lot",
            record_id=lot_id, candidate_roles=["releaser"],
        )  # fmt: skip
        s.add(task)
    with acting_as("system:qc-1"):
        async with store.sessions() as s, s.begin():
            await s.execute(update(Task).where(Task.record_id == lot_id).values(status="cancelled"))
            await s.execute(update(Lot).where(Lot.id == lot_id).values(quantity=Lot.quantity + 5))
            await s.execute(
                insert(Product),
                [
                    {"code": f"B{i}", "name": "bulk", "gtin": f.make_gtin(900 + i), "risk_class": "II"}
                    for i in range(3)
                ],
            )
    async with store.sessions() as s, s.begin():
        await s.execute(delete(Task).where(Task.id == task.id))

    trail = await _trail(store, "task", task.id)
    assert [(a, who) for a, who, _ in trail] == [
        ("create", "system"),
        ("update", "system:qc-1"),
        ("delete", "system"),
    ]
    assert trail[1][2] == {"status": ["open", "cancelled"]}
    assert trail[2][2]["business_key"] == ["t-1", None] and trail[2][2]["status"] == ["cancelled", None]
    assert [c for a, _, c in await _trail(store, "lot", lot_id) if a == "update"] == [{"quantity": [10, 15]}]
    bulk = [
        e for e in await _entries(store) if e.record_type == "product" and e.changes["name"] == [None, "bulk"]
    ]
    assert sorted(e.changes["code"][1] for e in bulk) == ["B0", "B1", "B2"]
    assert all(e.record_id.isdigit() and e.actor == "system:qc-1" for e in bulk)


async def test_a_password_hash_never_appears_but_role_and_password_changes_do(store):
    with acting_as("admin"):
        async with store.sessions() as s, s.begin():
            user = await create_user(s, username="chen", full_name="Chen", roles=["qa"], password=PASSWORD)
    first_hash = user.password_hash
    with acting_as("admin"):
        async with store.sessions() as s, s.begin():
            u = await s.get(User, user.id)
            u.roles = ["qa", "releaser"]
            u.active = False
            u.password_hash = "$argon2id$v=19$m=65536,t=3,p=4$rehashed-by-the-admin"

    trail = await _trail(store, "user", user.id)
    assert [a for a, _, _ in trail] == ["create", "update"]
    assert trail[1][2] == {
        "roles": [["qa"], ["qa", "releaser"]],
        "active": [True, False],
        "password_hash": ["[redacted]", "[redacted]"],
    }
    dumped = json.dumps([e.changes for e in await _entries(store)])
    assert first_hash not in dumped and "argon2" not in dumped


async def test_the_chain_links_every_entry_to_the_one_before_and_verifies(store):
    await _lot_with_history(store)
    entries = await _entries(store)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    for e in entries:
        content = entry_content(
            at=e.at, actor=e.actor, action=e.action, record_type=e.record_type, record_id=e.record_id,
            changes=e.changes, reason=e.reason, prev_hash=e.prev_hash,
        )  # fmt: skip
        assert entry_hash(content) == e.hash
    async with store.sessions() as s:
        report = await verify_chain(s)
    assert report.ok and report.entries == 6 and (report.head_seq, report.head_hash) == (6, entries[-1].hash)


async def test_a_rolled_back_change_leaves_no_entry_and_a_failed_audit_fails_the_change(store):
    lot_id = await _lot_with_history(store, updates=0)
    async with store.sessions() as s:
        (await s.get(Lot, lot_id)).quantity = 1
        await s.flush()
        await s.rollback()
    # Writing entries by hand is refused, and the regulated change in the same flush goes with it.
    with pytest.raises(AuditError, match="audit hook only"):
        async with store.sessions() as s, s.begin():
            (await s.get(Lot, lot_id)).quantity = 2
            s.add(AuditEntry(seq=99, actor="x", action="update", record_type="lot", record_id="1",
                             changes={}, prev_hash=GENESIS, hash="f" * 64))  # fmt: skip
    # A statement the hook cannot audit faithfully is refused rather than run unaudited.
    with pytest.raises(AuditError, match="RETURNING"):
        async with store.sessions() as s, s.begin():
            await s.execute(insert(Lot).values(product_id=1, lot_number="X", quantity=1).returning(Lot.id))
    async with store.sessions() as s:
        assert (await s.get(Lot, lot_id)).quantity == 10
        assert await s.scalar(select(Lot.id).where(Lot.lot_number == "X")) is None
    assert len(await _entries(store)) == 2


async def test_entries_cannot_be_updated_deleted_or_truncated_through_any_normal_path(store):
    await _lot_with_history(store, updates=1)
    statements = [
        update(AuditEntry).where(AuditEntry.seq == 1).values(actor="mallory"),
        delete(AuditEntry).where(AuditEntry.seq == 3),
        text("UPDATE audit_entries SET changes = '{}'"),
        text("DELETE FROM audit_entries"),
    ]
    if store.dialect == "postgresql":
        statements.append(text("TRUNCATE audit_entries"))
    for stmt in statements:
        with pytest.raises(IntegrityError, match="append-only"):
            async with store.sessions() as s, s.begin():
                await s.execute(stmt)
        with pytest.raises(IntegrityError, match="append-only"):
            async with store.engine.begin() as conn:  # a bare connection, around the session hooks
                await conn.execute(stmt)
    with pytest.raises(AuditError):
        async with store.sessions() as s, s.begin():
            (await s.scalar(select(AuditEntry).where(AuditEntry.seq == 1))).actor = "mallory"
    async with store.sessions() as s:
        assert (await verify_chain(s)).ok and len(await _entries(store)) == 3


@asynccontextmanager
async def _past_the_triggers(store):
    """What an attacker with the owner's rights does: switch the guards off, then write."""
    async with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            await conn.execute(text("DROP TRIGGER audit_entries_no_update"))
            await conn.execute(text("DROP TRIGGER audit_entries_no_delete"))
        else:
            await conn.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER ALL"))
        yield conn
        if store.dialect == "postgresql":
            await conn.execute(text("ALTER TABLE audit_entries ENABLE TRIGGER ALL"))


async def _edit(conn) -> None:
    await conn.execute(text("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 3"))


async def _edit_and_rehash(conn) -> None:
    row = (await conn.execute(select(AuditEntry.__table__).where(AuditEntry.seq == 3))).one()
    content = entry_content(
        at=row.at, actor="mallory", action=row.action, record_type=row.record_type, record_id=row.record_id,
        changes=row.changes, reason=row.reason, prev_hash=row.prev_hash,
    )  # fmt: skip
    await conn.execute(
        update(AuditEntry.__table__)
        .where(AuditEntry.seq == 3)
        .values(actor="mallory", hash=entry_hash(content))
    )


async def _delete(conn) -> None:
    await conn.execute(text("DELETE FROM audit_entries WHERE seq = 3"))


async def _swap(conn) -> None:
    await conn.execute(text("UPDATE audit_entries SET seq = -3 WHERE seq = 3"))
    await conn.execute(text("UPDATE audit_entries SET seq = 3 WHERE seq = 4"))
    await conn.execute(text("UPDATE audit_entries SET seq = 4 WHERE seq = -3"))


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (_edit, [("changed", [3])]),
        (_edit_and_rehash, [("broken_link", [3, 4])]),
        (_delete, [("deleted", [3])]),
        (_swap, [("reordered", [3, 4])]),
    ],
    ids=["edited", "edited-and-rehashed", "deleted", "reordered"],
)
async def test_tampering_is_reported_with_exactly_the_tampered_seq(store, tamper, expected):
    await _lot_with_history(store)
    async with store.sessions() as s:
        assert (await verify_chain(s)).ok
    async with _past_the_triggers(store) as conn:
        await tamper(conn)
    async with store.sessions() as s:
        report = await verify_chain(s)
    assert [(x.kind, x.seqs) for x in report.findings] == expected, report.findings


async def test_entries_cut_from_the_end_are_caught_by_an_anchor_kept_from_an_earlier_run(store):
    await _lot_with_history(store)
    async with store.sessions() as s:
        earlier = await verify_chain(s)
    async with _past_the_triggers(store) as conn:
        await conn.execute(text("DELETE FROM audit_entries WHERE seq >= 5"))
    async with store.sessions() as s:
        assert (await verify_chain(s)).ok  # a shorter chain is still a chain...
        report = await verify_chain(s, anchor=(earlier.head_seq, earlier.head_hash))
    assert [(x.kind, x.seqs) for x in report.findings] == [("deleted", [5, 6])]  # ...but not the one we had


async def test_concurrent_writers_build_one_unbroken_chain(store):
    async with store.sessions() as s, s.begin():
        product = await f.product(s, "CONC")
        lots = [await f.lot(s, product, f"C-{i}", quantity=0) for i in range(6)]
        wh = await f.location(s, "WH-C")

    async def writer(i: int) -> None:
        for _ in range(4):
            with acting_as(f"user{i}"):
                async with store.sessions() as s, s.begin():
                    lot = await s.get(Lot, lots[i].id)
                    lot.quantity += 1
                    await inventory.post(s, kind=MovementKind.receipt, lot=lot, location=wh, quantity=1)

    await asyncio.gather(*(writer(i) for i in range(6)))
    entries = await _entries(store)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    for i, lot in enumerate(lots):
        updates = [
            e.changes["quantity"] for e in entries if e.record_id == str(lot.id) and e.action == "update"
        ]
        assert updates == [[n, n + 1] for n in range(4)] and {
            e.actor for e in entries if e.record_id == str(lot.id) and e.action == "update"
        } == {f"user{i}"}
    async with store.sessions() as s:
        assert (await verify_chain(s)).ok


async def test_a_reason_given_by_the_caller_is_kept_and_the_default_actor_is_system(store):
    lot_id = await _lot_with_history(store, updates=0)
    with with_reason("deviation DEV-12: counted twice"):
        async with store.sessions() as s, s.begin():
            (await s.get(Lot, lot_id)).quantity = 9
    last = (await _entries(store))[-1]
    assert (last.actor, last.reason, last.changes) == (
        "system",
        "deviation DEV-12: counted twice",
        {"quantity": [10, 9]},
    )


class _OwnBase(DeclarativeBase):
    """A separate metadata, so this test's table never joins the store's schema."""


class WidgetReview(Audited, _OwnBase):
    """How a new regulated model (CAPA, change request, inspection) opts in: inherit ``Audited``."""

    __tablename__ = "test_widget_reviews"
    __audit_redact__ = ("signer_pin",)
    __audit_reason__ = "justification"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    signer_pin: Mapped[str | None] = mapped_column(String(16), nullable=True)
    justification: Mapped[str | None] = mapped_column(String(255), nullable=True)


async def test_a_model_that_inherits_audited_is_audited_under_its_snake_case_name(store):
    async with store.engine.begin() as conn:
        await conn.run_sync(_OwnBase.metadata.create_all)
    try:
        with acting_as("qa.li"):
            async with store.sessions() as s, s.begin():
                review = WidgetReview(status="open", signer_pin="1234")
                s.add(review)
            async with store.sessions() as s, s.begin():
                r = await s.get(WidgetReview, review.id)
                r.status, r.signer_pin, r.justification = "closed", "9876", "effective"
            async with store.sessions() as s, s.begin():
                await s.execute(delete(WidgetReview).where(WidgetReview.id == review.id))
        trail = [e for e in await _entries(store) if e.record_type == "widget_review"]
        assert [(e.action, e.actor, e.reason) for e in trail] == [
            ("create", "qa.li", None),
            ("update", "qa.li", "effective"),
            ("delete", "qa.li", None),
        ]
        assert trail[1].changes == {
            "status": ["open", "closed"],
            "signer_pin": ["[redacted]", "[redacted]"],
            "justification": [None, "effective"],
        }
        assert "1234" not in json.dumps([e.changes for e in trail])
    finally:
        async with store.engine.begin() as conn:
            await conn.run_sync(_OwnBase.metadata.drop_all)


async def test_bulk_updates_by_primary_key_are_recorded_per_row_and_forged_entries_refused(store):
    async with store.sessions() as s, s.begin():
        product = await f.product(s, "BULK")
        lots = [await f.lot(s, product, f"B-{i}", quantity=i) for i in range(3)]
    with acting_as("planner"):
        async with store.sessions() as s, s.begin():
            await s.execute(update(Lot), [{"id": lot.id, "quantity": 100 + i} for i, lot in enumerate(lots)])
    updates = [(e.record_id, e.actor, e.changes) for e in await _entries(store) if e.action == "update"]
    assert updates == [(str(lot.id), "planner", {"quantity": [i, 100 + i]}) for i, lot in enumerate(lots)]
    forged = {"seq": 99, "at": lots[0].created_at, "actor": "x", "action": "update", "record_type": "lot",
              "record_id": "1", "changes": {}, "prev_hash": GENESIS, "hash": "f" * 64}  # fmt: skip
    with pytest.raises(AuditError, match="audit hook only"):
        async with store.sessions() as s, s.begin():
            await s.execute(insert(AuditEntry).values(**forged))
    async with store.sessions() as s:
        assert (await verify_chain(s)).ok


async def test_rows_loaded_around_the_session_are_recorded_by_the_loader_with_record_rows(store):
    """What a bulk loader (COPY, Core executemany) does, since no session event sees its rows."""
    rows = [
        {"code": f"K{i}", "name": "copied", "gtin": f.make_gtin(700 + i), "risk_class": "II"}
        for i in range(2)
    ]
    with acting_as("import:products.csv"):
        async with store.sessions() as s, s.begin():
            conn = await s.connection()
            await conn.execute(insert(Product.__table__), rows)
            assert await _entries(store) == []  # invisible to the hooks...
            stored = (await s.execute(select(Product.__table__).order_by(Product.id))).mappings().all()
            assert await record_rows(s, Product, [dict(r) for r in stored], action="create") == 2
    entries = await _entries(store)  # ...so the loader records them, in its own transaction
    assert [(e.action, e.actor, e.changes["code"]) for e in entries] == [
        ("create", "import:products.csv", [None, "K0"]),
        ("create", "import:products.csv", [None, "K1"]),
    ]
    async with store.sessions() as s:
        assert (await verify_chain(s)).ok


async def test_entries_are_chained_at_commit_and_a_rolled_back_savepoint_takes_its_own_with_it(store):
    lot_id = await _lot_with_history(store, updates=0)  # 2 entries
    async with store.sessions() as s, s.begin():
        lot = await s.get(Lot, lot_id)
        lot.quantity = 20
        await s.flush()
        with pytest.raises(RuntimeError):
            async with s.begin_nested():
                lot.quantity = 30
                await s.flush()
                raise RuntimeError("rolled back to the savepoint")
        async with s.begin_nested():
            lot.quantity = 40
        # Collected, not yet chained: the trail's lock is taken by the commit, not by the work.
        assert await s.scalar(select(func.count()).select_from(AuditEntry)) == 2
    async with store.sessions() as s:
        async with s.begin():
            (await s.get(Lot, lot_id)).quantity = 50
            await s.begin_nested()  # left open: the transaction's commit releases it
            (await s.get(Lot, lot_id)).quantity = 60
    trail = await _trail(store, "lot", lot_id)
    updates = [c["quantity"] for action, _actor, c in trail if action == "update"]
    assert updates == [[10, 20], [20, 40], [40, 50], [50, 60]]
    async with store.sessions() as s:
        assert (await verify_chain(s)).ok


async def test_small_and_bulk_transactions_interleave_into_one_chain_stamped_in_commit_order(
    store, monkeypatch
):
    """PostgreSQL chains a small transaction's entries inside the server as it commits (staged in
    audit_pending), a bulk one in Python; both kinds at once still make one chain, timed in seq order,
    and nothing stays staged."""
    monkeypatch.setattr(chain, "STAGE_AT_MOST", 2)
    async with store.sessions() as s, s.begin():
        product = await f.product(s, "MIX")

    async def small(i: int) -> None:  # one lot: one entry, staged on PostgreSQL
        async with store.sessions() as s, s.begin():
            await f.lot(s, product, f"S-{i}", quantity=0)

    async def bulk(i: int) -> None:  # five lots: chained in Python
        async with store.sessions() as s, s.begin():
            for j in range(5):
                await f.lot(s, product, f"B-{i}-{j}", quantity=0)

    await asyncio.gather(*(small(i) if i % 2 else bulk(i) for i in range(12)))
    entries = await _entries(store)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert len([e for e in entries if e.record_type == "lot"]) == 6 * 1 + 6 * 5
    assert all(a.at <= b.at for a, b in itertools.pairwise(entries))
    async with store.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(AuditPending)) == 0
        assert (await verify_chain(s)).ok


async def test_warming_the_pool_opens_its_connections_and_leaves_the_trail_as_it_was(store):
    """At start the API opens its pool and runs the sealing trigger once per connection, rolled back:
    the trail gains nothing and still verifies, and the next commit chains after the last entry."""
    lot_id = await _lot_with_history(store, updates=1)
    before = [(e.seq, e.hash) for e in await _entries(store)]
    opened = await warm_pool(store.engine)
    assert opened == (0 if store.dialect == "sqlite" else store.engine.pool.size())
    assert [(e.seq, e.hash) for e in await _entries(store)] == before
    async with store.sessions() as s, s.begin():
        (await s.get(Lot, lot_id)).quantity = 99
    entries = await _entries(store)
    assert [e.seq for e in entries] == list(range(1, len(before) + 2))
    async with store.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(AuditPending)) == 0
        assert (await verify_chain(s)).ok
