"""The call-log fold: cases by hand, and invariants (order, duplicates) by Hypothesis."""
from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.cdr import (_HANGUP_TYPES, CALLBACK_STATES, CDR_COLUMNS, DISPOSITIONS,
                           VISIT_COLUMNS, fold_call)
from routing.contract import Envelope
from analytics.scenario import S, Scenario, random_calls, us
from routing.contract.schemas import RecordSchema

pytestmark = pytest.mark.analytics

T0 = us("2026-11-22T09:00:00+07:00")


def events_of(s: Scenario, call_id: str, agent: str | None = None):
    return [e for e in s.events if e.call_id == call_id or (
        agent and e.type == "agent_state_changed" and e.payload["agent_id"] == agent)]


def test_answered_queue_call_has_every_field():
    s = Scenario()
    s.queue_call("c", T0, "support", "+84911", wait_s=12, ring_s=3, talk_s=100, hold_s=20,
                 wrap_s=15, rna_agents=("agent-3",), ivr_path="1>2")
    f = fold_call(events_of(s, "c", "agent-7"))
    c = f.cdr
    assert set(c) == set(CDR_COLUMNS)
    assert (c["direction"], c["queue"], c["agent_id"], c["extension"]) == (
        "inbound", "support", "agent-7", "1007")
    assert (c["wait_ms"], c["ring_ms"], c["talk_ms"], c["hold_ms"], c["wrap_ms"]) == (
        12000, 3000, 100000, 20000, 15000)
    assert (c["enqueue_us"], c["start_us"]) == (T0 + 2 * S, T0)
    assert c["answer_us"] == T0 + 14 * S and c["end_us"] == T0 + 134 * S
    assert (c["offers"], c["ring_no_answer"], c["ivr_path"], c["disposition"]) == (
        2, 1, "1>2", "answered")
    assert c["final"] == 1 and c["recording"].endswith("/c.wav")
    (v,) = f.visits
    assert set(v) == set(VISIT_COLUMNS)
    assert (v["outcome"], v["wait_ms"], v["talk_ms"], v["wrap_ms"]) == ("answered", 12000,
                                                                         100000, 15000)


def test_not_final_until_the_agent_leaves_wrap_up():
    s = Scenario()
    s.queue_call("c", T0, "support", "+84911", wrap_s=30)
    without_wrap_end = [e for e in events_of(s, "c", "agent-7")
                        if not (e.type == "agent_state_changed"
                                and e.payload["state"] == "available")]
    assert fold_call(without_wrap_end).cdr["final"] == 0
    assert fold_call(events_of(s, "c", "agent-7")).cdr["final"] == 1


@pytest.mark.parametrize("wait_s, short, expected", [
    (3, True, "short_abandoned"), (40, False, "abandoned"), (4, None, "short_abandoned"),
])
def test_abandons(wait_s, short, expected):
    s = Scenario()
    s.queue_call("c", T0, "support", "+84911", wait_s=wait_s, abandon=True, short=short)
    f = fold_call(events_of(s, "c"))
    assert f.cdr["disposition"] == expected
    assert f.visits[0]["outcome"] == "abandoned" and f.cdr["final"] == 1


def test_hangup_in_queue_without_router_verdict_uses_the_threshold():
    s = Scenario()
    s.queue_call("c", T0, "support", "+84911", wait_s=3, abandon=True)
    evs = [e for e in events_of(s, "c") if e.type != "call_abandoned"]
    f = fold_call(evs, short_abandon_ms=5000)
    assert f.cdr["disposition"] == "short_abandoned" and f.visits[0]["wait_ms"] == 3000
    assert fold_call(evs, short_abandon_ms=2000).cdr["disposition"] == "abandoned"


def test_overflow_to_voicemail_and_to_another_queue():
    s = Scenario()
    s.queue_call("vm", T0, "support", "+84911", overflow_to=("voicemail", "vm-1"),
                 overflow_after_s=90)
    s.queue_call("q", T0, "support", "+84912", overflow_to=("queue", "sales"),
                 overflow_after_s=60, wait_s=8, agent_id="agent-9")
    vm = fold_call(events_of(s, "vm"))
    assert vm.cdr["disposition"] == "voicemail"
    assert [(v["queue"], v["outcome"], v["wait_ms"]) for v in vm.visits] == [
        ("support", "overflowed", 90000)]
    q = fold_call(events_of(s, "q"))
    assert q.cdr["disposition"] == "answered" and q.cdr["queue"] == "sales"
    assert [(v["queue"], v["outcome"], v["wait_ms"]) for v in q.visits] == [
        ("support", "overflowed", 60000), ("sales", "answered", 8000)]
    assert q.cdr["wait_ms"] == 68000 and "overflow support->queue:sales" in q.cdr["notes"]


def test_bridge_without_the_routers_answer_still_answers_the_visit():
    s = Scenario()
    s.queue_call("c", T0, "support", "+84911", wait_s=10, ring_s=2)
    evs = [e for e in events_of(s, "c") if e.type != "call_answered"]
    f = fold_call(evs)
    assert f.cdr["disposition"] == "answered" and f.cdr["agent_id"] == "agent-7"
    # Until the bridge (the scenario's agent picks up 20 ms before it).
    assert f.visits[0]["wait_ms"] == 10000 and f.cdr["answer_us"] == T0 + 12 * S


def test_a_bridge_whose_event_was_lost_is_told_by_the_hangup():
    """No ESL client was connected when the agent answered and the switch bridged (and the
    router, which heard nothing either, never said answered): the caller's hangup still says
    when it was bridged and to which leg, as FreeSWITCH's hangup headers do."""
    s = Scenario()
    s.queue_call("c", T0, "support", "+84911", wait_s=10, ring_s=2, talk_s=30)
    offer = next(e.payload["offer_id"] for e in s.events if e.type == "call_offered")
    lost = {"channel_bridged", "call_answered", "call_ended", "agent_state_changed"}
    evs = [e for e in events_of(s, "c") if e.type not in lost
           and not (e.type == "channel_answered" and e.payload["leg_id"] == offer)]
    assert fold_call(evs).cdr["disposition"] != "answered"  # what the events alone say
    plain = next(e for e in evs if e.type == "channel_hangup_completed")
    told = {**plain.payload["headers"], "Caller-Channel-Bridged-Time": str(T0 + 12 * S),
            "variable_last_bridge_to": offer}
    hangup = dataclasses.replace(plain, payload={**plain.payload, "headers": told})
    c = fold_call([hangup if e is plain else e for e in evs]).cdr
    assert (c["disposition"], c["agent_id"]) == ("answered", "agent-7")
    assert c["answer_us"] == T0 + 12 * S and c["talk_ms"] == 30000
    # told by both the bridge event and the hangup: one bridge, the same row
    everything = events_of(s, "c", "agent-7")
    assert fold_call([hangup if e is plain else e for e in everything]).cdr == \
        fold_call(everything).cdr


def test_a_caller_who_vanished_unheard_gets_a_final_row():
    """The caller hung up while no bridge was connected: the bridge, back, told the leg
    vanished, dated when the node was last heard from."""
    s = Scenario()
    s.queue_call("c", T0, "support", "+84911", wait_s=19, abandon=True, short=False)
    evs = [e for e in events_of(s, "c") if e.type not in _HANGUP_TYPES + ("call_abandoned",)]
    assert not fold_call(evs).final
    gone = Envelope("v-c", "channel_vanished", 1, T0 + 21 * S, "acme", "node", None, "c",
                    {"leg_id": "c", "leg": "a", "offer_id": None, "extension": None,
                     "last_heard_us": T0 + 21 * S, "noticed_us": T0 + 26 * S})
    f = fold_call(evs + [gone])
    assert f.final and f.cdr["end_us"] == T0 + 21 * S
    assert f.cdr["disposition"] in ("abandoned", "short_abandon")


def test_the_routers_corrections_of_a_call_are_on_its_row():
    s = Scenario()
    s.queue_call("c", T0, "support", "+84911", wait_s=10, ring_s=2)
    offer = next(e.payload["offer_id"] for e in s.events if e.type == "call_offered")

    def fix(what: str, action: str, call_id: str) -> Envelope:
        return Envelope(f"fix-{what}-{call_id}", "state_corrected", 1, T0 + 12 * S, "acme",
                        "router", None, call_id, {"node": "n1", "what": what, "action": action,
                                                  "agent_id": "agent-7", "leg_id": offer,
                                                  "detail": "told by the snapshot"})

    assert fold_call(events_of(s, "c")).cdr["corrections"] == ""
    c = fold_call(events_of(s, "c") + [fix("offer_bridged_unseen", "connected", "c")]).cdr
    assert c["corrections"] == "offer_bridged_unseen->connected"
    assert c["disposition"] == "answered"
    # a correction alone names no call of its own: no row
    assert fold_call([fix("agent_leg_orphaned", "hung_up", "gone")]).cdr is None


@pytest.mark.parametrize("after, cause, direction, expected", [
    (5, "NORMAL_CLEARING", "internal", "answered"),
    (None, "USER_BUSY", "outbound", "busy"),
    (None, "NO_ANSWER", "outbound", "no_answer"),
    (None, "ORIGINATOR_CANCEL", "inbound", "no_answer"),
    (None, "NORMAL_TEMPORARY_FAILURE", "outbound", "failed"),
])
def test_plain_calls(after, cause, direction, expected):
    s = Scenario()
    s.plain_call("p", T0, "1001", "1002", direction, answered_after_s=after, talk_s=30,
                 cause=cause)
    c = fold_call(events_of(s, "p")).cdr
    assert (c["disposition"], c["direction"], c["hangup_cause"]) == (expected, direction, cause)
    assert c["queue"] == "" and c["queues_visited"] == 0
    if after:
        assert c["talk_ms"] == 30000 and c["answer_us"] == T0 + 5 * S


def test_in_progress_call_and_open_hold():
    s = Scenario()
    s.queue_call("c", T0, "support", "+84911", wait_s=10, talk_s=60, hold_s=0)
    first = [e for e in events_of(s, "c") if e.occurred_at <= T0 + 20 * S]
    assert fold_call(first).cdr["disposition"] == "answered"
    assert fold_call(first).cdr["final"] == 0 and fold_call(first).cdr["end_us"] == 0
    only_fs = [e for e in first if e.source != "router" and e.payload.get("leg") == "a"][:2]
    assert fold_call(only_fs).cdr["disposition"] == "in_progress"
    # A hold never released lasts until the hangup.
    s2 = Scenario()
    s2.queue_call("h", T0, "support", "+84911", wait_s=10, talk_s=60)
    s2.fs("channel_held", T0 + 52 * S, "h")
    assert fold_call(events_of(s2, "h")).cdr["hold_ms"] == 20000


def test_transfers_are_counted_by_new_bridged_legs():
    s = Scenario()
    t = s.queue_call("c", T0, "support", "+84911")
    s.fs("channel_bridged", t["answer"] + 10 * S, "c", other_leg_id="leg-x")
    s.fs("channel_bridged", t["answer"] + 20 * S, "c", other_leg_id="leg-y")
    assert fold_call(events_of(s, "c")).cdr["transfers"] == 2


def test_generated_envelopes_follow_the_contract():
    s = Scenario()
    random_calls(s, 60, T0, random.Random(3))
    schema = RecordSchema()
    bad = [(e.type, err) for e in s.events if (err := schema.validate(e.to_dict()))]
    assert bad == []


def _calls():
    s = Scenario()
    random_calls(s, 40, T0, random.Random(9), agents=40)
    for i, attempts in enumerate((("answer",), ("busy", "answer"), ("no_answer", "busy", "busy"))):
        # callbacks: the caller leaves the line, an agent's leg dials the customer back
        s.callback_call(f"callback-{i}", T0 + i * 100 * S, "support", f"+8491200000{i}",
                        attempts=attempts, agent_id=f"agent-{60 + i}")
    by_call: dict[str, list] = {}
    for e in s.events:
        if e.call_id:
            by_call.setdefault(e.call_id, []).append(e)
    return list(by_call.values())


CALLS = _calls()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(CALLS), st.randoms(use_true_random=False), st.integers(0, 5))
def test_fold_ignores_order_and_duplicates(events, rnd, dups):
    expected = fold_call(events)
    shuffled = list(events) + [rnd.choice(events) for _ in range(dups)]
    rnd.shuffle(shuffled)
    assert fold_call(shuffled) == expected


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(CALLS), st.integers(1, 80))
def test_every_prefix_folds_to_a_consistent_row(events, n):
    """A call seen partly (events still to come) gives a row whose numbers make sense."""
    c = fold_call(sorted(events, key=lambda e: e.occurred_at)[:n]).cdr
    assert c["disposition"] in DISPOSITIONS and c["callback"] in CALLBACK_STATES
    assert min(c[k] for k in ("wait_ms", "ring_ms", "talk_ms", "hold_ms", "wrap_ms")) >= 0
    if c["final"]:
        assert c["end_us"] >= c["start_us"]
        assert c["disposition"] not in ("in_progress", "callback")
    if c["answer_us"] and c["end_us"]:
        assert c["talk_ms"] + c["hold_ms"] == (c["end_us"] - c["answer_us"]) // 1000


def test_queue_call_known_only_from_freeswitch_gets_its_queue_fields():
    """The router is not running: the park is the enqueue, the bridge the answer."""
    s = Scenario()
    s.queue_call("a", T0, "support", "+84911", wait_s=10, ring_s=2, talk_s=50)
    s.queue_call("b", T0, "sales", "+84912", wait_s=4, abandon=True)
    a = fold_call([e for e in events_of(s, "a") if e.source != "router"])
    assert (a.cdr["disposition"], a.cdr["queue"], a.visits[0]["outcome"]) == (
        "answered", "support", "answered")
    assert a.cdr["wait_ms"] == 10000 and a.cdr["enqueue_us"] == T0 + 2 * S
    b = fold_call([e for e in events_of(s, "b") if e.source != "router"])
    assert (b.cdr["disposition"], b.visits[0]["wait_ms"]) == ("short_abandoned", 4000)
