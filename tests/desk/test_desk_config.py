"""The `desk:` section of services.yaml and per-service `during`: strict, located errors."""

from __future__ import annotations

from datetime import date

import pytest

from exporter.config import ConfigError, DeskConfig, parse_config

FULL = """
services:
  - name: model
    url: http://127.0.0.1:8002/health
    during: session
  - name: api
    url: http://127.0.0.1:8001/health
desk:
  timezone: America/New_York
  sessions:
    mon: ["09:30-16:00"]
    tue: ["00:00-02:00", "22:00-24:00"]
  holidays: [2025-07-04, "2025-12-25"]
  clock_tolerance: 500ms
  freshness:
    signal_cadence: {USDCOP: 5m, EURUSD: 30s}
    financial_metrics_cadence: 1m
    overdue_factor: 2.5
  limits:
    max_drawdown: 0.1
    daily_loss: 5000000
    max_position: {USDCOP: 1000000, "*": 10}
    max_open_positions: 3
    min_win_ratio: 0.45
    min_trades: 50
  reconciliation: {interval: 30s, stale_position_after: 2d, orphan_window: 12h}
"""


def test_full_desk_section_is_read_into_the_frozen_model():
    config = parse_config(FULL, "desk.yaml")
    desk = config.desk
    assert desk.timezone == "America/New_York"
    assert desk.sessions[0] == ((570, 960),)
    assert desk.sessions[1] == ((0, 120), (1320, 1440))
    assert desk.sessions[2:] == ((),) * 5  # days not listed are closed
    assert desk.holidays == (date(2025, 7, 4), date(2025, 12, 25))
    assert desk.clock_tolerance == 0.5
    assert desk.signal_cadence == (("USDCOP", 300.0), ("EURUSD", 30.0))
    assert (desk.financial_metrics_cadence, desk.overdue_factor) == (60.0, 2.5)
    limits = desk.limits
    assert (limits.max_drawdown, limits.daily_loss) == (0.1, 5_000_000.0)
    assert limits.max_position == (("USDCOP", 1_000_000.0), ("*", 10.0))
    assert (limits.max_open_positions, limits.min_win_ratio, limits.min_trades) == (3, 0.45, 50)
    assert (desk.reconciliation.interval, desk.reconciliation.stale_position_after,
            desk.reconciliation.orphan_window) == (30.0, 172800.0, 43200.0)
    assert [s.during for s in config.services] == ["session", "always"]


def test_without_a_desk_section_the_spot_session_is_the_default():
    desk = parse_config("services: []\n").desk
    assert desk == DeskConfig()
    assert desk.timezone == "America/Bogota"
    assert desk.sessions == (((480, 780),),) * 5 + ((), ())  # Mon-Fri 08:00-13:00
    assert desk.limits.max_drawdown is None and desk.signal_cadence == ()


def test_a_max_position_number_applies_to_every_symbol():
    desk = parse_config("services: []\ndesk: {limits: {max_position: 250000}}\n").desk
    assert desk.limits.max_position == (("*", 250000.0),)


BAD = {
    "desk: 5": ":2: field 'desk': expected a mapping, got number 5",
    "desk: {tz: UTC}": ":2: field 'desk.tz': unknown field",
    "desk: {timezone: Mars/Olympus}":
        ":2: field 'desk.timezone': unknown time zone 'Mars/Olympus': expected an IANA name like America/Bogota",
    "desk: {timezone: ../../etc/passwd}":
        ":2: field 'desk.timezone': invalid time zone '../../etc/passwd': expected an IANA name like America/Bogota",
    "desk: {sessions: {monday: []}}": ":2: field 'desk.sessions.monday': unknown field (did you mean 'mon'?)",
    'desk: {sessions: {mon: ["13:00-08:00"]}}':
        ":2: field 'desk.sessions.mon[0]': invalid session '13:00-08:00': it must end after it starts "
        "(split a session over midnight into two days, ending at 24:00)",
    'desk: {sessions: {mon: ["8:00-13:00"]}}':
        ":2: field 'desk.sessions.mon[0]': invalid session '8:00-13:00': expected \"HH:MM-HH:MM\" (24-hour, end up to 24:00)",
    'desk: {sessions: {mon: ["08:00-24:30"]}}':
        ":2: field 'desk.sessions.mon[0]': invalid session '08:00-24:30': expected \"HH:MM-HH:MM\" (24-hour, end up to 24:00)",
    'desk: {sessions: {mon: ["08:00-13:00", "12:00-14:00"]}}':
        ":2: field 'desk.sessions.mon': sessions overlap: 08:00-13:00 and one starting 12:00",
    "desk: {sessions: {mon: [480]}}":
        ":2: field 'desk.sessions.mon[0]': expected a quoted \"HH:MM-HH:MM\" string, got number 480",
    "desk: {sessions: {mon: 08:00-13:00}}":
        ":2: field 'desk.sessions.mon': expected a list like [\"08:00-13:00\"], got string '08:00-13:00'",
    "desk: {holidays: [2025-02-30]}": ":2: field 'desk.holidays[0]': invalid date '2025-02-30': expected YYYY-MM-DD",
    "desk: {holidays: [20250101]}": ":2: field 'desk.holidays[0]': expected a date like 2025-01-01, got number 20250101",
    'desk: {holidays: [2025-01-01, "2025-01-01"]}':
        ":2: field 'desk.holidays[1]': duplicate holiday 2025-01-01 (first at holidays[0])",
    "desk: {clock_tolerance: 2}":
        ":2: field 'desk.clock_tolerance': expected a duration like 30s, got number 2",
    "desk: {freshness: {signal_cadence: {usdcop: 5m}}}":
        ":2: field 'desk.freshness.signal_cadence.usdcop': invalid symbol: expected ^[A-Z0-9]{3,12}$",
    "desk: {freshness: {overdue_factor: 0.5}}":
        ":2: field 'desk.freshness.overdue_factor': must be at least 1 and at most 100, got 0.5",
    "desk: {limits: {max_drawdown: 1.5}}":
        ":2: field 'desk.limits.max_drawdown': must be more than 0 and at most 1, got 1.5",
    "desk: {limits: {max_drawdown: yes}}": ":2: field 'desk.limits.max_drawdown': expected a number, got boolean yes",
    "desk: {limits: {daily_loss: 0x10}}": ":2: field 'desk.limits.daily_loss': expected a decimal number, got 0x10",
    "desk: {limits: {daily_loss: -5}}":
        ":2: field 'desk.limits.daily_loss': must be more than 0 and at most 1e+18, got -5",
    'desk: {limits: {daily_loss: ".nan"}}': ":2: field 'desk.limits.daily_loss': expected a number, got string '.nan'",
    "desk: {limits: {max_position: {usd: 5}}}":
        ":2: field 'desk.limits.max_position.usd': invalid symbol: expected ^[A-Z0-9]{3,12}$ or \"*\" for every other symbol",
    "desk: {limits: {max_position: {}}}":
        ":2: field 'desk.limits.max_position': must not be empty (remove it to watch no position)",
    "desk: {limits: {max_open_positions: 0}}":
        ":2: field 'desk.limits.max_open_positions': must be between 1 and 100000, got 0",
    "desk: {reconciliation: {interval: 100ms}}": ":2: field 'desk.reconciliation.interval': must be at least 1s",
    "desk: {reconciliation: {every: 1m}}":
        ":2: field 'desk.reconciliation.every': unknown field",
}


@pytest.mark.parametrize("text", sorted(BAD))
def test_bad_desk_section_fails_with_its_message(text):
    with pytest.raises(ConfigError) as info:
        parse_config("services: []\n" + text + "\n", "desk.yaml")
    assert str(info.value) == "desk.yaml" + BAD[text]


@pytest.mark.parametrize(("during", "message"), [
    ("never", "field 'during': invalid value 'never': expected one of always, session"),
    ("true", "field 'during': expected a string, got boolean true; quote it"),
])
def test_bad_during_names_the_service(during, message):
    text = f"services:\n  - name: api\n    url: http://127.0.0.1:1/h\n    during: {during}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "s.yaml")
    assert str(info.value) == f"s.yaml:4: service 'api': {message}"


def test_during_cannot_be_smuggled_in_as_a_label():
    text = "services:\n  - name: api\n    url: http://127.0.0.1:1/h\n    labels: {during: session}\n"
    with pytest.raises(ConfigError, match="label name is reserved: set the service's during: field"):
        parse_config(text, "s.yaml")


def test_desk_values_may_come_from_the_environment():
    text = 'services: []\ndesk: {timezone: "${DESK_TZ}", limits: {daily_loss: "${LOSS:-1000}"}}\n'
    desk = parse_config(text, environ={"DESK_TZ": "Europe/London"}).desk
    assert desk.timezone == "Europe/London" and desk.limits.daily_loss == 1000.0
