"""Click-to-call, eavesdrop and uuid_recv_dtmf on the simulated node with a manual clock:
exact timelines, the defaults a demo relies on, and invariants under random commands."""

from __future__ import annotations

import collections

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from esl_bridge.protocol import Event
from esl_bridge.simulator import AgentSpec, CallerSpec, ManualClock, Node, NumberSpec

pytestmark = pytest.mark.bridge

DOMAIN = "127.0.0.1"


class Tap:
    def __init__(self, node: Node) -> None:
        self.events: list[Event] = []
        node.listeners.append(self.events.append)

    def first(self, name: str, uid: str) -> Event:
        return next(e for e in self.events if e.name == name and e.get("Unique-ID") == uid)

    def at(self, name: str, uid: str) -> int:
        return int(self.first(name, uid)["Event-Date-Timestamp"])


def make_node(**kw: object) -> tuple[Node, Tap]:
    node = Node(clock=ManualClock(), seed=1, heartbeat=None, **kw)  # type: ignore[arg-type]
    tap = Tap(node)
    node.start()
    return node, tap


def click_to_call(node: Node, leg: str, ext: str = "1000", number: str = "0912345678",
                  cid: str = "02873001234") -> list[str]:
    results: list[str] = []
    node.originate(f"{{origination_uuid={leg},tongdai_tenant=acme,tongdai_click_to_call=r,"
                   f"origination_caller_id_number={number},effective_caller_id_number={cid},"
                   f"tongdai_outbound_caller_id={cid},originate_timeout=30}}"
                   f"user/{ext}@{DOMAIN} {number} XML tongdai_acme_outbound", results.append)
    return results


def monitor(node: Node, leg: str, target: str, ext: str = "1099", **variables: str) -> list[str]:
    results: list[str] = []
    extra = "".join(f",{k}={v}" for k, v in variables.items())
    node.originate(f"{{origination_uuid={leg},tongdai_monitor_id={leg}{extra}}}"
                   f"user/{ext}@{DOMAIN} &eavesdrop({target})", results.append)
    return results


def customer(node: Node, tap: Tap) -> str:
    return next(e["Unique-ID"] for e in tap.events if e.name == "CHANNEL_CREATE"
                and e["Channel-Name"].startswith("sofia/gateway/carrier/"))


def test_unlisted_customer_answers_after_2_s_and_talks_20_s() -> None:
    """The defaults a demo runs on without any setup."""
    node, tap = make_node()
    node.add_agent(AgentSpec(ext="1000", answer_delay=1.5))
    node.advance(0)
    t0 = node.clock.now_us()
    results = click_to_call(node, "leg-1")
    node.advance(1.5)
    assert results == []
    node.advance(0.02)  # answer_to_park: the originate completes, the dialplan runs
    assert results == ["+OK leg-1\n"]
    b = customer(node, tap)
    assert tap.at("CHANNEL_CREATE", b) == t0 + 1_520_000
    node.advance(2)
    assert tap.at("CHANNEL_PROGRESS", b) == t0 + 1_620_000
    assert tap.at("CHANNEL_ANSWER", b) == t0 + 3_520_000
    assert tap.at("CHANNEL_BRIDGE", "leg-1") == t0 + 3_520_000
    node.advance(20)
    assert tap.at("CHANNEL_HANGUP", b) == t0 + 23_520_000
    assert node.channels == {}
    complete = tap.first("CHANNEL_HANGUP_COMPLETE", "leg-1")
    assert complete["variable_billsec"] == "22" and complete["variable_bridge_uuid"] == b


def test_customer_no_answer_after_the_outbound_contexts_call_timeout() -> None:
    node, tap = make_node(answer_to_park=0)
    node.add_agent(AgentSpec(ext="1000", answer_delay=1.0))
    node.add_number(NumberSpec("0912345678", answer="no_answer"))
    node.advance(0)
    click_to_call(node, "leg-1")
    node.advance(1)
    b = customer(node, tap)
    node.advance(59.99)
    assert b in node.channels
    node.advance(0.01)
    assert tap.first("CHANNEL_HANGUP", b)["Hangup-Cause"] == "NO_ANSWER"
    assert tap.first("CHANNEL_HANGUP", "leg-1")["Hangup-Cause"] == "NO_ANSWER"
    assert node.channels == {}


def test_eavesdrop_returns_a_frame_after_its_target_hangs_up() -> None:
    node, tap = make_node(answer_to_park=0)
    node.add_agent(AgentSpec(ext="1000", answer_delay=1.0))
    node.add_agent(AgentSpec(ext="1099", answer_delay=1.0))
    node.add_number(NumberSpec("0912345678", answer_delay=1.0, talk=10.0))
    node.advance(0)
    click_to_call(node, "leg-1")
    node.advance(2)
    assert monitor(node, "mon-1", "leg-1", eavesdrop_whisper_bleg="true") == []
    node.advance(1)
    state = node.monitor("mon-1")
    assert state is not None and state.active and state.mode == "whisper"
    node.advance(10)
    gone = tap.at("CHANNEL_HANGUP", "leg-1")
    assert tap.at("CHANNEL_EXECUTE_COMPLETE", "mon-1") == gone + 20_000
    assert tap.at("CHANNEL_HANGUP", "mon-1") == gone + 20_000
    assert not state.active and state.ended_us == gone + 20_000


def test_dtmf_waits_for_an_application_that_reads_it() -> None:
    node, tap = make_node(answer_to_park=0)
    node.add_agent(AgentSpec(ext="1000", answer="no_answer"))
    node.advance(0)
    results: list[str] = []
    node.originate(f"{{origination_uuid=ring-1}}user/1000@{DOMAIN} &park()", results.append)
    assert node.uuid_recv_dtmf("ring-1", "5") == ""
    node.advance(1)
    assert not [e for e in tap.events if e.name == "DTMF"]  # a ringing leg reads nothing
    call = node.place_call(CallerSpec(number="0903123456", did="19001234"))
    node.advance(1)
    assert node.uuid_recv_dtmf(call, "9") == ""
    node.advance(0.019)
    assert not [e for e in tap.events if e.name == "DTMF"]
    node.advance(0.001)
    assert [e["DTMF-Digit"] for e in tap.events if e.name == "DTMF"] == ["9"]


OPS = st.lists(st.one_of(
    st.tuples(st.just("call"), st.integers(0, 20)),
    st.tuples(st.just("c2c"), st.integers(0, 3), st.integers(0, 4)),
    st.tuples(st.just("monitor"), st.integers(0, 30), st.booleans()),
    st.tuples(st.just("dtmf"), st.integers(0, 30), st.sampled_from(["0", "1", "2", "3", "*"])),
    st.tuples(st.just("bridge"), st.integers(0, 30), st.integers(0, 30)),
    st.tuples(st.just("kill"), st.integers(0, 30)),
    st.tuples(st.just("transfer"), st.integers(0, 30)),
    st.tuples(st.just("advance"), st.floats(0, 5)),
), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS, st.sampled_from(["core", "full"]))
def test_random_commands_with_click_to_call_and_monitoring_keep_the_node_consistent(
        ops: list[tuple], fidelity: str) -> None:
    node, tap = make_node(fidelity=fidelity)
    for i, behaviour in enumerate(["answer", "no_answer", "busy", "reject"]):
        node.add_agent(AgentSpec(ext=str(1000 + i), answer=behaviour, answer_delay=1.0,
                                 busy_when_in_call=False))
    numbers = ["0912345670", "0912345671", "0912345672", "0912345673", "0912345674"]
    for number, behaviour in zip(numbers, ["answer", "busy", "no_answer", "reject", "invalid"]):
        node.add_number(NumberSpec(number, answer=behaviour, answer_delay=1.5, talk=4.0))
    node.advance(0)
    uids: list[str] = []
    jobs: list[list[str]] = []
    for op in ops:
        kind = op[0]
        pick = (lambda i: uids[i % len(uids)]) if uids else None
        if kind == "call":
            uids.append(node.place_call(CallerSpec(number="1", did="2", patience=op[1])))
        elif kind == "c2c":
            leg = f"c2c-{len(jobs)}"
            jobs.append(click_to_call(node, leg, ext=str(1000 + op[1]), number=numbers[op[2]]))
            uids.append(leg)
        elif kind == "monitor" and pick:
            leg = f"mon-{len(jobs)}"
            jobs.append(monitor(node, leg, pick(op[1]), ext="1000",
                                eavesdrop_enable_dtmf=str(op[2]).lower()))
            uids.append(leg)
        elif kind == "dtmf" and pick:
            node.uuid_recv_dtmf(pick(op[1]), op[2])
        elif kind == "bridge" and pick:
            node.uuid_bridge(pick(op[1]), pick(op[2]))
        elif kind == "kill" and pick:
            node.hangup(pick(op[1]))
        elif kind == "transfer" and pick:
            node.uuid_transfer(pick(op[1]), "19005555")
        elif kind == "advance":
            node.advance(op[1])
        uids.extend(u for u in node.channels if u not in uids)
    node.advance(120)
    for uid in list(node.channels):
        node.hangup(uid)
    node.advance(120)

    # What the examples reached (shown by --hypothesis-show-statistics).
    names = {e.name for e in tap.events}
    event(f"customer bridged: {any(e.name == 'CHANNEL_BRIDGE' and 'carrier' in e.get('Other-Leg-Channel-Name', '') for e in tap.events)}")  # noqa: E501
    event(f"eavesdrop ran: {bool(node.monitors)}; DTMF read: {'DTMF' in names}")
    assert node.errors == []
    assert not node.channels
    assert all(len(j) == 1 for j in jobs), jobs  # every originate answered exactly once
    assert not [m for m in node.monitors.values() if m.active]
    by_uid: dict[str, list[str]] = collections.defaultdict(list)
    for e in tap.events:
        if e.get("Unique-ID"):
            by_uid[e["Unique-ID"]].append(e.name)
    for uid, names in by_uid.items():
        core = [n for n in names if n not in ("CHANNEL_STATE", "CHANNEL_CALLSTATE")]
        assert core[0] == "CHANNEL_CREATE" and core[-1] == "CHANNEL_DESTROY", (uid, core)
        for once in ("CHANNEL_CREATE", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE",
                     "CHANNEL_DESTROY"):
            assert core.count(once) == 1, (uid, core)
        assert core.count("CHANNEL_ANSWER") <= 1
        assert core.count("CHANNEL_BRIDGE") == core.count("CHANNEL_UNBRIDGE"), (uid, core)
        assert core.count("RECORD_START") == core.count("RECORD_STOP"), (uid, core)
        assert core.index("CHANNEL_HANGUP") < core.index("CHANNEL_HANGUP_COMPLETE")
        if uid in node.monitors:
            execs = [n for n in core if n in ("CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE")
                     and fidelity == "core"]
            assert execs in ([], ["CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"]), (uid, core)
        if "DTMF" in core:
            assert core.index("DTMF") > core.index("CHANNEL_ANSWER"), (uid, core)
    for e in tap.events:
        if e.name in ("CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE"):
            assert e["Unique-ID"] == e["Bridge-A-Unique-ID"]
    for agent in node.agents.values():
        assert agent.legs == set()
