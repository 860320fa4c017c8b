"""the audit trail on PostgreSQL: entries are chained by the database as the transaction commits

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

Before, the session hook took the trail's advisory lock, read the last entry, hashed and inserted in
Python, and the lock stayed held while the application sent its COMMIT: every audited write in the
system queued behind one Python event loop's round trips. Now a transaction stages its entries in
``audit_pending`` (content already in canonical JSON, split around the two values only the commit
knows: the time and the previous hash), and a deferred constraint trigger chains them as the
transaction commits, inside the server: lock, read the last entry, hash, insert, clear the staging
rows. The lock is held for that and the COMMIT's own WAL flush, never across a client round trip.

The hash is the same SHA-256 over the same canonical JSON (``domain.audit.chain``), so
``verify_chain`` checks old and new entries alike, and SQLite keeps chaining in Python (it has one
writer anyway). Staging rows never outlive their transaction: they are deleted by the same trigger.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same key as domain.audit.chain.ADVISORY_LOCK_KEY (a migration does not import the app).
ADVISORY_LOCK_KEY = 0x4C4F544C494E45


def upgrade() -> None:
    op.create_table(
        "audit_pending",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("record_type", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        # canonical JSON = head + "at" + middle + "prev_hash" + tail (both values as JSON strings)
        sa.Column("head", sa.Text(), nullable=False),
        sa.Column("middle", sa.Text(), nullable=False),
        sa.Column("tail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_pending")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite chains in Python at commit (domain.audit.chain.append_attributed)
    op.execute(
        f"""CREATE FUNCTION audit_seal_pending() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            staged audit_pending[];
            last_seq bigint;
            last_hash text;
            sealed_at timestamptz;
            at_json text;
            e audit_pending;
            h text;
        BEGIN
            -- The first of the transaction's staged rows seals them all; the others find theirs gone.
            IF NOT EXISTS (SELECT 1 FROM audit_pending WHERE id = NEW.id) THEN
                RETURN NULL;
            END IF;
            -- Everything that does not need the lock is done before it: this transaction's staged
            -- rows (only its own are visible: others' are uncommitted, or gone), and a first read of
            -- the trail, which in a new connection loads its catalog entries and plans (several
            -- milliseconds that must not be spent while every other writer waits). The rows are
            -- those from this one on (ids grow in insertion order, and an earlier row's own event
            -- came first and sealed it).
            staged := ARRAY(SELECT s FROM audit_pending s WHERE s.id >= NEW.id ORDER BY s.id);
            DELETE FROM audit_pending WHERE id >= NEW.id;
            PERFORM 1 FROM audit_entries ORDER BY seq DESC LIMIT 1;
            PERFORM pg_advisory_xact_lock({ADVISORY_LOCK_KEY});
            -- A new snapshot (READ COMMITTED): the last entry the previous lock holder committed.
            SELECT seq, hash INTO last_seq, last_hash FROM audit_entries ORDER BY seq DESC LIMIT 1;
            IF NOT FOUND THEN
                last_seq := 0;
                last_hash := repeat('0', 64);
            END IF;
            sealed_at := clock_timestamp();
            at_json := '"' || to_char(sealed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')
                || '+00:00"';
            FOREACH e IN ARRAY staged LOOP
                h := encode(sha256(convert_to(
                    e.head || at_json || e.middle || '"' || last_hash || '"' || e.tail, 'UTF8')), 'hex');
                last_seq := last_seq + 1;
                INSERT INTO audit_entries
                    (seq, at, actor, action, record_type, record_id, changes, reason, prev_hash, hash)
                VALUES (last_seq, sealed_at, e.actor, e.action, e.record_type, e.record_id, e.changes,
                        e.reason, last_hash, h);
                last_hash := h;
            END LOOP;
            RETURN NULL;
        END $$"""
    )
    op.execute(
        "CREATE CONSTRAINT TRIGGER audit_pending_seal AFTER INSERT ON audit_pending "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_seal_pending()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_pending_seal ON audit_pending")
        op.execute("DROP FUNCTION IF EXISTS audit_seal_pending()")
    op.drop_table("audit_pending")
