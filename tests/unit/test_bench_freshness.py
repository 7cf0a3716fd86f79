"""`tongdai bench freshness`: how samples are matched to the screen and to Kafka records."""
from __future__ import annotations

import pytest

from deploy.bench import check_units
from deploy.benchmarks.freshness import (GOAL_P95_MS, STAGES, Sample, figures_of, shown,
                                         stage_marks)

pytestmark = pytest.mark.contract
T0 = 1_800_000_000_000  # ms


def env(type_: str, call_id: str | None = None, **payload) -> dict:
    return {"type": type_, "call_id": call_id, "tenant": "t", "payload": payload}


def live(ts: float, source: str = "ours", calls=(), agents=()) -> tuple[str, float, dict]:
    """A live view published at `ts` (its as_of_us is the same moment)."""
    view = env("live_state_published", as_of_us=int(ts * 1000),
               calls=[{"call_id": c} for c in calls],
               agents=[{"agent_id": a, "state": s} for a, s in agents])
    return ("live", ts, {**view, "source": source})


def as_of(ts: float) -> str:
    return str(int(ts * 1000))  # as the page keeps it (document.body.dataset.asOf)


def test_a_call_is_timed_from_its_park_to_the_frame_after_its_row_appeared():
    sample = Sample("call_waiting", T0 * 1000, call_id="c1", number="0912345678")
    page = {"rows": {"12345678": [as_of(T0 + 800), T0 + 900, T0 + 910]}, "gone": {},
            "agents": []}
    records = [
        live(T0 - 500),  # before the event: never matches
        ("in", T0 + 20, env("channel_parked", "c1", offer_id="o1")),  # an agent leg: not it
        ("in", T0 + 30, env("channel_parked", "c1")),
        ("fact", T0 + 60, env("call_enqueued", "c1")),
        live(T0 + 400, calls=["c0"]),
        live(T0 + 800, calls=["c0", "c1"]),
    ]
    assert shown(sample, page) == (int(as_of(T0 + 800)), T0 + 900, T0 + 910)
    assert stage_marks(sample, records) == {"ingested": T0 + 30, "routed": T0 + 60,
                                            "published": T0 + 800,
                                            "as_of_us": int(as_of(T0 + 800))}
    f = figures_of([sample], page, records, own="ours")
    assert f["call_waiting_p95_ms"] == 910 and f["call_waiting_samples_count"] == 1
    assert f["call_waiting_traced_count"] == 1 and f["call_waiting_excluded_count"] == 0
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
        ["r1", "offline", as_of(at + 600), at + 700, at + 716],
    ]}
    assert shown(sample, page) == (int(as_of(at + 600)), at + 700, at + 716)
    records = [("in", at + 5, env("sip_registered", extension="3000")),
               ("in", at + 6, env("sip_unregistered", extension="3000")),
               ("fact", at + 50, env("agent_state_changed", agent_id="r1", state="offline")),
               live(at + 600, agents=[("r1", "offline")])]
    assert stage_marks(sample, records) == {"ingested": at + 6, "routed": at + 50,
                                            "published": at + 600,
                                            "as_of_us": int(as_of(at + 600))}


def test_a_sample_never_shown_is_missed_and_fails_the_goal():
    samples = [Sample("call_gone", (T0 + i) * 1000, call_id=f"c{i}", number=f"090000000{i}")
               for i in range(10)]
    page = {"rows": {}, "agents": [],
            "gone": {f"0000000{i}": ["", T0 + i + 300, T0 + i + 310] for i in range(9)}}
    f = figures_of(samples, page, [])
    assert f["call_gone_samples_count"] == 10 and f["call_gone_missed_count"] == 1
    assert f["call_gone_p95_ms"] == 310 < GOAL_P95_MS
    assert f["call_gone_under_goal_pct"] == 90.0
    assert f["kinds_meeting_goal_count"] == 0 and f["kinds_count"] == 1


def test_a_sample_another_workers_view_put_on_screen_is_left_out_if_ours_never_came():
    ours = Sample("call_waiting", T0 * 1000, call_id="c1", number="0900000001")
    theirs = Sample("call_waiting", (T0 + 3000) * 1000, call_id="c2", number="0900000002")
    page = {"rows": {"00000001": [as_of(T0 + 400), T0 + 500, T0 + 505],
                     "00000002": [as_of(T0 + 3200), T0 + 3300, T0 + 3305]},
            "gone": {}, "agents": []}
    records = [live(T0 + 400, calls=["c1"]),
               live(T0 + 3200, "twin", calls=["c1", "c2"]),
               live(T0 + 3400, calls=["c1", "c2"])]
    f = figures_of([ours, theirs], page, records, own="ours")
    assert f["call_waiting_excluded_count"] == 1 and f["call_waiting_samples_count"] == 1
    assert f["call_waiting_p95_ms"] == 505
    assert figures_of([ours, theirs], page, records)["call_waiting_samples_count"] == 2
    # The stages use our view: published at T0 + 3400 for c2, not the twin's.
    assert stage_marks(theirs, records, own="ours")["published"] == T0 + 3400


def test_a_sample_another_worker_showed_first_is_timed_by_the_arrival_of_ours():
    sample = Sample("agent_pause", T0 * 1000, agent_id="p1", state="paused")
    page = {"rows": {}, "gone": {},
            "agents": [["p1", "paused", as_of(T0 + 200), T0 + 250, T0 + 260]],
            "arrivals": {as_of(T0 + 200): [T0 + 240, T0 + 260],
                         as_of(T0 + 700): [T0 + 730, T0 + 745]}}
    records = [("in", T0 + 3, env("agent_pause_requested", agent_id="p1")),
               ("fact", T0 + 9, env("agent_state_changed", agent_id="p1", state="paused")),
               live(T0 + 200, "twin", agents=[("p1", "paused")]),
               live(T0 + 700, agents=[("p1", "paused")])]
    f = figures_of([sample], page, records, own="ours")
    assert f["agent_pause_timed_by_arrival_count"] == 1 and f["agent_pause_p50_ms"] == 745
    assert [f[f"agent_pause_{st}_p50_ms"] for st in STAGES] == [3, 6, 691, 30, 15]
    # Had ours never arrived (the API held a newer view), the sample is left out.
    del page["arrivals"][as_of(T0 + 700)]
    f = figures_of([sample], page, records, own="ours")
    assert f["agent_pause_excluded_count"] == 1 and f["agent_pause_samples_count"] == 0
