"""A complete recall notice to build tests on, and small helpers shared by the channel tests."""

from __future__ import annotations

from datetime import date
from typing import Any

from notifications.content import NoticeContent


def notice(**changes: Any) -> NoticeContent:
    """A level-2 CN recall notice with every field DOMAIN.md lists, changed where a test says."""
    fields: dict[str, Any] = {
        "jurisdiction": "CN",
        "reference": "RC-2026-0007",
        "issued_on": date(2026, 11, 21),
        "consignee_name": "华东医疗器械有限公司",
        "manufacturer": {"name": "苏州医械有限公司", "address": "苏州工业园区星湖街 1 号"},
        "products": [
            {
                "name": "一次性使用输液器",
                "model": "IV-200",
                "catalogue_number": "CAT-IV200",
                "udi_di": "06901234567892",
                "lots": [
                    {"lot_number": "L2401", "expires_on": date(2028, 1, 31), "quantity_shipped": 500},
                    {
                        "lot_number": "L2402",
                        "serials": ["SN-0001", "SN-0002"],
                        "expires_on": date(2028, 2, 29),
                    },
                ],
            }
        ],
        "shipped_from": date(2026, 3, 1),
        "shipped_to": date(2026, 9, 30),
        "reason": "Flow regulator may crack under pressure",
        "hazard": "Uncontrolled infusion rate, risk of overdose",
        "nmpa_level": 2,
        "fda_class": "II",
        "depth": "user",
        "forward_to_sub_accounts": True,
        "required_actions": ["stop_use", "quarantine", "return"],
        "action_details": "Ship returns to Warehouse 3, Suzhou, quoting the recall reference.",
        "regulators_informed": ["江苏省药品监督管理局", "FDA"],
        "contact": {"name": "Zhang Wei", "phone": "+86 512 6000 0000", "email": "recall@maker.example"},
        "reply_by": date(2026, 11, 24),
        "acknowledgement_url": "http://127.0.0.1:8000/ack/eyJhbGciOiJIUzI1NiJ9.payload.signature",
        "sms_reply_code": "K7Q2M",
    }
    fields.update(changes)
    return NoticeContent.model_validate(fields)
