"""The fixed wording of recall notices, per language; the templates hold the layout.

Wording that names a regulation follows DOMAIN.md: the EU calls the notice a Field Safety Notice,
China and the US a medical device recall; NMPA levels are 一级/二级/三级, FDA classes I/II/III.
"""

from __future__ import annotations

from domain.enums import Language

TITLES: dict[tuple[str, Language], str] = {
    ("CN", Language.zh_CN): "紧急：医疗器械召回通知",
    ("CN", Language.en): "URGENT: MEDICAL DEVICE RECALL",
    ("US", Language.zh_CN): "紧急：医疗器械召回通知",
    ("US", Language.en): "URGENT: MEDICAL DEVICE RECALL",
    ("EU", Language.zh_CN): "紧急现场安全通知",
    ("EU", Language.en): "Urgent Field Safety Notice",
}

# The authorities a recall is reported to, by jurisdiction, as a notice in each language names them.
REGULATORS: dict[str, dict[Language, str]] = {
    "CN": {
        Language.zh_CN: "所在地省级药品监督管理部门",
        Language.en: "NMPA (provincial medical products administration)",
    },
    "US": {Language.zh_CN: "美国食品药品监督管理局（FDA）", Language.en: "FDA"},
    "EU": {Language.zh_CN: "欧盟成员国主管当局", Language.en: "competent authority"},
}


def regulators_informed(jurisdictions: list[str], language: Language) -> list[str]:
    """The regulators a recall in these jurisdictions has been reported to, in ``language``."""
    return [REGULATORS[j][language] for j in jurisdictions]


def regulators_sentence(names: list[str], language: Language) -> str:
    """The notice's sentence naming the regulators informed ("This action has been reported to: ...")."""
    t = LABELS[Language(language)]
    return t["regulators_informed"].format(names=t["list_sep"].join(names))


LABELS: dict[Language, dict[str, str]] = {
    Language.zh_CN: {
        "date": "日期",
        "reference": "召回编号",
        "to": "致",
        "intro": "我们的记录显示，贵单位收到了下列受影响的产品。请仔细阅读本通知并立即采取所述措施。",
        "manufacturer": "制造商",
        "products": "受影响产品",
        "product": "产品名称",
        "model": "型号规格",
        "catalogue_number": "产品编号",
        "udi_di": "UDI-DI",
        "lot": "批号",
        "serials": "序列号",
        "expires_on": "失效日期",
        "quantity_shipped": "向贵单位发货数量",
        "shipped": "发货日期",
        "shipped_range": "{start} 至 {end}",
        "reason": "召回原因",
        "hazard": "风险与危害",
        "level": "召回级别",
        "nmpa_level": "{level}召回（国家药品监督管理局分级）",
        "fda_class": "FDA 召回分类：{cls} 类",
        "depth": "召回层级",
        "depth.wholesale": "批发层级",
        "depth.retail": "零售层级",
        "depth.user": "使用者层级（医疗机构及用户）",
        "forward": (
            "如您已将上述产品转售或分发，请立即将本通知转发给所有收货的下级客户和分支机构，并在回执中列明其名称。"
        ),
        "actions": "需要采取的措施",
        "action.stop_use": "立即停止使用受影响产品。",
        "action.quarantine": "隔离受影响产品：单独存放并明确标识，防止使用或发货。",
        "action.return": "按下述说明将受影响产品退回制造商。",
        "action.correct": "按下述说明对受影响产品进行纠正。",
        "action.destroy": "按说明销毁受影响产品，并保留销毁记录。",
        "regulators": "监管部门",
        "regulators_informed": "本次召回已报告：{names}。",
        "reply": "回执",
        "reply_by": "请于 {date} 前确认本通知，即使贵单位已无受影响库存。",
        "reply_link": "填写回执（在库、已退回、已销毁数量）",
        "reply_sms": "也可回复短信 {code} 确认收到。",
        "contact": "联系人",
        "phone": "电话",
        "email": "电子邮件",
        "footer": "本通知由召回系统自动发送，仅涉及产品安全，不含任何推广内容。",
        "list_sep": "、",
        "level_names": "一级,二级,三级",
    },
    Language.en: {
        "date": "Date",
        "reference": "Recall reference",
        "to": "To",
        "intro": (
            "Our records show that you received the affected products listed below. "
            "Read this notice carefully and take the actions it describes now."
        ),
        "manufacturer": "Manufacturer",
        "products": "Affected products",
        "product": "Product",
        "model": "Model",
        "catalogue_number": "Catalogue number",
        "udi_di": "UDI-DI",
        "lot": "Lot",
        "serials": "Serial numbers",
        "expires_on": "Expiry",
        "quantity_shipped": "Quantity shipped to you",
        "shipped": "Shipped",
        "shipped_range": "{start} to {end}",
        "reason": "Reason for the recall",
        "hazard": "Risk to health",
        "level": "Recall level",
        "nmpa_level": "Level {level} (NMPA)",
        "fda_class": "FDA recall class {cls}",
        "depth": "Recall depth",
        "depth.wholesale": "wholesale level",
        "depth.retail": "retail level",
        "depth.user": "user level (healthcare facilities and users)",
        "forward": (
            "If you have distributed these products further, forward this notice now to every customer and "
            "sub-account that received them, and name them in your reply."
        ),
        "actions": "Actions required",
        "action.stop_use": "Stop using the affected units immediately.",
        "action.quarantine": (
            "Quarantine the affected units: store them apart and label them so they are not used or shipped."
        ),
        "action.return": "Return the affected units to the manufacturer as described below.",
        "action.correct": "Have the affected units corrected as described below.",
        "action.destroy": "Destroy the affected units as instructed and keep a record of the destruction.",
        "regulators": "Regulators",
        "regulators_informed": "This action has been reported to: {names}.",
        "reply": "Your reply",
        "reply_by": "Acknowledge this notice by {date}, even if you no longer hold affected stock.",
        "reply_link": "Open the reply form (quantities on hand, returned and destroyed)",
        "reply_sms": "Or reply {code} to our text message to confirm receipt.",
        "contact": "Contact",
        "phone": "Phone",
        "email": "E-mail",
        "footer": (
            "Sent by the recall system. This notice concerns product safety only and contains no promotion."
        ),
        "list_sep": ", ",
        "level_names": "I,II,III",
    },
}

SMS_MORE_LOTS: dict[Language, str] = {Language.zh_CN: "等{n}个批号", Language.en: " +{n} more"}
SMS_MORE_PRODUCTS: dict[Language, str] = {Language.zh_CN: "等{n}种产品", Language.en: " +{n} more"}
