"""The trading calendar on a controllable clock: boundaries, weekends, holidays, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config import parse_config
from exporter.desk.calendar import TradingCalendar


def at(text: str) -> float:
    """Unix seconds of an ISO time with an offset."""
    return datetime.fromisoformat(text).timestamp()


def iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


BOGOTA = TradingCalendar()  # the default: Monday to Friday 08:00-13:00 America/Bogota (UTC-5)


def test_session_boundaries_open_inclusive_close_exclusive():
    assert not BOGOTA.is_open(at("2025-03-03T07:59:59.999-05:00"))
    assert BOGOTA.is_open(at("2025-03-03T08:00:00-05:00"))
    assert BOGOTA.is_open(at("2025-03-03T12:59:59.999-05:00"))
    assert not BOGOTA.is_open(at("2025-03-03T13:00:00-05:00"))
    assert BOGOTA.session_at(at("2025-03-03T10:00:00-05:00")) == (
        at("2025-03-03T08:00:00-05:00"), at("2025-03-03T13:00:00-05:00"))


def test_next_open_and_close_around_a_session():
    before = at("2025-03-03T07:00:00-05:00")  # Monday, before the open
    assert iso(BOGOTA.next_open(before)) == "2025-03-03T13:00:00Z"
    assert iso(BOGOTA.next_close(before)) == "2025-03-03T18:00:00Z"
    assert BOGOTA.last_open(before) == at("2025-02-28T08:00:00-05:00")  # Friday's
    during = at("2025-03-03T09:00:00-05:00")
    assert iso(BOGOTA.next_open(during)) == "2025-03-04T13:00:00Z"  # while open: the following session
    assert iso(BOGOTA.next_close(during)) == "2025-03-03T18:00:00Z"
    assert BOGOTA.last_open(during) == at("2025-03-03T08:00:00-05:00")
    exactly_open = at("2025-03-03T08:00:00-05:00")
    assert BOGOTA.last_open(exactly_open) == exactly_open


def test_weekend_is_closed_and_next_open_is_monday():
    saturday = at("2025-03-08T10:00:00-05:00")
    assert not BOGOTA.is_open(saturday)
    assert iso(BOGOTA.next_open(saturday)) == "2025-03-10T13:00:00Z"
    assert iso(BOGOTA.next_close(saturday)) == "2025-03-10T18:00:00Z"
    friday_close = at("2025-03-07T13:00:00-05:00")
    assert iso(BOGOTA.next_open(friday_close)) == "2025-03-10T13:00:00Z"


def test_holidays_close_their_whole_day():
    # Colombian holidays: Monday 2025-03-24 (San José), Thursday-Friday of Holy Week.
    config = parse_config('services: []\ndesk: {holidays: [2025-03-24, 2025-04-17, "2025-04-18"]}\n')
    calendar = TradingCalendar.from_config(config.desk)
    assert not calendar.is_open(at("2025-03-24T10:00:00-05:00"))
    assert BOGOTA.is_open(at("2025-03-24T10:00:00-05:00"))
    friday = at("2025-03-21T14:00:00-05:00")
    assert iso(calendar.next_open(friday)) == "2025-03-25T13:00:00Z"  # skips the weekend and the holiday
    wednesday = at("2025-04-16T12:00:00-05:00")
    assert iso(calendar.next_close(wednesday)) == "2025-04-16T18:00:00Z"
    assert iso(calendar.next_open(wednesday)) == "2025-04-21T13:00:00Z"  # Thursday, Friday, weekend closed
    assert calendar.last_open(at("2025-04-18T10:00:00-05:00")) == at("2025-04-16T08:00:00-05:00")


NEW_YORK = TradingCalendar("America/New_York", [((570, 960),)] * 5 + [(), ()])  # 09:30-16:00


def test_wall_times_follow_daylight_saving_in_other_zones():
    # Before the US switch (EST, UTC-5) the open is 14:30Z; after it (EDT, UTC-4) 13:30Z.
    assert iso(NEW_YORK.next_open(at("2024-03-08T17:00:00-05:00"))) == "2024-03-11T13:30:00Z"
    assert iso(NEW_YORK.session_at(at("2024-03-08T10:00:00-05:00"))[0]) == "2024-03-08T14:30:00Z"
    # Back to EST in November.
    assert iso(NEW_YORK.next_open(at("2024-11-01T17:00:00-04:00"))) == "2024-11-04T14:30:00Z"
    # Bogotá has no DST: the same sessions stay at 13:00Z all year.
    assert iso(BOGOTA.next_open(at("2024-07-01T00:00:00-05:00"))) == "2024-07-01T13:00:00Z"


def test_a_skipped_wall_time_opens_at_the_jump_and_a_repeated_one_at_its_first_occurrence():
    # Sunday sessions 02:30-04:00 in New York: on 2024-03-10 02:30 does not exist (02:00
    # jumps to 03:00 EDT), so the session opens at the jump, 07:00Z; on 2024-11-03 01:30
    # happens twice, and a 01:30 open is the first one, 05:30Z (EDT).
    spring = TradingCalendar("America/New_York", [(), (), (), (), (), (), ((150, 240),)])
    assert iso(spring.next_open(at("2024-03-09T12:00:00-05:00"))) == "2024-03-10T07:00:00Z"
    assert iso(spring.next_close(at("2024-03-09T12:00:00-05:00"))) == "2024-03-10T08:00:00Z"
    fall = TradingCalendar("America/New_York", [(), (), (), (), (), (), ((90, 150),)])
    assert iso(fall.next_open(at("2024-11-02T12:00:00-04:00"))) == "2024-11-03T05:30:00Z"
    assert iso(fall.next_close(at("2024-11-02T12:00:00-04:00"))) == "2024-11-03T07:30:00Z"
    # The open is inclusive at the first 01:30 and the session is 2 hours long that night.
    assert fall.is_open(at("2024-11-03T01:45:00-05:00"))


def test_sessions_touching_at_midnight_are_one_session():
    overnight = TradingCalendar("UTC", [((1320, 1440),), ((0, 120),), (), (), (), (), ()])
    late = at("2025-03-03T23:00:00+00:00")  # Monday 23:00
    assert iso(overnight.next_close(late)) == "2025-03-04T02:00:00Z"
    assert overnight.session_at(late) == (at("2025-03-03T22:00:00+00:00"), at("2025-03-04T02:00:00+00:00"))
    assert iso(overnight.next_open(late)) == "2025-03-10T22:00:00Z"


def test_a_market_that_never_closes_has_no_next_close_and_one_without_sessions_no_next_open():
    always = TradingCalendar("UTC", [((0, 1440),)] * 7)
    now = at("2025-03-03T12:00:00+00:00")
    assert always.is_open(now) and always.next_close(now) is None and always.next_open(now) is None
    never = TradingCalendar("UTC", [()] * 7)
    assert not never.is_open(now) and never.next_open(now) is None and never.last_open(now) is None


def test_a_desk_open_around_the_clock_opens_at_each_local_midnight():
    always = TradingCalendar("America/Bogota", [((0, 1440),)] * 7)
    assert iso(always.last_open(at("2025-03-03T12:00:00-05:00"))) == "2025-03-03T05:00:00Z"
    assert iso(always.last_open(at("2025-03-04T00:30:00-05:00"))) == "2025-03-04T05:00:00Z"


ZONES = ["America/Bogota", "America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata"]


@st.composite
def calendars(draw):
    week = []
    for _ in range(7):
        starts = sorted(draw(st.sets(st.integers(0, 47), max_size=3)))
        day = []
        for i, start in enumerate(starts):
            limit = starts[i + 1] if i + 1 < len(starts) else 48
            end = draw(st.integers(start + 1, limit))
            day.append((start * 30, end * 30))
        week.append(tuple(day))
    holidays = draw(st.sets(st.dates(date(2024, 1, 1), date(2026, 12, 31)), max_size=20))
    return TradingCalendar(draw(st.sampled_from(ZONES)), week, holidays)


@settings(max_examples=150, deadline=None)
@given(calendar=calendars(), moment=st.integers(int(at("2024-01-01T00:00:00+00:00")),
                                                int(at("2026-06-30T00:00:00+00:00"))))
def test_the_answers_agree_with_each_other(calendar, moment):
    now = float(moment)
    opens, closes, session = calendar.next_open(now), calendar.next_close(now), calendar.session_at(now)
    assert calendar.is_open(now) == (session is not None)
    if session is not None:
        assert session[0] <= now < session[1]
        assert calendar.last_open(now) == session[0]
        if closes is not None:
            assert closes == session[1]
            assert opens is None or opens > closes  # the next open comes after this close
    else:
        assert opens is None or closes is None or now < opens < closes
    for moment_after in (opens, closes):
        assert moment_after is None or moment_after > now
    if opens is not None:
        assert calendar.is_open(opens) and not calendar.is_open(opens - 1)
        day = datetime.fromtimestamp(opens, calendar.tz).date()
        assert day not in calendar.holidays
    if closes is not None:
        assert not calendar.is_open(closes) and calendar.is_open(closes - 1)
