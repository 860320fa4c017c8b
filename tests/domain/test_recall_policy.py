"""The recall policy: deadlines by level and jurisdiction, follow-up and approval ladders, cadences."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.policy.recall import (
    RecallPolicyInput,
    RecallSchedule,
    amendment_due,
    follow_up_steps,
    fsn_comment_period_end,
    recall_schedule,
    summary_due,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


DECISION = utc(2025, 9, 29, 2)  # Monday 10:00 in Shanghai, Sunday 22:00 in New York


def schedule(**fields) -> RecallSchedule:
    fields.setdefault("decision_at", DECISION)
    return recall_schedule(RecallPolicyInput(**fields))


# --- China -----------------------------------------------------------------------------------------


def test_level_1_and_level_3_differ_in_every_scaled_number():
    one, three = schedule(nmpa_level=1), schedule(nmpa_level=3)
    assert one.notify_deadline == DECISION + timedelta(days=1)
    assert three.notify_deadline == DECISION + timedelta(days=7)
    assert one.deadline("cn.notify_consignees").due_at == one.notify_deadline
    assert [(r.after, r.action) for r in one.approval_ladder] == [
        (timedelta(hours=1), "remind"),
        (timedelta(hours=2), "escalate"),
    ]
    assert [(r.after, r.action) for r in three.approval_ladder] == [
        (timedelta(hours=8), "remind"),
        (timedelta(hours=24), "escalate"),
    ]
    assert [r.wait for r in three.approval_ladder] == [timedelta(hours=8), timedelta(hours=16)]
    assert one.progress_report_every == timedelta(days=1)
    assert three.progress_report_every == timedelta(days=7)
    assert one.reminders[0].at == DECISION + timedelta(hours=6)
    assert three.reminders[0].at == DECISION + timedelta(hours=42)
    # The regulatory reports do not depend on the level.
    assert one.plan_due == three.plan_due


@pytest.mark.parametrize(
    ("level", "every"), [(1, timedelta(days=1)), (2, timedelta(days=3)), (3, timedelta(days=7))]
)
def test_progress_report_cadence_follows_the_level(level, every):
    assert schedule(nmpa_level=level).progress_report_every == every


def test_cn_schedule_names_each_deadline_with_its_rule():
    s = schedule(nmpa_level=2)
    assert [d.key for d in s.deadlines] == ["cn.event_report", "cn.notify_consignees", "cn.plan"]
    notify = s.deadline("cn.notify_consignees")
    assert notify.kind == "notify" and notify.jurisdiction == "CN" and notify.is_rule
    assert notify.due_at == DECISION + timedelta(days=3)
    assert "医疗器械召回管理办法" in notify.source and "3日内" in notify.source
    assert "calendar days" in notify.rule
    event = s.deadline("cn.event_report")
    assert event.due_at == utc(2025, 9, 29, 16)  # 24:00 Shanghai on the decision date
    assert s.us_806_due is None and s.eu_fsca_gate is None and s.us_status_report_every is None


def test_cn_plan_is_due_five_working_days_after_the_decision_across_national_day():
    # 09-30, then Oct 1-8 off, 10-09, 10-10, the adjusted working Saturday 10-11, Monday 10-13.
    s = schedule(nmpa_level=1)
    assert s.plan_due == s.deadline("cn.plan").due_at == utc(2025, 10, 13, 16)
    assert s.deadline("cn.plan").kind == "report"
    assert "5个工作日" in s.deadline("cn.plan").source


def test_summary_is_due_ten_working_days_after_completion_across_spring_festival():
    # Completed Friday 2026-02-13 in Shanghai: Sat 02-14 (worked), 02-24..27, Sat 02-28 (worked),
    # 03-02..05: the 10th working day is 2026-03-05.
    due = summary_due(utc(2026, 2, 13, 3))
    assert due.key == "cn.summary" and due.jurisdiction == "CN"
    assert due.due_at == utc(2026, 3, 5, 16)
    assert schedule(nmpa_level=2).summary_due_after_completion.working_days == 10


def test_a_count_beyond_the_chinese_calendar_data_warns_instead_of_failing():
    s = schedule(nmpa_level=3, decision_at=utc(2026, 12, 28, 3))
    plan = s.deadline("cn.plan")
    assert plan.warnings and plan.warnings[0].startswith("cn_calendar_not_covered:2027")
    assert plan.warnings[0] in s.warnings
    assert schedule(nmpa_level=3).warnings == []


# --- United States -----------------------------------------------------------------------------------


def test_fda_only_recall_gets_a_company_default_notify_deadline_by_class():
    for fda_class, days in (("I", 1), ("II", 3), ("III", 7)):
        s = schedule(fda_class=fda_class, jurisdictions=["US"])
        notify = s.deadline("company.notify_consignees")
        assert s.notify_deadline == notify.due_at == DECISION + timedelta(days=days)
        assert not notify.is_rule and "company default" in notify.source
        assert notify.jurisdiction is None
        assert not any(d.key.startswith("cn.") for d in s.deadlines)
        assert s.plan_due is None and s.summary_due_after_completion is None


def test_us_806_report_is_due_ten_working_days_after_the_start_across_thanksgiving():
    s = schedule(fda_class="II", jurisdictions=["US"], correction_started_at=utc(2025, 11, 20, 15))
    assert s.us_806_due == s.deadline("us.806_report").due_at == utc(2025, 12, 6, 5)  # end of Fri 12-05 EST
    assert "806.10" in s.deadline("us.806_report").source
    # Without an explicit start, the clock starts at the decision.
    assert schedule(
        fda_class="II", jurisdictions=["US"], decision_at=utc(2025, 11, 20, 15)
    ).us_806_due == utc(2025, 12, 6, 5)


def test_806_amendment_is_due_ten_working_days_after_extending_to_more_lots():
    # Extended Friday 2025-12-19: 12-22, 23, 24, (25 Christmas), 26, 29, 30, 31, (01-01), 01-02, 05, 06.
    due = amendment_due(utc(2025, 12, 19, 15))
    assert due.key == "us.806_amendment" and due.jurisdiction == "US"
    assert due.due_at == utc(2026, 1, 7, 5)


def test_us_status_reports_default_to_every_14_days_and_can_be_overridden():
    assert schedule(fda_class="I", jurisdictions=["US"]).us_status_report_every == timedelta(days=14)
    s = schedule(fda_class="I", jurisdictions=["US"], overrides={"us_status_report_every": "P28D"})
    assert s.us_status_report_every == timedelta(days=28)


def test_with_both_level_and_class_the_earliest_notification_window_wins():
    s = schedule(nmpa_level=3, fda_class="I", jurisdictions=["CN", "US"])
    assert s.deadline("cn.notify_consignees").due_at == DECISION + timedelta(days=7)
    assert s.notify_deadline == s.deadline("company.notify_consignees").due_at == DECISION + timedelta(days=1)
    assert s.severity == 1 and s.progress_report_every == timedelta(days=1)
    assert s.approval_ladder[0].after == timedelta(hours=1)


# --- European Union ----------------------------------------------------------------------------------


def test_eu_fsca_report_gates_the_field_safety_notice():
    s = schedule(nmpa_level=3, jurisdictions=["CN", "EU"])
    gate = s.deadline("eu.fsca_report_before_fsn")
    assert gate.kind == "gate" and gate.jurisdiction == "EU"
    assert gate.due_at == s.notify_deadline
    assert s.eu_fsca_gate is not None and s.eu_fsca_gate.fsn_comment_working_days == 2
    assert "justification" in s.eu_fsca_gate.urgent_override_requires
    assert s.warnings == []  # 7 days leave room for the 2-working-day comment period


@pytest.mark.parametrize(
    ("category", "days", "severity"),
    [("public_health_threat", 2, 1), ("death_or_serious_deterioration", 10, 1), ("serious_incident", 15, 2)],
)
def test_eu_serious_incident_report_is_due_2_10_or_15_days_after_awareness(category, days, severity):
    aware = DECISION - timedelta(days=1, hours=3)
    s = schedule(jurisdictions=["EU"], eu_incident=category, eu_aware_at=aware)
    report = s.deadline("eu.serious_incident_report")
    assert report.kind == "report" and report.jurisdiction == "EU" and report.is_rule
    assert report.due_at == aware + timedelta(days=days)  # calendar days, from awareness
    assert "Art. 87" in report.source
    # An EU-only recall needs no NMPA level or FDA class: the category sets its severity.
    assert s.severity == severity
    assert s.notify_deadline == DECISION + timedelta(days={1: 1, 2: 3}[severity])


def test_eu_incident_clock_starts_at_the_decision_by_default_and_bad_input_names_its_field():
    s = schedule(jurisdictions=["EU"], eu_incident="serious_incident")
    assert s.deadline("eu.serious_incident_report").due_at == DECISION + timedelta(days=15)
    for fields, field in (
        ({"jurisdictions": ["EU"], "eu_incident": "minor"}, "eu_incident"),
        ({"jurisdictions": ["CN"], "nmpa_level": 2, "eu_incident": "serious_incident"}, "eu_incident"),
        (
            {
                "jurisdictions": ["EU"],
                "eu_incident": "serious_incident",
                "eu_aware_at": DECISION + timedelta(hours=1),
            },
            "eu_aware_at",
        ),
        (
            {"jurisdictions": ["EU"], "eu_incident": "serious_incident", "eu_aware_at": datetime(2025, 9, 1)},
            "eu_aware_at",
        ),
        ({"jurisdictions": ["EU"]}, "eu_incident"),  # nothing to scale the deadlines to
    ):
        with pytest.raises(InvalidInput) as err:
            schedule(**fields)
        assert err.value.field == field, fields


def test_eu_level_1_warns_that_the_comment_period_does_not_fit():
    s = schedule(nmpa_level=1, jurisdictions=["CN", "EU"])
    assert any(w.startswith("eu_comment_period_exceeds_notify_window") for w in s.warnings)


def test_fsn_comment_period_runs_two_working_days():
    # Submitted Friday 2025-12-19 in Brussels: Monday 12-22 and Tuesday 12-23; ends 24:00 CET.
    end = fsn_comment_period_end(utc(2025, 12, 19, 10))
    assert end.key == "eu.fsn_comment_period" and end.kind == "gate"
    assert end.due_at == utc(2025, 12, 23, 23)


# --- Follow-up ladder -------------------------------------------------------------------------------


def test_reminders_come_before_the_notify_deadline_in_order():
    s = schedule(nmpa_level=2)
    assert [r.action for r in s.reminders] == ["resend", "switch_channel", "resend", "overdue_call_task"]
    times = [r.at for r in s.reminders]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert all(DECISION < r.at < s.notify_deadline for r in s.reminders[:-1])
    assert s.reminders[-1].at == s.notify_deadline


@settings(max_examples=100, deadline=None)
@given(
    decision=st.datetimes(
        min_value=datetime(2004, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    level=st.sampled_from([1, 2, 3]),
    fda_class=st.sampled_from([None, "I", "II", "III"]),
)
def test_reminders_are_always_strictly_increasing_and_before_the_deadline(decision, level, fda_class):
    s = schedule(decision_at=decision, nmpa_level=level, fda_class=fda_class)
    times = [r.at for r in s.reminders]
    assert all(a < b for a, b in pairwise(times))
    assert decision < times[0] and times[-2] < s.notify_deadline == times[-1]
    assert s.notify_deadline == min(d.due_at for d in s.deadlines if d.kind == "notify")


def test_follow_up_rescales_to_when_notices_went_out():
    deadline = DECISION + timedelta(days=3)
    sent = DECISION + timedelta(hours=24)
    steps = follow_up_steps(start=sent, deadline=deadline)
    assert steps[0].at == sent + timedelta(hours=12) and steps[-1].at == deadline
    late = follow_up_steps(start=deadline + timedelta(hours=1), deadline=deadline)
    assert [(s.action, s.at) for s in late] == [("overdue_call_task", deadline)]


# --- Overrides ---------------------------------------------------------------------------------------


def test_a_plan_may_override_the_progress_cadence():
    assert schedule(
        nmpa_level=3, overrides={"progress_report_every": "P2D"}
    ).progress_report_every == timedelta(days=2)
    every = timedelta(hours=12)
    assert schedule(nmpa_level=3, overrides={"progress_report_every": every}).progress_report_every == every


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"progress_report_evry": "P2D"}, "overrides.progress_report_evry"),
        ({"progress_report_every": "soon"}, "overrides.progress_report_every"),
        ({"progress_report_every": "-P1D"}, "overrides.progress_report_every"),
        ({"us_status_report_every": 0}, "overrides.us_status_report_every"),
    ],
)
def test_bad_overrides_are_refused_naming_the_setting(overrides, field):
    with pytest.raises(InvalidInput) as err:
        schedule(nmpa_level=2, overrides=overrides)
    assert err.value.field == field


# --- Validation --------------------------------------------------------------------------------------


def test_a_cn_recall_without_a_level_is_refused_naming_nmpa_level():
    with pytest.raises(InvalidInput) as err:
        schedule(jurisdictions=["CN"])
    assert err.value.field == "nmpa_level" and "level" in err.value.reason
    with pytest.raises(InvalidInput) as err:
        schedule(fda_class="I", jurisdictions=["CN", "US"])  # a class does not replace the CN level
    assert err.value.field == "nmpa_level"


@pytest.mark.parametrize("level", [0, 4, -1])
def test_a_level_outside_1_to_3_is_refused(level):
    with pytest.raises(InvalidInput) as err:
        schedule(nmpa_level=level)
    assert err.value.field == "nmpa_level" and str(level) in err.value.reason


@pytest.mark.parametrize("jurisdictions", [["CN", "JP"], ["XX"], []])
def test_unknown_or_missing_jurisdictions_are_refused(jurisdictions):
    with pytest.raises(InvalidInput) as err:
        schedule(nmpa_level=1, jurisdictions=jurisdictions)
    assert err.value.field == "jurisdictions"


def test_other_bad_input_names_its_field():
    cases = [
        ({"fda_class": "IV", "jurisdictions": ["US"]}, "fda_class"),
        ({"jurisdictions": ["US"]}, "fda_class"),
        ({"nmpa_level": 1, "decision_at": datetime(2025, 9, 29, 10)}, "decision_at"),
        (
            {"fda_class": "I", "jurisdictions": ["US"], "correction_started_at": datetime(2025, 9, 29)},
            "correction_started_at",
        ),
    ]
    for fields, field in cases:
        with pytest.raises(InvalidInput) as err:
            schedule(**fields)
        assert err.value.field == field
    with pytest.raises(InvalidInput) as err:
        summary_due(datetime(2026, 2, 13, 11))
    assert err.value.field == "completed_at"


def test_jurisdictions_and_class_are_normalised_and_cn_level_is_accepted_under_either_name():
    s = recall_schedule(
        RecallPolicyInput(
            decision_at=DECISION, cn_level=2, fda_class=" ii ", jurisdictions=["cn", "US", "CN"]
        )
    )
    assert s.jurisdictions == ["CN", "US"]
    assert s.severity == 2
    assert s == schedule(nmpa_level=2, fda_class="II", jurisdictions=["CN", "US"])


# --- As a payload ----------------------------------------------------------------------------------


def test_the_schedule_is_deterministic_and_survives_json():
    s = schedule(nmpa_level=1, fda_class="II", jurisdictions=["CN", "US", "EU"])
    assert s == schedule(nmpa_level=1, fda_class="II", jurisdictions=["CN", "US", "EU"])
    again = RecallSchedule.model_validate_json(s.model_dump_json())
    assert again == s
    assert all(d.due_at.utcoffset() == timedelta(0) for d in again.deadlines)
    assert [d.due_at for d in s.deadlines] == sorted(d.due_at for d in s.deadlines)


def test_a_deadline_is_met_up_to_its_due_instant():
    plan = schedule(nmpa_level=1).deadline("cn.plan")
    assert plan.met_by(plan.due_at - timedelta(seconds=1)) and plan.met_by(plan.due_at)
    assert not plan.met_by(plan.due_at + timedelta(seconds=1))


def test_the_payload_models_import_no_calendar_library():
    # Workflows import these models inside Temporal's sandbox; the calendars stay in the activity.
    code = (
        "import sys, domain.policy.schedule; "
        "bad = [m for m in ('holidays', 'chinese_calendar', 'domain.policy.calendars') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
