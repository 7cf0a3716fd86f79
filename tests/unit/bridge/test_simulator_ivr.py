"""The simulator runs an IVR menu entry as FreeSWITCH does (simulator/dptools.py), so an
entry that traps callers on a real switch traps them here too: `multiset set
tongdai_ivr_choice=1:set tongdai_queue=sales:park` leaves every caller in the menu."""
from __future__ import annotations

import pytest

from esl_bridge.simulator import CallerSpec, IvrSpec, ManualClock, Node
from esl_bridge.simulator import dptools

pytestmark = pytest.mark.bridge

OLD = ("menu-exec-app", "multiset set tongdai_ivr_choice=1:set tongdai_queue=sales:park")
NEW = ("menu-exec-app", "transfer ivr_main_1 XML public")


def run(entry: tuple[str, str]) -> tuple[Node, list, str]:
    node = Node(clock=ManualClock(), seed=1, heartbeat=None)
    events: list = []
    node.listeners.append(events.append)
    node.start()
    call = node.place_call(CallerSpec(
        number="0903123456", did="02873001234", answer_delay=0.1, patience=20.0,
        variables={"tongdai_tenant": "acme"},
        ivr=IvrSpec(choice="1", after=2.0, menu="main", path="1", entry=entry,
                    variables={"tongdai_queue": "sales", "tongdai_ivr_choice": "1"})))
    node.advance(10)
    return node, events, call


def names(events: list, call: str) -> list[str]:
    return [e.name for e in events if e.get("Unique-ID") == call]


def test_the_old_multiset_entry_never_parks_and_sets_what_freeswitch_set():
    node, events, call = run(OLD)
    assert "CHANNEL_PARK" not in names(events, call)
    assert "CUSTOM tongdai::ivr" not in names(events, call)
    variables = node.channels[call].variables
    assert variables["tongdai_queue"] == "sales:park"
    assert variables["tongdai_ivr_choice"] == "1:set"
    node.advance(30)  # the caller gives up in the menu
    assert call not in node.channels
    assert "CHANNEL_PARK" not in names(events, call)


def test_a_transfer_entry_reaches_the_choices_extension_and_parks():
    node, events, call = run(NEW)
    seen = names(events, call)
    assert seen.index("CUSTOM tongdai::ivr") < seen.index("CHANNEL_PARK")
    park = next(e for e in events if e.name == "CHANNEL_PARK" and e.get("Unique-ID") == call)
    assert park["variable_tongdai_queue"] == "sales"


def test_an_entry_is_parsed_from_a_scenario():
    spec = IvrSpec.parse({"choice": "1", "entry": {"action": NEW[0], "param": NEW[1]}})
    assert spec.entry == NEW
    with pytest.raises(ValueError, match="ivr.entry"):
        IvrSpec.parse({"choice": "1", "entry": "transfer x"})


@pytest.mark.parametrize("action,param,variables,leaves,transfer", [
    ("menu-exec-app", "set a=b:c d", [("a", "b:c d")], False, None),
    ("menu-exec-app", "set a,b", [("a", "b")], False, None),
    ("menu-exec-app", "set a=", [("a", None)], False, None),
    ("menu-exec-app", "multiset a=1 b=2", [("a", "1"), ("b", "2")], False, None),
    ("menu-exec-app", "multiset ^^:a=1 x:b=2", [("a", "1 x"), ("b", "2")], False, None),
    ("menu-exec-app", "park", [], False, None),
    ("menu-exec-app", "transfer 1000", [], True, ("1000", "XML", "default")),
    ("menu-exec-app", "transfer q XML public", [], True, ("q", "XML", "public")),
    ("menu-exec-app", "hangup USER_BUSY", [], True, None),
    ("menu-sub", "tongdai_acme_lang", [], False, None),
    ("menu-exit", "", [], True, None),
])
def test_menu_entries_as_mod_ivr_and_mod_dptools_run_them(action, param, variables, leaves,
                                                          transfer):
    out = dptools.menu_entry(action, param)
    assert (out.variables, out.leaves_menu, out.transfer) == (variables, leaves, transfer)
