"""A supervisor listens in on an agent's call (issue 14: eavesdrop for a tenant provisioned
only through the API), on a real FreeSWITCH with SIPp phones.

The product's way from a phone: the feature codes *33 (listen), *34 (whisper), *35 (barge)
followed by the agent's extension, answered by the API over mod_xml_curl
(api/freeswitch/render.py `monitor`) with `eavesdrop` on the agent's leg of its current
call, for an extension of the agent's own tenant marked `can_monitor` only.

Truth: the supervisor's SIPp (answered; the RTP the switch sends it, counted on a socket of
the test's: the caller speaks a tone), the switch's CHANNEL_EXECUTE of `eavesdrop` and the
audit log; for a phone of another tenant, no eavesdrop at all.
"""
from __future__ import annotations

import json
import re
import time

import pytest

from . import sipp
from .conftest import Agent, free_port, media_port
from .test_recording import get, token
from .test_transfer import last_idle

pytestmark = [pytest.mark.realfs, pytest.mark.stack]


def _executed(esl, app: str, caller: str) -> list[dict]:
    return [e for e in esl.plain_events() if e.get("Event-Name") == "CHANNEL_EXECUTE"
            and e.get("Application") == app and e.get("Caller-Caller-ID-Number") == caller]


def _agent_on_a_call(product, speak_s: float = 14):
    """A caller speaking (a tone) to agent a1; its phones and the offer (agent leg) id."""
    last_idle(product, "a2")
    reader = product.reader()
    phones = [product.agent_phone(product.agents["a1"], ring_ms=300, timeout_s=60),
              product.agent_phone(product.agents["a2"], timeout_s=60)]
    caller = product.call(product.queue_did, hold_ms=int(speak_s * 1000) + 1000,
                          speak_s=speak_s)
    try:
        reader.wait_for(lambda es: any(e.type == "call_answered" for e in es), timeout=30,
                        what="call_answered")
        answered = reader.of_type("call_answered")[0]
    finally:
        reader.close()
    assert answered.payload["agent_id"] == "a1"
    return caller, phones, answered.payload["offer_id"]


def test_a_supervisor_of_the_tenant_listens_to_an_agents_call(product):
    desk = product.desk
    rtp = sipp.RtpCounter(free_port())
    esl = product.switch.esl()
    esl.command("event plain CHANNEL_EXECUTE CHANNEL_ANSWER")
    caller, phones, agent_leg = _agent_on_a_call(product)
    try:
        time.sleep(1)  # the tone has begun (bounded: the call lasts 15 s)
        start = time.time()
        listen = product.phone_calls(desk, f"*33{product.agents['a1'].ext}", hold_ms=5000,
                                     hears=rtp.port, timeout_s=30)
        assert listen.wait(30) == 0, listen.messages()[-3000:]
        end = time.time()
        assert caller.wait(30) == 0, caller.messages()[-3000:]
    finally:
        for phone in phones:
            phone.stop()
        caller.stop()
        esl.close()
        rtp.close()
    eavesdrops = _executed(esl, "eavesdrop", desk.ext)
    assert [e.get("Application-Data") for e in eavesdrops] == [agent_leg], eavesdrops
    heard = rtp.between(start, end, loud=True)
    print(f"the supervisor heard {heard} packets with sound in {end - start:.1f} s")
    assert heard >= 100, heard  # about 5 s of the caller's voice
    audit = get(product, "/api/v1/audit?action=call.monitor.",
                token(product, "admin", "realfs-admin"))
    entries = json.load(audit)["items"]
    assert any(e["action"] == "call.monitor.listen" and e["user"] == f"ext:{desk.ext}"
               for e in entries), entries


def test_another_tenants_supervisor_cannot_listen_to_an_agent(product, demo):
    """The demo tenant's supervisor phone (1099, can_monitor) dials *33 and this tenant's
    agent extension: the API looks the agent up in the caller's own tenant only, so the
    switch plays a busy tone and hangs up; no eavesdrop runs."""
    supervisor = Agent("", "1099", demo.passwords["1099"], free_port(), media_port())
    rtp = sipp.RtpCounter(free_port())
    esl = product.switch.esl()
    esl.command("event plain CHANNEL_EXECUTE CHANNEL_HANGUP_COMPLETE")
    caller, phones, _ = _agent_on_a_call(product, speak_s=10)
    try:
        time.sleep(1)
        start = time.time()
        attempt = product.phone_calls(supervisor, f"*33{product.agents['a1'].ext}",
                                      hold_ms=6000, hears=rtp.port, timeout_s=30,
                                      domain=demo.domain)
        attempt.wait(30)  # the switch hangs up first: SIPp counts the call as failed
        end = time.time()
        caller.wait(30)
    finally:
        for phone in phones:
            phone.stop()
        caller.stop()
        esl.close()
        rtp.close()
    messages = attempt.messages()
    assert re.search(r"^SIP/2.0 200 OK", messages, re.M), messages[-2000:]  # authenticated
    assert re.search(r"^BYE sip:", messages, re.M), messages[-2000:]  # and sent away
    assert _executed(esl, "eavesdrop", "1099") == []
    ended = [e for e in esl.plain_events() if e.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE"
             and e.get("Caller-Caller-ID-Number") == "1099"]
    assert ended and ended[0]["Hangup-Cause"] == "NO_ROUTE_DESTINATION", ended
    assert rtp.between(start, end, loud=True) < 60  # a short busy tone, never the call
