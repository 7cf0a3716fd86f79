"""The phones of a tenant provisioned only through the API (issue 14): an internal call
between its extensions and an outbound call with its caller-ID rule, on a real switch.

Truth: the calling phone's SIPp (challenged INVITE, 200, BYE answered), the called phone's
or the carrier's SIPp (the INVITE it got, its From), the switch's RECORD_STOP (the tenant's
policy records internal and outbound calls) and the file it names.
"""
from __future__ import annotations

import re
import wave

import pytest

from routing import numbers

pytestmark = [pytest.mark.realfs, pytest.mark.stack]


def recorded(esl, timeout: float = 15) -> dict:
    stop = esl.wait_event(lambda e: e.get("Event-Name") == "RECORD_STOP", timeout)
    assert stop is not None, "no recording of the call"
    return stop


def test_an_extension_calls_another_recorded(product):
    caller, callee = product.agents["a1"], product.agents["a2"]
    esl = product.switch.esl()
    esl.command("event plain RECORD_STOP")
    phone = product.agent_phone(callee, ring_ms=1000, timeout_s=40)
    try:
        call = product.phone_calls(caller, callee.ext, hold_ms=5000)
        assert call.wait(40) == 0, call.messages()[-3000:]
        assert phone.wait(20) == 0, phone.messages()[-3000:]
        stop = recorded(esl)
    finally:
        phone.stop()
        esl.close()
    invite = phone.messages().split("INVITE sip:", 1)[1].split("\n\n", 1)[0]
    assert re.search(rf"^From: .*<sip:{caller.ext}@", invite, re.M), invite
    path = stop["Record-File-Path"]
    assert f"/recordings/{product.tenant}/" in path, path
    with wave.open(path) as w:
        seconds = w.getnframes() / w.getframerate()
    assert 4.0 < seconds < 7.5, seconds  # held 5 s after the answer


def test_an_extension_calls_out_with_the_tenants_number_as_caller_id(product):
    caller = product.agents["a1"]
    geographic = sorted(numbers.to_e164(d) for d in
                        (product.queue_did, product.ivr_did, product.closed_did))[0]
    expected = "0" + geographic[3:]
    esl = product.switch.esl()
    esl.command("event plain RECORD_STOP")
    carrier = product.carrier_answers(500)
    try:
        call = product.phone_calls(caller, "0903000111", hold_ms=4000)
        assert call.wait(40) == 0, call.messages()[-3000:]
        assert carrier.wait(20) == 0, carrier.messages()[-3000:]
        stop = recorded(esl)
        barred = product.phone_calls(caller, "19001111", hold_ms=1000)  # service: not allowed
        barred.wait(30)
    finally:
        carrier.stop()
        esl.close()
    invite = carrier.messages().split("INVITE sip:", 1)[1].split("\n\n", 1)[0]
    assert invite.startswith("0903000111@"), invite
    assert re.search(rf"^From: .*<sip:{expected}@", invite, re.M), invite
    assert f"/recordings/{product.tenant}/" in stop["Record-File-Path"]
    # the barred call never reached the carrier (it took one call) and was refused
    assert "INVITE sip:19001111" not in carrier.messages()
    assert re.search(r"^SIP/2.0 403", barred.messages(), re.M), barred.messages()[-2000:]


@pytest.mark.parametrize("code", ["**2002", "*8"])
def test_a_ringing_extension_is_picked_up_from_another_phone(product, code):
    """2001 calls 2002, whose phone rings on; the desk phone (2003) dials **2002 (directed)
    or *8 (the tenant's group) and gets the call: 2001's INVITE is answered by the pickup,
    2002's phone stops ringing."""
    import time

    caller, ringing, desk = product.agents["a1"], product.agents["a2"], product.desk
    phone = product.agent_phone(ringing, ring_ms=30000, timeout_s=40)
    try:
        call = product.phone_calls(caller, ringing.ext, hold_ms=4000)
        time.sleep(3)  # 2002 rings
        pickup = product.phone_calls(desk, code, hold_ms=12000, timeout_s=40)
        assert call.wait(40) == 0, call.messages()[-3000:]
        pickup.wait(30)
    finally:
        phone.stop()
    assert re.search(r"^SIP/2.0 200 OK", pickup.messages(), re.M), pickup.messages()[-2000:]
    assert re.search(r"^CANCEL sip:", phone.messages(), re.M), phone.messages()[-2000:]
    assert not re.search(r"^SIP/2.0 200 OK", phone.messages().split("CANCEL", 1)[0], re.M)
