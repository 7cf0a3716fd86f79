"""Time in Asia/Ho_Chi_Minh, schedules, holidays, DIDs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from routing import (
    US,
    Action,
    ActionKind,
    Agent,
    Did,
    DidKind,
    LocalTime,
    Membership,
    Penalty,
    Queue,
    Schedule,
    SkillReq,
    local_time,
    tet_holidays,
)

pytestmark = pytest.mark.routing


def utc(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.timezone.utc).timestamp()) * US


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (utc(2026, 6, 1, 3, 0), LocalTime(0, 600, "2026-06-01")),  # Mon 10:00
        (utc(2026, 6, 1, 16, 59), LocalTime(0, 1439, "2026-06-01")),  # Mon 23:59
        (utc(2026, 6, 1, 17, 0), LocalTime(1, 0, "2026-06-02")),  # UTC Monday, local Tuesday
        (utc(2026, 2, 16, 17, 0), LocalTime(1, 0, "2026-02-17")),  # mùng 1 Tết 2026 begins
        (utc(1970, 1, 1, 0, 0), LocalTime(3, 420, "1970-01-01")),  # a Thursday, 07:00
    ],
)
def test_local_time_is_utc_plus_seven(instant: int, expected: LocalTime) -> None:
    assert local_time(instant) == expected


def test_local_time_agrees_with_datetime_over_a_year() -> None:
    tz = dt.timezone(dt.timedelta(hours=7))
    for hours in range(0, 24 * 366, 7):
        t = utc(2026, 1, 1, 0, 0) + hours * 3600 * US + 1234
        d = dt.datetime.fromtimestamp(t / US, tz)
        assert local_time(t) == LocalTime(d.weekday(), d.hour * 60 + d.minute, d.date().isoformat())


@pytest.mark.parametrize(
    ("t", "open_"),
    [
        (LocalTime(0, 479, "2026-06-01"), False),
        (LocalTime(0, 480, "2026-06-01"), True),
        (LocalTime(0, 719, "2026-06-01"), True),
        (LocalTime(0, 720, "2026-06-01"), False),  # lunch break
        (LocalTime(0, 810, "2026-06-01"), True),
        (LocalTime(5, 600, "2026-06-06"), True),  # Saturday morning
        (LocalTime(5, 810, "2026-06-06"), False),
        (LocalTime(6, 600, "2026-06-07"), False),  # Sunday
        (LocalTime(1, 600, "2026-02-17"), False),  # Tết
        (LocalTime(3, 600, "2026-09-02"), False),  # National Day
    ],
)
def test_schedule_with_lunch_break_saturday_and_holidays(t: LocalTime, open_: bool) -> None:
    weekday = ((480, 720), (810, 1050))
    sched = Schedule(id="office", hours={**{d: weekday for d in range(5)}, 5: ((480, 720),)},
                     holidays=tet_holidays(2026) | {"2026-09-02"})
    assert sched.is_open(t) is open_


def test_always_and_weekly_builders() -> None:
    assert Schedule.always().is_open(LocalTime(6, 0, "2026-01-04"))
    s = Schedule.weekly("08:30", "17:00")
    assert s.hours[0] == ((510, 1020),) and 5 not in s.hours


def test_tet_holidays_window() -> None:
    assert tet_holidays(2025) == frozenset(
        (dt.date(2025, 1, 29) + dt.timedelta(days=d)).isoformat() for d in range(-1, 5))
    assert len(tet_holidays(2027, days_before=2, days_after=5)) == 8
    with pytest.raises(KeyError):
        tet_holidays(1999)


@pytest.mark.parametrize(
    ("kind", "inbound_only"),
    [(DidKind.TOLL_FREE, True), (DidKind.PREMIUM, True), (DidKind.GEOGRAPHIC, False)],
)
def test_did_direction(kind: str, inbound_only: bool) -> None:
    assert Did("18001234", "t", kind=kind).inbound_only is inbound_only


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: Agent("a1", "t", skills={"billing": 11}), "proficiency of 'billing' must be 1–10"),
        (lambda: Agent("a1", "t", skills={"billing": 0}), "must be 1–10"),
        (lambda: Agent("a1", "t", max_concurrent=0), "max_concurrent"),
        (lambda: SkillReq("billing", 0), "min_level must be 1–10"),
        (lambda: Queue("q", "t", strategy="fastest"), "strategy must be one of"),
        (lambda: Queue("q", "t", offer_timeout_s=0), "offer_timeout_s"),
        (lambda: Queue("q", "t", max_wait_s=-1), "max_wait_s must be ≥ 0"),
        (lambda: Queue("q", "t", aging_s=0), "aging_s"),
        (lambda: Action("teleport"), "Action.kind"),
        (lambda: Action(ActionKind.QUEUE), "target is required"),
        (lambda: Penalty(-1, 0), "Penalty"),
        (lambda: Membership(level=0), "level"),
        (lambda: Schedule(hours={7: ((0, 60),)}), "weekday"),
        (lambda: Schedule(hours={0: ((600, 500),)}), "start < end"),
    ],
)
def test_bad_configuration_is_refused_with_the_field_and_rule(build: Any, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        build()
