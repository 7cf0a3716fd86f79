"""Click-to-call of a tenant provisioned only through the API (issue 14), on a real
FreeSWITCH: `POST /api/v1/click-to-call` rings the agent's phone first (showing the
customer's number); when it answers, the tenant's outbound dialplan calls the customer
through the carrier with the tenant's caller ID.

Truth: the agent's SIPp (the INVITE it got and its From; it answers, talks, hangs up), the
carrier's SIPp (the INVITE for the customer's number and its From), the switch's bridge of
the two, and the call log.
"""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from routing import numbers

from . import sipp
from .test_calls import call_row
from .test_recording import token

pytestmark = [pytest.mark.realfs, pytest.mark.stack]

CUSTOMER = "0903000222"


def post(product, path: str, body: dict, bearer: str) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{product.api_port}{path}",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {bearer}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def _invite(phone: sipp.Sipp) -> str:
    return phone.messages().split("INVITE sip:", 1)[1].split("\n\n", 1)[0]


def test_click_to_call_rings_the_agent_then_the_customer_with_the_tenants_number(product):
    agent = product.agents["a1"]
    geographic = sorted(numbers.to_e164(d) for d in
                        (product.queue_did, product.ivr_did, product.closed_did))[0]
    expected = "0" + geographic[3:]
    esl = product.switch.esl()
    esl.command("event plain ALL")
    carrier = product.carrier_answers(800)
    phone = product.agent_phone(agent, ring_ms=700, then=sipp.hang_up(5000), timeout_s=40)
    try:
        status, body = post(product, "/api/v1/click-to-call",
                            {"agent_id": "a1", "number": CUSTOMER},
                            token(product, "supervisor", "realfs-sup"))
        assert status == 202, body  # accepted: the phone rings next
        call_id = body["call_id"]
        assert phone.wait(40) == 0, phone.messages()[-3000:]
        assert carrier.wait(20) == 0, carrier.messages()[-3000:]
    finally:
        phone.stop()
        carrier.stop()
        esl.close()
        esl.keep("plain_click_to_call")  # a fixture, when asked
    # the agent's phone rang first, showing whom it calls
    assert re.search(rf"^From: .*<sip:{CUSTOMER}@", _invite(phone), re.M), _invite(phone)
    # then the carrier got the customer's number from the tenant's geographic number
    invite = _invite(carrier)
    assert invite.startswith(f"{CUSTOMER}@"), invite
    assert re.search(rf"^From: .*<sip:{expected}@", invite, re.M), invite
    bridged = [e for e in esl.plain_events() if e.get("Event-Name") == "CHANNEL_BRIDGE"
               and call_id in (e.get("Bridge-A-Unique-ID"), e.get("Bridge-B-Unique-ID"))]
    assert len(bridged) == 1, bridged
    row = call_row(product, call_id, timeout=180, need=("end_us", "answer_us"))
    assert (row["direction"], row["agent_id"], row["disposition"]) == \
        ("outbound", "a1", "answered"), row
    assert row["callee"].endswith(CUSTOMER[1:]) and row["talk_ms"] > 3000, row


def test_click_to_call_to_a_number_the_tenant_may_not_call_is_refused(product):
    status, body = post(product, "/api/v1/click-to-call", {"agent_id": "a1", "number": "19001111"},
                        token(product, "supervisor", "realfs-sup"))
    assert status == 403 and body["details"][0]["field"] == "number", body
