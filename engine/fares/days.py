"""Transit days and weeks: local calendar dates shifted by the operator's day boundary.

A tap at 01:10 local belongs to the previous transit day when the day boundary is 04:30
(night riders' taps count toward the evening they started), as TfL and most cappers do.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from engine.fares.errors import BadTapError


def transit_date(at_utc: datetime, timezone: ZoneInfo, day_boundary: time) -> date:
    """The transit day of an aware moment ``at_utc``.

    >>> from datetime import timezone as tz
    >>> shanghai = ZoneInfo("Asia/Shanghai")
    >>> transit_date(datetime(2026, 3, 2, 17, 10, tzinfo=tz.utc), shanghai, time(4, 30))  # 01:10 local, 3 March
    datetime.date(2026, 3, 2)
    >>> transit_date(datetime(2026, 3, 2, 20, 30, tzinfo=tz.utc), shanghai, time(4, 30))  # 04:30 local
    datetime.date(2026, 3, 3)

    Raises
    ------
    BadTapError
        ``at_utc`` is naive (a ``ValueError``).
    """
    if at_utc.tzinfo is None:
        raise BadTapError("tapped_at_utc: must carry a time zone (UTC)")
    local = at_utc.astimezone(timezone)
    shifted = local - timedelta(hours=day_boundary.hour, minutes=day_boundary.minute, seconds=day_boundary.second)
    return shifted.date()


def week_start(day: date, week_starts_on: int) -> date:
    """First transit day of the week holding ``day`` (``week_starts_on``: ISO weekday, 1 = Monday).

    >>> week_start(date(2026, 3, 4), 1)
    datetime.date(2026, 3, 2)
    >>> week_start(date(2026, 3, 4), 7)
    datetime.date(2026, 3, 1)
    """
    assert 1 <= week_starts_on <= 7, week_starts_on
    return day - timedelta(days=(day.isoweekday() - week_starts_on) % 7)
