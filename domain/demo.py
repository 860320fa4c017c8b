"""A realistic demo data set for `make run`: a device maker in Suzhou and a year of its business.

Twelve products (implantable bone screws and a pacemaker lead, catheters, infusion sets, SpO2
sensors and a patient monitor, and the components they are made from), about a hundred lots with
genealogy three levels deep, stock in four locations, 200 consignees across China and a year of
shipments. One polyurethane resin lot (:data:`SUSPECT`) went, through catheter tubing and directly
into pacemaker leads, into more than forty finished lots: the lot to try a recall on.

Seeding is deterministic (a fixed random seed; dates count back from the day it runs), happens in
one transaction, and only into an empty store: when products already exist nothing is added and the
summary describes what is there. Rows go in with bulk inserts; on-hand stock is posted through the
stock ledger (:func:`domain.inventory.post` receipts) so balances and ledger agree.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain import inventory
from domain.db import transaction
from domain.enums import ConsigneeKind, Language, LocationKind, MovementKind, QcStatus, RiskClass, Role
from domain.gs1 import gtin_check_digit
from domain.models import (
    Consignee,
    GenealogyEdge,
    Location,
    Lot,
    Product,
    Serial,
    Shipment,
    ShipmentLine,
    StockEntry,
    User,
)
from domain.users import create_user, get_user

SEED = 20240611
DEMO_PASSWORD = "lotline-demo"
# GS1 prefixes 690-699 belong to GS1 China; this company prefix is made up for the demo.
COMPANY_PREFIX = "697530"
# The shared component lot to trace: a resin lot that reaches 40+ finished lots.
SUSPECT = ("RES-PU", "RPU0412")
OPENING_REFERENCE = "DEMO-OPENING"

# username = role name; printed names for signatures.
DEMO_USERS: dict[Role, str] = {
    Role.qa: "李静 (QA)",
    Role.qa_manager: "王建国 (QA Manager)",
    Role.regulatory: "陈晓燕 (Regulatory Affairs)",
    Role.releaser: "张伟 (Authorised Releaser)",
    Role.warehouse: "刘洋 (Warehouse)",
    Role.production: "赵磊 (Production)",
    Role.admin: "Lotline Admin",
}


@dataclass
class DemoSummary:
    """What the demo store holds, a lot to trace, and how to sign in."""

    seeded: bool  # True when this call added the data
    counts: dict[str, int]
    suspect_product_code: str = SUSPECT[0]
    suspect_lot_number: str = SUSPECT[1]
    users: list[str] = field(default_factory=lambda: [r.value for r in DEMO_USERS])
    password: str = DEMO_PASSWORD

    def lines(self) -> list[str]:
        """A short human-readable description, for the start-up banner."""
        counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in self.counts.items())
        return [
            ("Seeded demo data: " if self.seeded else "Store already holds data: ") + counts,
            f"Try a trace: product {self.suspect_product_code}, lot {self.suspect_lot_number} "
            "(a resin lot in 40+ finished lots)",
            f"Demo users (password {self.password!r}): {', '.join(self.users)}",
        ]


# --------------------------------------------------------------------------- products


@dataclass(frozen=True)
class _ProductSpec:
    code: str
    item: int  # item reference inside the company prefix
    risk: RiskClass
    implantable: bool
    shelf_life_days: int | None
    lot_prefix: str
    first_lot: int
    serial_prefix: str | None = None  # serialised products only
    lots: int = 0  # finished products: lots made over the past year
    size: tuple[int, int] = (0, 0)  # finished products: units per lot

    @property
    def name(self) -> str:
        return PRODUCT_NAMES[self.code]


def _gtin(item: int) -> str:
    body = f"0{COMPANY_PREFIX}{item:06d}"
    return body + str(gtin_check_digit(body))


PRODUCT_NAMES = {
    "RES-PU": "医用级聚氨酯树脂 (medical-grade polyurethane resin), kg",
    "TUB-PU7": "聚氨酯导管管材 7 Fr (PU catheter tubing), m",
    "SEN-PPG": "光电血氧传感模块 (optical SpO2 sensor module)",
    "PCB-SPO2": "血氧采集电路板 (SpO2 acquisition PCB assembly)",
    "TI-ROD": "钛合金棒材 Ti-6Al-4V Ø6 mm (titanium alloy bar), kg",
    "ORS-45": "钛合金皮质骨螺钉 Ø4.5 mm (cortical bone screw, titanium)",
    "ORS-35": "钛合金松质骨螺钉 Ø3.5 mm (cancellous bone screw, titanium)",
    "LEAD-58": "双极心脏起搏电极导线 58 cm (bipolar pacemaker lead)",
    "CVC-7F": "一次性使用中心静脉导管 7 Fr (central venous catheter)",
    "IVS-20": "一次性使用精密过滤输液器 (precision infusion set)",
    "SPO2-A": "可重复使用成人血氧探头 (reusable SpO2 sensor, adult)",
    "PM-12": "多参数病人监护仪 PM-12 (multi-parameter patient monitor)",
}
COMPONENTS = [
    _ProductSpec("RES-PU", 101, RiskClass.I, False, 730, "RPU", 411),
    _ProductSpec("TUB-PU7", 102, RiskClass.I, False, 1095, "TB7", 2301),
    _ProductSpec("SEN-PPG", 103, RiskClass.I, False, 1825, "SPG", 801),
    _ProductSpec("PCB-SPO2", 104, RiskClass.I, False, 1825, "PCB", 1501),
    _ProductSpec("TI-ROD", 105, RiskClass.I, False, None, "TI", 3301),
]
FINISHED = [
    _ProductSpec("ORS-45", 201, RiskClass.III, True, 1825, "OC45", 1101, lots=10, size=(1200, 3000)),
    _ProductSpec("ORS-35", 202, RiskClass.III, True, 1825, "OS35", 1201, lots=8, size=(1200, 3000)),
    _ProductSpec("LEAD-58", 203, RiskClass.III, True, 730, "PL58", 301, "PL", lots=12, size=(60, 120)),
    _ProductSpec("CVC-7F", 204, RiskClass.III, False, 1095, "CV7", 5101, lots=16, size=(800, 1500)),
    _ProductSpec("IVS-20", 205, RiskClass.III, False, 1095, "IV20", 7101, lots=22, size=(3000, 6000)),
    _ProductSpec("SPO2-A", 206, RiskClass.II, False, 1825, "SA", 901, lots=8, size=(300, 600)),
    _ProductSpec("PM-12", 207, RiskClass.II, False, None, "PM12", 41, "PM12", lots=6, size=(20, 40)),
]

# Component lots: days before today each was made (oldest first).
COMPONENT_SCHEDULE: dict[str, list[int]] = {
    "RES-PU": [470, 362, 45],
    "TUB-PU7": [395, 352, 316, 275, 236, 198, 158, 118, 80, 38],
    "SEN-PPG": [400, 280, 170, 65],
    "PCB-SPO2": [380, 300, 230, 160, 95, 40],
    "TI-ROD": [410, 250, 110],
}

# What one unit of a product consumes of each component.
BILL_OF_MATERIALS: dict[str, list[tuple[str, float]]] = {
    "TUB-PU7": [("RES-PU", 0.012)],  # kg of resin per metre of tubing
    "PCB-SPO2": [("SEN-PPG", 1)],
    "ORS-45": [("TI-ROD", 0.004)],
    "ORS-35": [("TI-ROD", 0.0025)],
    "LEAD-58": [("RES-PU", 0.015)],
    "CVC-7F": [("TUB-PU7", 0.35)],
    "IVS-20": [("TUB-PU7", 1.6)],
    "SPO2-A": [("SEN-PPG", 1)],
    "PM-12": [("PCB-SPO2", 1)],
}
COMPONENT_LEAD_DAYS = 10  # a component lot is used from this many days after it was made
RELEASE_DAYS = 9  # manufacture to QC release
# At a switch-over to a new component lot, the rest of the previous one is sometimes used up first.
MIXED_SWITCHOVER_CHANCE = 0.25
# Products whose newest lot was made days ago and still waits for QC release.
STILL_IN_QC = {"CVC-7F", "IVS-20", "ORS-45", "LEAD-58"}
# Products from the top of the bill of materials down.
PRODUCTION_ORDER = (
    "PM-12 SPO2-A CVC-7F IVS-20 LEAD-58 ORS-45 ORS-35 PCB-SPO2 TUB-PU7 RES-PU SEN-PPG TI-ROD".split()
)
# The usual size of a component delivery (lots nothing was made from yet are this size).
FRESH_COMPONENT_LOT = {"RES-PU": 400, "TUB-PU7": 6000, "SEN-PPG": 400, "PCB-SPO2": 150, "TI-ROD": 60}


# --------------------------------------------------------------------------- consignees

PROVINCES: list[tuple[str, str, list[str]]] = [
    ("CN-SH", "上海", ["上海"]),
    ("CN-BJ", "北京", ["北京"]),
    ("CN-GD", "广东", ["广州", "深圳", "佛山", "东莞", "珠海"]),
    ("CN-JS", "江苏", ["南京", "苏州", "无锡", "常州"]),
    ("CN-ZJ", "浙江", ["杭州", "宁波", "温州", "绍兴"]),
    ("CN-SD", "山东", ["济南", "青岛", "烟台"]),
    ("CN-SC", "四川", ["成都", "绵阳"]),
    ("CN-HB", "湖北", ["武汉", "宜昌"]),
    ("CN-HN", "湖南", ["长沙", "株洲"]),
    ("CN-HA", "河南", ["郑州", "洛阳"]),
    ("CN-FJ", "福建", ["福州", "厦门", "泉州"]),
    ("CN-SN", "陕西", ["西安"]),
    ("CN-LN", "辽宁", ["沈阳", "大连"]),
    ("CN-CQ", "重庆", ["重庆"]),
    ("CN-TJ", "天津", ["天津"]),
    ("CN-YN", "云南", ["昆明"]),
    ("CN-AH", "安徽", ["合肥", "芜湖"]),
]
MUNICIPALITIES = {"上海", "北京", "重庆", "天津"}
TRADE_NAMES = (
    "康泰 恒信 安达 德润 联众 博远 天健 嘉禾 华欣 远航 众康 益民 瑞丰 信诚 永安 佳和 明德 同心".split()
)
CHINESE_NUMBERS = ["一", "二", "三", "四", "五", "六", "七"]
HOSPITAL_PATTERNS = [
    "{city}市第{n}人民医院",
    "{city}市中心医院",
    "{city}市中医医院",
    "{city}市妇幼保健院",
    "{city}市儿童医院",
    "{city}市骨科医院",
    "{city}市心血管病医院",
    "{city}市中西医结合医院",
    "{city}医科大学附属第{n}医院",
    "{province}省人民医院",
    "{city}市第{n}医院",
    "{city}市肿瘤医院",
    "{city}{trade}医院",
]
# Foreign-run hospitals and clinics, and a Hong Kong distributor, that read English: (name, kind, region)
ENGLISH_CONSIGNEES = [
    ("Pacific Rim Medical Supplies (HK) Ltd", ConsigneeKind.distributor, "CN-HK"),
    ("Shanghai Bund International Hospital", ConsigneeKind.hospital, "CN-SH"),
    ("Beijing Lakeview International Medical Centre", ConsigneeKind.hospital, "CN-BJ"),
    ("Shenzhen Bay Family Hospital", ConsigneeKind.hospital, "CN-GD"),
    ("Suzhou Industrial Park International Hospital", ConsigneeKind.hospital, "CN-JS"),
    ("Qingdao Oceanview Medical Centre", ConsigneeKind.hospital, "CN-SD"),
    ("Xiamen Harbour Orthopaedic Hospital", ConsigneeKind.hospital, "CN-FJ"),
    ("Guangzhou Pearl River International Clinic", ConsigneeKind.clinic, "CN-GD"),
    ("Hangzhou Westlake International Clinic", ConsigneeKind.clinic, "CN-ZJ"),
    ("Chengdu Jinjiang International Clinic", ConsigneeKind.clinic, "CN-SC"),
]
N_DISTRIBUTORS = 14  # Chinese-language ones; plus one English-language
SUB_ACCOUNTS_PER_DISTRIBUTOR = 2
N_PHARMACIES = 10
N_CLINICS = 5  # Chinese-language ones
N_CONSIGNEES = 200
# China mobile number prefixes (E.164 +86 1xx xxxx xxxx).
MOBILE_PREFIXES = [f"13{d}" for d in "012356789"] + [f"15{d}" for d in "01256789"] + [
    "177", "180", "181", "182", "185", "186", "187", "188", "189", "199"
]  # fmt: skip
# How much a consignee of each kind tends to order, relative to a hospital.
ORDER_WEIGHT = {
    ConsigneeKind.distributor: 8.0,
    ConsigneeKind.sub_distributor: 3.0,
    ConsigneeKind.hospital: 1.0,
    ConsigneeKind.pharmacy: 0.4,
    ConsigneeKind.clinic: 0.4,
}
# Implants go to hospitals and the distributors that serve them, never to pharmacies.
IMPLANT_KINDS = {ConsigneeKind.distributor, ConsigneeKind.sub_distributor, ConsigneeKind.hospital}

LOCATIONS = [
    ("SZ-WH", "苏州工厂成品及原料仓 (Suzhou factory warehouse)", LocationKind.warehouse),
    ("SZ-QC", "苏州工厂待检隔离区 (Suzhou quarantine area)", LocationKind.quarantine),
    ("SH-DC", "上海分拨中心 (Shanghai distribution centre)", LocationKind.distribution_center),
    ("GZ-DC", "广州分拨中心 (Guangzhou distribution centre)", LocationKind.distribution_center),
]


# --------------------------------------------------------------------------- the plan


@dataclass
class _Lot:
    product: str
    lot_number: str
    made: date
    quantity: int = 0
    qc: QcStatus = QcStatus.released
    consumed: int = 0  # components: used in produced lots
    shipped: int = 0
    serials: list[str] = field(default_factory=list)


@dataclass
class _Consignee:
    code: str
    name: str
    kind: ConsigneeKind
    region: str
    language: Language
    email: str | None
    phone: str | None
    parent: str | None = None


@dataclass
class _Plan:
    lots: list[_Lot]
    edges: list[tuple[int, int, int]]  # component index, parent index, quantity
    consignees: list[_Consignee]
    # (consignee code, shipped on, lot index, serial or None, quantity)
    lines: list[tuple[str, date, int, str | None, int]]


def _plan(today: date) -> _Plan:
    """Everything to insert, decided up front from the fixed seed."""
    rng = random.Random(SEED)
    specs = {s.code: s for s in COMPONENTS + FINISHED}
    lots: list[_Lot] = []
    by_product: dict[str, list[int]] = defaultdict(list)

    for spec in COMPONENTS:
        for i, days_ago in enumerate(COMPONENT_SCHEDULE[spec.code]):
            by_product[spec.code].append(len(lots))
            lots.append(
                _Lot(spec.code, f"{spec.lot_prefix}{spec.first_lot + i:04d}", today - timedelta(days_ago))
            )
    for spec in FINISHED:
        step = 355 / spec.lots
        for i in range(spec.lots):
            days_ago = round(358 - i * step - rng.uniform(0, step * 0.6))
            if i == spec.lots - 1 and spec.code in STILL_IN_QC:
                days_ago = rng.randint(2, RELEASE_DAYS - 2)
            qty = rng.randint(*spec.size)
            by_product[spec.code].append(len(lots))
            lots.append(
                _Lot(
                    spec.code,
                    f"{spec.lot_prefix}{spec.first_lot + i:04d}",
                    today - timedelta(days_ago),
                    quantity=qty,
                )
            )

    # Lots made in the last RELEASE_DAYS still wait for QC; one infusion-set lot failed it.
    for lot in lots:
        if (today - lot.made).days < RELEASE_DAYS:
            lot.qc = QcStatus.quarantined
    lots[by_product["IVS-20"][9]].qc = QcStatus.rejected

    # Genealogy: a lot uses the newest component lot made at least COMPONENT_LEAD_DAYS before it,
    # sometimes finishing the previous one first. Products are visited from the top of the bill of
    # materials down, so each component lot is sized (what went into products, plus what is still
    # on the shelf) before its own components are drawn.
    edges: dict[tuple[int, int], int] = {}
    for code in PRODUCTION_ORDER:
        if code in COMPONENT_SCHEDULE:
            for i in by_product[code]:
                _size_component(rng, lots[i])
        if code not in BILL_OF_MATERIALS:
            continue
        for parent in by_product[code]:
            p = lots[parent]
            for comp_code, per_unit in BILL_OF_MATERIALS[code]:
                candidates = [
                    i for i in by_product[comp_code] if (p.made - lots[i].made).days >= COMPONENT_LEAD_DAYS
                ]
                need = max(1, math.ceil(p.quantity * per_unit))
                chosen = candidates[-1:]
                if len(candidates) > 1 and rng.random() < MIXED_SWITCHOVER_CHANCE:
                    chosen = candidates[-2:]
                shares = [need] if len(chosen) == 1 else [need // 3, need - need // 3]
                for comp, qty in zip(chosen, shares, strict=True):
                    if qty > 0:
                        edges[(comp, parent)] = edges.get((comp, parent), 0) + qty
                        lots[comp].consumed += qty

    for code, spec in specs.items():
        if spec.serial_prefix:
            n = 1
            for i in by_product[code]:
                lots[i].serials = [f"{spec.serial_prefix}{n + k:06d}" for k in range(lots[i].quantity)]
                n += lots[i].quantity

    consignees = _consignees(rng)
    lines = _shipments(rng, today, lots, [by_product[s.code] for s in FINISHED], consignees, specs)
    return _Plan(
        lots=lots, edges=[(c, p, q) for (c, p), q in edges.items()], consignees=consignees, lines=lines
    )


def _size_component(rng: random.Random, lot: _Lot) -> None:
    """What went into products plus what is still on the shelf; at least a usual delivery."""
    lot.quantity = max(FRESH_COMPONENT_LOT[lot.product], math.ceil(lot.consumed * rng.uniform(1.05, 1.3)))


def _consignees(rng: random.Random) -> list[_Consignee]:
    phones = iter(rng.sample(range(10**8), N_CONSIGNEES))
    names: set[str] = set()
    result: list[_Consignee] = []

    def contact(code: str, local: str, *, with_phone: bool = True, with_email: bool = True):
        phone = f"+86{rng.choice(MOBILE_PREFIXES)}{next(phones):08d}"
        email = f"{local}@{code.lower()}.example.org"
        return (email if with_email else None), (phone if with_phone else None)

    def unique(make) -> str:
        while True:
            name = make()
            if name not in names:
                names.add(name)
                return name

    # Distributors, each with sub-accounts in cities of its province.
    for i in range(N_DISTRIBUTORS):
        region, province, cities = PROVINCES[i % len(PROVINCES)]
        city = rng.choice(cities)
        code = f"D{i + 1:03d}"
        name = unique(lambda city=city: f"{city}{rng.choice(TRADE_NAMES)}医疗器械有限公司")
        email, phone = contact(code, "qa")
        result.append(_Consignee(code, name, ConsigneeKind.distributor, region, Language.zh_CN, email, phone))
        for j in range(SUB_ACCOUNTS_PER_DISTRIBUTOR):
            sub_city = rng.choice(cities)
            sub = f"{code}-{j + 1:02d}"
            sub_name = unique(lambda c=sub_city: f"{c}{rng.choice(TRADE_NAMES)}医疗器械经营部")
            email, phone = contact(sub, "orders")
            result.append(
                _Consignee(
                    sub,
                    sub_name,
                    ConsigneeKind.sub_distributor,
                    region,
                    Language.zh_CN,
                    email,
                    phone,
                    parent=code,
                )
            )
    distributors_by_region = defaultdict(list)
    for c in result:
        if c.kind == ConsigneeKind.distributor:
            distributors_by_region[c.region].append(c.code)

    for k, (name, kind, region) in enumerate(ENGLISH_CONSIGNEES):
        prefix = {"distributor": "D", "hospital": "H", "clinic": "C"}[kind.value]
        code = f"{prefix}9{k + 1:02d}"
        email, phone = contact(code, "supply")
        names.add(name)
        result.append(_Consignee(code, name, kind, region, Language.en, email, phone))

    for i in range(N_PHARMACIES):
        region, _province, cities = rng.choice(PROVINCES)
        code = f"P{i + 1:03d}"
        city = rng.choice(cities)
        email, phone = contact(code, "store", with_email=i % 4 != 3)  # some small shops have no e-mail
        name = unique(lambda city=city: f"{city}{rng.choice(TRADE_NAMES)}大药房")
        result.append(_Consignee(code, name, ConsigneeKind.pharmacy, region, Language.zh_CN, email, phone))
    for i in range(N_CLINICS):
        region, _province, cities = rng.choice(PROVINCES)
        code = f"C{i + 1:03d}"
        city = rng.choice(cities)
        email, phone = contact(code, "clinic")
        name = unique(lambda city=city: f"{city}{rng.choice(TRADE_NAMES)}门诊部")
        result.append(_Consignee(code, name, ConsigneeKind.clinic, region, Language.zh_CN, email, phone))

    n_hospitals = N_CONSIGNEES - len(result)
    for i in range(n_hospitals):
        region, province, cities = rng.choice(PROVINCES)
        city = rng.choice(cities)
        code = f"H{i + 1:04d}"

        def make(city=city, province=province) -> str:
            pattern = rng.choice(HOSPITAL_PATTERNS)
            if pattern.startswith("{province}") and province in MUNICIPALITIES:
                pattern = "{city}市人民医院"
            return pattern.format(
                city=city, province=province, n=rng.choice(CHINESE_NUMBERS), trade=rng.choice(TRADE_NAMES)
            )

        name = unique(make)
        # Equipment departments (设备科) receive device notices; a few have only a phone or an e-mail.
        email, phone = contact(code, "sbk", with_phone=i % 23 != 5, with_email=i % 31 != 7)
        parents = distributors_by_region.get(region, [])
        # About a third are accounts served through a distributor of their province.
        parent = rng.choice(parents) if parents and rng.random() < 0.3 else None
        result.append(
            _Consignee(
                code, name, ConsigneeKind.hospital, region, Language.zh_CN, email, phone, parent=parent
            )
        )
    return result


def _delivery_day(rng: random.Random, c: _Consignee, released: date, selling_days: int, today: date) -> date:
    """A day after release, moved to the consignee's weekly delivery day (Monday to Friday)."""
    day = released + timedelta(rng.randint(0, min(selling_days - 1, 240)))
    weekday = sum(map(ord, c.code)) % 5
    snapped = day + timedelta((weekday - day.weekday()) % 7)
    if snapped >= today:
        snapped -= timedelta(7)
    return snapped if snapped >= released else day


def _shipments(
    rng: random.Random,
    today: date,
    lots: list[_Lot],
    finished_lots: list[list[int]],
    consignees: list[_Consignee],
    specs: dict[str, _ProductSpec],
) -> list[tuple[str, date, int, str | None, int]]:
    lines: list[tuple[str, date, int, str | None, int]] = []
    implant_takers = [c for c in consignees if c.kind in IMPLANT_KINDS]
    for product_lots in finished_lots:
        for i in product_lots:
            lot = lots[i]
            spec = specs[lot.product]
            released = lot.made + timedelta(RELEASE_DAYS)
            selling_days = (today - released).days
            if lot.qc != QcStatus.released or selling_days < 1:
                continue
            # Older lots have sold more; nothing sells out entirely.
            share = min(0.9, 0.2 + selling_days / 300) * rng.uniform(0.85, 1.0)
            to_ship = int(lot.quantity * share)
            if to_ship <= 0:
                continue
            # Implants and serialised equipment go to hospitals and their distributors only.
            pool = implant_takers if spec.implantable or spec.serial_prefix else consignees
            weights = [ORDER_WEIGHT[c.kind] for c in pool]
            if spec.serial_prefix:
                # Serialised units ship one line per serial, a few units per delivery.
                k = 0
                while k < to_ship:
                    c = rng.choices(pool, weights)[0]
                    day = _delivery_day(rng, c, released, selling_days, today)
                    for serial in lot.serials[k : k + min(to_ship - k, rng.randint(1, 4))]:
                        lines.append((c.code, day, i, serial, 1))
                        k += 1
                lot.shipped = to_ship
                continue
            n = max(1, min(to_ship, rng.randint(20, 45)))
            cuts = sorted(rng.sample(range(1, to_ship), n - 1)) if n > 1 else []
            parts = [b - a for a, b in zip([0, *cuts], [*cuts, to_ship], strict=True)]
            for qty in parts:
                c = rng.choices(pool, weights)[0]
                day = _delivery_day(rng, c, released, selling_days, today)
                lines.append((c.code, day, i, None, qty))
            lot.shipped = to_ship
    return lines


# --------------------------------------------------------------------------- seeding

COUNTED = {
    "products": Product,
    "lots": Lot,
    "serials": Serial,
    "genealogy_edges": GenealogyEdge,
    "locations": Location,
    "stock_entries": StockEntry,
    "consignees": Consignee,
    "shipments": Shipment,
    "shipment_lines": ShipmentLine,
    "users": User,
}


async def _counts(session: AsyncSession) -> dict[str, int]:
    return {
        name: int(await session.scalar(select(func.count()).select_from(model)) or 0)
        for name, model in COUNTED.items()
    }


async def seed_demo(sessions: async_sessionmaker[AsyncSession], *, today: date | None = None) -> DemoSummary:
    """Fill an empty store with the demo data set; leave a store that holds products as it is."""
    today = today or date.today()
    seeded = False
    try:
        async with transaction(sessions) as session:
            if await session.scalar(select(Product.id).limit(1)) is None:
                await _seed(session, _plan(today))
                seeded = True
    except IntegrityError:
        # Another process seeded the same store at the same moment: its data stands.
        async with sessions() as session:
            if await session.scalar(select(Product.id).limit(1)) is None:
                raise
    async with sessions() as session:
        return DemoSummary(seeded=seeded, counts=await _counts(session))


async def _ids(session: AsyncSession, stmt) -> dict:
    """Ids by natural key: the last selected column is the id, the ones before it the key."""
    rows = (await session.execute(stmt)).all()
    return {(row[0] if len(row) == 2 else tuple(row[:-1])): row[-1] for row in rows}


async def _seed(session: AsyncSession, plan: _Plan) -> None:
    specs = COMPONENTS + FINISHED
    await session.execute(
        insert(Product),
        [
            {
                "code": s.code,
                "name": s.name,
                "gtin": _gtin(s.item),
                "risk_class": s.risk,
                "implantable": s.implantable,
                "shelf_life_days": s.shelf_life_days,
            }
            for s in specs
        ],
    )
    product_ids = await _ids(session, select(Product.code, Product.id))
    shelf = {s.code: s.shelf_life_days for s in specs}
    await session.execute(
        insert(Lot),
        [
            {
                "product_id": product_ids[lot.product],
                "lot_number": lot.lot_number,
                "manufactured_on": lot.made,
                "expires_on": lot.made + timedelta(shelf[lot.product]) if shelf[lot.product] else None,
                "quantity": lot.quantity,
                "qc_status": lot.qc,
            }
            for lot in plan.lots
        ],
    )
    lot_ids_by_key = await _ids(session, select(Lot.product_id, Lot.lot_number, Lot.id))
    lot_ids = [lot_ids_by_key[(product_ids[lot.product], lot.lot_number)] for lot in plan.lots]
    await session.execute(
        insert(GenealogyEdge),
        [
            {"component_lot_id": lot_ids[c], "parent_lot_id": lot_ids[p], "quantity": q}
            for c, p, q in plan.edges
        ],
    )
    serial_rows = [
        {"product_id": product_ids[lot.product], "lot_id": lot_ids[i], "serial": s}
        for i, lot in enumerate(plan.lots)
        for s in lot.serials
    ]
    if serial_rows:
        await session.execute(insert(Serial), serial_rows)
    serial_ids = await _ids(session, select(Serial.lot_id, Serial.serial, Serial.id))

    await session.execute(insert(Location), [{"code": c, "name": n, "kind": k} for c, n, k in LOCATIONS])

    # Consignees: parents first, so sub-accounts can name them.
    columns = ("code", "name", "kind", "region", "language", "email", "phone")
    top = [c for c in plan.consignees if c.parent is None]
    await session.execute(insert(Consignee), [{k: getattr(c, k) for k in columns} for c in top])
    consignee_ids = await _ids(session, select(Consignee.code, Consignee.id))
    subs = [c for c in plan.consignees if c.parent is not None]
    await session.execute(
        insert(Consignee),
        [{**{k: getattr(c, k) for k in columns}, "parent_id": consignee_ids[c.parent]} for c in subs],
    )
    consignee_ids = await _ids(session, select(Consignee.code, Consignee.id))

    # One shipment per consignee and day; references numbered in date order.
    by_delivery: dict[tuple[date, str], list[tuple[int, str | None, int]]] = defaultdict(list)
    for code, day, lot_index, serial, qty in plan.lines:
        by_delivery[(day, code)].append((lot_index, serial, qty))
    deliveries = sorted(by_delivery)
    await session.execute(
        insert(Shipment),
        [
            {"ref": f"SO{n:06d}", "consignee_id": consignee_ids[code], "shipped_on": day}
            for n, (day, code) in enumerate(deliveries, start=1)
        ],
    )
    shipment_ids = await _ids(session, select(Shipment.ref, Shipment.id))
    line_rows = []
    for n, key in enumerate(deliveries, start=1):
        merged: dict[tuple[int, str | None], int] = defaultdict(int)
        for lot_index, serial, qty in by_delivery[key]:
            merged[(lot_index, serial)] += qty
        for (lot_index, serial), qty in merged.items():
            lot_id = lot_ids[lot_index]
            line_rows.append(
                {
                    "shipment_id": shipment_ids[f"SO{n:06d}"],
                    "lot_id": lot_id,
                    "serial_id": serial_ids[(lot_id, serial)] if serial else None,
                    "quantity": qty,
                    # A line repeats its shipment's consignee and date (migration 0008).
                    "consignee_id": consignee_ids[key[1]],
                    "shipped_on": key[0],
                }
            )
    await session.execute(insert(ShipmentLine), line_rows)

    await _post_opening_stock(session, plan, lot_ids)
    await _create_users(session)


async def _post_opening_stock(session: AsyncSession, plan: _Plan, lot_ids: list[int]) -> None:
    """What is on the shelves today, as receipts in the ledger."""
    locations = {loc.code: loc for loc in await session.scalars(select(Location))}
    lots = {lot.id: lot for lot in await session.scalars(select(Lot))}
    finished = {s.code for s in FINISHED}
    for i, planned in enumerate(plan.lots):
        on_hand = planned.quantity - planned.consumed - planned.shipped
        if on_hand <= 0:
            continue
        if planned.qc != QcStatus.released:
            split = {"SZ-QC": on_hand}  # quarantined or rejected: segregated until dispositioned
        elif planned.product in finished:
            to_sh, to_gz = int(on_hand * 0.3), int(on_hand * 0.25)
            split = {"SZ-WH": on_hand - to_sh - to_gz, "SH-DC": to_sh, "GZ-DC": to_gz}
        else:
            split = {"SZ-WH": on_hand}
        for code, qty in split.items():
            if qty > 0:
                await inventory.post(
                    session,
                    kind=MovementKind.receipt,
                    lot=lots[lot_ids[i]],
                    location=locations[code],
                    quantity=qty,
                    reference=OPENING_REFERENCE,
                    reason="demo data: opening balance",
                    user="demo",
                )


# The demo password is published, so a costly hash would protect nothing and only slow start-up;
# each demo user's hash is upgraded to the standard parameters at their first sign-in.
_DEMO_HASHER = PasswordHasher.from_parameters(CHEAPEST)


async def _create_users(session: AsyncSession) -> None:
    for role, full_name in DEMO_USERS.items():
        if await get_user(session, username=role.value) is None:  # someone may have added it already
            await create_user(
                session,
                username=role.value,
                full_name=full_name,
                roles=[role],
                password=DEMO_PASSWORD,
                email=f"{role.value.replace('_', '.')}@lotline.example.org",
                password_hasher=_DEMO_HASHER,
            )
