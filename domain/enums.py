"""Enumerations shared by the store, the API and workflow payloads (no SQLAlchemy here: sandbox-safe)."""

from __future__ import annotations

from enum import StrEnum


class RiskClass(StrEnum):
    """Device risk class (NMPA / FDA I, II, III)."""

    I = "I"  # noqa: E741 - the regulator's own name
    II = "II"
    III = "III"


class QcStatus(StrEnum):
    """Where a lot stands in QC release."""

    quarantined = "quarantined"
    released = "released"
    rejected = "rejected"


class LocationKind(StrEnum):
    """What a location is used for."""

    warehouse = "warehouse"
    production = "production"
    quarantine = "quarantine"
    distribution_center = "distribution_center"
    supplier = "supplier"


class StockStatus(StrEnum):
    """The bucket a quantity sits in at a location: free to pick, or blocked."""

    unrestricted = "unrestricted"
    blocked = "blocked"


class MovementKind(StrEnum):
    """Kinds of stock-ledger entries."""

    receipt = "receipt"
    issue = "issue"  # issue to production
    shipment = "shipment"
    return_ = "return"
    destruction = "destruction"
    transfer = "transfer"
    block = "block"
    unblock = "unblock"


class ConsigneeKind(StrEnum):
    """Who receives product."""

    distributor = "distributor"
    sub_distributor = "sub_distributor"
    hospital = "hospital"
    pharmacy = "pharmacy"
    clinic = "clinic"


class Language(StrEnum):
    """Languages notices and pages are written in."""

    zh_CN = "zh-CN"
    en = "en"


class Role(StrEnum):
    """User roles; every /api route names the roles it admits."""

    qa = "qa"
    qa_manager = "qa_manager"
    regulatory = "regulatory"
    releaser = "releaser"
    warehouse = "warehouse"
    production = "production"
    admin = "admin"
