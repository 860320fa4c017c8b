"""The pages' two languages: which one a request gets, and a small message catalogue.

Templates write English and wrap it: ``{{ _("Due {when}", when=...) }}``. The English text is the
message id; :data:`ZH_CN` holds its Chinese wording (``tests/api/test_pages.py`` checks that every
message a template or page module uses has one). Placeholders use ``str.format`` names. The result is
plain text, escaped by Jinja like any other value, so a message never carries markup.

The language is, in order: ``?lang=`` in the URL (remembered in a cookie), the cookie, the browser's
``Accept-Language``, the deployment's default. The consignee page puts the consignee's own language
before the cookie and the browser (see ``api/routes/acknowledgements.py``).
"""

from __future__ import annotations

from domain.enums import Language

LANG_COOKIE = "lotline_lang"
LANG_NAMES = {Language.zh_CN: "中文", Language.en: "English"}


def normalise(code: str | None) -> Language | None:
    """A language tag as one of ours (``zh``, ``zh-Hans-CN`` → zh-CN; ``en-GB`` → en), else None."""
    tag = (code or "").strip().lower().replace("_", "-")
    if tag.startswith("zh"):
        return Language.zh_CN
    if tag == "en" or tag.startswith("en-"):
        return Language.en
    return None


def negotiate(accept_language: str | None) -> Language | None:
    """The best of our languages in an ``Accept-Language`` header (RFC 9110 q-values), or None."""
    best: tuple[float, int, Language] | None = None
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        lang = normalise(tag)
        if lang is None or q <= 0:
            continue
        # Highest q wins; the earlier tag wins a tie.
        if best is None or (q, -position) > (best[0], best[1]):
            best = (q, -position, lang)
    return best[2] if best else None


def translate(lang: Language | str, message: str, /, **values: object) -> str:
    """``message`` in ``lang`` (English is the message itself), with ``{name}`` placeholders filled."""
    if Language(lang) == Language.zh_CN:
        text = ZH_CN.get(message) or EN.get(message) or _unknown_symbol(message)
    else:
        text = EN.get(message) or _unknown_symbol(message)
    return text.format(**values) if values else text


def _unknown_symbol(message: str) -> str:
    """A symbolic message nobody worded yet (``kind.file:cn.plan``) reads as its value (``file cn.plan``);
    any other message is its own English."""
    prefix, dot, value = message.partition(".")
    if dot and value and prefix.isidentifier() and prefix.islower() and " " not in message:
        return value.replace("_", " ").replace(":", " ")
    return message


# Symbolic messages (``role.qa``, ``kind.approve_recall``...) in English; plain-text messages are their
# own English.
EN: dict[str, str] = {
    "role.qa": "QA",
    "role.qa_manager": "QA manager",
    "role.regulatory": "Regulatory affairs",
    "role.releaser": "Releaser",
    "role.warehouse": "Warehouse",
    "role.production": "Production",
    "role.admin": "Administrator",
    "process.recall": "Recall",
    "process.capa": "CAPA",
    "process.change": "Change control",
    "process.release": "Lot release",
    "kind.approve_recall": "Approve a recall",
    "kind.report_fsca": "Report the FSCA to the competent authority",
    "kind.call_consignee": "Call a consignee",
    "kind.file_report": "File a report",
    "kind.summary": "Recall summary report",
    "kind.release_lot": "Release a lot",
    "kind.approve_concession": "Approve a concession",
    "kind.approve_capa_plan": "Approve a CAPA plan",
    "kind.approve_capa_closure": "Approve a CAPA closure",
    "kind.capa_investigate": "Investigate a CAPA",
    "kind.capa_verify": "Verify a CAPA's effectiveness",
    "kind.comment_change": "Comment on a change",
    "kind.revise_change": "Revise a change",
    "kind.verify_change": "Verify a change",
    "kind.implement_change": "Implement a change",
    "kind.publish_announcement": "Publish the recall announcement",
    "status.open": "open",
    "status.completed": "completed",
    "status.rejected": "rejected",
    "status.cancelled": "cancelled",
    "meaning.approved": "approved",
    "meaning.rejected": "rejected",
    "meaning.released": "released",
    "meaning.reviewed": "reviewed",
    "meaning.authored": "authored",
    "meaning.closed": "closed",
    "meaning.cancelled": "cancelled",
    "meaning.overridden": "overridden",
    "consequence.approve_recall.approved": (
        "The recall starts: stock of every affected lot is blocked and notices go to every consignee "
        "in scope."
    ),
    "consequence.approve_recall.rejected": "The recall does not start; QA sees your reason.",
    "consequence.default.approved": "The process moves on to its next step.",
    "consequence.default.rejected": "The process goes back with your reason.",
    "consequence.default.released": "The lot is released for use and shipment.",
    "recall_status.awaiting_approval": "awaiting approval",
    "recall_status.rejected": "rejected",
    "recall_status.awaiting_fsca_report": "awaiting the FSCA report",
    "recall_status.notifying": "notifying",
    "recall_status.in_progress": "in progress",
    "recall_status.completed": "completed",
    "recall_status.closed": "closed",
    "recall_status.cancelled": "cancelled",
    "field.received_and_understood": "Received and understood",
    "field.name": "Name",
    "field.quantities": "Quantities",
    "field.link": "Link",
    "field.password": "Password",
    "field.reason": "Reason",
    "field.decision": "Decision",
}


# English message → 简体中文. Keep it sorted by area; add a line with every new message.
ZH_CN: dict[str, str] = {
    # Layout
    "Skip to content": "跳到主要内容",
    "Main": "主导航",
    "Language": "语言",
    "Signed in as {name}": "当前用户：{name}",
    "Sign out": "退出登录",
    "Lot traceability and recalls": "批次追溯与召回",
    "All times are UTC.": "所有时间均为 UTC。",
    # Sign-in
    "Sign in": "登录",
    "Username": "用户名",
    "Password": "密码",
    "Wrong username or password.": "用户名或密码错误。",
    "This account is deactivated; ask an administrator.": "该账户已停用，请联系管理员。",
    "Please sign in to continue.": "请登录后继续。",
    "You have signed out.": "您已退出登录。",
    # Errors
    "Not allowed": "无权访问",
    "This page needs one of the roles: {roles}. You have: {mine}.": (
        "此页面需要以下角色之一：{roles}。您的角色：{mine}。"
    ),
    "The form has expired or did not come from this site. Reload the page and try again.": (
        "表单已过期或并非来自本站。请刷新页面后重试。"
    ),
    "Not found": "未找到",
    "Something is wrong with the request": "请求有误",
    "Back to the inbox": "返回待办",
    # Roles
    "role.qa": "质量保证",
    "role.qa_manager": "质量经理",
    "role.regulatory": "法规事务",
    "role.releaser": "放行人",
    "role.warehouse": "仓库",
    "role.production": "生产",
    "role.admin": "管理员",
    # Processes and task kinds
    "process.recall": "召回",
    "process.capa": "纠正预防措施",
    "process.change": "变更控制",
    "process.release": "批放行",
    "kind.approve_recall": "审批召回",
    "kind.report_fsca": "向主管机构报告 FSCA",
    "kind.call_consignee": "致电收货方",
    "kind.file_report": "提交报告",
    "kind.summary": "召回总结报告",
    "kind.release_lot": "批放行",
    "kind.approve_concession": "审批让步接收",
    "kind.approve_capa_plan": "审批 CAPA 计划",
    "kind.approve_capa_closure": "审批 CAPA 关闭",
    "kind.capa_investigate": "CAPA 调查",
    "kind.capa_verify": "CAPA 有效性验证",
    "kind.comment_change": "变更评审意见",
    "kind.revise_change": "修订变更",
    "kind.verify_change": "验证变更",
    "kind.implement_change": "实施变更",
    "kind.publish_announcement": "发布召回公告",
    # Inbox
    "Inbox": "待办",
    "My tasks": "我的待办",
    "Tasks for me and my roles": "分配给我和我的角色的任务",
    "Only tasks assigned to me": "仅显示分配给我的任务",
    "Process": "流程",
    "All processes": "全部流程",
    "Only overdue": "仅显示逾期",
    "Filter": "筛选",
    "Task": "任务",
    "Record": "记录",
    "Due": "截止",
    "Status": "状态",
    "Overdue": "已逾期",
    "overdue by {n} h": "已逾期 {n} 小时",
    "overdue by {n} d": "已逾期 {n} 天",
    "in {n} h": "{n} 小时后",
    "in {n} d": "{n} 天后",
    "in under an hour": "不到 1 小时",
    "No due date": "无截止时间",
    "Nothing is waiting for you.": "暂无待办任务。",
    "Open tasks: {n}": "待办任务：{n}",
    "Rule": "规则",
    "Escalated to {roles}": "已升级至：{roles}",
    "{n} reminders sent": "已提醒 {n} 次",
    "Priority {n}": "优先级 {n}",
    "urgent": "紧急",
    # Task page
    "For": "候选角色",
    "Assigned to": "指派给",
    "Opened": "创建时间",
    "Decided by {who} at {when}: {outcome}": "{who} 于 {when} 作出决定：{outcome}",
    "status.open": "待处理",
    "status.completed": "已完成",
    "status.rejected": "已驳回",
    "status.cancelled": "已取消",
    "History": "历史",
    "Signatures": "电子签名",
    "No signatures yet.": "尚无签名。",
    "Tasks on this record": "此记录的任务",
    "Signer": "签署人",
    "Meaning": "含义",
    "Signed at": "签署时间",
    "Reason": "理由",
    "Record hash": "记录哈希",
    "Decide": "决定",
    "Decision": "决定",
    "Approve…": "批准…",
    "Reject…": "驳回…",
    "Release…": "放行…",
    "Sign this task": "签署此任务",
    "Cancel": "取消",
    "You initiated this record, so you may not approve it (separation of duties).": (
        "您是此记录的发起人，不得审批（职责分离）。"
    ),
    "Signing this task needs the role {roles}; you have {mine}.": (
        "签署此任务需要角色：{roles}；您的角色：{mine}。"
    ),
    "This task is not signed here.": "此任务无需在此签署。",
    "This task is {status}.": "此任务状态：{status}。",
    "Signed: {meaning}.": "已签署：{meaning}。",
    "meaning.approved": "批准",
    "meaning.rejected": "驳回",
    "meaning.released": "放行",
    "meaning.reviewed": "审核",
    "meaning.authored": "编写",
    "meaning.closed": "关闭",
    "meaning.cancelled": "取消",
    "meaning.overridden": "紧急豁免",
    # Signing
    "What signing means": "签署的含义",
    "Meaning of this signature: {meaning}": "此签名的含义：{meaning}",
    "Your electronic signature binds your name, this meaning and the time (UTC) to the record as it is "
    "now (its hash is stored with the signature). It is the legally binding equivalent of your "
    "handwritten signature (21 CFR Part 11, 11.100 and 11.200); it cannot be transferred or withdrawn.": (
        "您的电子签名将您的姓名、此签名含义和时间（UTC）与记录的当前版本绑定（签名中保存该版本的哈希值）。"
        "它与您的手写签名具有同等法律效力（21 CFR Part 11 第 11.100 和 11.200 条），不可转让或撤回。"
    ),
    "Enter your password again to sign as {name} ({username}).": (
        "请再次输入密码，以 {name}（{username}）的身份签署。"
    ),
    "Reason for rejecting": "驳回理由",
    "Required: say why, so the initiator can act on it.": "必填：请说明理由，以便发起人据此处理。",
    "Sign: approve": "签署：批准",
    "Sign: reject": "签署：驳回",
    "Sign: release": "签署：放行",
    "The signature was refused": "签名被拒绝",
    "Nothing was signed.": "未进行任何签署。",
    "consequence.approve_recall.approved": (
        "召回将启动：所有受影响批次的库存将被冻结，并向范围内的每个收货方发送通知。"
    ),
    "consequence.approve_recall.rejected": "召回不会启动；质量保证人员将看到您的理由。",
    "consequence.default.approved": "流程将进入下一步。",
    "consequence.default.rejected": "流程将连同您的理由退回。",
    "consequence.default.released": "该批次将被放行，可使用和发货。",
    # Records
    "Recall {reference}": "召回 {reference}",
    "Hazard": "风险",
    "NMPA level": "NMPA 召回级别",
    "FDA class (proposed)": "FDA 分类（建议）",
    "Jurisdictions": "管辖区域",
    "Depth": "召回层级",
    "Required actions": "要求的措施",
    "Initiated by": "发起人",
    "Affected lots": "受影响批次",
    "Consignees": "收货方",
    "Units shipped": "发货数量",
    "Suspect lots": "可疑批次",
    "Scope not computed yet.": "召回范围尚未计算。",
    "Deadlines": "期限",
    "met": "已按期完成",
    "missed": "已错过",
    "pending": "进行中",
    "{type} {id}": "{type} {id}",
    "recall_status.awaiting_approval": "待审批",
    "recall_status.rejected": "已驳回",
    "recall_status.awaiting_fsca_report": "待报告 FSCA",
    "recall_status.notifying": "通知中",
    "recall_status.in_progress": "进行中",
    "recall_status.completed": "已完成",
    "recall_status.closed": "已关闭",
    "recall_status.cancelled": "已取消",
    # Acknowledgement page
    "Recall acknowledgement": "召回回执",
    "Date": "日期",
    "Recall reference": "召回编号",
    "To": "致",
    "Reply by {date}": "请于 {date} 前回复",
    "Your acknowledgement": "您的回执",
    "Your acknowledgement has been recorded. Thank you.": "已收到您的回执，谢谢。",
    "Your acknowledgement was already recorded; nothing was changed.": (
        "您的回执此前已记录，本次未作任何更改。"
    ),
    "Recorded for {name}.": "记录人：{name}。",
    "Please correct the following:": "请更正以下内容：",
    "Received and understood": "已收到并理解本通知",
    "Required actions completed": "已完成要求的措施",
    "Forwarded to sub-accounts": "已转发给下级客户",
    "No affected stock": "无受影响库存",
    "Quantities for lot {lot}": "批号 {lot} 的数量",
    "Shipped to you: {n}": "向贵单位发货：{n}",
    "On hand": "现有库存",
    "Returned": "已退回",
    "Corrected": "已纠正",
    "Destroyed": "已销毁",
    "Used": "已使用",
    "Sub-consignees (one per line)": "下级客户（每行一个）",
    "Your name": "您的姓名",
    "Your role": "您的职务",
    "Site": "地点",
    "Phone or e-mail": "电话或电子邮件",
    "Submit acknowledgement": "提交回执",
    "Whole numbers, 0 if none.": "请填整数，没有则填 0。",
    "Questions? Contact {name}": "如有疑问，请联系 {name}",
    "This link is not valid": "此链接无效",
    "Open the link exactly as it appears in the latest notice we sent you, or contact us.": (
        "请完整打开我们最近发送给您的通知中的链接，或与我们联系。"
    ),
    "field.received_and_understood": "已收到并理解",
    "field.name": "姓名",
    "field.quantities": "数量",
    "field.link": "链接",
    "field.password": "密码",
    "field.reason": "理由",
    "field.decision": "决定",
}


def _merge(more_en: dict[str, str], more_zh: dict[str, str]) -> None:
    """Add another module's wording; a message worded here already keeps its wording."""
    for ours, theirs in ((EN, more_en), (ZH_CN, more_zh)):
        for message, text in theirs.items():
            ours.setdefault(message, text)


# The dashboards', trace and quality-process pages' wording lives in its own module.
from api.pages import wording as _wording  # noqa: E402

_merge(_wording.EN, _wording.ZH_CN)

# The task actions' and out-of-office page's wording.
from api.pages import wording_tasks as _wording_tasks  # noqa: E402

_merge(_wording_tasks.EN, _wording_tasks.ZH_CN)
