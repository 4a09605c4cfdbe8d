"""When cycles close: daily at a local wall-clock time (e.g. 23:00 Asia/Shanghai).

``ONECARD_CYCLE_CLOSE`` (``HH:MM``, default ``23:00``) and ``ONECARD_CYCLE_TIMEZONE``
(IANA name, default ``Asia/Shanghai``) configure it; :func:`next_close_utc` is pure.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from engine.errors import UsageError


@dataclass(frozen=True, slots=True)
class CloseSchedule:
    """Close daily at ``close_at`` local time in ``timezone``."""

    close_at: dt.time
    timezone: str

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "CloseSchedule":
        """Read ``ONECARD_CYCLE_CLOSE`` and ``ONECARD_CYCLE_TIMEZONE``.

        >>> CloseSchedule.from_env({}).close_at
        datetime.time(23, 0)

        Raises
        ------
        UsageError
            Not ``HH:MM``, or an unknown time zone.
        """
        env = os.environ if environ is None else environ
        text = env.get("ONECARD_CYCLE_CLOSE", "23:00")
        zone = env.get("ONECARD_CYCLE_TIMEZONE", "Asia/Shanghai")
        try:
            close_at = dt.time.fromisoformat(text)
            ZoneInfo(zone)
        except (ValueError, KeyError) as error:
            raise UsageError(f"ONECARD_CYCLE_CLOSE/ONECARD_CYCLE_TIMEZONE: {error}") from None
        return cls(close_at, zone)

    def next_close_utc(self, now_utc: dt.datetime) -> dt.datetime:
        """The first scheduled close strictly after ``now_utc`` (aware), in UTC.

        >>> s = CloseSchedule(dt.time(23, 0), "Asia/Shanghai")
        >>> s.next_close_utc(dt.datetime(2026, 12, 1, 14, 59, tzinfo=dt.timezone.utc))
        datetime.datetime(2026, 12, 1, 15, 0, tzinfo=datetime.timezone.utc)
        >>> s.next_close_utc(dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.timezone.utc))
        datetime.datetime(2026, 12, 2, 15, 0, tzinfo=datetime.timezone.utc)
        """
        assert now_utc.tzinfo is not None, "now_utc must be timezone-aware"
        zone = ZoneInfo(self.timezone)
        local = now_utc.astimezone(zone)
        candidate = dt.datetime.combine(local.date(), self.close_at, tzinfo=zone)
        while candidate.astimezone(dt.timezone.utc) <= now_utc:
            candidate = dt.datetime.combine(candidate.date() + dt.timedelta(days=1), self.close_at, tzinfo=zone)
        return candidate.astimezone(dt.timezone.utc)
