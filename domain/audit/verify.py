"""Check the audit trail: recompute every hash in ``seq`` order and follow the ``prev_hash`` links.

Findings name the entries by ``seq``:
- ``changed``: the entry's content no longer matches its hash (edited in place);
- ``deleted``: numbers are missing from ``seq`` (rows removed);
- ``reordered``: the entry's hash is intact, but it links to an entry that is not its predecessor,
  and its successor does not link to it (``seq`` values swapped or moved);
- ``broken_link``: the entry links to a hash no entry has (its predecessor was altered and
  re-hashed, or removed and the rest renumbered).
Removing entries from the END of the trail leaves no gap; the report gives the head (``seq`` and
hash) so an operator can keep it elsewhere and pass it back as ``anchor`` next time.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.chain import GENESIS, TABLE, entry_content, entry_hash

BATCH = 2000
MAX_LISTED = 100  # a longer run of missing seq numbers is reported as its first and last


class Finding(BaseModel):
    """One problem in the trail."""

    kind: str  # changed | deleted | reordered | broken_link
    seqs: list[int]
    detail: str


class VerifyReport(BaseModel):
    """The outcome of checking the whole trail."""

    entries: int = 0
    head_seq: int | None = None
    head_hash: str | None = None
    findings: list[Finding] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return not self.findings


@dataclass
class _Seen:
    seq: int
    prev_hash: str
    hash: str
    intact: bool  # content matches the stored hash
    link_broken: bool  # prev_hash is not the stored hash of the entry before it in seq order


def _recomputed(row) -> str:
    return entry_hash(
        entry_content(
            at=row.at,
            actor=row.actor,
            action=row.action,
            record_type=row.record_type,
            record_id=row.record_id,
            changes=row.changes,
            reason=row.reason,
            prev_hash=row.prev_hash,
        )
    )


def _span(first: int, last: int) -> list[int]:
    return list(range(first, last + 1)) if last - first < MAX_LISTED else [first, last]


async def verify_chain(
    session: AsyncSession, *, anchor: tuple[int, str] | None = None, batch: int = BATCH
) -> VerifyReport:
    """Recompute every hash and link in ``seq`` order; report each changed, deleted or reordered entry.

    ``anchor`` (seq, hash) is a head recorded earlier: it must still be there, unchanged.
    """
    report = VerifyReport()
    findings = report.findings

    async def owner_of(digest: str) -> int | None:
        return await session.scalar(select(TABLE.c.seq).where(TABLE.c.hash == digest).limit(1))

    def add(kind: str, seqs: list[int], detail: str) -> None:
        last = findings[-1] if findings else None
        if last is not None and last.kind == kind == "reordered" and last.seqs[-1] == seqs[0] - 1:
            last.seqs.extend(seqs)
            return
        findings.append(Finding(kind=kind, seqs=seqs, detail=detail))

    async def settle(held: _Seen, successor_link_broken: bool) -> None:
        """Classify a broken incoming link once the next entry's link is known."""
        if not held.link_broken or not held.intact:
            return
        owner = await owner_of(held.prev_hash)
        if owner is None:
            add(
                "broken_link",
                [held.seq - 1, held.seq],
                f"entry {held.seq} links to a hash no entry has: entry {held.seq - 1} was altered and "
                "re-hashed, or entries were removed and the rest renumbered",
            )
        elif successor_link_broken:
            add(
                "reordered",
                [held.seq],
                f"entry {held.seq} follows entry {owner} in the chain, not {held.seq - 1}",
            )

    held: _Seen | None = None
    last_seq = 0
    prev_hash = GENESIS
    anchor_seen = False
    while True:
        rows = (
            await session.execute(
                select(TABLE).where(TABLE.c.seq > last_seq).order_by(TABLE.c.seq).limit(batch)
            )
        ).all()
        if not rows:
            break
        for row in rows:
            report.entries += 1
            intact = _recomputed(row) == row.hash
            if not intact:
                add("changed", [row.seq], f"entry {row.seq} does not match its hash: it was edited")
            gap = row.seq != last_seq + 1
            if gap:
                add(
                    "deleted",
                    _span(last_seq + 1, row.seq - 1),
                    f"entries {last_seq + 1}..{row.seq - 1} are missing",
                )
            seen = _Seen(
                row.seq, row.prev_hash, row.hash, intact, link_broken=not gap and row.prev_hash != prev_hash
            )
            if held is not None:
                await settle(held, successor_link_broken=seen.link_broken)
            held = seen
            if anchor is not None and row.seq == anchor[0]:
                anchor_seen = True
                if row.hash != anchor[1]:
                    add(
                        "changed", [row.seq], f"entry {row.seq} differs from the anchor hash recorded earlier"
                    )
            last_seq, prev_hash = row.seq, row.hash
        report.head_seq, report.head_hash = last_seq, prev_hash
    if held is not None:
        await settle(held, successor_link_broken=True)
    if anchor is not None and not anchor_seen and anchor[0] > last_seq:
        add(
            "deleted",
            _span(last_seq + 1, anchor[0]),
            f"the trail ends at {last_seq} but entry {anchor[0]} was recorded as its head earlier",
        )
    findings.sort(key=lambda f: (f.seqs[0], f.kind))
    return report
