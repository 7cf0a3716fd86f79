"""The switch's connect in the simulator: the switch bridges the first phone to answer a
queue's offer, fenced by mod_hash, both as the actuator orders it (the inline applications of
esl_bridge.actuator.CONNECT_INLINE) and as fs-conf's tongdai_connect context does it
(dialplan/01_shared.xml); both were run on a real switch (tests/realfs)."""
from __future__ import annotations

import pytest

from esl_bridge.actuator import CONNECT_INLINE, CONNECT_VARIABLES
from esl_bridge.simulator import AgentSpec, CallerSpec, ManualClock, Node

DOMAIN = "127.0.0.1"


class Tap:
    def __init__(self, node: Node) -> None:
        self.events: list = []
        node.listeners.append(self.events.append)

    def of(self, uid: str) -> list[str]:
        return [e.name for e in self.events if e.get("Unique-ID") == uid]

    def first(self, name: str, uid: str | None = None):
        return next(e for e in self.events
                    if e.name == name and (uid is None or e.get("Unique-ID") == uid))

pytestmark = pytest.mark.bridge

#: how an offer's leg is connected: (extra originate variables, what runs on answer)
FORMS = {"inline": (f",{CONNECT_VARIABLES}", CONNECT_INLINE),
         "xml": ("", "connect XML tongdai_connect")}


def setup(*delays: float) -> tuple[Node, Tap, str]:
    node = Node(clock=ManualClock(), seed=1, heartbeat=None)
    tap = Tap(node)
    node.start()
    for i, delay in enumerate(delays):
        node.add_agent(AgentSpec(ext=f"100{i}", answer_delay=delay))
    node.advance(0)
    call = node.place_call(CallerSpec(number="0903123456", did="19001234", answer_delay=0.1,
                                      variables={"tongdai_queue": "sales"}, talk=60.0))
    node.advance(1)
    return node, tap, call


def offer(node: Node, ext: str, leg: str, call: str, form: str) -> list[str]:
    results: list[str] = []
    extra, then = FORMS[form]
    node.originate(f"{{origination_uuid={leg},tongdai_offer_id={leg},tongdai_call_id={call},"
                   f"originate_timeout=20{extra}}}user/{ext}@{DOMAIN} {then}",
                   results.append)
    return results


@pytest.mark.parametrize("form", FORMS)
def test_the_first_phone_to_answer_is_bridged_by_the_switch_and_the_next_loses(form):
    node, tap, call = setup(1.0, 1.5)
    offer(node, "1000", "leg-a", call, form)
    offer(node, "1001", "leg-b", call, form)
    node.advance(3)
    bridge = tap.first("CHANNEL_BRIDGE")
    # fs-conf's intercept: uuid_bridge(<the answering leg>, <the caller>), the agent's leg
    # is A; the actuator's inline: uuid_bridge(<the caller>, <the answering leg>), the
    # caller is A (the bridge's originator waits for the other leg, and the caller is the
    # one still reading its waiting music).
    assert (bridge["Bridge-A-Unique-ID"], bridge["Bridge-B-Unique-ID"]) == (
        ("leg-a", call) if form == "xml" else (call, "leg-a"))
    assert node.channels[call].bridged_to == "leg-a"
    loser = tap.first("CHANNEL_HANGUP", "leg-b")
    assert loser["Hangup-Cause"] == "LOSE_RACE"
    assert node.hash == {f"tongdai_connect_{call}": "leg-a"}
    node.hangup("leg-a")
    node.advance(1)
    assert node.hash == {}, "the winner frees the key when it hangs up"


@pytest.mark.parametrize("form", FORMS)
def test_a_phone_answering_after_its_caller_left_is_hung_up_not_parked(form):
    node, tap, call = setup(2.0)
    offer(node, "1000", "leg-a", call, form)
    node.advance(1)
    node.hangup(call)
    node.advance(2)
    assert "CHANNEL_PARK" not in tap.of("leg-a")
    assert tap.first("CHANNEL_HANGUP", "leg-a")["Hangup-Cause"] == "ORIGINATOR_CANCEL"
    assert "leg-a" not in node.channels and node.hash == {}


@pytest.mark.parametrize("form", FORMS)
def test_the_agent_leg_ends_normally_when_its_caller_hangs_up_after_talking(form):
    node, tap, call = setup(1.0)
    offer(node, "1000", "leg-a", call, form)
    node.advance(2)
    assert node.channels[call].bridged_to == "leg-a"
    node.hangup(call)
    node.advance(1)
    assert tap.first("CHANNEL_HANGUP", "leg-a")["Hangup-Cause"] == "NORMAL_CLEARING"
    assert node.hash == {}
