"""Normalization of real FreeSWITCH events into the contract (golden, field by field)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from esl_bridge import normalize, protocol
from esl_bridge.cli import replay
from esl_bridge.normalize import NormalizerConfig, Skipped
from routing.contract.envelope import deterministic_id
from routing.contract.schemas import RecordSchema

pytestmark = pytest.mark.bridge

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "esl"
CORE = "a9cf789f-7069-4f25-917e-0be0fc8d4434"
A, B = "96671f03-e24d-45d9-bdbd-8c89bdf961c6", "e3f2d8d7-006f-427a-bd99-adf05297e4c9"


def capture(name: str) -> list[protocol.Event]:
    path = FIXTURES / f"{name}.txt"
    if not path.exists():
        pytest.fail(f"ESL capture not found: {path}")
    frames = protocol.FrameParser().feed(path.read_bytes())
    return [protocol.parse_event(f) for f in frames
            if f.content_type in (protocol.EVENT_PLAIN, protocol.EVENT_JSON, protocol.EVENT_XML)]


def published(name: str) -> list:
    out = []
    for event in capture(name):
        try:
            out.append(normalize.normalize(event))
        except Skipped:
            pass
    return out


# type, seq, tenant, call_id, leg, direction, caller, callee, other leg, hangup cause
GOLDEN_PARK_BRIDGE = [
    ("channel_created", 467, "default", A, "a", "internal", "1005", "1900", None, None),
    ("channel_answered", 476, "default", A, "a", "internal", "1005", "1900", None, None),
    ("channel_parked", 481, "default", A, "a", "internal", "1005", "1900", None, None),
    ("channel_created", 488, "default", A, "b", "internal", "1900", "1000", None, None),
    ("channel_answered", 497, "default", A, "b", "internal", "1900", "1000", None, None),
    ("background_job_completed", 502, "_system", None, None, None, None, None, None, None),
    ("channel_parked", 505, "default", A, "b", "internal", "1000", "1000", None, None),
    ("channel_bridged", 519, "default", A, "a", "internal", "1005", "1900", B, None),
    ("channel_hungup", 528, "default", A, "a", "internal", "1005", "1900", B, "NORMAL_CLEARING"),
    ("channel_hungup", 529, "default", A, "b", "internal", "1005", "1000", A, "NORMAL_CLEARING"),
    ("channel_hangup_completed", 534, "default", A, "b", "internal", "1005", "1000", A,
     "NORMAL_CLEARING"),
    ("channel_unbridged", 535, "default", A, "a", "internal", "1005", "1900", B,
     "NORMAL_CLEARING"),
    ("channel_destroyed", 538, "default", A, "b", "internal", "1005", "1000", A,
     "NORMAL_CLEARING"),
    ("channel_hangup_completed", 542, "default", A, "a", "internal", "1005", "1900", B,
     "NORMAL_CLEARING"),
    ("channel_destroyed", 543, "default", A, "a", "internal", "1005", "1900", B,
     "NORMAL_CLEARING"),
    ("heartbeat_received", 545, "_system", None, None, None, None, None, None, None),
]


def test_plain_inbound_park_bridge_golden():
    got = []
    for e in published("plain_inbound_park_bridge"):
        p = e.payload
        got.append((e.type, e.seq, e.tenant, e.call_id, p.get("leg"), p.get("direction"),
                    p.get("caller"), p.get("callee"), p.get("other_leg_id"),
                    p.get("hangup_cause")))
        assert e.source == CORE
        assert e.event_id == deterministic_id(CORE, e.seq)
        assert RecordSchema().validate(e.to_dict()) == {}
    assert got == GOLDEN_PARK_BRIDGE


def test_details_of_the_park_bridge_call():
    events = {(e.type, e.seq): e for e in published("plain_inbound_park_bridge")}
    park = events[("channel_parked", 481)]
    assert park.occurred_at == 1795323212591912  # Event-Date-Timestamp, µs
    assert park.payload["leg_id"] == A and park.payload["answer_state"] == "answered"
    assert park.payload["domain"] == "127.0.0.1"
    assert park.payload["headers"]["Caller-Context"] == "default"
    job = events[("background_job_completed", 502)]
    assert job.payload["command"] == "originate" and job.payload["ok"] is True
    assert job.payload["result"] == f"+OK {B}"
    done = events[("channel_hangup_completed", 542)]
    assert done.payload["headers"]["variable_billsec"] == "5"
    assert done.payload["headers"]["Hangup-Cause"] == "NORMAL_CLEARING"
    beat = events[("heartbeat_received", 545)]
    assert beat.payload["sessions_active"] >= 0 and beat.payload["uptime_ms"] > 0


def test_registrations_from_the_json_capture():
    regs = [e for e in published("json_registration_agents") if e.type == "sip_registered"]
    assert sorted(e.payload["extension"] for e in regs) == ["1000", "1001", "1002"]
    r = regs[0]
    assert r.payload["domain"] == "127.0.0.1" and r.tenant == "default"
    assert r.payload["expires_s"] == 3600 and r.payload["user_agent"].startswith("sipp-agent")


def test_heartbeats_in_plain_json_and_xml_normalize_alike():
    events = [e for e in capture("misc_api_bgapi") if e.name == "HEARTBEAT"]
    assert {e.format for e in events} == {"plain", "json", "xml"}
    envs = [normalize.normalize(e) for e in events]
    assert {tuple(sorted(e.payload)) for e in envs} == {("hostname", "sessions_active",
                                                        "uptime_ms")}
    assert all(e.payload["hostname"] == "vm" and e.payload["uptime_ms"] > 0 for e in envs)
    assert [e.seq for e in envs] == sorted(e.seq for e in envs)


def test_every_capture_normalizes_without_error():
    for path in sorted(FIXTURES.glob("*.txt")):
        if path.name.endswith((".sent.txt", ".transcript.txt")):
            continue
        for e in published(path.stem):
            assert RecordSchema().validate(e.to_dict()) == {}, (path.name, e.type)


def _event(**headers: str) -> protocol.Event:
    base = {"Event-Name": "CHANNEL_PARK", "Core-UUID": "core-1", "Event-Sequence": "10",
            "Event-Date-Timestamp": "1700000000000000", "Unique-ID": "leg-1",
            "Call-Direction": "inbound", "Caller-Caller-ID-Number": "0903123456",
            "Caller-Destination-Number": "19001234", "variable_domain_name": "acme.vn"}
    return protocol.Event({**base, **headers})


def test_product_variables_are_carried():
    env = normalize.normalize(_event(
        variable_tongdai_tenant="acme", variable_tongdai_queue="support",
        variable_tongdai_did="02873001234", variable_tongdai_skills="billing:5,english",
        variable_tongdai_priority="3", variable_tongdai_vip="true",
        variable_tongdai_language="vi", variable_tongdai_region="south",
        variable_tongdai_ivr_path="main>1"))
    p = env.payload
    assert env.tenant == "acme" and env.call_id == "leg-1" and p["leg"] == "a"
    assert p["direction"] == "inbound" and p["caller"] == "+84903123456"
    assert p["did"] == "+842873001234" and p["queue"] == "support"
    assert p["skills"] == {"billing": 5, "english": 1}
    assert (p["priority"], p["vip"], p["language"], p["region"], p["ivr_path"]) == \
        (3, True, "vi", "south", "main>1")
    assert p["headers"]["variable_tongdai_queue"] == "support"


@pytest.mark.parametrize("number", ["0903123456", "84903123456", "+84903123456"])
def test_caller_numbers_in_any_vietnamese_form_are_e164(number):
    env = normalize.normalize(_event(**{"Caller-Caller-ID-Number": number}))
    assert env.payload["caller"] == "+84903123456"


def test_a_plain_dialplan_call_falls_back_to_the_domain_then_the_default_tenant():
    assert normalize.normalize(_event()).tenant == "acme.vn"
    mapped = NormalizerConfig(domains=(("acme.vn", "acme"),))
    assert normalize.normalize(_event(), mapped).tenant == "acme"
    ip = _event(variable_domain_name="10.0.0.5")
    assert normalize.normalize(ip, NormalizerConfig(default_tenant="demo")).tenant == "demo"


def test_an_agent_leg_we_originated_belongs_to_the_call():
    env = normalize.normalize(_event(**{
        "Unique-ID": "offer-9", "Call-Direction": "outbound",
        "variable_tongdai_call_id": "leg-1", "variable_tongdai_offer_id": "offer-9",
        "variable_tongdai_tenant": "acme"}))
    assert env.call_id == "leg-1" and env.payload["leg"] == "b"
    assert env.payload["offer_id"] == "offer-9"


def test_the_extension_whose_phone_a_leg_is():
    # From the real capture: an extension's call to the 1900 hotline (presence 1009@...).
    legs = [e for e in published("outbound_socket_1902") if e.type.startswith("channel_")]
    assert legs and {e.payload["extension"] for e in legs} == {"1009"}
    # A leg rung with `user/1000@acme.vn` (presence id set by the user endpoint).
    rung = normalize.normalize(_event(**{"Call-Direction": "outbound",
                                         "Channel-Presence-ID": "1000@acme.vn"}))
    assert rung.payload["extension"] == "1000"
    # A caller from the telephone network is no extension (presence is its number).
    pstn = normalize.normalize(_event(**{"Channel-Presence-ID": "0903123456@10.0.0.1"}))
    assert pstn.payload["extension"] is None
    assert normalize.normalize(_event()).payload["extension"] is None


def test_events_not_published_are_skipped_and_broken_ones_refused():
    with pytest.raises(Skipped):
        normalize.normalize(_event(**{"Event-Name": "CHANNEL_STATE"}))
    with pytest.raises(ValueError, match="Event-Sequence"):
        normalize.normalize(_event(**{"Event-Sequence": "x"}))
    with pytest.raises(ValueError, match="Unique-ID"):
        normalize.normalize(_event(**{"Unique-ID": ""}))


def test_replay_prints_envelopes_and_a_summary():
    out = io.StringIO()
    summary = replay(FIXTURES / "plain_inbound_park_bridge.txt", to_kafka=False,
                     config=NormalizerConfig(), bootstrap="", out=out)
    lines = [json.loads(l) for l in out.getvalue().splitlines()]
    assert lines[-1] == summary
    assert summary["published"] == len(GOLDEN_PARK_BRIDGE) == len(lines) - 1
    assert summary["frames"] == 97 and summary["skipped"] == 68
    assert [l["type"] for l in lines[:-1]] == [g[0] for g in GOLDEN_PARK_BRIDGE]


def test_replay_survives_a_truncated_capture(tmp_path):
    data = (FIXTURES / "plain_inbound_park_bridge.txt").read_bytes()
    cut = tmp_path / "cut.txt"
    cut.write_bytes(data[: len(data) // 2])
    summary = replay(cut, to_kafka=False, config=NormalizerConfig(), bootstrap="",
                     out=io.StringIO())
    assert summary["published"] > 0 and summary["incomplete_tail_bytes"] > 0


def test_a_leg_a_dialplan_bridge_originated_belongs_to_its_originator():
    env = normalize.normalize(_event(**{
        "Event-Name": "CHANNEL_CREATE", "Unique-ID": "cust-1", "Call-Direction": "outbound",
        "Channel-Call-UUID": "cust-1", "Other-Type": "originator",
        "Other-Leg-Unique-ID": "agent-leg-1", "variable_tongdai_tenant": "acme"}))
    assert env.call_id == "agent-leg-1" and env.payload["leg"] == "b" and env.tenant == "acme"
