"""Issue 16: click-to-call is checked by the dialplan's own rule, at the API, with a reason.

Before: a click-to-call to an international number the tenant may not call, to 112, or
to +1900… got 202; only the dialplan refused it later.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from routing import dialing
from routing.contract import Envelope

pytestmark = pytest.mark.api

ROOT = Path(__file__).resolve().parents[3]
CASES = [("0912 345 678", "mobile"), ("+84912345678", "mobile"), ("84912345678", "mobile"),
         ("02838123456", "national"), ("+842838123456", "national"), ("19001234", "service"),
         ("1800123456", "service"), ("+442071234567", "international"),
         ("0012025550100", "international"), ("112", "emergency"), ("113", "emergency"),
         ("115", "emergency"), ("1001", "invalid"), ("0612", "invalid")]


@pytest.mark.parametrize("number, cls", CASES)
def test_classify_like_the_dialplan(number, cls):
    assert dialing.classify(number) == cls


def _dialplan_classes(path: Path) -> dict[str, re.Pattern]:
    """class -> destination expression of a tenant's outbound context."""
    root = ET.parse(path).getroot()
    out = {}
    for ctx in root.iter("context"):
        if not ctx.get("name", "").endswith("_outbound"):
            continue
        for ext in ctx.iter("extension"):
            name = ext.get("name", "")
            cls = name.removeprefix("outbound_")
            if cls in ("mobile", "national", "service", "international", "emergency"):
                cond = next(c for c in ext.iter("condition")
                            if c.get("field") == "destination_number")
                out[cls] = re.compile(cond.get("expression"))
    return out


@pytest.mark.parametrize("tenant_file", sorted(
    (ROOT / "fs-conf/dialplan/tenants").glob("*.xml")), ids=lambda p: p.name)
def test_the_rule_and_the_tenants_outbound_dialplans_sort_numbers_alike(tenant_file):
    """One source of truth: the pure rule's classes are the dialplans' (fs-conf), checked
    on the dialled form the dialplan receives."""
    classes = _dialplan_classes(tenant_file)
    assert set(classes) >= {"mobile", "national", "service", "international"}
    for number, cls in CASES:
        dest = dialing.dialled_form(number)
        matched = [c for c, rx in classes.items() if rx.match(dest)]
        if cls == "invalid":
            assert matched == [], (number, dest, matched)
        elif cls == "emergency":  # the dialplan bridges them from phones; never by a click
            assert matched in ([], ["emergency"]), (number, matched)
        else:
            assert matched == [cls], (number, dest, matched)


@pytest.mark.parametrize("number, allowed, ok", [
    ("0912345678", dialing.DEFAULT_CLASSES, True), ("+442071234567", dialing.DEFAULT_CLASSES, False),
    ("+442071234567", dialing.CLASSES, True), ("+19005551234", dialing.CLASSES, False),
    ("112", dialing.CLASSES, False), ("19001234", dialing.DEFAULT_CLASSES, False),
    ("19001234", ("service",), True)])
def test_check_outbound(number, allowed, ok):
    verdict = dialing.check_outbound(number, allowed)
    assert verdict.allowed is ok and (ok or verdict.reason)


@pytest.fixture
def c2c_setup(client, auth):
    h = auth("admin")
    client.put("/api/v1/tenant", json={"outbound_caller_id": "02838123456"}, headers=h)
    client.put("/api/v1/agents/lan", json={"extension": "1001"}, headers=h)
    return h


@pytest.mark.parametrize("number, why", [
    ("112", "emergency"), ("113", "emergency"), ("+19005551234", "premium-rate"),
    ("+442071234567", "international numbers may not be called"),
    ("19001234", "service numbers may not be called"), ("1002", "cannot be called out")])
def test_click_to_call_is_refused_at_the_api_with_the_reason(client, auth, bus, c2c_setup,
                                                              number, why):
    r = client.post("/api/v1/click-to-call", json={"agent_id": "lan", "number": number},
                    headers=auth("agent", user="lan"))
    assert r.status_code == 403, r.get_json()
    detail = r.get_json()["details"][0]
    assert detail["field"] == "number" and why in detail["rule"]
    assert bus.of_type("click_to_call_requested") == []


def test_a_tenant_allowed_international_calls_may_click_to_call_abroad(client, auth, bus,
                                                                      c2c_setup):
    agent = auth("agent", user="lan")
    assert client.post("/api/v1/click-to-call", json={"agent_id": "lan", "number": "0912345678"},
                       headers=agent).status_code == 202
    client.put("/api/v1/tenant", json={"outbound_caller_id": "02838123456",
                                       "outbound_classes": ["national", "mobile", "international"]},
               headers=c2c_setup)
    assert client.post("/api/v1/click-to-call", json={"agent_id": "lan",
                                                      "number": "+442071234567"},
                       headers=agent).status_code == 202
    assert client.post("/api/v1/click-to-call", json={"agent_id": "lan",
                                                      "number": "+19005551234"},
                       headers=agent).status_code == 403
    r = client.put("/api/v1/tenant", json={"outbound_classes": ["emergency"]}, headers=c2c_setup)
    assert r.status_code == 400 and r.get_json()["details"][0]["field"] == "outbound_classes.0"


@pytest.mark.parametrize("number", ["112", "+19005551234"])
def test_the_router_refuses_with_the_same_rule(number):
    from streams.router import TenantRouter, handle

    r = TenantRouter("acme")
    env = Envelope("c-1", "click_to_call_requested", 1, 1_000_000, "acme", "api", None, None,
                   {"agent_id": "a1", "number": number, "request_id": "r-1",
                    "caller_id": "02838123456"})
    handle(r, Envelope("cfg", "config_changed", 1, 1, "acme", "api", None, None,
                       {"kind": "agent", "entity_id": "a1", "data": {"extension": "1000"}}))
    r.registrations["1000"] = "node-1"
    outs = handle(r, env)
    assert [o.envelope.type for o in outs] == ["command_refused"]
    assert outs[0].envelope.payload["reason"] == dialing.check_outbound(number, dialing.CLASSES).reason
