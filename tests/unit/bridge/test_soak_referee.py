"""The soak's referee (deploy/benchmarks/_soak_truth.py) on the simulator and a manual clock:
a talking call the switch ends on a command is a call cut while talking; a call either
party ends is not."""
from __future__ import annotations

import pytest

from deploy.benchmarks._soak_truth import Ledger, Rules
from esl_bridge.simulator import AgentSpec, CallerSpec, ManualClock, Node

pytestmark = pytest.mark.bridge

DOMAIN = "127.0.0.1"


def talking(ext: str, leg: str, **caller) -> tuple[Node, Ledger, str]:
    node = Node(clock=ManualClock(), seed=7, heartbeat=None)
    rules = Rules(members={"support": {ext}}, max_wait_s={"support": 60.0}, wrapup_s=1.0)
    ledger = Ledger(node, rules, report=lambda _: None)
    node.start()
    node.add_agent(AgentSpec(ext=ext, answer_delay=1.0))
    node.advance(0)
    call = node.place_call(CallerSpec(number="0903123456", did="19001234",
                                      variables={"tongdai_queue": "support"}, **caller))
    ledger.expect_caller(call, "support", 120.0)
    node.advance(1)
    node.originate(f"{{origination_uuid={leg},tongdai_call_id={call},originate_timeout=30}}"
                   f"user/{ext}@{DOMAIN} &park()", lambda _: None)
    node.advance(1.1)
    assert node.uuid_bridge(call, leg).startswith("+OK")
    node.advance(2)
    return node, ledger, call


def test_a_talking_call_killed_by_a_command_is_cut_while_talking():
    node, ledger, call = talking("1000", "leg-a", patience=300)
    node.hangup("leg-a", "ORIGINATOR_CANCEL")  # what uuid_kill does: no phone hung up
    node.advance(1)
    cut = ledger.verdicts()["calls_cut_while_talking"]
    assert len(cut) == 1 and cut[0].startswith(call) and "ORIGINATOR_CANCEL" in cut[0]


@pytest.mark.parametrize("who", ["caller", "agent"])
def test_a_call_either_party_ends_is_not_cut(who):
    node, ledger, call = talking("1001", "leg-b", patience=300, talk=5.0, hangup_by=who)
    node.advance(10)
    v = ledger.verdicts()
    assert ledger.callers[call].bridged and ledger.callers[call].hungup
    assert v["calls_cut_while_talking"] == [] and v["callers_cut_off"] == []
