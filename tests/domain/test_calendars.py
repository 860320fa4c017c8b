"""Working-day calendars: the Chinese official calendar with 调休, US federal holidays, EU weekends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.policy.calendars import (
    CN_CALENDAR_YEARS,
    TIME_ZONES,
    add_working_days,
    calendar_covers,
    is_working_day,
    working_day_deadline,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def shanghai_midnight_after(day: date) -> datetime:
    """24:00 Asia/Shanghai on ``day`` in UTC (UTC+8, no DST)."""
    return datetime(day.year, day.month, day.day, 16, tzinfo=UTC)


def nth_cn_workday_after(day: date, n: int) -> date:
    """The n-th working day after ``day`` by chinese-calendar's own data (independent of our loop)."""
    return chinese_calendar.get_workdays(day + timedelta(days=1), day + timedelta(days=60))[n - 1]


# --- China -----------------------------------------------------------------------------------------


def test_cn_adjusted_weekends_are_working_days_and_holidays_are_not():
    assert is_working_day(date(2025, 9, 28), "CN")  # Sunday, worked for National Day (调休)
    assert is_working_day(date(2025, 10, 11), "CN")  # Saturday, worked for National Day
    assert is_working_day(date(2026, 2, 14), "CN")  # Saturday, worked for Spring Festival
    assert not is_working_day(date(2025, 10, 1), "CN")  # National Day
    assert not is_working_day(date(2025, 10, 6), "CN")  # a Monday inside the Golden Week
    assert not is_working_day(date(2025, 10, 12), "CN")  # an ordinary Sunday
    assert is_working_day(date(2025, 10, 9), "CN")


def test_five_working_days_across_national_day_2025():
    # Decided Monday 2025-09-29 at 10:00 in Shanghai. Day 1 is 09-30, then Oct 1-8 are holidays,
    # then 10-09, 10-10, the adjusted working Saturday 10-11, and Monday 10-13.
    decision = utc(2025, 9, 29, 2)
    counted = working_day_deadline(decision, 5, "CN")
    assert counted.last_day == date(2025, 10, 13) == nth_cn_workday_after(date(2025, 9, 29), 5)
    assert counted.due_at == shanghai_midnight_after(date(2025, 10, 13)) == utc(2025, 10, 13, 16)
    assert counted.warnings == [] and not counted.calendar_fallback
    # Weekends alone would have said 2025-10-06, a day of the holiday: the calendar matters.
    assert add_working_days(decision, 5, "EU") < counted.due_at


def test_an_adjusted_working_saturday_counts_as_the_next_working_day():
    friday = utc(2025, 10, 10, 3)  # 11:00 Shanghai
    assert working_day_deadline(friday, 1, "CN").last_day == date(2025, 10, 11)
    saturday_off = utc(2025, 9, 27, 3)
    assert working_day_deadline(saturday_off, 1, "CN").last_day == date(2025, 9, 28)


@pytest.mark.parametrize(
    ("decided", "n", "last_day"),
    [
        (date(2025, 1, 27), 1, date(2025, 2, 5)),  # Spring Festival 2025: Jan 28 - Feb 4 off
        (date(2025, 1, 27), 4, date(2025, 2, 8)),  # ... and Saturday Feb 8 is worked
        (date(2025, 1, 27), 5, date(2025, 2, 10)),
        (date(2026, 2, 13), 1, date(2026, 2, 14)),  # Spring Festival 2026: Saturday Feb 14 is worked
        (date(2026, 2, 13), 2, date(2026, 2, 24)),  # Feb 15 - 23 off
        (date(2026, 2, 13), 6, date(2026, 2, 28)),  # Saturday Feb 28 is worked
        (date(2026, 2, 13), 10, date(2026, 3, 5)),
    ],
)
def test_working_days_across_spring_festival(decided, n, last_day):
    decision = datetime(decided.year, decided.month, decided.day, 3, tzinfo=UTC)  # 11:00 Shanghai
    counted = working_day_deadline(decision, n, "CN")
    assert counted.last_day == last_day == nth_cn_workday_after(decided, n)
    assert counted.due_at == shanghai_midnight_after(last_day)


def test_the_decision_date_is_read_in_local_time():
    # 17:00 UTC on 09-29 is already 01:00 on 09-30 in Shanghai: 09-30 is day 0 and is not counted.
    late = utc(2025, 9, 29, 17)
    assert working_day_deadline(late, 1, "CN").last_day == date(2025, 10, 9)
    early = utc(2025, 9, 29, 15, 59)
    assert working_day_deadline(early, 1, "CN").last_day == date(2025, 9, 30)


def test_cn_years_without_data_fall_back_to_weekends_and_say_so():
    first, last = CN_CALENDAR_YEARS
    assert (first, last) == (min(chinese_calendar.holidays).year, max(chinese_calendar.holidays).year)
    assert calendar_covers(last, "CN") and not calendar_covers(last + 1, "CN")
    beyond = date(last + 1, 1, 1)
    with pytest.raises(NotImplementedError):  # the package itself refuses the year...
        chinese_calendar.is_workday(beyond)
    assert is_working_day(beyond, "CN") == (beyond.weekday() < 5)  # ...we fall back, never crash

    start = datetime(last, 12, 31, 3, tzinfo=UTC)
    counted = working_day_deadline(start, 3, "CN")
    assert counted.calendar_fallback and counted.fallback_years == [last + 1]
    assert len(counted.warnings) == 1 and counted.warnings[0].startswith(
        f"cn_calendar_not_covered:{last + 1}"
    )
    assert counted.last_day.weekday() < 5
    # A count that stays inside covered years carries no warning.
    assert working_day_deadline(utc(2026, 3, 2, 3), 3, "CN").warnings == []


# --- United States -----------------------------------------------------------------------------------


def test_us_ten_working_days_skip_thanksgiving():
    # Started Thursday 2025-11-20, 10:00 New York. Thanksgiving (11-27) is skipped, the Friday after
    # it is a working day: the 10th working day is Friday 2025-12-05, ending 05:00 UTC (EST).
    counted = working_day_deadline(utc(2025, 11, 20, 15), 10, "US")
    assert counted.last_day == date(2025, 12, 5)
    assert counted.due_at == utc(2025, 12, 6, 5)
    assert not is_working_day(date(2025, 11, 27), "US")
    assert is_working_day(date(2025, 11, 28), "US")


def test_us_observed_federal_holidays_are_days_off():
    assert not is_working_day(date(2026, 7, 3), "US")  # Independence Day observed (July 4 is a Saturday)
    assert not is_working_day(date(2025, 6, 19), "US")  # Juneteenth
    assert is_working_day(date(2025, 6, 18), "US")


def test_end_of_day_follows_daylight_saving_time():
    # New York: EDT (UTC-4) in July, EST (UTC-5) in January; Brussels: CEST (UTC+2) / CET (UTC+1).
    assert add_working_days(utc(2025, 7, 14, 15), 1, "US") == utc(2025, 7, 16, 4)
    assert add_working_days(utc(2025, 1, 13, 15), 1, "US") == utc(2025, 1, 15, 5)
    assert add_working_days(utc(2025, 7, 14, 10), 1, "EU") == utc(2025, 7, 15, 22)
    assert add_working_days(utc(2025, 1, 13, 10), 1, "EU") == utc(2025, 1, 14, 23)


# --- European Union ----------------------------------------------------------------------------------


def test_eu_counts_weekends_only():
    friday = utc(2025, 12, 19, 10)
    assert working_day_deadline(friday, 1, "EU").last_day == date(2025, 12, 22)
    assert working_day_deadline(utc(2025, 12, 24, 10), 1, "EU").last_day == date(2025, 12, 25)  # no holidays


# --- Bad input ---------------------------------------------------------------------------------------


def test_bad_input_is_refused_naming_the_field():
    with pytest.raises(InvalidInput) as err:
        add_working_days(utc(2025, 1, 6), 1, "JP")
    assert err.value.field == "jurisdiction"
    for n in (0, -1, True):
        with pytest.raises(InvalidInput) as err:
            add_working_days(utc(2025, 1, 6), n, "CN")
        assert err.value.field == "n"
    with pytest.raises(InvalidInput) as err:
        add_working_days(datetime(2025, 1, 6, 9), 1, "CN")
    assert err.value.field == "start"


# --- Properties --------------------------------------------------------------------------------------

starts = st.datetimes(min_value=datetime(2003, 6, 1), max_value=datetime(2028, 6, 1), timezones=st.just(UTC))


@settings(max_examples=200, deadline=None)
@given(
    start=starts, n=st.integers(min_value=1, max_value=40), jurisdiction=st.sampled_from(["CN", "US", "EU"])
)
def test_adding_one_more_working_day_lands_later_and_always_on_a_working_day(start, n, jurisdiction):
    here = working_day_deadline(start, n, jurisdiction)
    there = working_day_deadline(start, n + 1, jurisdiction)
    assert start < here.due_at < there.due_at
    for counted in (here, there):
        assert is_working_day(counted.last_day, jurisdiction)
        local_end = counted.due_at.astimezone(TIME_ZONES[jurisdiction])
        assert (local_end.hour, local_end.minute, local_end.second) == (0, 0, 0)
        assert local_end.date() == counted.last_day + timedelta(days=1)
        assert counted.due_at.tzinfo is UTC
