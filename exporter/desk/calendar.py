"""The trading calendar: sessions per weekday in an IANA time zone, minus holidays.

Every question takes the moment it is about (`now`, Unix seconds), so tests drive it with
any clock. Session times are local wall-clock times. Where daylight-saving time makes a
wall time happen twice, the session boundary is its first occurrence; where it skips a
wall time, the boundary is the instant the clocks jump (the first moment at or after it).
Sessions that touch (Monday 22:00-24:00 and Tuesday 00:00-02:00) are one session.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from ..config.model import DeskConfig

HORIZON_DAYS = 400  # how far next_open/next_close look before answering None

Window = tuple[float, float]  # (open, close) in Unix seconds, open <= t < close


class TradingCalendar:
    """When the market is open, and when it next opens and closes."""

    def __init__(self, timezone: str = "America/Bogota",
                 sessions: Sequence[Sequence[tuple[int, int]]] | None = None,
                 holidays: Iterable[date] = ()) -> None:
        self.timezone = timezone
        self.tz = zoneinfo.ZoneInfo(timezone)
        week = DeskConfig().sessions if sessions is None else sessions
        if len(week) != 7:
            raise ValueError(f"sessions must list 7 weekdays (Monday first), got {len(week)}")
        for day in week:
            for start, end in day:
                if not 0 <= start < end <= 1440:
                    raise ValueError(f"session ({start}, {end}) must satisfy 0 <= start < end <= 1440 minutes")
        self.sessions = tuple(tuple(sorted(day)) for day in week)
        self.holidays = frozenset(holidays)
        self._day = lru_cache(maxsize=1024)(self._day_windows)

    @classmethod
    def from_config(cls, desk: DeskConfig) -> TradingCalendar:
        """The calendar of a `desk:` section."""
        return cls(desk.timezone, desk.sessions, desk.holidays)

    # -- questions -----------------------------------------------------------------------

    def session_at(self, now: float) -> Window | None:
        """The (merged) session that `now` falls in, or None when the market is closed."""
        for window in self._windows(now - 8 * 86400, now + 8 * 86400):
            if window[0] <= now < window[1]:
                return window
            if window[0] > now:
                return None
        return None

    def is_open(self, now: float) -> bool:
        """True while a session runs."""
        return self.session_at(now) is not None

    def next_open(self, now: float) -> float | None:
        """The first session open after `now` (while open: the following session's)."""
        for start, _ in self._windows(now, now + HORIZON_DAYS * 86400):
            if start > now:
                return start
        return None

    def next_close(self, now: float) -> float | None:
        """The close of the running session, or of the next one while closed."""
        until = now + HORIZON_DAYS * 86400
        for _, end in self._windows(now, until):
            if end > now:
                return end if end <= until else None  # a market that never closes
        return None

    def last_open(self, now: float) -> float | None:
        """The open of the running session, or of the most recent one while closed.

        A session that has run without a break for longer than the look-back (a desk
        open around the clock) counts as opening at each local midnight, so "since the
        session's open" still means "today".
        """
        for days in (8, HORIZON_DAYS):  # a week back finds it almost always; then the horizon
            since = now - days * 86400
            latest = None
            for start, _ in self._windows(since, now):
                if start <= now:
                    latest = start
            if latest is not None and latest >= since:
                return latest
        if self.is_open(now):
            return wall_instant(self.tz, self._local_date(now), 0)
        return None

    # -- machinery -----------------------------------------------------------------------

    def _windows(self, since: float, until: float) -> Iterator[Window]:
        """Merged sessions overlapping [since, until], in order."""
        first = self._local_date(since) - timedelta(days=1)
        last = self._local_date(until) + timedelta(days=1)
        pending: list[float] | None = None
        day = first
        while day <= last:
            for start, end in self._day(day):
                if pending is not None and start <= pending[1]:
                    pending[1] = max(pending[1], end)
                    continue
                if pending is not None and pending[1] >= since:
                    yield pending[0], pending[1]
                if start > until:
                    return
                pending = [start, end]
            day += timedelta(days=1)
        if pending is not None and pending[1] >= since:
            yield pending[0], pending[1]

    def _local_date(self, moment: float) -> date:
        return datetime.fromtimestamp(moment, self.tz).date()

    def _day_windows(self, day: date) -> tuple[Window, ...]:
        if day in self.holidays:
            return ()
        windows = ((wall_instant(self.tz, day, start), wall_instant(self.tz, day, end))
                   for start, end in self.sessions[day.weekday()])
        return tuple(w for w in windows if w[0] < w[1])  # a session inside a skipped hour never runs


def wall_instant(tz: zoneinfo.ZoneInfo, day: date, minute: int) -> float:
    """Unix seconds of `minute` after local midnight of `day` in `tz`.

    An ambiguous wall time (clocks going back) is its first occurrence; a skipped one
    (clocks going forward) is the instant of the jump.
    """
    naive = datetime.combine(day, time()) + timedelta(minutes=minute)
    early = naive.replace(tzinfo=tz, fold=0).timestamp()
    late = naive.replace(tzinfo=tz, fold=1).timestamp()
    if early == late:
        return early
    if datetime.fromtimestamp(early, tz).replace(tzinfo=None) == naive:
        return min(early, late)  # the wall time happens twice: take the first
    # Skipped: fold=1 reads it with the new offset (earlier instant), fold=0 with the old
    # one (later). The jump lies between; find its exact second.
    lo, hi = int(min(early, late)), int(max(early, late))
    after = datetime.fromtimestamp(hi, tz).utcoffset()
    while lo < hi:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid + 1
    return float(lo)
