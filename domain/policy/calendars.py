"""Working-day calendars per jurisdiction and the rule for counting working days.

Calendars
- ``CN``: the Chinese official calendar from the ``chinese-calendar`` package: public holidays are
  days off and adjusted working weekends (调休, e.g. Sunday 2025-09-28 and Saturday 2025-10-11) are
  working days. The package ships data for a fixed range of years (``CN_CALENDAR_YEARS``; 2004-2026 in
  chinese-calendar 1.11). For a year outside it the calendar falls back to weekends only and says so
  in ``WorkingDayDeadline.warnings`` / ``fallback_years``: it never raises. Upgrade the package when
  the State Council publishes the next year's arrangement (usually in November).
- ``US``: Monday to Friday except US federal holidays (5 U.S.C. 6103, with their observed days when a
  holiday falls on a weekend), from the ``holidays`` package (years 1777-2100). Ad-hoc closures by
  executive order (e.g. a national day of mourning) are not counted as holidays: that can only make a
  deadline earlier, never later.
- ``EU``: Monday to Friday. Public holidays vary by member state and by competent authority, so none
  is applied; this can only make a deadline earlier.

Counting rule (``add_working_days``)
- The start instant is converted to the jurisdiction's local time zone (``TIME_ZONES``:
  Asia/Shanghai, America/New_York, Europe/Brussels); its local calendar date is day 0 and is never
  counted, whatever the hour and whether or not it is a working day.
- Day 1 is the first working day after day 0; day n is the n-th.
- The deadline is the END of day n in local time, i.e. 24:00 local (= 00:00 of the next calendar
  day), returned as an aware UTC datetime. Work done at any moment of day n is on time.
This follows the usual legal reckoning of periods in days (the first day is not counted, the last
day runs to 24:00; e.g. 中华人民共和国民法典 arts. 201 and 203) while counting only working days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Final, Literal
from zoneinfo import ZoneInfo

import chinese_calendar
import holidays
from pydantic import BaseModel, ConfigDict, Field

from domain.errors import InvalidInput

Jurisdiction = Literal["CN", "US", "EU"]

JURISDICTIONS: Final[tuple[str, ...]] = ("CN", "US", "EU")

TIME_ZONES: Final[dict[str, ZoneInfo]] = {
    "CN": ZoneInfo("Asia/Shanghai"),
    "US": ZoneInfo("America/New_York"),
    "EU": ZoneInfo("Europe/Brussels"),
}

# The years chinese-calendar has official data for, read from the package itself (its own validity
# check uses the same range), so upgrading the package widens coverage without a code change.
CN_CALENDAR_YEARS: Final[tuple[int, int]] = (
    min(chinese_calendar.holidays).year,
    max(chinese_calendar.holidays).year,
)
US_CALENDAR_YEARS: Final[tuple[int, int]] = (holidays.US.start_year, holidays.US.end_year)

# A working-day count beyond this is a caller's mistake (ten years of working days), not a deadline.
MAX_WORKING_DAYS: Final = 2600


class WorkingDayDeadline(BaseModel):
    """The end of the n-th working day after a start instant, and how trustworthy the calendar was."""

    model_config = ConfigDict(frozen=True)

    jurisdiction: Jurisdiction
    start: datetime
    working_days: int
    last_day: date = Field(description="the n-th working day, a local calendar date")
    due_at: datetime = Field(description="24:00 local time on last_day, as an aware UTC datetime")
    fallback_years: list[int] = Field(
        default_factory=list, description="years counted on weekends only: no official calendar data"
    )
    warnings: list[str] = Field(default_factory=list)

    @property
    def calendar_fallback(self) -> bool:
        """Whether any counted year lacked holiday data (weekends only were applied)."""
        return bool(self.fallback_years)


def check_jurisdiction(jurisdiction: str, *, field: str = "jurisdiction") -> Jurisdiction:
    """Return the jurisdiction code, or raise InvalidInput naming ``field``."""
    if jurisdiction not in JURISDICTIONS:
        raise InvalidInput(
            f"unknown jurisdiction {jurisdiction!r}: expected one of {', '.join(JURISDICTIONS)}", field=field
        )
    return jurisdiction  # type: ignore[return-value]


def calendar_covers(year: int, jurisdiction: str) -> bool:
    """Whether the jurisdiction's calendar has holiday data for ``year`` (EU: always, weekends only)."""
    code = check_jurisdiction(jurisdiction)
    if code == "CN":
        return CN_CALENDAR_YEARS[0] <= year <= CN_CALENDAR_YEARS[1]
    if code == "US":
        return US_CALENDAR_YEARS[0] <= year <= US_CALENDAR_YEARS[1]
    return True


@lru_cache(maxsize=256)
def _us_federal_holidays(year: int) -> frozenset[date]:
    # Built once per year: the holidays object is deterministic for a given package version.
    return frozenset(holidays.US(years=year))


def _is_working_day(day: date, code: str) -> bool:
    if not calendar_covers(day.year, code):
        return day.weekday() < 5
    if code == "CN":
        return bool(chinese_calendar.is_workday(day))
    if code == "US":
        return day.weekday() < 5 and day not in _us_federal_holidays(day.year)
    return day.weekday() < 5


def local_date(at: datetime, jurisdiction: str, *, field: str = "start") -> date:
    """The calendar date of an aware instant in the jurisdiction's local time zone."""
    code = check_jurisdiction(jurisdiction)
    _require_aware(at, field)
    return at.astimezone(TIME_ZONES[code]).date()


def end_of_local_day(day: date, jurisdiction: str) -> datetime:
    """24:00 local time on ``day`` (the instant the day ends), as an aware UTC datetime."""
    code = check_jurisdiction(jurisdiction)
    # Midnight exists exactly once in all three zones (their DST switches happen at 02:00/03:00).
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=TIME_ZONES[code]).astimezone(UTC)


def is_working_day(day: date, jurisdiction: str) -> bool:
    """Whether ``day`` is a working day in the jurisdiction (weekends only where data is missing).

    An aware datetime is read as its local date in the jurisdiction's time zone.
    """
    code = check_jurisdiction(jurisdiction)
    if isinstance(day, datetime):
        day = local_date(day, code, field="day")
    return _is_working_day(day, code)


def working_day_deadline(start: datetime, n: int, jurisdiction: str) -> WorkingDayDeadline:
    """The end of the n-th working day after ``start`` (see the module docstring), with calendar warnings."""
    code = check_jurisdiction(jurisdiction)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_WORKING_DAYS:
        raise InvalidInput(f"working days must be a whole number from 1 to {MAX_WORKING_DAYS}", field="n")
    day = local_date(start, code)
    fallback: set[int] = set()
    counted = 0
    while counted < n:
        day += timedelta(days=1)
        if not calendar_covers(day.year, code):
            fallback.add(day.year)
        if _is_working_day(day, code):
            counted += 1
    years = sorted(fallback)
    return WorkingDayDeadline(
        jurisdiction=code,
        start=start.astimezone(UTC),
        working_days=n,
        last_day=day,
        due_at=end_of_local_day(day, code),
        fallback_years=years,
        warnings=[_fallback_warning(code, year) for year in years],
    )


def add_working_days(start: datetime, n: int, jurisdiction: str) -> datetime:
    """End of the n-th working day after ``start``'s local date, as an aware UTC datetime.

    Day 0 (the start's local date) is not counted; day 1 is the next working day; the deadline is
    24:00 local time on day n. Use ``working_day_deadline`` to also see calendar-coverage warnings.
    """
    return working_day_deadline(start, n, jurisdiction).due_at


def _fallback_warning(code: str, year: int) -> str:
    if code == "CN":
        first, last = CN_CALENDAR_YEARS
        return (
            f"cn_calendar_not_covered:{year}: chinese-calendar {chinese_calendar.__version__} has official "
            f"data for {first}-{last} only; {year} was counted on weekends only, without public holidays "
            "or adjusted working weekends (调休): check the State Council's arrangement and upgrade "
            "the package"
        )
    first, last = US_CALENDAR_YEARS
    return (
        f"us_calendar_not_covered:{year}: the holidays package covers {first}-{last}; "
        f"{year} was counted on weekends only"
    )


def _require_aware(at: datetime, field: str) -> None:
    if not isinstance(at, datetime):
        raise InvalidInput("must be a date and time", field=field)
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput("must carry a time zone (UTC recommended); a naive time is ambiguous", field=field)
