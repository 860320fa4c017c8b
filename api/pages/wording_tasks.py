"""Wording of the task actions (claim, release, delegate, report done) and the out-of-office page.

Merged into :data:`api.pages.i18n.EN` and :data:`api.pages.i18n.ZH_CN` (see ``api/pages/wording.py``).
"""

from __future__ import annotations

EN: dict[str, str] = {
    "field.to": "Delegate to",
    "field.reference": "Reference",
    "field.note": "Note",
    "field.done_at": "Done at (UTC)",
    "field.deputy": "Deputy",
    "field.starts_at": "From (UTC)",
    "field.ends_at": "To (UTC)",
    "field.task_id": "Task",
    "field.absence_id": "Period",
}

ZH_CN: dict[str, str] = {
    # Task page actions
    "Claim": "认领",
    "Release": "释放",
    "Claimed by {who}.": "已由 {who} 认领。",
    "Delegated by {who}: {reason}": "由 {who} 委派：{reason}",
    "The task was not changed": "任务未作更改",
    "Delegate…": "委派…",
    "Delegate": "委派",
    "Delegate to": "委派给",
    "People who hold one of this task's roles and did not initiate the record.": (
        "持有本任务所需角色之一、且不是该记录发起人的人员。"
    ),
    "Choose a person": "选择人员",
    "Reason for delegating": "委派理由",
    "The task was not delegated": "任务未被委派",
    "Report done…": "报告完成…",
    "Nothing was reported or signed": "未报告，也未签名",
    "Reporting this task done is your electronic signature, meaning “authored”: it binds your name and "
    "the time (UTC) to the record as it is now, like your handwritten signature (21 CFR Part 11).": (
        "报告此任务完成即为您的电子签名，含义为“编写”：它将您的姓名和时间（UTC）与记录的当前版本绑定，"
        "与手写签名具有同等效力（21 CFR Part 11）。"
    ),
    "Reference": "参考编号",
    "(optional)": "（可选）",
    "The authority's receipt number, or the announcement's URL.": "监管机构的受理编号，或公告的网址。",
    "Note": "备注",
    "Done at (UTC)": "完成时间（UTC）",
    "Leave empty for now. Enter the time in UTC.": "留空表示现在。请按 UTC 时间填写。",
    "Sign: report done": "签名：报告完成",
    "You claimed this task.": "您已认领此任务。",
    "You released this task.": "您已释放此任务。",
    "The task was delegated.": "任务已委派。",
    "Reported done and signed.": "已报告完成并签名。",
    # Out of office
    "Out of office": "外出",
    "While you are out of office, tasks meant for you go to your deputy.": (
        "您外出期间，发给您的任务将转给您的代理人。"
    ),
    "My periods": "我的外出时段",
    "From (UTC)": "开始（UTC）",
    "To (UTC)": "结束（UTC）",
    "Deputy": "代理人",
    "Cancel this period": "取消此时段",
    "You have no period out of office set.": "您尚未设置外出时段。",
    "I stand in for": "我代理的人员",
    "Person": "人员",
    "Nobody has named you as their deputy.": "没有人指定您为代理人。",
    "Set a period out of office": "设置外出时段",
    "The period was not set": "外出时段未设置",
    "Set out of office": "设置外出",
    "Out of office set.": "已设置外出。",
    "Out of office cancelled.": "已取消外出。",
    "field.to": "委派给",
    "field.reference": "参考编号",
    "field.note": "备注",
    "field.done_at": "完成时间（UTC）",
    "field.deputy": "代理人",
    "field.starts_at": "开始（UTC）",
    "field.ends_at": "结束（UTC）",
    "field.task_id": "任务",
    "field.absence_id": "外出时段",
}
