"""The fold on FreeSWITCH's protocol: raw events as the switch sends them (headers named and
stamped as in tests/fixtures/esl), through the bridge's normalizer, into the call log.

Flows the real captures do not hold: mod_callcenter re-offers after no answer, busy and
decline with an agent-first hangup; an ESL router's abandons while ringing, with and
without a variable tying its agent leg to the caller; an IVR abandon; a barred
click-to-call; an after-hours call; the wrap-up of a router that names no call."""
from __future__ import annotations

from dataclasses import replace

import pytest

from analytics.cdr import fold_call
from analytics.scenario import S, Scenario, us
from analytics.sink import CallLog, Record, live_rows
from esl_bridge import normalize, protocol
from tests.unit.analytics.test_call_log import MemoryStore, feed

pytestmark = pytest.mark.analytics

T0 = us("2026-11-22T09:00:00+07:00")
CORE = "core-test"


class Switch:
    """Raw FreeSWITCH events of a few legs, normalized as the bridge does."""

    def __init__(self) -> None:
        self.seq = 0
        self.legs: dict[str, dict[str, str]] = {}
        self.times: dict[str, dict[str, int]] = {}
        self.events = []

    def leg(self, uuid: str, direction: str, caller: str, callee: str, **vars_: str) -> None:
        h = {"Unique-ID": uuid, "Call-Direction": direction,
             "Caller-Caller-ID-Number": caller, "Caller-Destination-Number": callee,
             "Channel-Call-UUID": uuid, "variable_domain_name": "127.0.0.1"}
        h.update({f"variable_{k}": v for k, v in vars_.items()})
        self.legs[uuid] = h
        self.times[uuid] = {}

    def _emit(self, name: str, at: int, headers: dict[str, str]) -> None:
        self.seq += 1
        h = {"Event-Name": name, "Core-UUID": CORE, "Event-Sequence": str(self.seq),
             "Event-Date-Timestamp": str(at), **headers}
        if name.startswith("CUSTOM "):
            h["Event-Name"], h["Event-Subclass"] = "CUSTOM", name.split(" ", 1)[1]
        try:
            self.events.append(normalize.normalize(protocol.Event(h)))
        except normalize.Skipped:
            pass

    def chan(self, name: str, at: int, uuid: str, **extra: str) -> None:
        t = self.times[uuid]
        key = {"CHANNEL_CREATE": "Created", "CHANNEL_ANSWER": "Answered",
               "CHANNEL_BRIDGE": "Bridged", "CHANNEL_HANGUP_COMPLETE": "Hangup"}.get(name)
        if key:
            t.setdefault(key, at)
        stamps = {f"Caller-Channel-{k}-Time": str(v) for k, v in t.items()}
        self._emit(name, at, {**self.legs[uuid], **stamps, **extra})

    def bridge(self, at: int, a: str, b: str, name: str = "CHANNEL_BRIDGE") -> None:
        self.chan(name, at, a, **{"Bridge-A-Unique-ID": a, "Bridge-B-Unique-ID": b,
                                  "Other-Leg-Unique-ID": b, "Other-Type": "originatee"})
        if name == "CHANNEL_BRIDGE":
            # The B leg now names its originator and moves to its call (FreeSWITCH does).
            self.legs[b].update({"Other-Type": "originator", "Other-Leg-Unique-ID": a,
                                 "Channel-Call-UUID": a})

    def hangup(self, at: int, uuid: str, cause: str, disposition: str) -> None:
        self.chan("CHANNEL_HANGUP_COMPLETE", at, uuid, **{
            "Hangup-Cause": cause, "variable_sip_hangup_disposition": disposition})

    def cc(self, at: int, action: str, member: str, **h: str) -> None:
        self._emit("CUSTOM callcenter::info", at, {
            "CC-Action": action, "CC-Queue": "support@default",
            "CC-Member-Session-UUID": member, "CC-Member-UUID": "m-" + member,
            "CC-Member-CID-Number": "1020", **h})


def ms(seconds: float) -> int:
    return T0 + int(seconds * S)


def test_mod_callcenter_re_offers_and_an_agent_first_hangup():
    sw = Switch()
    m = "member-1"
    sw.leg(m, "inbound", "1020", "1901")
    sw.chan("CHANNEL_CREATE", ms(0), m)
    sw.chan("CHANNEL_ANSWER", ms(0), m)
    sw.legs[m].update(variable_cc_side="member", variable_cc_queue="support@default")
    sw.cc(ms(0.1), "member-queue-start", m)
    for i, (agent, start, end, cause, disp) in enumerate([
            ("1000", 0.2, 15.2, "NO_ANSWER", "send_cancel"),
            ("1001", 20, 21, "USER_BUSY", "recv_refuse"),
            ("1002", 26, 27, "CALL_REJECTED", "recv_refuse")]):
        leg = f"agent-leg-{i}"
        sw.cc(ms(start), "agent-offering", m, **{"CC-Agent": f"{agent}@default"})
        sw.leg(leg, "outbound", "1020", agent, cc_side="agent", cc_member_session_uuid=m,
               cc_agent=f"{agent}@default", dialed_user=agent)
        sw.chan("CHANNEL_CREATE", ms(start), leg)
        sw.hangup(ms(end), leg, cause, disp)
        sw.cc(ms(end), "bridge-agent-fail", m, **{"CC-Agent": f"{agent}@default",
                                                 "CC-Hangup-Cause": cause})
    win = "agent-leg-3"
    sw.cc(ms(32), "agent-offering", m, **{"CC-Agent": "1000@default"})
    sw.leg(win, "outbound", "1020", "1000", cc_side="agent", cc_member_session_uuid=m,
           cc_agent="1000@default", dialed_user="1000")
    sw.chan("CHANNEL_CREATE", ms(32), win)
    sw.chan("CHANNEL_ANSWER", ms(34), win)
    sw.bridge(ms(34.05), m, win)
    sw.bridge(ms(94), m, win, "CHANNEL_UNBRIDGE")
    sw.hangup(ms(94), win, "NORMAL_CLEARING", "recv_bye")  # the agent hung up
    sw.hangup(ms(94.02), m, "NORMAL_CLEARING", "send_bye")
    sw.cc(ms(94.02), "member-queue-end", m, **{"CC-Cause": "Terminated",
                                               "CC-Agent": "1000@default"})

    assert {e.call_id for e in sw.events} == {m}  # agent legs are the member's call
    f = fold_call(sw.events)
    c = f.cdr
    assert (c["disposition"], c["agent_id"], c["direction"], c["hangup_side"]) == (
        "answered", "1000", "inbound", "agent")
    assert (c["wait_ms"], c["talk_ms"], c["ring_ms"]) == (33950, 59950, 2000)
    assert [(o["agent_id"], o["result"]) for o in f.offers] == [
        ("1000", "no_answer"), ("1001", "busy"), ("1002", "declined"), ("1000", "answered")]
    assert c["offers"] == 4 and c["ring_no_answer"] == 3 and c["offer_us"] == ms(0.2)
    assert [(v["queue"], v["outcome"], v["wait_ms"]) for v in f.visits] == [
        ("support", "answered", 33950)]


def _router_call(tied: bool, wait_s: float):
    sw = Switch()
    c, leg = "caller-1", "agent-leg-1"
    sw.leg(c, "inbound", "1020", "1900")
    sw.chan("CHANNEL_CREATE", ms(0), c)
    sw.chan("CHANNEL_ANSWER", ms(0), c)
    sw.chan("CHANNEL_PARK", ms(0), c)
    extra = {"cc_caller_uuid": c} if tied else {}
    sw.leg(leg, "outbound", "1900", "1001", dialed_user="1001", **extra)
    sw.chan("CHANNEL_CREATE", ms(1), leg)
    sw.hangup(ms(wait_s), c, "NORMAL_CLEARING", "recv_bye")  # the caller gives up
    sw.hangup(ms(wait_s + 0.05), leg, "ORIGINATOR_CANCEL", "send_cancel")
    return sw, c


@pytest.mark.parametrize("wait_s, expected", [(9, "abandoned_ringing"),
                                              (3, "short_abandoned")])
def test_esl_router_abandon_while_ringing(wait_s, expected):
    sw, c = _router_call(tied=True, wait_s=wait_s)
    f = fold_call(sw.events)
    assert (f.cdr["disposition"], f.cdr["hangup_side"], f.cdr["talk_ms"]) == (
        expected, "caller", 0)
    assert [(o["agent_id"], o["result"]) for o in f.offers] == [("1001", "caller_abandoned")]
    assert f.visits[0]["outcome"] == "abandoned" and f.visits[0]["wait_ms"] == wait_s * 1000


def test_an_agent_leg_nothing_ties_to_a_caller_is_not_a_call():
    sw, c = _router_call(tied=False, wait_s=9)
    store = MemoryStore()
    feed(CallLog(store), store, sw.events)
    live = {k[1]: r for k, (_, (r, *_)) in live_rows(store.tables["calls"]).items()}
    assert list(live) == [c] and live[c]["disposition"] == "abandoned"


def test_an_esl_router_leg_joins_its_call_when_the_bridge_names_it():
    sw = Switch()
    c, leg = "caller-2", "agent-leg-2"
    sw.leg(c, "inbound", "1020", "1900")
    for name in ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_PARK"):
        sw.chan(name, ms(0), c)
    sw.leg(leg, "outbound", "1900", "1001", dialed_user="1001")  # no variable names c
    sw.chan("CHANNEL_CREATE", ms(1), leg)
    sw.chan("CHANNEL_ANSWER", ms(3), leg)
    sw.chan("CHANNEL_PARK", ms(3), leg)
    sw.bridge(ms(3.02), c, leg)
    sw.hangup(ms(63), leg, "NORMAL_CLEARING", "send_bye")
    sw.hangup(ms(63), c, "NORMAL_CLEARING", "recv_bye")
    store = MemoryStore()
    feed(CallLog(store), store, sw.events, batch=3)  # the leg is written alone first
    live = {k[1]: r for k, (_, (r, *_)) in live_rows(store.tables["calls"]).items()}
    assert list(live) == [c]
    row = live[c]
    assert (row["disposition"], row["agent_id"], row["hangup_side"]) == (
        "answered", "1001", "caller")
    assert (row["wait_ms"], row["talk_ms"], row["ring_ms"]) == (3020, 59980, 2000)
    assert set(store.net().values()) <= {0, 1} and store.net()[c] == 1
    offers = live_rows(store.tables["offers"])[("default", c)][1]
    assert [(o["agent_id"], o["result"]) for o in offers] == [("1001", "answered")]


def test_a_call_the_ivr_answered_and_the_caller_left_is_not_answered():
    sw = Switch()
    sw.leg("ivr-1", "inbound", "0903123456", "19001234")
    sw.chan("CHANNEL_CREATE", ms(0), "ivr-1")
    sw.chan("CHANNEL_ANSWER", ms(0.5), "ivr-1")
    sw.hangup(ms(20), "ivr-1", "NORMAL_CLEARING", "recv_bye")
    c = fold_call(sw.events).cdr
    assert (c["disposition"], c["talk_ms"], c["answer_us"], c["hangup_side"]) == (
        "abandoned_ivr", 0, 0, "caller")


def test_a_barred_click_to_call_failed():
    sw = Switch()
    sw.leg("c2c-1", "outbound", "0903123456", "1000", tongdai_click_to_call="1",
           tongdai_agent_id="lan", dialed_user="1000")
    sw.chan("CHANNEL_CREATE", ms(0), "c2c-1")
    sw.chan("CHANNEL_ANSWER", ms(2), "c2c-1")
    sw.hangup(ms(2.02), "c2c-1", "CALL_REJECTED", "send_bye")  # outbound rules refuse it
    c = fold_call(sw.events).cdr
    assert (c["disposition"], c["direction"], c["agent_id"], c["talk_ms"]) == (
        "failed", "outbound", "lan", 0)
    assert (c["caller"], c["callee"]) == ("1000", "+84903123456")


def test_after_hours_calls_are_closed_and_never_offered():
    s = Scenario()
    s.fs("channel_created", T0, "ah", caller="+84911", callee="19001234")
    s.fs("channel_parked", T0 + S, "ah", caller="+84911", callee="19001234")
    s.cc("call_enqueued", T0 + S, "ah", queue="billing", caller="+84911")
    s.cc("call_overflowed", T0 + S, "ah", queue="billing", action="announcement",
         target="after_hours", reason="queue billing is closed (hours, 21:00 Asia/Ho_Chi_Minh)"
         " → announcement")
    s.fs("channel_hangup_completed", T0 + 15 * S, "ah", hangup_cause="NORMAL_CLEARING")
    f = fold_call(s.events)
    assert f.cdr["disposition"] == "closed" and f.visits == () and f.cdr["queue"] == "billing"


def test_wrap_up_reaches_the_call_when_the_router_names_no_call():
    s = Scenario()
    s.agent(T0 - 60 * S, "agent-1", "available", "logged_out")
    s.queue_call("w", T0, "support", "+84922", wait_s=10, agent_id="agent-1", talk_s=60,
                 wrap_s=20)
    events = [replace(e, call_id=None) if e.type == "agent_state_changed" else e
              for e in sorted(s.events, key=lambda e: e.occurred_at)]
    store = MemoryStore()
    feed(CallLog(store), store, events, batch=5)
    (_, (row,)) = live_rows(store.tables["calls"])[("acme", "w")]
    assert (row["wrap_ms"], row["final"]) == (20000, 1)
