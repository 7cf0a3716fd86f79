"""The simulator's truth ledger on a manual clock: what callers and phones lived."""

from __future__ import annotations

import pytest

from esl_bridge.simulator import AgentSpec, CallerSpec, IvrSpec, ManualClock, Node, NumberSpec
from esl_bridge.simulator.ledger import Ledger

pytestmark = pytest.mark.bridge

DOMAIN = "127.0.0.1"


def make(**kw) -> tuple[Node, Ledger]:
    node = Node(clock=ManualClock(), seed=7, heartbeat=None)
    ledger = Ledger(node, **kw)
    node.start()
    for ext, spec in {"1000": {}, "1001": {"answer": "no_answer"}, "1002": {"answer": "busy"},
                      "1003": {"answer": "reject", "answer_delay": 0.5},
                      "1004": {"answer_delay": 2.0}}.items():
        node.add_agent(AgentSpec(ext=ext, **spec))
    node.advance(0)
    return node, ledger


def caller(node: Node, **kw) -> str:
    return node.place_call(CallerSpec(number="0903123456", did="19001234",
                                      variables={"tongdai_queue": "support"}, **kw))


def offer(node: Node, call: str, ext: str, leg: str, timeout: int = 60) -> list[str]:
    """What a router does: ring a phone for the caller."""
    jobs: list[str] = []
    node.originate(f"{{origination_uuid={leg},tongdai_call_id={call},originate_timeout="
                   f"{timeout}}}user/{ext}@{DOMAIN} &park()", jobs.append)
    return jobs


def us(node: Node) -> int:
    return node.clock.now_us()


def test_an_answered_queue_call_the_caller_ends() -> None:
    node, ledger = make()
    t0 = us(node)
    call = caller(node, talk=30)
    node.advance(1)
    parked = t0 + 20_000  # the caller's answer delay: then the park
    offer(node, call, "1000", "leg-a")
    node.advance(1.02)  # answered at +1 s, parked 20 ms later
    bridged = us(node)
    assert node.uuid_bridge(call, "leg-a").startswith("+OK")
    node.advance(40)
    t = ledger.calls()[call]
    assert (t.disposition, t.answered, t.extension, t.hangup_side) == \
        ("answered", True, "1000", "caller")
    assert t.answer_us == bridged and t.enqueue_us == parked
    assert t.wait_ms == (bridged - parked) // 1000
    assert t.talk_ms == 30_000 and t.end_us == bridged + 30_000_000
    assert t.queues == ("support",) and t.dialed == "19001234" and t.caller == "0903123456"
    (o,) = t.offers
    assert (o.leg_id, o.extension, o.result, o.rang_us) == ("leg-a", "1000", "answered",
                                                           t0 + 1_000_000)
    assert o.answered_us == o.rang_us + 1_000_000


def test_the_agent_hangs_up_first() -> None:
    node, ledger = make()
    call = caller(node, talk=5, hangup_by="agent")
    node.advance(0.1)
    offer(node, call, "1000", "leg-a")
    node.advance(1.1)
    node.uuid_bridge(call, "leg-a")
    node.advance(10)
    t = ledger.calls()[call]
    assert (t.disposition, t.hangup_side, t.talk_ms) == ("answered", "agent", 5000)


def test_re_offers_after_no_answer_busy_and_decline() -> None:
    node, ledger = make()
    call = caller(node, talk=3)
    node.advance(0.1)
    offer(node, call, "1001", "rna", timeout=4)
    node.advance(4.1)  # rang out: NO_ANSWER from the switch
    offer(node, call, "1002", "busy")
    node.advance(0.5)
    offer(node, call, "1003", "rej")
    node.advance(1)
    offer(node, call, "1000", "ok")
    node.advance(1.05)
    node.uuid_bridge(call, "ok")
    node.advance(5)
    t = ledger.calls()[call]
    assert [(o.leg_id, o.result) for o in t.offers] == [
        ("rna", "no_answer"), ("busy", "busy"), ("rej", "declined"), ("ok", "answered")]
    assert t.ring_no_answer == 3 and t.disposition == "answered"


def test_a_ring_the_switch_cuts_while_the_caller_waits_is_no_answer() -> None:
    node, ledger = make()
    call = caller(node, patience=30)
    node.advance(0.1)
    offer(node, call, "1001", "rna")
    node.advance(3)
    node.hangup("rna", "ORIGINATOR_CANCEL", disposition="send_cancel")  # the offer timed out
    node.advance(30)
    t = ledger.calls()[call]
    assert [o.result for o in t.offers] == ["no_answer"]
    assert (t.disposition, t.hangup_side) == ("abandoned", "caller")


def test_abandons_in_queue_short_and_while_ringing() -> None:
    node, ledger = make()
    short = caller(node, patience=2)
    long = caller(node, patience=8)
    ringing = caller(node, patience=7)
    node.advance(1)
    offer(node, ringing, "1001", "ring")
    node.advance(7)
    node.hangup("ring", "ORIGINATOR_CANCEL", disposition="send_cancel")  # router's cleanup
    node.advance(2)
    calls = ledger.calls()
    assert calls[short].disposition == "short_abandoned" and calls[short].wait_ms == 2000
    assert calls[long].disposition == "abandoned" and calls[long].wait_ms == 8000
    assert calls[ringing].disposition == "abandoned_ringing"
    assert [o.result for o in calls[ringing].offers] == ["caller_abandoned"]
    assert all(c.hangup_side == "caller" and not c.answered for c in calls.values())


def test_a_phone_picked_up_as_the_caller_left_is_caller_abandoned() -> None:
    node, ledger = make()
    call = caller(node, patience=2.0)
    node.advance(0.1)
    offer(node, call, "1004", "late")  # answers after 2 s: the caller is gone by then
    node.advance(2.5)
    node.hangup("late", "NORMAL_CLEARING")
    node.advance(1)
    t = ledger.calls()[call]
    assert [o.result for o in t.offers] == ["caller_abandoned"]


def test_ivr_exit_and_ivr_path() -> None:
    node, ledger = make()
    stays = node.place_call(CallerSpec(
        number="0903000001", did="19001234", patience=4,
        ivr=IvrSpec(choice="9", after=1, entry=("menu-exec-app", "playback invalid.wav"))))
    queued = node.place_call(CallerSpec(
        number="0903000002", did="19001234", patience=3,
        ivr=IvrSpec(choice="2", after=1, path="2", variables={"tongdai_queue": "sales"})))
    node.advance(10)
    calls = ledger.calls()
    assert (calls[stays].disposition, calls[stays].ivr_path, calls[stays].queues) == \
        ("abandoned_ivr", "", ())
    assert (calls[queued].disposition, calls[queued].ivr_path, calls[queued].queues) == \
        ("short_abandoned", "2", ("sales",))


def test_after_hours_voicemail_and_closed() -> None:
    node, ledger = make(closed=lambda queue, at: queue == "night")
    vm = node.place_call(CallerSpec(number="0903000003", did="19001234",
                                    variables={"tongdai_queue": "night"}, patience=20))
    closed = node.place_call(CallerSpec(number="0903000004", did="19001234",
                                        variables={"tongdai_queue": "night"}, patience=6))
    node.advance(0.5)
    node.uuid_transfer(vm, "voicemail_night", "XML", "tongdai_t")
    node.advance(3)
    node.hangup(vm, disposition="recv_bye")  # left a message
    node.advance(10)
    calls = ledger.calls()
    assert (calls[vm].disposition, calls[vm].wait_ms) == ("voicemail", 0)
    assert (calls[closed].disposition, calls[closed].wait_ms) == ("closed", 0)


def test_a_transfer_to_a_second_phone() -> None:
    node, ledger = make()
    call = caller(node, talk=None)
    node.advance(0.1)
    offer(node, call, "1000", "first")
    node.advance(1.05)
    node.uuid_bridge(call, "first")
    node.advance(5)
    offer(node, call, "1004", "second")
    node.advance(2.05)
    node.uuid_bridge(call, "second")  # the caller now talks to 1004
    node.hangup("first", disposition="recv_bye")  # the first agent leaves
    node.advance(4)
    node.hangup(call, disposition="recv_bye")
    t = ledger.calls()[call]
    assert (t.extension, t.transfers, t.hangup_side) == ("1000", 1, "caller")
    assert t.talk_ms == 5000 + 2050 + 4000
    assert [o.result for o in t.offers] == ["answered", "answered"]


def test_click_to_call_answered_and_failed() -> None:
    node, ledger = make()
    node.add_number(NumberSpec(number="0912000111", answer_delay=1, talk=3))
    node.add_number(NumberSpec(number="0912000222", answer="busy"))
    for leg, number in (("c2c-ok", "0912000111"), ("c2c-busy", "0912000222")):
        node.originate(f"{{origination_uuid={leg},tongdai_click_to_call=r,"
                       f"effective_caller_id_number=02873001234}}user/1000@{DOMAIN} "
                       f"{number} XML tongdai_t_outbound", lambda body: None)
        node.advance(10)
    calls = ledger.calls()
    ok, busy = calls["c2c-ok"], calls["c2c-busy"]
    assert (ok.direction, ok.disposition, ok.caller, ok.dialed, ok.talk_ms, ok.hangup_side) == \
        ("outbound", "answered", "1000", "0912000111", 3000, "callee")
    assert (busy.disposition, busy.answered, busy.hangup_side) == ("failed", False, "system")
    assert not ok.offers and ok.wait_ms == 0
