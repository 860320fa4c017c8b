"""THE one table of escalation ladders, for every process: when an open task's people are reminded,
when it is escalated and to whom, and how the reminders reach them (one digest per person per period).

Each stage of each process has a :class:`Ladder`: its deadline (``due``, counted from when the stage's
task opens) and its steps. A step is placed either as a **fraction of the deadline** (``0.5`` = half
way, ``1.0`` = at the deadline) or as an **offset** (a ``timedelta``) from when its clock starts: the
task opening (``anchor="opened"``), or, for ladders over many items that each have their own due date
(CAPA actions, change implementation tasks), that item's due time (``anchor="due"``). Reminding goes to
the task's own people; escalating widens the task to ``to`` (they see it in their inbox and may
reassign it; signing still needs a candidate role). Unless ``repeat_last`` is False, the last step
repeats at the interval between the last two steps until the stage is done.

No regulation sets these numbers (ISO 13485 and Part 11 require the steps, not their timing; the
recall's regulatory deadlines live in ``domain.policy.recall``): every ladder here is a company
default, changed here and nowhere else. The process policies (``domain.capa.policy``,
``domain.changes.policy``, ``domain.quality.policy``, ``domain.policy.recall``) read their ladders from
this table, and the workflows receive them through a plan activity, so a changed table never alters a
running history.

Pure: no clock, no I/O; pydantic and the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time, timedelta
from itertools import pairwise
from typing import Final, Literal

from domain.tasks.payloads import Rung

Action = Literal["remind", "escalate"]
Anchor = Literal["opened", "due"]

SOURCE: Final = "Lotline company default, not a regulatory rule (change it in domain/policy/escalation.py)"

# Who is escalated to. QA management owns every regulated process; admin is the last resort.
QA_MANAGEMENT: Final = ("qa_manager",)
QA_MANAGEMENT_AND_ADMIN: Final = ("qa_manager", "admin")
ADMIN: Final = ("admin",)


@dataclass(frozen=True)
class Step:
    """One rung: at ``at`` (fraction of the deadline, or an offset from the anchor), do ``action``."""

    at: float | timedelta
    action: Action
    to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ladder:
    """The deadline of one stage and the steps that remind and escalate until it is done."""

    steps: tuple[Step, ...]
    due: timedelta | None = None  # from when the task opens; None: the process computes it elsewhere
    anchor: Anchor = "opened"
    repeat_last: bool = True
    note: str = ""
    source: str = SOURCE

    def offsets(self) -> list[timedelta]:
        """Each step's time from the anchor, fractions resolved against the deadline."""
        out: list[timedelta] = []
        for step in self.steps:
            if isinstance(step.at, timedelta):
                out.append(step.at)
            else:
                assert self.due is not None  # _check refuses a fraction without a deadline
                out.append(self.due * step.at)
        return out


def _h(hours: float) -> timedelta:
    return timedelta(hours=hours)


def _d(days: float) -> timedelta:
    return timedelta(days=days)


# ------------------------------------------------------------------------------------ the table
# (process, stage) -> ladder. Process names are the tasks' ``process`` (recall, capa, change, release).
LADDERS: Final[dict[tuple[str, str], Ladder]] = {
    # --- Recall -------------------------------------------------------------------------------
    # The approval (qa_manager signs) is scaled to the severity: a level 1 recall must reach every
    # consignee within a day, so its approval is due in 2 hours.
    ("recall", "approval.severity1"): Ladder(
        due=_h(2), steps=(Step(0.5, "remind"), Step(1.0, "escalate", QA_MANAGEMENT_AND_ADMIN))
    ),
    ("recall", "approval.severity2"): Ladder(
        due=_h(8), steps=(Step(0.5, "remind"), Step(1.0, "escalate", QA_MANAGEMENT_AND_ADMIN))
    ),
    ("recall", "approval.severity3"): Ladder(
        due=_h(24), steps=(Step(_h(8), "remind"), Step(1.0, "escalate", QA_MANAGEMENT_AND_ADMIN))
    ),
    # EU: the FSCA report to the competent authority gates the field safety notice; it is due by the
    # notify deadline (domain.policy.recall), so the steps are offsets from the task opening.
    ("recall", "fsca_report"): Ladder(
        steps=(Step(_h(4), "remind"), Step(_h(12), "escalate", QA_MANAGEMENT)),
        note="due by the notify deadline",
    ),
    # --- CAPA (ISO 13485 8.5.2) -------------------------------------------------------------------
    ("capa", "investigation"): Ladder(
        due=_d(30),
        steps=(
            Step(_d(21), "remind"),
            Step(1.0, "escalate", QA_MANAGEMENT),
            Step(_d(37), "escalate", QA_MANAGEMENT_AND_ADMIN),
        ),
    ),
    ("capa", "plan_approval"): Ladder(due=_d(5), steps=(Step(_d(2), "remind"), Step(1.0, "escalate", ADMIN))),
    # Each corrective/preventive action, from the end of its own due date; then weekly.
    ("capa", "action_overdue"): Ladder(
        anchor="due",
        steps=(
            Step(_d(0), "remind"),
            Step(_d(3), "escalate", QA_MANAGEMENT),
            Step(_d(10), "escalate", QA_MANAGEMENT_AND_ADMIN),
        ),
    ),
    ("capa", "verification"): Ladder(
        due=_d(14), steps=(Step(0.5, "remind"), Step(1.0, "escalate", QA_MANAGEMENT))
    ),
    ("capa", "closure"): Ladder(due=_d(7), steps=(Step(_d(3), "remind"), Step(1.0, "escalate", ADMIN))),
    # --- Change control (ISO 13485 7.3.9) ---------------------------------------------------------
    ("change", "impact"): Ladder(
        due=_d(5), steps=(Step(_d(3), "remind"), Step(1.0, "escalate", QA_MANAGEMENT))
    ),
    ("change", "approval"): Ladder(
        due=_d(5),
        steps=(Step(_d(2), "remind"), Step(1.0, "escalate", QA_MANAGEMENT), Step(2.0, "escalate", ADMIN)),
    ),
    ("change", "verification"): Ladder(
        due=_d(5), steps=(Step(_d(3), "remind"), Step(1.0, "escalate", QA_MANAGEMENT))
    ),
    # Each implementation task, from its due time; three steps, then the digest keeps listing it.
    ("change", "task_overdue"): Ladder(
        anchor="due",
        repeat_last=False,
        steps=(Step(_d(0), "remind"), Step(_d(2), "escalate", QA_MANAGEMENT), Step(_d(7), "escalate", ADMIN)),
    ),
    # --- QC lot release (ISO 13485 8.2.6, 8.3) ----------------------------------------------------
    # The release SLA: remind the releasers half way, escalate to QA management at the deadline.
    ("release", "release"): Ladder(
        due=_d(2), steps=(Step(0.5, "remind"), Step(1.0, "escalate", QA_MANAGEMENT))
    ),
    # The concession approval waits on QA management itself: reminders only.
    ("release", "concession"): Ladder(due=_d(1), steps=(Step(1.0, "remind"), Step(_d(3), "remind"))),
}

PROCESSES: Final = ("recall", "capa", "change", "release")

# A stage handed an empty ladder (a plan from before its stage had one) reminds daily until done.
FALLBACK_RUNG: Final = Rung(wait=timedelta(days=1), action="remind")

# ------------------------------------------------------------------------------------ reminders
# Reminders reach a person as ONE digest per period listing every open task of theirs (assigned to them,
# to someone they deputise for, or open to or escalated to their roles), overdue first; never one mail
# per task. The ladders above mark tasks reminded/escalated; the digest is how people hear of it.
DIGEST_EVERY: Final = timedelta(days=1)
DIGEST_AT: Final = time(8, 0)  # site time: the period starts at 08:00 each day
DIGEST_UTC_OFFSET: Final = timedelta(hours=8)  # the site (Asia/Shanghai, no daylight saving time)


@dataclass(frozen=True)
class DigestSchedule:
    """When digests go out: every ``every``, at boundaries ``offset`` after each UTC-epoch multiple."""

    every: timedelta
    offset: timedelta = field(default=timedelta(0))


def digest_schedule() -> DigestSchedule:
    """The digest period and its boundary (08:00 site time daily by default), as UTC arithmetic."""
    local = timedelta(hours=DIGEST_AT.hour, minutes=DIGEST_AT.minute)
    return DigestSchedule(every=DIGEST_EVERY, offset=(local - DIGEST_UTC_OFFSET) % DIGEST_EVERY)


# ------------------------------------------------------------------------------------ reading it


def ladder(process: str, stage: str) -> Ladder:
    """The ladder of one stage; KeyError names what is missing."""
    try:
        return LADDERS[(process, stage)]
    except KeyError:
        known = ", ".join(sorted(s for p, s in LADDERS if p == process)) or "none"
        raise KeyError(f"no escalation ladder for {process}/{stage} (stages of {process}: {known})") from None


def due(process: str, stage: str) -> timedelta:
    """The stage's deadline, from when its task opens."""
    d = ladder(process, stage).due
    if d is None:
        raise KeyError(f"{process}/{stage} has no deadline of its own")
    return d


def rungs(process: str, stage: str) -> list[Rung]:
    """The ladder as the workflows walk it: each rung's ``wait`` after the previous one (the last repeats)."""
    lad = ladder(process, stage)
    out: list[Rung] = []
    previous = timedelta(0)
    for step, at in zip(lad.steps, lad.offsets(), strict=True):
        out.append(Rung(wait=at - previous, action=step.action, to_roles=list(step.to)))
        previous = at
    return out


def after_due(process: str, stage: str) -> list[tuple[timedelta, Action, list[str]]]:
    """A due-anchored ladder as (offset after the item's due time, action, escalated-to roles)."""
    lad = ladder(process, stage)
    if lad.anchor != "due":
        raise KeyError(f"{process}/{stage} is counted from the task opening, not from a due time")
    return [(at, s.action, list(s.to)) for s, at in zip(lad.steps, lad.offsets(), strict=True)]


def _check(key: tuple[str, str], lad: Ladder) -> None:
    name = "/".join(key)
    if key[0] not in PROCESSES:
        raise ValueError(f"{name}: unknown process")
    if not lad.steps:
        raise ValueError(f"{name}: a ladder needs steps")
    if lad.anchor == "due" and lad.due is not None:
        raise ValueError(f"{name}: a ladder counted from each item's due time has no deadline of its own")
    for step in lad.steps:
        if isinstance(step.at, float) and (lad.due is None or step.at <= 0):
            raise ValueError(f"{name}: a fraction needs a deadline and must be positive")
        if step.action not in ("remind", "escalate"):
            raise ValueError(f"{name}: unknown action {step.action}")
        if (step.action == "escalate") != bool(step.to):
            raise ValueError(f"{name}: an escalation names whom it goes to; a reminder does not")
    offsets = lad.offsets()
    if any(b <= a for a, b in pairwise(offsets)) or offsets[0] < timedelta(0):
        raise ValueError(f"{name}: steps must come one after another")
    last_interval = offsets[-1] - (offsets[-2] if len(offsets) > 1 else timedelta(0))
    if lad.repeat_last and last_interval <= timedelta(0):
        raise ValueError(f"{name}: the last step repeats, so it needs a positive interval")


for _key, _ladder in LADDERS.items():
    _check(_key, _ladder)
