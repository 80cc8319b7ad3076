"""Business days for the statutory clocks of recording (N.J.S.A. 46:26A-6: record within two business
days of receipt, reject within three).

New Jersey's legal holidays are listed in N.J.S.A. 36:1-1.1 (New Year's Day, Martin Luther King Jr.'s
birthday, Lincoln's birthday, Washington's birthday, Good Friday, Memorial Day, Juneteenth, Independence
Day, Labor Day, Columbus Day, general election day, Veterans Day, Thanksgiving, Christmas). A fixed-date
holiday on a Saturday is kept on the Friday before and one on a Sunday on the Monday after, as the
State's own holiday calendar does. The ``holidays`` package from PyPI knows this too, but it is not a
dependency of the registry and this is fourteen rules; nothing here reads a clock or a file.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache

MONDAY, THURSDAY, FRIDAY, SATURDAY, SUNDAY = 0, 3, 4, 5, 6


def _nth(year: int, month: int, weekday: int, n: int) -> date:
    """The ``n``-th ``weekday`` of ``month`` (``n`` = -1: the last)."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def easter(year: int) -> date:
    """Western Easter Sunday (the anonymous Gregorian algorithm, Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    m = (32 + 2 * e + 2 * i - h - k) % 7
    n = (a + 11 * h + 22 * m + 114) // 451
    return date(year, (h + m - 7 * n + 114) // 31, (h + m - 7 * n + 114) % 31 + 1)


def _observed(day: date) -> date:
    if day.weekday() == SATURDAY:
        return day - timedelta(days=1)
    if day.weekday() == SUNDAY:
        return day + timedelta(days=1)
    return day


@cache
def nj_legal_holidays(year: int) -> frozenset[date]:
    """The days New Jersey's offices keep as legal holidays in ``year`` (N.J.S.A. 36:1-1.1)."""
    fixed = [date(year, 1, 1), date(year, 2, 12), date(year, 7, 4), date(year, 11, 11), date(year, 12, 25)]
    moving = [
        _nth(year, 1, MONDAY, 3),  # Martin Luther King Jr.'s birthday
        _nth(year, 2, MONDAY, 3),  # Washington's birthday
        easter(year) - timedelta(days=2),  # Good Friday
        _nth(year, 5, MONDAY, -1),  # Memorial Day
        _nth(year, 9, MONDAY, 1),  # Labor Day
        _nth(year, 10, MONDAY, 2),  # Columbus Day
        _nth(year, 11, MONDAY, 1) + timedelta(days=1),  # general election day: the Tuesday after the first Monday
        _nth(year, 11, THURSDAY, 4),  # Thanksgiving
    ]
    if year >= 2021:  # Juneteenth, the third Friday in June (P.L.2020, c.88)
        moving.append(_nth(year, 6, FRIDAY, 3))
    return frozenset([_observed(d) for d in fixed] + moving)


def is_business_day(day: date, holidays: frozenset[date]) -> bool:
    return day.weekday() < SATURDAY and day not in holidays


def add_business_days(start: date, count: int, holidays_of: object = nj_legal_holidays) -> date:
    """The ``count``-th business day after ``start`` (the day of receipt itself never counts)."""
    assert callable(holidays_of)
    day = start
    while count > 0:
        day += timedelta(days=1)
        if is_business_day(day, holidays_of(day.year)):
            count -= 1
    return day
