"""Agent state intervals."""
from __future__ import annotations

import pytest

from analytics.agents import AgentTracker, OpenState
from analytics.scenario import S, Scenario, us

pytestmark = pytest.mark.analytics

T0 = us("2026-11-22T08:00:00+07:00")


def _day():
    s = Scenario("beta")
    a = [s.agent(T0, "agent-1", "available", "logged_out"),
         s.agent(T0 + 60 * S, "agent-1", "on_call", "available", call_id="c1"),
         s.agent(T0 + 360 * S, "agent-1", "wrap_up", "on_call", call_id="c1"),
         s.agent(T0 + 390 * S, "agent-1", "available", "wrap_up"),
         s.agent(T0 + 400 * S, "agent-1", "paused", "available")]
    return a


def test_intervals_close_on_the_next_state_and_name_the_call_they_end():
    tracker = AgentTracker()
    out = [tracker.apply(e) for e in _day()]
    rows = [r for rs, _ in out for r in rs]
    assert [(r["state"], (r["end_us"] - r["start_us"]) // S, r["call_id"]) for r in rows] == [
        ("available", 60, ""), ("on_call", 300, "c1"), ("wrap_up", 30, "c1"),
        ("available", 10, "")]
    assert [c for _, c in out] == [None, None, "c1", "c1", None]
    assert tracker.current[("beta", "agent-1")].state == "paused"


def test_duplicates_and_late_events_write_nothing_twice():
    tracker = AgentTracker()
    events = _day()
    rows = [r for e in events for r in tracker.apply(e)[0]]
    again = [r for e in events for r in tracker.apply(e)[0]]
    assert len(rows) == 4 and again == []
    assert tracker.late_events == 4


def test_restored_agent_skips_intervals_already_written():
    events = _day()
    tracker = AgentTracker()
    tracker.restore(("beta", "agent-1"), OpenState.of(events[1]),
                    written_up_to_us=events[2].occurred_at)
    rows = [r for e in events[2:] for r in tracker.apply(e)[0]]
    # on_call (started at events[1]) was written before; wrap_up (events[2]) was too.
    assert [r["state"] for r in rows] == ["available"]
