"""QC lot release in the store (ISO 13485 8.2.6 release, 8.3 nonconforming product).

A lot enters quarantine when its inspection starts: ``qc_status`` is quarantined and a QC hold moves
its stock to the blocked bucket (ledger entries with reference ``qc-<lot id>``). Results are recorded
against the plan version the inspection started with, append-only, with who and when. The evaluation
is computed from them; release is refused while :func:`release_blockers` names a reason; the signed
decision splits the quantity through the ledger (:func:`apply_disposition`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from types import ModuleType

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain import inventory
from domain.enums import MovementKind, QcStatus, StockStatus
from domain.errors import Conflict, InvalidInput, LotBlocked, NotFound
from domain.models import Location, Lot, LotHold, Product, StockBalance
from domain.quality.models import (
    Disposition,
    Inspection,
    InspectionCharacteristic,
    InspectionPlan,
    InspectionResult,
    Nonconformance,
)
from domain.quality.payloads import (
    RECORD_TYPE,
    CharacteristicKind,
    CharacteristicSpec,
    CharacteristicVerdict,
    DispositionOutcome,
    DispositionSplit,
    Evaluation,
    EvaluationOutcome,
    InspectionStatus,
    NonconformanceStatus,
    ReleaseReview,
    ResultInput,
)
from domain.scope import lot_label
from domain.trace import backward_trace

QC_HOLD_REASON = "qc"
RECALL_HOLD_REASON = "recall"
# Results may be added while the release decision is still open; after it is signed they are frozen.
RECORDING = (InspectionStatus.awaiting_results, InspectionStatus.awaiting_release)
DECIDED = (InspectionStatus.released, InspectionStatus.rejected)
MAX_NAME = 64
MAX_UNIT = 16


def qc_reference(lot_id: int) -> str:
    """The hold and ledger reference of a lot's QC quarantine."""
    return f"qc-{lot_id}"


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- look-ups


async def get_product(session: AsyncSession, *, code: str) -> Product:
    """The product with this code, or NotFound naming ``product_code``."""
    product = await session.scalar(select(Product).where(Product.code == code))
    if product is None:
        raise NotFound(f"no product with code {code!r}", field="product_code")
    return product


async def get_lot(session: AsyncSession, *, product_code: str, lot_number: str) -> Lot:
    """The lot of a product, or NotFound naming the field that is wrong."""
    product = await get_product(session, code=product_code)
    lot = await session.scalar(select(Lot).where(Lot.product_id == product.id, Lot.lot_number == lot_number))
    if lot is None:
        raise NotFound(f"no lot {lot_number!r} of product {product_code}", field="lot_number")
    return lot


async def get_inspection(session: AsyncSession, inspection_id: int) -> Inspection:
    """The inspection, or NotFound."""
    inspection = await session.get(Inspection, inspection_id)
    if inspection is None:
        raise NotFound(f"inspection {inspection_id} not found", field="inspection_id")
    return inspection


async def _label(session: AsyncSession, lot: Lot) -> str:
    code = await session.scalar(select(Product.code).where(Product.id == lot.product_id))
    return lot_label(code or "?", lot.lot_number)


async def on_hand(session: AsyncSession, *, lot_id: int) -> int:
    """The lot's quantity on hand, every location and bucket."""
    return await inventory.balance(session, lot_id=lot_id)


# --------------------------------------------------------------------------- plans


def _check_characteristic(i: int, c: CharacteristicSpec) -> None:
    where = f"characteristics.{i}"
    if not c.name.strip() or len(c.name) > MAX_NAME:
        raise InvalidInput(
            f"a characteristic needs a name of 1 to {MAX_NAME} characters", field=f"{where}.name"
        )
    if not isinstance(c.sample_size, int) or isinstance(c.sample_size, bool) or c.sample_size < 1:
        raise InvalidInput(
            f"sample_size must be a whole number of at least 1, got {c.sample_size!r}",
            field=f"{where}.sample_size",
        )
    if c.unit is not None and len(c.unit) > MAX_UNIT:
        raise InvalidInput(f"a unit has at most {MAX_UNIT} characters", field=f"{where}.unit")
    if c.kind == CharacteristicKind.pass_fail:
        for name in ("lower", "upper"):
            if getattr(c, name) is not None:
                raise InvalidInput(
                    f"{c.name} is judged pass/fail and takes no {name} limit", field=f"{where}.{name}"
                )
        return
    for name in ("lower", "upper"):
        value = getattr(c, name)
        if value is not None and not math.isfinite(value):
            raise InvalidInput(f"the {name} limit must be a finite number", field=f"{where}.{name}")
    if c.lower is None and c.upper is None:
        raise InvalidInput(
            f"{c.name} is measured: give a lower limit, an upper limit or both", field=f"{where}.lower"
        )
    if c.lower is not None and c.upper is not None and c.lower > c.upper:
        raise InvalidInput(
            f"the lower limit {c.lower:g} is above the upper limit {c.upper:g}", field=f"{where}.lower"
        )
    if not (c.unit or "").strip():
        raise InvalidInput(f"{c.name} is measured: give its unit", field=f"{where}.unit")


async def put_plan(
    session: AsyncSession,
    *,
    product_id: int,
    characteristics: Sequence[CharacteristicSpec],
    created_by: str,
    note: str | None = None,
) -> InspectionPlan:
    """Store a new version of the product's inspection plan (earlier versions stay, for the inspections
    that used them). InvalidInput names ``characteristics.<i>.<field>`` for the first mistake."""
    if not characteristics:
        raise InvalidInput("a plan needs at least one characteristic", field="characteristics")
    seen: set[str] = set()
    for i, c in enumerate(characteristics):
        _check_characteristic(i, c)
        key = c.name.strip().casefold()
        if key in seen:
            raise InvalidInput(f"characteristic {c.name!r} appears twice", field=f"characteristics.{i}.name")
        seen.add(key)
    if await session.get(Product, product_id) is None:
        raise NotFound(f"product {product_id} not found", field="product_code")
    latest = await session.scalar(
        select(func.max(InspectionPlan.version)).where(InspectionPlan.product_id == product_id)
    )
    plan = InspectionPlan(product_id=product_id, version=(latest or 0) + 1, note=note, created_by=created_by)
    session.add(plan)
    await session.flush()
    for i, c in enumerate(characteristics):
        session.add(
            InspectionCharacteristic(
                plan_id=plan.id,
                position=i,
                name=c.name.strip(),
                kind=c.kind,
                lower=c.lower if c.kind == CharacteristicKind.numeric else None,
                upper=c.upper if c.kind == CharacteristicKind.numeric else None,
                unit=(c.unit or "").strip() or None,
                sample_size=c.sample_size,
            )
        )
    await session.flush()
    await session.refresh(plan, ["characteristics"])
    return plan


async def current_plan(session: AsyncSession, *, product_id: int) -> InspectionPlan | None:
    """The newest version of the product's inspection plan, if it has one."""
    plan = await session.scalar(
        select(InspectionPlan)
        .where(InspectionPlan.product_id == product_id)
        .order_by(InspectionPlan.version.desc())
        .limit(1)
    )
    if plan is not None:
        await session.refresh(plan, ["characteristics"])
    return plan


async def _characteristics(session: AsyncSession, plan_id: int) -> list[InspectionCharacteristic]:
    rows = await session.scalars(
        select(InspectionCharacteristic)
        .where(InspectionCharacteristic.plan_id == plan_id)
        .order_by(InspectionCharacteristic.position)
    )
    return list(rows)


# --------------------------------------------------------------------------- inspections


async def active_inspection(session: AsyncSession, *, lot_id: int) -> Inspection | None:
    """The lot's inspection that is not decided yet, if any."""
    return await session.scalar(
        select(Inspection)
        .where(Inspection.lot_id == lot_id, Inspection.status.not_in(DECIDED))
        .order_by(Inspection.id.desc())
        .limit(1)
    )


async def start_inspection(session: AsyncSession, *, lot_id: int, initiated_by: str) -> Inspection:
    """Start inspecting a lot against its product's current plan; the lot enters quarantine.

    ``qc_status`` becomes quarantined and a QC hold blocks the lot's stock wherever it is (ledger entries
    with reference ``qc-<lot id>``). Idempotent: a lot with an undecided inspection returns that one.
    Conflict when the lot was already released or rejected, or its product has no plan.
    """
    lot = await session.get(Lot, lot_id)
    if lot is None:
        raise NotFound(f"lot {lot_id} not found", field="lot_number")
    existing = await active_inspection(session, lot_id=lot_id)
    if existing is not None:
        return existing
    label = await _label(session, lot)
    if lot.qc_status != QcStatus.quarantined:
        raise Conflict(
            f"lot {label} was already {lot.qc_status.value} by QC; it is not inspected again",
            field="lot_number",
        )
    plan = await current_plan(session, product_id=lot.product_id)
    if plan is None:
        raise Conflict(
            f"product {label.split('/')[0]} has no inspection plan; put one first", field="product_code"
        )
    inspection = Inspection(
        lot_id=lot.id,
        plan_id=plan.id,
        plan_version=plan.version,
        status=InspectionStatus.awaiting_results,
        initiated_by=initiated_by,
        started_at=_now(),
        workflow_id=f"qc-release-{lot.id}",
        evaluation={},
    )
    session.add(inspection)
    lot.qc_status = QcStatus.quarantined
    await inventory.place_hold(
        session,
        lot=lot,
        reason=QC_HOLD_REASON,
        reference=qc_reference(lot.id),
        note=f"quarantine until QC release (plan v{plan.version})",
        user=initiated_by,
    )
    await session.flush()
    return inspection


def _check_result(c: InspectionCharacteristic, r: ResultInput, where: str) -> None:
    if c.kind == CharacteristicKind.numeric:
        if r.passed is not None:
            raise InvalidInput(f"{c.name} is measured: give its value, not passed", field=f"{where}passed")
        if r.value is None:
            raise InvalidInput(f"{c.name} is measured: give its value", field=f"{where}value")
        if isinstance(r.value, bool) or not isinstance(r.value, int | float) or not math.isfinite(r.value):
            raise InvalidInput(f"the value must be a finite number, got {r.value!r}", field=f"{where}value")
        if r.unit is not None and c.unit and r.unit.strip() != c.unit:
            raise InvalidInput(f"{c.name} is recorded in {c.unit}, not {r.unit!r}", field=f"{where}unit")
    else:
        if r.value is not None:
            raise InvalidInput(
                f"{c.name} is judged pass/fail: give passed (true or false), not a value",
                field=f"{where}value",
            )
        if not isinstance(r.passed, bool):
            raise InvalidInput(
                f"{c.name} is judged pass/fail: give passed (true or false)", field=f"{where}passed"
            )
        if r.unit is not None:
            raise InvalidInput(f"{c.name} is judged pass/fail and has no unit", field=f"{where}unit")


async def record_results(
    session: AsyncSession,
    *,
    inspection_id: int,
    results: Sequence[ResultInput],
    recorded_by: str,
    at: datetime | None = None,
) -> list[InspectionResult]:
    """Record observations, all or nothing: InvalidInput names ``results.<i>.<field>`` for the first
    wrong one; Conflict once the release decision is signed."""
    inspection = await get_inspection(session, inspection_id)
    if inspection.status not in RECORDING:
        raise Conflict(
            f"inspection {inspection_id} is {inspection.status.value}; its results can no longer change",
            field="inspection_id",
        )
    if not results:
        raise InvalidInput("no results given", field="results")
    by_name = {c.name.casefold(): c for c in await _characteristics(session, inspection.plan_id)}
    rows: list[InspectionResult] = []
    at = at or _now()
    for i, r in enumerate(results):
        where = f"results.{i}."
        c = by_name.get((r.characteristic or "").strip().casefold())
        if c is None:
            names = ", ".join(sorted(x.name for x in by_name.values()))
            raise InvalidInput(
                f"plan v{inspection.plan_version} has no characteristic {r.characteristic!r} "
                f"(it has: {names})",
                field=f"{where}characteristic",
            )
        _check_result(c, r, where)
        rows.append(
            InspectionResult(
                inspection_id=inspection.id,
                characteristic_id=c.id,
                value=float(r.value) if c.kind == CharacteristicKind.numeric else None,
                passed=r.passed if c.kind == CharacteristicKind.pass_fail else None,
                unit=c.unit if c.kind == CharacteristicKind.numeric else None,
                note=r.note,
                recorded_by=recorded_by,
                recorded_at=at,
            )
        )
    session.add_all(rows)
    await session.flush()
    return rows


async def record_result(
    session: AsyncSession,
    *,
    inspection_id: int,
    characteristic: str,
    value: float | None = None,
    passed: bool | None = None,
    unit: str | None = None,
    note: str | None = None,
    recorded_by: str,
    at: datetime | None = None,
) -> InspectionResult:
    """Record one observation; InvalidInput names the field (``value``, ``passed``, ``characteristic``)."""
    item = ResultInput(characteristic=characteristic, value=value, passed=passed, unit=unit, note=note)
    try:
        (row,) = await record_results(
            session, inspection_id=inspection_id, results=[item], recorded_by=recorded_by, at=at
        )
    except InvalidInput as exc:
        raise InvalidInput(exc.reason, field=(exc.field or "").removeprefix("results.0.")) from exc
    return row


async def results_of(session: AsyncSession, *, inspection_id: int) -> list[tuple[InspectionResult, str]]:
    """Every result with its characteristic's name, in the order recorded."""
    rows = await session.execute(
        select(InspectionResult, InspectionCharacteristic.name)
        .join(InspectionCharacteristic, InspectionCharacteristic.id == InspectionResult.characteristic_id)
        .where(InspectionResult.inspection_id == inspection_id)
        .order_by(InspectionResult.id)
    )
    return [(r, name) for r, name in rows.all()]


# --------------------------------------------------------------------------- evaluation


def _spec(c: InspectionCharacteristic) -> str:
    if c.kind == CharacteristicKind.pass_fail:
        return "pass/fail"
    unit = f" {c.unit}" if c.unit else ""
    if c.lower is not None and c.upper is not None:
        return f"{c.lower:g}–{c.upper:g}{unit}"
    if c.lower is not None:
        return f"≥ {c.lower:g}{unit}"
    return f"≤ {c.upper:g}{unit}"


def _conforms(c: InspectionCharacteristic, r: InspectionResult) -> bool:
    if c.kind == CharacteristicKind.pass_fail:
        return bool(r.passed)
    v = r.value
    if v is None:  # pragma: no cover - the CHECK constraint forbids it
        return False
    return (c.lower is None or v >= c.lower) and (c.upper is None or v <= c.upper)


async def evaluate(session: AsyncSession, *, inspection_id: int) -> Evaluation:
    """Evaluate the results against the plan version: incomplete until every characteristic has its
    sample size, then passed, or failed naming each characteristic with an out-of-spec sample."""
    inspection = await get_inspection(session, inspection_id)
    chars = await _characteristics(session, inspection.plan_id)
    results = list(
        await session.scalars(
            select(InspectionResult)
            .where(InspectionResult.inspection_id == inspection_id)
            .order_by(InspectionResult.id)
        )
    )
    by_char: dict[int, list[InspectionResult]] = {c.id: [] for c in chars}
    for r in results:
        by_char.setdefault(r.characteristic_id, []).append(r)
    verdicts: list[CharacteristicVerdict] = []
    missing: dict[str, int] = {}
    failing: list[str] = []
    for c in chars:
        rs = by_char[c.id]
        bad = [r for r in rs if not _conforms(c, r)]
        if bad:
            failing.append(c.name)
        if len(rs) < c.sample_size:
            missing[c.name] = c.sample_size - len(rs)
        verdict = (
            EvaluationOutcome.failed
            if bad
            else EvaluationOutcome.incomplete
            if len(rs) < c.sample_size
            else EvaluationOutcome.passed
        )
        verdicts.append(
            CharacteristicVerdict(
                name=c.name,
                kind=c.kind,
                sample_size=c.sample_size,
                recorded=len(rs),
                out_of_spec=len(bad),
                verdict=verdict,
                spec=_spec(c),
                failing_values=[("fail" if r.passed is False else f"{r.value:g}") for r in bad],
            )
        )
    if missing:
        outcome = EvaluationOutcome.incomplete
    else:
        outcome = EvaluationOutcome.failed if failing else EvaluationOutcome.passed
    return Evaluation(
        inspection_id=inspection_id,
        outcome=outcome,
        characteristics=verdicts,
        failing=failing,
        missing=missing,
        recorded_by=sorted({r.recorded_by for r in results}),
    )


async def store_evaluation(session: AsyncSession, *, inspection_id: int) -> Evaluation:
    """Evaluate and keep the verdict on the inspection; once complete it awaits the release decision."""
    ev = await evaluate(session, inspection_id=inspection_id)
    inspection = await get_inspection(session, inspection_id)
    inspection.evaluation = ev.model_dump(mode="json")
    inspection.evaluated_at = _now()
    if ev.outcome != EvaluationOutcome.incomplete and inspection.status == InspectionStatus.awaiting_results:
        inspection.status = InspectionStatus.awaiting_release
    await session.flush()
    return ev


# --------------------------------------------------------------------------- release


def _change_control() -> ModuleType | None:
    """Change control's service, when that area is installed (it gates release; DESIGN.md)."""
    try:
        if importlib.util.find_spec("domain.changes.service") is None:
            return None
    except ModuleNotFoundError:  # the package domain.changes itself is absent
        return None
    return importlib.import_module("domain.changes.service")


async def release_blockers(session: AsyncSession, *, lot_id: int) -> list[str]:
    """Why the lot may not be released now; empty when nothing stands in the way.

    Refused while the lot or any of its component lots at any depth (backward trace) is under a recall
    hold, while the lot has another active hold besides its own QC quarantine, once it was rejected,
    and while an open change blocks release of its product.
    """
    lot = await session.get(Lot, lot_id)
    if lot is None:
        raise NotFound(f"lot {lot_id} not found", field="lot_number")
    label = await _label(session, lot)
    reasons: list[str] = []
    if lot.qc_status == QcStatus.rejected:
        reasons.append(f"lot {label} was rejected by QC; nonconforming product is never released")
    trace = await backward_trace(session, [lot_id])
    labels = {t.lot_id: lot_label(t.product_code, t.lot_number) for t in trace.lots}
    holds = await session.scalars(
        select(LotHold)
        .where(LotHold.lot_id.in_(list(labels)), LotHold.released_at.is_(None))
        .order_by(LotHold.lot_id, LotHold.id)
    )
    for h in holds:
        if h.reason == RECALL_HOLD_REASON:
            whose = f"lot {label}" if h.lot_id == lot_id else f"component lot {labels[h.lot_id]}"
            reasons.append(f"{whose} is under recall hold {h.reference}")
        elif h.lot_id == lot_id and h.reason != QC_HOLD_REASON:
            reasons.append(f"lot {label} is on hold ({h.reason} {h.reference})")
    if trace.truncated or trace.cycle:
        reasons.append(
            f"the components of lot {label} could not be traced completely; fix the genealogy first"
        )
    changes = _change_control()
    blocking = getattr(changes, "open_changes_blocking_release", None) if changes else None
    if blocking is not None:
        for ref in await blocking(session, product_id=lot.product_id):
            reasons.append(f"change {ref} is open and blocks release of {label.split('/')[0]}")
    return reasons


def default_split(outcome: DispositionOutcome, quantity: int) -> DispositionSplit:
    """Without a split: a release frees the whole quantity, a rejection keeps it all blocked."""
    if outcome == DispositionOutcome.rejected:
        return DispositionSplit(blocked=quantity)
    return DispositionSplit(unrestricted=quantity)


def split_problems(outcome: DispositionOutcome, split: DispositionSplit, quantity: int) -> list[str]:
    """What is wrong with a split for this decision and quantity on hand (empty when it stands)."""
    problems = []
    if split.total != quantity:
        problems.append(
            f"the disposition accounts for {split.total} units but the lot has {quantity} on hand"
        )
    if outcome == DispositionOutcome.rejected and (split.unrestricted or split.sample):
        problems.append("a rejected lot is never released: its quantity is scrapped or stays blocked")
    return problems


async def check_sign_off(
    session: AsyncSession,
    *,
    record_type: str,
    record_id: int,
    decision: str,
    split: DispositionSplit | None = None,
) -> None:
    """Refuse (InvalidInput) a sign-off's release input that does not fit the task: ``released`` on a task
    that is not a lot release (field ``decision``), or a split that is not for a lot release or does not
    add up to the lot's stock (field ``disposition``). The signer's mistake, answered before the
    decision reaches the workflow."""
    if decision == "released" and record_type != RECORD_TYPE:
        raise InvalidInput(
            "'released' is the decision on a lot release; sign this task approved or rejected",
            field="decision",
        )
    if split is None:
        return
    if record_type != RECORD_TYPE:
        raise InvalidInput("this task takes no disposition", field="disposition")
    inspection = await get_inspection(session, record_id)
    have = await on_hand(session, lot_id=inspection.lot_id)
    outcome = DispositionOutcome.rejected if decision == "rejected" else DispositionOutcome.released
    problems = split_problems(outcome, split, have)
    if problems:
        raise InvalidInput("; ".join(problems), field="disposition")


async def review_release(
    session: AsyncSession,
    *,
    inspection_id: int,
    outcome: DispositionOutcome | None = None,
    split: DispositionSplit | None = None,
    signer: str = "",
) -> ReleaseReview:
    """Everything a decision depends on, read now: evaluation, blockers, quantity on hand, and (for a
    proposed decision) why it cannot stand."""
    inspection = await get_inspection(session, inspection_id)
    ev = await evaluate(session, inspection_id=inspection_id)
    blockers = await release_blockers(session, lot_id=inspection.lot_id)
    have = await on_hand(session, lot_id=inspection.lot_id)
    problems: list[str] = []
    if outcome is not None:
        if inspection.status in DECIDED:
            problems.append(f"the inspection is already {inspection.status.value}")
        if signer and signer in ev.recorded_by:
            problems.append(
                f"{signer} recorded results of this inspection and may not decide on it "
                "(separation of duties)"
            )
        if outcome != DispositionOutcome.rejected:
            if ev.outcome == EvaluationOutcome.incomplete:
                problems.append(ev.summary())
            if blockers:
                problems.append("release refused: " + "; ".join(blockers))
        if split is not None:
            problems.extend(split_problems(outcome, split, have))
    return ReleaseReview(evaluation=ev, blockers=blockers, on_hand=have, problems=problems)


async def open_nonconformance(
    session: AsyncSession,
    *,
    lot_id: int,
    description: str,
    opened_by: str,
    inspection_id: int | None = None,
    capa_requested: bool = False,
) -> Nonconformance:
    """Open a nonconformance on a lot (ISO 13485 8.3); a requested CAPA is recorded for that process."""
    if not description.strip():
        raise InvalidInput("a nonconformance needs a description", field="description")
    nc = Nonconformance(
        lot_id=lot_id,
        inspection_id=inspection_id,
        description=description,
        opened_at=_now(),
        opened_by=opened_by,
        status=NonconformanceStatus.open,
        capa_requested=capa_requested,
    )
    session.add(nc)
    await session.flush()
    return nc


async def _locations_with_stock(session: AsyncSession, lot_id: int) -> list[tuple[Location, dict]]:
    rows = await session.execute(
        select(Location, StockBalance.status, StockBalance.quantity)
        .join(StockBalance, StockBalance.location_id == Location.id)
        .where(StockBalance.lot_id == lot_id, StockBalance.quantity > 0)
        .order_by(Location.code)
    )
    by_loc: dict[int, tuple[Location, dict]] = {}
    for loc, status, qty in rows.all():
        by_loc.setdefault(loc.id, (loc, {}))[1][status] = int(qty)
    return list(by_loc.values())


async def _split_through_ledger(
    session: AsyncSession, *, lot: Lot, split: DispositionSplit, reason: str, user: str
) -> None:
    """Post the split: everything is first segregated into the blocked bucket, then, location by location
    (by code), scrap is destroyed, samples are unblocked and issued, the unrestricted part unblocked;
    what remains stays blocked."""
    ref = qc_reference(lot.id)

    async def move(kind: MovementKind, loc: Location, qty: int, why: str) -> None:
        if qty > 0:
            await inventory.post(
                session, kind=kind, lot=lot, location=loc, quantity=qty, reference=ref, reason=why, user=user
            )

    places = await _locations_with_stock(session, lot.id)
    for loc, buckets in places:
        await move(MovementKind.block, loc, buckets.get(StockStatus.unrestricted, 0), f"{reason}: segregate")
    need = {"scrap": split.scrap, "sample": split.sample, "unrestricted": split.unrestricted}
    for loc, buckets in places:
        free = sum(buckets.values())
        for part in ("scrap", "sample", "unrestricted"):
            qty = min(free, need[part])
            if qty <= 0:
                continue
            if part == "scrap":
                await move(MovementKind.destruction, loc, qty, f"{reason}: scrap")
            elif part == "sample":
                await move(MovementKind.unblock, loc, qty, f"{reason}: sample")
                await move(MovementKind.issue, loc, qty, f"{reason}: sample")
            else:
                await move(MovementKind.unblock, loc, qty, f"{reason}: release")
            need[part] -= qty
            free -= qty


async def apply_disposition(
    session: AsyncSession,
    *,
    inspection_id: int,
    outcome: DispositionOutcome,
    split: DispositionSplit | None,
    decided_by: str,
    signature_id: int,
    approval_signature_id: int | None = None,
    justification: str | None = None,
    capa: bool = False,
) -> Disposition:
    """Carry out a signed decision: split the on-hand quantity through the ledger, set the lot's QC status,
    record the disposition and, for a rejection or a concession, the nonconformance.

    Release is refused with LotBlocked while :func:`release_blockers` names a reason or the lot holds
    anything but its QC quarantine; with Conflict unless the evaluation passed (or, for a concession,
    failed and a second signature approved it). Idempotent: a decided inspection returns its disposition.
    """
    inspection = await get_inspection(session, inspection_id)
    done = await session.scalar(select(Disposition).where(Disposition.inspection_id == inspection_id))
    if done is not None:
        return done
    if inspection.status in DECIDED:
        raise Conflict(
            f"inspection {inspection_id} is already {inspection.status.value}", field="inspection_id"
        )
    lot = await session.get(Lot, inspection.lot_id)
    assert lot is not None  # FK
    label = await _label(session, lot)
    ev = await evaluate(session, inspection_id=inspection_id)
    have = await on_hand(session, lot_id=lot.id)
    split = split or default_split(outcome, have)
    problems = split_problems(outcome, split, have)
    if problems:
        raise InvalidInput("; ".join(problems), field="disposition")
    releasing = outcome != DispositionOutcome.rejected
    if releasing:
        if ev.outcome == EvaluationOutcome.incomplete:
            raise Conflict(f"lot {label} cannot be released: {ev.summary()}", field="inspection_id")
        if outcome == DispositionOutcome.released and ev.outcome != EvaluationOutcome.passed:
            raise Conflict(
                f"lot {label} failed its inspection ({', '.join(ev.failing)}); only a concession releases it",
                field="inspection_id",
            )
        if outcome == DispositionOutcome.concession and (
            approval_signature_id is None or not (justification or "").strip()
        ):
            raise Conflict(
                "a concession needs a justification and an approval signature", field="justification"
            )
        blockers = await release_blockers(session, lot_id=lot.id)
        if blockers:
            raise LotBlocked(f"lot {label} may not be released: " + "; ".join(blockers), field="lot_number")
        now = _now()
        for hold in await inventory.active_holds(session, lot.id):
            if hold.reason == QC_HOLD_REASON:
                hold.released_at, hold.released_by = now, decided_by
        await session.flush()
        # The one refusal every caller shares (inventory): anything still holding the lot stops release.
        await inventory.ensure_not_held(session, lot, action="release")
    await _split_through_ledger(
        session,
        lot=lot,
        split=split,
        reason=f"QC {outcome.value} (inspection {inspection.id})",
        user=decided_by,
    )
    lot.qc_status = QcStatus.rejected if outcome == DispositionOutcome.rejected else QcStatus.released
    inspection.status = (
        InspectionStatus.rejected if outcome == DispositionOutcome.rejected else InspectionStatus.released
    )
    inspection.decided_at = _now()
    disposition = Disposition(
        inspection_id=inspection.id,
        lot_id=lot.id,
        outcome=outcome,
        unrestricted=split.unrestricted,
        blocked=split.blocked,
        scrap=split.scrap,
        sample=split.sample,
        decided_by=decided_by,
        decided_at=inspection.decided_at,
        signature_id=signature_id,
        approval_signature_id=approval_signature_id,
        justification=justification or None,
    )
    session.add(disposition)
    if outcome != DispositionOutcome.released:
        what = ev.summary() if ev.outcome == EvaluationOutcome.failed else "rejected at release"
        nc = await open_nonconformance(
            session,
            lot_id=lot.id,
            inspection_id=inspection.id,
            description=f"lot {label}: {what}" + (f"; {justification}" if justification else ""),
            opened_by=decided_by,
            capa_requested=capa,
        )
        nc.disposition = outcome
        if outcome == DispositionOutcome.concession:
            # Dispositioned by the approved concession: identified, justified, closed (ISO 13485 8.3).
            nc.status, nc.closed_at = NonconformanceStatus.closed, inspection.decided_at
    await session.flush()
    return disposition


async def nonconformances_of(session: AsyncSession, *, inspection_id: int) -> list[Nonconformance]:
    """The nonconformances an inspection opened."""
    rows = await session.scalars(
        select(Nonconformance)
        .where(Nonconformance.inspection_id == inspection_id)
        .order_by(Nonconformance.id)
    )
    return list(rows)


async def disposition_of(session: AsyncSession, *, inspection_id: int) -> Disposition | None:
    """The inspection's disposition, once decided."""
    return await session.scalar(select(Disposition).where(Disposition.inspection_id == inspection_id))


async def set_status(session: AsyncSession, *, inspection_id: int, status: InspectionStatus) -> Inspection:
    """Move an undecided inspection to a new status (a decided one keeps its decision)."""
    inspection = await get_inspection(session, inspection_id)
    if inspection.status not in DECIDED:
        inspection.status = status
        await session.flush()
    return inspection


async def record_hash(session: AsyncSession, inspection_id: int) -> str:
    """SHA-256 of the lot release record being signed: the lot, the plan version with its limits, and
    every result with who recorded it and when (21 CFR 11.70: the signature binds this version)."""
    inspection = await get_inspection(session, inspection_id)
    lot = await session.get(Lot, inspection.lot_id)
    assert lot is not None
    chars = await _characteristics(session, inspection.plan_id)
    results = await results_of(session, inspection_id=inspection_id)
    doc = {
        "inspection": inspection.id,
        "lot": await _label(session, lot),
        "plan_version": inspection.plan_version,
        "characteristics": [[c.name, c.kind.value, c.lower, c.upper, c.unit, c.sample_size] for c in chars],
        "results": [
            [r.id, name, r.value, r.passed, r.recorded_by, r.recorded_at.isoformat()] for r, name in results
        ],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
