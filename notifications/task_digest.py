"""The reminder digest: one e-mail per person per period listing their open tasks, overdue first.

Rendered from ``templates/task_digest.{html,txt}`` in the person's language (zh-CN or en); HTML is
autoescaped, so a task title reaches the reader as text, never as markup.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from domain.enums import Language
from notifications.render import _environment

PROCESS_NAMES: dict[Language, dict[str, str]] = {
    Language.zh_CN: {"recall": "召回", "capa": "纠正预防措施", "change": "变更控制", "release": "放行"},
    Language.en: {"recall": "Recall", "capa": "CAPA", "change": "Change control", "release": "Lot release"},
}

LABELS: dict[Language, dict[str, str]] = {
    Language.zh_CN: {
        "subject": "待办任务汇总：{open} 项待办，其中 {overdue} 项已逾期（{period}）",
        "greeting": "{name}，您好：",
        "intro": "以下是截至 {period} 需要您处理的任务（本邮件每个周期只发送一次，列出您的全部待办）。",
        "overdue": "已逾期",
        "open": "待办",
        "none_overdue": "没有逾期任务。",
        "due": "截止",
        "no_due": "无截止时间",
        "record": "记录",
        "assigned_to_you": "已分配给您",
        "deputy_for": "代 {name} 处理（外出代理）",
        "open_to_role": "您的角色可认领",
        "escalated": "已升级至 {roles}",
        "priority": "优先级",
        "inbox": "打开待办任务",
        "footer": "这是系统自动发送的邮件，请勿回复。签署任务需要在系统中重新输入密码。",
    },
    Language.en: {
        "subject": "Your tasks: {open} open, {overdue} overdue ({period})",
        "greeting": "Dear {name},",
        "intro": "These are the tasks waiting for you as of {period} (one e-mail per period lists them all).",
        "overdue": "Overdue",
        "open": "Open",
        "none_overdue": "Nothing is overdue.",
        "due": "due",
        "no_due": "no due date",
        "record": "record",
        "assigned_to_you": "assigned to you",
        "deputy_for": "standing in for {name} (out of office)",
        "open_to_role": "open to your role",
        "escalated": "escalated to {roles}",
        "priority": "priority",
        "inbox": "Open your inbox",
        "footer": "Sent automatically; please do not reply. Signing a task asks for your password again.",
    },
}


class DigestItem(BaseModel):
    """One task in a digest."""

    task_id: int
    title: str
    process: str
    record_type: str
    record_id: int
    due_at: datetime | None = None
    overdue: bool = False
    priority: int = 2
    assignee: str | None = None
    standing_in_for: str | None = Field(default=None, description="assigned to someone this person deputises")
    escalated_to: list[str] = Field(default_factory=list)


class DigestContent(BaseModel):
    """Everything one person's digest shows."""

    username: str
    full_name: str
    period_start: datetime
    inbox_url: str
    items: list[DigestItem]


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def _view(content: DigestContent, language: Language) -> dict[str, Any]:
    t = LABELS[language]
    names = PROCESS_NAMES[language]

    def line(item: DigestItem) -> dict[str, Any]:
        if item.standing_in_for:
            notes = [t["deputy_for"].format(name=item.standing_in_for)]
        elif item.assignee == content.username:
            notes = [t["assigned_to_you"]]
        elif item.assignee is None:
            notes = [t["open_to_role"]]
        else:
            notes = []
        if item.escalated_to:
            notes.append(t["escalated"].format(roles=", ".join(item.escalated_to)))
        return {
            "item": item,
            "process": names.get(item.process, item.process),
            "due": f"{t['due']} {_when(item.due_at)}" if item.due_at else t["no_due"],
            "record": f"{t['record']} {item.record_type}:{item.record_id}",
            "notes": "; ".join(notes),
        }

    overdue = [line(i) for i in content.items if i.overdue]
    waiting = [line(i) for i in content.items if not i.overdue]
    period = _when(content.period_start)
    return {
        "t": t,
        "lang": language.value,
        "c": content,
        "overdue": overdue,
        "waiting": waiting,
        "greeting": t["greeting"].format(name=content.full_name),
        "intro": t["intro"].format(period=period),
        "subject": t["subject"].format(open=len(content.items), overdue=len(overdue), period=period),
    }


def render_task_digest(content: DigestContent, language: Language | str) -> tuple[str, str, str]:
    """The digest as an e-mail in ``language``: (subject, HTML body, plain-text body)."""
    language = Language(language)
    view = _view(content, language)
    env = _environment()
    html = env.get_template("task_digest.html").render(view)
    text = env.get_template("task_digest.txt").render(view)
    return view["subject"], html, text
