"""Routing decisions -> ESL command lines (pure), and node settings."""
from __future__ import annotations

import pytest

from esl_bridge.actuator import ClaimLog, esl_command
from esl_bridge.settings import load, parse_nodes
from routing.contract import Envelope
from routing.contract.environ import SettingsError

pytestmark = pytest.mark.bridge


def decision(type_: str, **payload) -> Envelope:
    return Envelope("e", type_, 1, 0, "acme", "router", None, "call-1",
                    {"command_id": "cmd-1", "node": "n", **payload})


def test_offer_originates_the_agent_leg_with_the_offer_id_and_parks_it():
    line = esl_command(decision("offer_call", offer_id="offer-1", extension="1007",
                                domain="acme.vn", caller_id_number="+84903123456",
                                caller_id_name="Nguyễn Văn A, {x}", timeout_s=20))
    assert line.startswith("originate {origination_uuid=offer-1,tongdai_offer_id=offer-1,"
                           "tongdai_call_id=call-1,tongdai_tenant=acme,")
    assert "origination_caller_id_name='Nguyễn Văn A x'" in line
    assert "originate_timeout=19" in line  # a second before the router's deadline
    assert line.endswith("}user/1007@acme.vn &park()")
    assert "export_vars" not in line  # what a queue call's agent dials is its own call


def test_a_callback_offer_exports_the_call_id_to_the_customer_leg():
    line = esl_command(decision("offer_call", offer_id="offer-1", extension="1007",
                                domain="acme.vn", caller_id_number="+84903123456",
                                timeout_s=20, callback=True, connect="router"))
    assert ",export_vars=tongdai_call_id}" in line and "tongdai_call_id=call-1," in line
    assert line.endswith("}user/1007@acme.vn &park()")


def test_a_switch_connected_offer_runs_the_fence_inline_with_no_variable_the_switch_refuses():
    from esl_bridge.simulator.syntax import parse_originate

    line = esl_command(decision("offer_call", offer_id="offer-1", extension="1007",
                                domain="acme.vn", caller_id_number="+84903123456",
                                timeout_s=20, connect="switch"))
    variables, target, then = parse_originate(line[len("originate "):])
    assert target == "user/1007@acme.vn"
    # FreeSWITCH refuses a {...} value holding ${...} (real switch: "[CRIT] Invalid data
    # (${api_hangup_hook} contains a variable)"): the hook that frees the fence is set
    # inline, where the set application expands it first.
    assert [k for k, v in variables.items() if "${" in v] == []
    assert then.startswith("'set:tongdai_won=") and then.endswith("' inline")
    # one quoted argument for the originate's splitting (data in it holds spaces)
    assert then.count("'") == 2 and then.index("'", 1) == len(then) - len("' inline")
    # the switch bridges with the caller as originator, and a failsafe hangs up a leg left
    # waiting for a caller that hung up in that instant (cancelled as the bridge starts)
    assert "${uuid_bridge(${tongdai_caller} ${uuid})}" in then
    assert then.index("sched_hangup:") < then.index("api_before_bridge=sched_del ${uuid}") \
        < then.index("uuid_bridge(")
    assert "set:api_hangup_hook=hash delete_ifmatch/tongdai_connect/${tongdai_call_id}/" \
           "${uuid}" in then


def test_click_to_call_rings_the_agent_then_sends_its_leg_to_the_outbound_dialplan():
    line = esl_command(decision(
        "originate_call", leg_id="leg-1", request_id="r-1", agent_id="lan", extension="1000",
        domain="acme.vn", destination="0912345678", context="tongdai_acme_outbound",
        caller_id_number="0912345678", outbound_caller_id="02873001234", timeout_s=30))
    assert line.startswith("originate {origination_uuid=leg-1,tongdai_tenant=acme,"
                           "tongdai_click_to_call=r-1,tongdai_agent_id=lan,")
    assert "effective_caller_id_number=02873001234" in line
    assert "origination_caller_id_number=0912345678" in line and "originate_timeout=30" in line
    assert line.endswith("}user/1000@acme.vn 0912345678 XML tongdai_acme_outbound")


@pytest.mark.parametrize("mode, aleg, bleg", [("listen", "false", "false"),
                                              ("whisper", "false", "true"),
                                              ("barge", "true", "true")])
def test_monitoring_rings_the_supervisor_into_eavesdrop_on_the_agents_leg(mode, aleg, bleg):
    line = esl_command(decision("monitor_call", leg_id="mon-1", extension="1099",
                                domain="acme.vn", target_leg="offer-1", mode=mode,
                                timeout_s=30))
    assert line.startswith("originate {origination_uuid=mon-1,tongdai_tenant=acme,"
                           f"tongdai_monitor_id=mon-1,tongdai_monitor_mode={mode},")
    assert "eavesdrop_enable_dtmf=true" in line
    assert f"eavesdrop_whisper_aleg={aleg}" in line and f"eavesdrop_whisper_bleg={bleg}" in line
    assert line.endswith("}user/1099@acme.vn &eavesdrop(offer-1)")


@pytest.mark.parametrize("type_, payload, expected", [
    ("send_dtmf", {"leg_id": "mon-1", "digits": "3"}, "uuid_recv_dtmf mon-1 3"),
    ("connect_call", {"offer_id": "offer-1"}, "uuid_bridge call-1 offer-1"),
    ("hangup_leg", {"leg_id": "offer-1", "cause": "ORIGINATOR_CANCEL"},
     "uuid_kill offer-1 ORIGINATOR_CANCEL"),
    ("transfer_leg", {"leg_id": "call-1", "destination": "vm_100", "context": "acme"},
     "uuid_transfer call-1 vm_100 XML acme"),
    ("play_announcement", {"leg_id": "call-1", "path": "/s/closed.wav"},
     "uuid_broadcast call-1 /s/closed.wav aleg"),
    ("play_announcement", {"leg_id": "call-1", "path": "file_string://a.wav!b.wav",
                           "then_music": True},
     "uuid_broadcast call-1 file_string://a.wav!b.wav!${tongdai_waiting_music} aleg"),
    ("play_announcement", {"leg_id": "call-1", "path": "a.wav${x}", "then_music": False},
     "uuid_broadcast call-1 a.wav$x aleg"),  # no variable slips in through the path
    ("break_playback", {"leg_id": "call-1"}, "uuid_break call-1"),
    ("set_variable", {"leg_id": "call-1", "name": "tongdai_queue", "value": "sales"},
     "uuid_setvar call-1 tongdai_queue sales"),
])
def test_other_commands(type_, payload, expected):
    assert esl_command(decision(type_, **payload)) == expected


def test_injection_through_a_value_is_impossible():
    line = esl_command(decision("hangup_leg", leg_id="x\n\napi shutdown", cause="A B"))
    assert "\n" not in line and line == "uuid_kill xapishutdown AB"


def test_claims_survive_a_restart(tmp_path):
    claims = ClaimLog(str(tmp_path))
    assert claims.claim("c1") and not claims.claim("c1") and claims.claim("c2")
    claims.close()
    again = ClaimLog(str(tmp_path))
    assert not again.claim("c1") and not again.claim("c2") and again.claim("c3")


def test_claims_are_synced_to_disk_off_the_command_path(tmp_path, monkeypatch):
    import os
    import threading
    import time

    synced_from: list[str] = []
    real_fsync = os.fsync

    def fsync(fd):
        synced_from.append(threading.current_thread().name)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    claims = ClaimLog(str(tmp_path), sync_interval_s=0.01)
    for i in range(50):
        assert claims.claim(f"c{i}")
    deadline = time.monotonic() + 5
    while claims.syncs == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert claims.syncs >= 1
    assert set(synced_from) == {"claim-log-fsync"}  # never in claim()
    assert claims.syncs < 50  # batched: one fsync covers the claims written meanwhile
    claims.close()
    assert (tmp_path / "claimed.log").read_text().split() == [f"c{i}" for i in range(50)]


def test_nodes_parse_and_passwords_stay_out_of_reprs():
    nodes = parse_nodes(("10.0.0.1:8021:s3:cr3t", "fs2:8022:pw"))
    assert nodes[0].password == "s3:cr3t" and nodes[1].address == "fs2:8022"
    settings = load({"TONGDAI_FREESWITCH": "fs1:8021:topsecret"})
    assert "topsecret" not in repr(settings) and "topsecret" not in repr(settings.nodes)
    with pytest.raises(SettingsError, match="host:port:password") as err:
        load({"TONGDAI_FREESWITCH": "fs1:80x:topsecret"})
    assert "topsecret" not in str(err.value)
    with pytest.raises(SettingsError, match="plain or json"):
        load({"TONGDAI_EVENT_FORMAT": "xml"})
    assert load({}).esl_wake_ms == 2.0 and load({"TONGDAI_ESL_WAKE_MS": "0"}).esl_wake_ms == 0
    with pytest.raises(SettingsError, match="TONGDAI_ESL_WAKE_MS=-1.0: must be 0"):
        load({"TONGDAI_ESL_WAKE_MS": "-1"})


def test_node_memory_recognises_a_restarted_node_across_bridge_restarts(tmp_path):
    from esl_bridge.bridge import NodeMemory

    path = str(tmp_path / "nodes.json")
    memory = NodeMemory(path)
    assert memory.swap("fs1:8021", "core-a") == (None, set())
    memory.served("fs1:8021", "acme")
    memory.served("fs1:8021", "beta")
    again = NodeMemory(path)  # the bridge restarted too
    assert again.swap("fs1:8021", "core-a") == ("core-a", {"acme", "beta"})
    old, tenants = again.swap("fs1:8021", "core-b")
    assert (old, tenants) == ("core-a", {"acme", "beta"})
    assert NodeMemory(path).swap("fs1:8021", "core-b") == ("core-b", set())


def test_a_dtmf_job_succeeds_with_an_empty_body():
    from esl_bridge.actuator import job_succeeded

    assert job_succeeded("send_dtmf", "") and job_succeeded("send_dtmf", "\n")
    assert not job_succeeded("send_dtmf", "-ERR Cannot locate session!\n")
    assert job_succeeded("offer_call", "+OK 123\n") and not job_succeeded("offer_call", "")


def test_the_kafka_client_is_chosen_and_checked():
    from esl_bridge.publisher import producer_kind

    assert producer_kind("kafka-python") == "kafka-python"
    assert producer_kind("auto") == "confluent-kafka"  # a declared dependency
    env = {"TONGDAI_FREESWITCH": "127.0.0.1:8021:s3cret-pass-123"}
    assert load({**env, "TONGDAI_KAFKA_CLIENT": "kafka-python"}).kafka_client == "kafka-python"
    with pytest.raises(SettingsError, match="TONGDAI_KAFKA_CLIENT"):
        load({**env, "TONGDAI_KAFKA_CLIENT": "rdkafka"})


def test_a_slow_garbage_collection_is_logged(monkeypatch, caplog):
    """The bridge reads the switch in one event loop: a collection that holds it is said."""
    import gc
    import logging

    from esl_bridge import cli

    monkeypatch.setattr(cli, "SLOW_COLLECTION_S", 0.0)
    before = list(gc.callbacks)
    cli.watch_collections(logging.getLogger("tongdai.bridge.test"))
    try:
        with caplog.at_level(logging.WARNING, logger="tongdai.bridge.test"):
            gc.collect()
    finally:
        gc.callbacks[:] = before
    assert any("garbage collection of generation 2 took" in r.getMessage()
               for r in caplog.records)
