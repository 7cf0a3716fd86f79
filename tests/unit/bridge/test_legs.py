"""What the bridge knows of its node's legs: for snapshots, and to refuse running a
decision for a caller who is gone."""
from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from esl_bridge.actuator import refused
from esl_bridge.legs import LegBook, from_dump
from esl_bridge.normalize import NormalizerConfig
from routing.contract import Envelope

pytestmark = pytest.mark.bridge

CAPTURE = Path(__file__).resolve().parents[2] / "fixtures" / "esl" / \
    "plain_inbound_park_bridge.transcript.txt"
T0 = 1_795_323_200_000_000


def fs(type_: str, leg_id: str, call_id: str, at_s: float = 0, **payload) -> Envelope:
    return Envelope(f"e-{type_}-{leg_id}-{at_s}", type_, 1, T0 + int(at_s * 1e6), "acme", "node",
                    1, call_id, {"leg_id": leg_id, "leg": "a" if leg_id == call_id else "b",
                                 **payload})


def test_a_waiting_caller_is_known_with_its_queue_until_bridged():
    book = LegBook()
    book.observe(fs("channel_created", "c1", "c1"))
    book.observe(fs("channel_parked", "c1", "c1", 2, queue="sales", caller="+84903123456",
                    priority=3))
    info = book.info("c1")
    assert info["queue"] == "sales" and info["parked_us"] == T0 + 2_000_000
    book.observe(fs("channel_created", "o1", "c1", 3, offer_id="o1", extension="1000"))
    assert book.info("o1")["bridged"] is False and book.info("o1")["offer_id"] == "o1"
    book.observe(fs("channel_bridged", "c1", "c1", 5, other_leg_id="o1"))
    assert "parked_us" not in book.info("c1"), "a talking caller is not waiting"
    assert book.info("o1")["bridged"] is True
    book.observe(fs("channel_hungup", "c1", "c1", 9))
    assert book.info("c1") is None and book.is_gone("c1")
    book.observe(fs("channel_answered", "c1", "c1", 9.1))  # late: not brought back
    assert book.info("c1") is None


def test_a_legs_tenant_is_the_one_its_latest_event_says():
    """A caller's CHANNEL_CREATE comes before the dialplan sets tongdai_tenant: filed under
    the default tenant, its calls vanished from their tenant's snapshot and the router
    ended calls that were still waiting (a soak caught it)."""
    book = LegBook()
    first = fs("channel_created", "c1", "c1")
    book.observe(Envelope(first.event_id, first.type, 1, first.occurred_at, "default", "node", 1,
                          "c1", first.payload))
    book.observe(fs("channel_parked", "c1", "c1", 1, queue="sales"))
    assert book.info("c1")["tenant"] == "acme" and book.tenants_seen >= {"acme"}


def _real_dump() -> dict:
    """The `uuid_dump <uuid> json` a real FreeSWITCH answered for a caller's leg that an
    external router had bridged with uuid_bridge (tests/fixtures/esl)."""
    text = CAPTURE.read_text(encoding="latin-1")
    line = next(l for l in text.splitlines() if l.startswith('{"Event-Name":"CHANNEL_DATA"'))
    return orjson.loads(line)


def test_a_bridged_leg_still_says_park_and_is_not_taken_for_a_waiting_caller():
    dump = _real_dump()
    assert dump["variable_current_application"] == "park"  # what the switch really says
    info = from_dump({**dump, "variable_tongdai_queue": "support"}, NormalizerConfig())
    assert info is not None and info["call_id"] == dump["Unique-ID"]
    assert "parked_us" not in info


def test_a_parked_caller_the_bridge_never_saw_is_learnt_from_its_dump():
    dump = {k: v for k, v in _real_dump().items()
            if not re.match(r"variable_(bridge|last_bridge|signal_bond)", k)
            and not k.startswith("Other-")}
    dump.update(variable_tongdai_queue="support", variable_tongdai_tenant="acme")
    info = from_dump(dump, NormalizerConfig())
    assert info["tenant"] == "acme" and info["queue"] == "support" and info["leg"] == "a"
    assert info["parked_us"] == int(dump["Caller-Channel-Answered-Time"])
    assert from_dump({"Event-Name": "CHANNEL_DATA"}, NormalizerConfig()) is None


def decision(type_: str, age_s: float, **payload) -> Envelope:
    return Envelope("d", type_, 1, T0, "acme", "router", None, "c1",
                    {"command_id": "x", "node": "n", **payload}), T0 / 1e6 + age_s


def test_decisions_are_refused_for_a_gone_caller_or_past_their_deadline():
    book = LegBook()
    env, now = decision("offer_call", 1, timeout_s=15)
    assert refused(env, book, now) is None
    env, now = decision("offer_call", 16, timeout_s=15)
    assert "ring time passed" in refused(env, book, now)
    env, now = decision("hangup_leg", 59, leg_id="o1")
    assert refused(env, book, now) is None, "a hangup is worth running late"
    env, now = decision("hangup_leg", 61, leg_id="o1")
    assert "expired" in refused(env, book, now)
    book.observe(fs("channel_hungup", "c1", "c1"))
    for kind in ("offer_call", "connect_call"):
        env, now = decision(kind, 0.1, timeout_s=15)
        assert "caller gone" in refused(env, book, now)
    env, now = decision("offer_call", 0.1, timeout_s=15, callback=True)
    assert refused(env, book, now) is None, "a callback's caller hung up on purpose"


def test_a_cancel_never_hangs_up_an_offer_the_agent_took():
    """The router gave an offer up at its ring time before it heard the answer (the log was
    slow: a broker failing over); the bridge saw the phone answer and the switch bridge."""
    book = LegBook()
    book.observe(fs("channel_parked", "c1", "c1", 0, queue="sales"))
    book.observe(fs("channel_created", "o1", "c1", 1, offer_id="o1"))
    book.observe(fs("channel_created", "o2", "c1", 1, offer_id="o2"))
    cancel = {"leg_id": "o1", "cause": "ORIGINATOR_CANCEL"}
    env, now = decision("hangup_leg", 0.1, **cancel)
    assert refused(env, book, now) is None, "a ringing phone is cancelled"
    book.observe(fs("channel_answered", "o1", "c1", 2, offer_id="o1"))
    assert "answered" in refused(env, book, now)
    book.observe(fs("channel_bridged", "c1", "c1", 2, other_leg_id="o2"))
    env2, now = decision("hangup_leg", 0.1, leg_id="o2", cause="ORIGINATOR_CANCEL")
    assert "answered" in refused(env2, book, now)
    env3, now = decision("hangup_leg", 0.1, leg_id="o1", cause="NORMAL_CLEARING")
    assert refused(env3, book, now) is None, "an orphan's hangup (not a cancel) still runs"


def test_a_caller_intercepted_by_an_agents_leg_is_still_its_own_call():
    """`intercept` (the switch connecting the answering phone, a pickup) bridges with the
    intercepting leg as originator: the caller's events then name it in Other-Type and
    Channel-Call-UUID. The caller's leg called in: it stays its own call."""
    from esl_bridge import normalize, protocol

    hangup = protocol.Event({
        "Event-Name": "CHANNEL_HANGUP", "Unique-ID": "caller-1", "Call-Direction": "inbound",
        "Channel-Call-UUID": "agent-leg", "Other-Type": "originator",
        "Other-Leg-Unique-ID": "agent-leg", "Event-Date-Timestamp": "1795323217211881",
        "Event-Sequence": "9", "Core-UUID": "core", "variable_tongdai_tenant": "acme",
        "Hangup-Cause": "NORMAL_CLEARING"})
    env = normalize.normalize(hangup)
    assert env.call_id == "caller-1" and env.payload["leg"] == "a"
    customer = protocol.Event({**hangup.headers, "Unique-ID": "customer-leg",
                               "Call-Direction": "outbound", "Other-Leg-Unique-ID": "agent-1",
                               "Channel-Call-UUID": "customer-leg"})
    assert normalize.normalize(customer).call_id == "agent-1", \
        "a leg a bridge originated still belongs to its originator (click-to-call)"


def test_legs_known_up_that_the_node_no_longer_has_vanished_once():
    book = LegBook()
    book.observe(fs("channel_parked", "c1", "c1", 1, queue="sales"))
    book.observe(fs("channel_created", "o1", "c1", 2, offer_id="o1"))
    book.observe(fs("channel_created", "late", "c2", 9))  # heard of after the listing
    gone = book.vanished(present={"o1"}, before_us=T0 + 5_000_000)
    assert [leg for leg, _ in gone] == ["c1"]
    assert book.is_gone("c1") and book.info("c1") is None and book.info("late") is not None
    assert book.vanished(present={"o1"}, before_us=T0 + 5_000_000) == []


def test_a_restarted_bridge_knows_the_legs_its_journal_kept(tmp_path):
    from esl_bridge.bridge import LegJournal

    path = str(tmp_path / "legs.jsonl")
    j = LegJournal(path)
    book = LegBook()
    for e in (fs("channel_parked", "c1", "c1", 1, queue="sales"),
              fs("channel_created", "o1", "c1", 2, offer_id="o1", extension="1000"),
              fs("channel_created", "c2", "c2", 3)):
        book.observe(e)
        j.note(e.payload["leg_id"], book.info(e.payload["leg_id"]), e.occurred_at)
    j.note("c1", book.info("c1"), T0 + 4_000_000)  # unchanged: not written again
    j.gone("c2", T0 + 5_000_000)
    with open(path, "ab") as f:
        f.write(b'{"u": "torn", "i": {"ten')  # killed in the middle of a line
    legs, last = LegJournal(path).load()
    assert set(legs) == {"c1", "o1"} and last == T0 + 5_000_000
    assert legs["o1"] == {"tenant": "acme", "call_id": "c1", "leg": "b", "offer_id": "o1",
                          "extension": "1000"}
    j2 = LegJournal(path)
    j2.load()
    j2.gone("o1", T0 + 5_500_000)  # after a torn line: a line of its own
    assert LegJournal(path).load()[0] == {"c1": legs["c1"]}
    restarted = LegBook()
    restarted.restore(legs)
    assert [leg for leg, _ in restarted.vanished({"o1"}, T0 + 9_000_000)] == ["c1"]
    j2.rewrite(T0 + 6_000_000)
    assert LegJournal(path).load() == ({"c1": legs["c1"]}, T0 + 6_000_000)
