"""`tongdai bench freshness`: how samples are matched to the screen and to Kafka records."""
from __future__ import annotations

import pytest

from deploy.bench import check_units
from deploy.benchmarks.freshness import (GOAL_P95_MS, STAGES, Sample, figures_of, screen_ms,
                                         stage_marks)

pytestmark = pytest.mark.contract
T0 = 1_800_000_000_000  # ms


def env(type_: str, call_id: str | None = None, **payload) -> dict:
    return {"type": type_, "call_id": call_id, "tenant": "t", "payload": payload}


def view(calls=(), agents=()) -> dict:
    return env("live_state_published", calls=[{"call_id": c} for c in calls],
               agents=[{"agent_id": a, "state": s} for a, s in agents])


def test_a_call_is_timed_from_its_park_to_the_frame_after_its_row_appeared():
    sample = Sample("call_waiting", T0 * 1000, call_id="c1", number="0912345678")
    page = {"rows": {"12345678": [T0 + 900, T0 + 910]}, "gone": {}, "agents": []}
    records = [
        ("live", T0 - 500, view()),  # before the event: never matches
        ("in", T0 + 20, env("channel_parked", "c1", offer_id="o1")),  # an agent leg: not it
        ("in", T0 + 30, env("channel_parked", "c1")),
        ("fact", T0 + 60, env("call_enqueued", "c1")),
        ("live", T0 + 400, view(calls=["c0"])),
        ("live", T0 + 800, view(calls=["c0", "c1"])),
    ]
    assert screen_ms(sample, page) == T0 + 910
    assert stage_marks(sample, records) == {"ingested": T0 + 30, "routed": T0 + 60,
                                            "published": T0 + 800}
    f = figures_of([sample], page, records)
    assert f["call_waiting_p95_ms"] == 910 and f["call_waiting_samples_count"] == 1
    assert f["call_waiting_traced_count"] == 1
    stages = [f[f"call_waiting_{st}_p50_ms"] for st in STAGES]
    assert stages == [30, 30, 740, 100, 10] and sum(stages) == 910
    assert f["kinds_meeting_goal_count"] == f["kinds_count"] == 1
    assert check_units(f) == []


def test_an_agent_change_matches_the_first_tile_state_after_it():
    at = T0 + 5000
    sample = Sample("agent_registration", at * 1000, agent_id="r1", extension="3000",
                    state="offline")
    page = {"rows": {}, "gone": {}, "agents": [
        ["r1", "offline", "", T0 + 100, T0 + 110],  # an earlier change of the same kind
        ["r1", "available", "", T0 + 2000, T0 + 2010],
        ["r2", "offline", "", at + 300, at + 310],  # another agent
        ["r1", "offline", "", at + 700, at + 716],
    ]}
    assert screen_ms(sample, page) == at + 716
    records = [("in", at + 5, env("sip_registered", extension="3000")),
               ("in", at + 6, env("sip_unregistered", extension="3000")),
               ("fact", at + 50, env("agent_state_changed", agent_id="r1", state="offline")),
               ("live", at + 600, view(agents=[("r1", "offline")]))]
    assert stage_marks(sample, records) == {"ingested": at + 6, "routed": at + 50,
                                            "published": at + 600}


def test_a_sample_never_shown_is_missed_and_fails_the_goal():
    shown = [Sample("call_gone", (T0 + i) * 1000, call_id=f"c{i}", number=f"090000000{i}")
             for i in range(10)]
    page = {"rows": {}, "agents": [],
            "gone": {f"0000000{i}"[-8:]: [T0 + i + 300, T0 + i + 310] for i in range(9)}}
    f = figures_of(shown, page, [])
    assert f["call_gone_samples_count"] == 10 and f["call_gone_missed_count"] == 1
    assert f["call_gone_p95_ms"] == 310 < GOAL_P95_MS
    assert f["call_gone_under_goal_pct"] == 90.0
    assert f["kinds_meeting_goal_count"] == 0 and f["kinds_count"] == 1


def test_samples_on_the_way_while_another_workers_view_is_newest_are_left_out():
    def live(ts: float, source: str, calls=()) -> tuple[str, float, dict]:
        return ("live", ts, {**view(calls=calls), "source": source})

    early = Sample("call_waiting", T0 * 1000, call_id="c1", number="0900000001")
    late = Sample("call_waiting", (T0 + 3000) * 1000, call_id="c2", number="0900000002")
    page = {"rows": {"00000001": [T0 + 500, T0 + 505], "00000002": [T0 + 3500, T0 + 3505]},
            "gone": {}, "agents": []}
    records = [live(T0 + 400, "ours", ["c1"]),
               live(T0 + 1000, "theirs"),  # newest until ours at T0 + 1200
               live(T0 + 1200, "ours", ["c1"]),
               live(T0 + 3400, "ours", ["c1", "c2"]),
               live(T0 + 3450, "theirs")]  # newest after c2 was published, before it showed
    f = figures_of([early, late], page, records, own="ours")
    assert f["call_waiting_excluded_count"] == 1 and f["call_waiting_samples_count"] == 1
    assert f["call_waiting_p95_ms"] == 505
    assert figures_of([early, late], page, records)["call_waiting_samples_count"] == 2


def test_another_workers_view_that_agrees_with_ours_changes_nothing():
    sample = Sample("call_waiting", T0 * 1000, call_id="c1", number="0900000001")
    page = {"rows": {"00000001": [T0 + 900, T0 + 905]}, "gone": {}, "agents": []}
    records = [("live", T0 + 300, {**view(calls=[]), "source": "ours"}),
               ("live", T0 + 500, {**view(calls=["c1"]), "source": "twin"}),  # = our next
               ("live", T0 + 880, {**view(calls=["c1"]), "source": "ours"})]
    f = figures_of([sample], page, records, own="ours")
    assert f["call_waiting_excluded_count"] == 0 and f["call_waiting_samples_count"] == 1
