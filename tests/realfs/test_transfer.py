"""An agent transfers a queue caller (issue 14: transfer on a tenant provisioned only
through the API), on a real FreeSWITCH with SIPp phones.

The product's transfer for a queue call is the phone's own: a blind transfer by SIP REFER
(the phone's transfer key), which the switch carries out in the caller's
`force_transfer_context`, the tenant's context: to one of its extensions, or to one of its
numbers (the caller's path again: its queue). (The in-call keys *1/*4 of fs-conf belong to
calls between extensions; the API has no transfer command.)

Truth: the transferring phone's SIPp (REFER answered 202, the NOTIFY, the switch's BYE),
the new party's SIPp (the INVITE and its From, the BYE at the end), the caller's SIPp (its
call lives on: its own BYE answered), the switch's events and the call log.
"""
from __future__ import annotations

import re

import pytest

from tests.integration.harness import Publisher

from . import sipp
from .conftest import free_port
from .test_calls import call_row

pytestmark = [pytest.mark.realfs, pytest.mark.stack]


def last_idle(product, agent_id: str) -> None:
    """Log `agent_id` out and in again: it becomes the agent idle for the shortest time, so
    a longest-idle queue offers the next call to the other one."""
    reader = product.reader()
    api = Publisher(product.bootstrap, product.tenant)
    try:
        for command, state in (("agent_logout_requested", "logged_out"),
                               ("agent_login_requested", "available")):
            api.command(command, agent_id=agent_id)
            api.flush()
            reader.wait_for(lambda es, s=state: any(
                e.type == "agent_state_changed" and e.payload["agent_id"] == agent_id
                and e.payload["state"] == s for e in es), timeout=30,
                what=f"{agent_id} {state}")
    finally:
        api.close()
        reader.close()


def _invite(phone: sipp.Sipp) -> str:
    return phone.messages().split("INVITE sip:", 1)[1].split("\n\n", 1)[0]


def test_an_agent_transfers_the_caller_to_an_extension(product):
    first, desk = product.agents["a1"], product.desk
    last_idle(product, "a2")
    reader = product.reader()
    esl = product.switch.esl()
    esl.command("event plain ALL")
    then = sipp.refer(2000, f"sip:{desk.ext}@{product.domain}", f"sip:{first.ext}@{product.domain}")
    transferring = product.agent_phone(first, ring_ms=500, then=then, timeout_s=40)
    other = product.agent_phone(product.agents["a2"], timeout_s=40)  # not offered
    desk_phone = product.agent_phone(desk, ring_ms=1000, timeout_s=40)
    try:
        caller = product.call(product.queue_did, hold_ms=12000)
        assert caller.wait(40) == 0, caller.messages()[-3000:]
        assert transferring.wait(10) == 0, transferring.messages()[-3000:]
        assert desk_phone.wait(10) == 0, desk_phone.messages()[-3000:]
        reader.wait_for(lambda es: any(e.type == "call_answered" for e in es), timeout=20,
                        what="call_answered")
        call_id = reader.of_type("call_answered")[0].call_id
        stop = esl.wait_event(lambda e: e.get("Event-Name") == "RECORD_STOP"
                              and e.get("Unique-ID") == call_id, timeout=15)
    finally:
        for phone in (transferring, other, desk_phone):
            phone.stop()
        esl.close()
        reader.close()
        esl.keep("plain_refer_to_extension")  # a fixture, when asked
    assert reader.of_type("call_answered")[0].payload["agent_id"] == "a1"
    # a1 is done with the call once it transferred it: free again (after its wrap-up)
    # while the caller still talks to the desk
    ended = next(e.occurred_at for e in reader.of_type("call_ended") if e.call_id == call_id)
    freed = [e for e in reader.of_type("agent_state_changed") if e.payload["agent_id"] == "a1"
             and e.payload["state"] == "available" and e.occurred_at < ended]
    assert freed, [(e.payload["state"], e.occurred_at - ended) for e in
                   reader.of_type("agent_state_changed") if e.payload["agent_id"] == "a1"]
    # the desk phone rang with the caller's number and talked until the caller hung up
    assert re.search(r"^From: .*903123456", _invite(desk_phone), re.M), _invite(desk_phone)
    assert re.search(r"^BYE sip:", desk_phone.messages(), re.M)
    bridges = [e for e in esl.plain_events() if e.get("Event-Name") == "CHANNEL_BRIDGE"
               and call_id in (e.get("Bridge-A-Unique-ID"), e.get("Bridge-B-Unique-ID"))]
    assert len(bridges) == 2, [(b.get("Bridge-A-Unique-ID"), b.get("Bridge-B-Unique-ID"))
                               for b in bridges]
    # one recording of the whole call, the caller's leg's
    assert stop is not None and stop["Record-File-Path"].endswith(f"/{call_id}.wav"), stop
    row = call_row(product, call_id, timeout=180, need=("end_us", "answer_us"))
    assert (row["direction"], row["disposition"], row["queue"]) == \
        ("inbound", "answered", "sales"), row
    assert row["transfers"] == 1 and "transferred 1x" in row["notes"], row
    assert row["talk_ms"] > 9000, row  # the caller talked on after the transfer


def test_an_agent_transfers_the_caller_to_a_queue(product):
    """To the tenant's own number: the caller takes the number's path again, parks in its
    queue (with music) and the next agent answers."""
    first, second = product.agents["a1"], product.agents["a2"]
    last_idle(product, "a2")
    rtp = sipp.RtpCounter(free_port())
    reader = product.reader()
    then = sipp.refer(2000, f"sip:{product.queue_did}@{product.domain}",
                      f"sip:{first.ext}@{product.domain}")
    transferring = product.agent_phone(first, ring_ms=500, then=then, timeout_s=40)
    answering = product.agent_phone(second, ring_ms=3000, timeout_s=40)
    esl = product.switch.esl()
    esl.command("event plain ALL")
    try:
        caller = product.call(product.queue_did, hold_ms=14000, hears=rtp.port)
        assert caller.wait(40) == 0, caller.messages()[-3000:]
        assert transferring.wait(10) == 0, transferring.messages()[-3000:]
        assert answering.wait(10) == 0, answering.messages()[-3000:]
        reader.wait_for(lambda es: len({e.payload["agent_id"] for e in es
                                        if e.type == "call_answered"}) == 2, timeout=20,
                        what="the call answered by a1, then by a2")
    finally:
        transferring.stop()
        answering.stop()
        rtp.close()
        reader.close()
        esl.close()
        esl.keep("plain_refer_to_queue")  # a fixture, when asked
    answers = reader.of_type("call_answered")
    call_id = answers[0].call_id
    assert [a.payload["agent_id"] for a in answers] == ["a1", "a2"]
    assert {a.call_id for a in answers} == {call_id}  # one call, two agents
    enqueued = [e.occurred_at / 1e6 for e in reader.of_type("call_enqueued")
                if e.call_id == call_id]
    assert len(enqueued) == 2, enqueued
    # waiting again in the queue, the caller heard the music until a2 answered
    again = rtp.between(enqueued[1] + 1.5, answers[1].occurred_at / 1e6 - 0.1, loud=True)
    print(f"re-queued {answers[1].occurred_at / 1e6 - enqueued[1]:.2f} s: {again} packets "
          f"with sound")
    assert again >= 20, again
    row = call_row(product, call_id, timeout=180, need=("end_us", "answer_us"))
    # the call's row names the agent who answered it first; each wait has its own agent
    assert (row["direction"], row["agent_id"], row["queues_visited"]) == \
        ("inbound", "a1", 2), row
    assert row["transfers"] == 1, row
    client = product.clickhouse()
    try:
        visits = client.execute(
            "SELECT visit, queue, outcome, agent_id FROM queue_visits FINAL WHERE tenant = "
            "%(t)s AND call_id = %(c)s AND sign = 1 ORDER BY visit",
            {"t": product.tenant, "c": call_id})
    finally:
        client.disconnect()
    assert visits == [(0, "sales", "answered", "a1"), (1, "sales", "answered", "a2")], visits
