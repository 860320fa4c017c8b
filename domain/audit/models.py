"""The audit trail's table: append-only (database triggers refuse UPDATE and DELETE) and hash-chained."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from domain.models import Base, BigId, UtcDateTime, utcnow


class AuditEntry(Base):
    """One change to one regulated record: who, when, what (old and new values), why; chained by hash.

    ``hash`` is SHA-256 over the canonical JSON of the entry's content and ``prev_hash``, the hash of
    the entry before it in ``seq`` order (see ``domain.audit.chain``). Written only by the session
    hook in ``domain.audit.hooks``; never updated or deleted.
    """

    __tablename__ = "audit_entries"
    __table_args__ = (
        CheckConstraint("action IN ('create', 'update', 'delete')", name="action_known"),
        Index("ix_audit_entries_record", "record_type", "record_id", "seq"),
        Index("ix_audit_entries_actor", "actor", "seq"),
        Index("ix_audit_entries_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(8))
    record_type: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(64))
    changes: Mapped[dict] = mapped_column(JSON, default=dict)  # {column: [old, new]}
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditPending(Base):
    """Entries of the transaction under way, staged for the database to chain as it commits
    (PostgreSQL; migration 0014). Empty outside a transaction: the sealing trigger deletes them."""

    __tablename__ = "audit_pending"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(8))
    record_type: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(64))
    changes: Mapped[dict] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # canonical JSON of the entry = head + at + middle + prev_hash + tail (chain.canonical_parts)
    head: Mapped[str] = mapped_column(Text)
    middle: Mapped[str] = mapped_column(Text)
    tail: Mapped[str] = mapped_column(Text)


# Whatever loads the trail's table also gets the hooks that write it (make_session_factory installs
# them too): no process can change a regulated record through a session without its entry.
# (Importing the hooks module installs them; a plain import also survives the import cycle.)
import domain.audit.hooks  # noqa: E402, F401
