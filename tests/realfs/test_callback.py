"""A callback that keeps the caller's place, end to end on a real FreeSWITCH (issue 19):
the caller presses the key and confirms, the switch thanks and hangs up; the agent, free
again, is offered the callback and answers; the agent's leg dials the customer through the
tenant's outbound dialplan, and the customer's phone (the carrier's SIPp) rings with the
tenant's number as caller ID.

Truth: the caller's SIPp (the switch's BYE after the confirmation), the carrier's SIPp (the
INVITE for the customer's number, its From) and the router's facts on Kafka; the call log
(the product's sink into ClickHouse) then tells the inbound call and its callback as one
call: the customer's leg carries the call's id (the callback offer exports it)."""
from __future__ import annotations

import random
import re
import time
import uuid

import pytest

from routing import numbers
from tests.integration.harness import Publisher

from . import sipp
from .conftest import free_port, tongdai

pytestmark = [pytest.mark.realfs, pytest.mark.stack]

TALK_MS = 15000  # longer than a node snapshot's period and its grace for young legs
HANGS_UP = """  <recv request="BYE" timeout="40000"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""


def test_the_caller_confirms_hangs_up_and_the_agent_calls_the_customer_back(product):
    customer = "0903" + str(random.Random().randrange(10**5, 10**6))
    # 0299 (Soc Trang): a number of the product tenant's that sorts after its 0283 ones, so
    # the tenant's caller ID (its first geographic number) stays what other tests expect
    did = f"0299{random.Random().randrange(10**6, 10**7)}"
    a1 = product.agents["a1"]
    config = product.folder / f"callback_{did}.yaml"
    config.write_text(
        f"tenant: {product.tenant}\nqueues:\n"
        "  cbq: {callback_key: '1', callback_attempts: 1, offer_timeout_s: 20, wrapup_s: 1}\n"
        f'dids:\n  "{did}": {{queue: cbq}}\n'
        f'agents:\n  a1: {{extension: "{a1.ext}", queues: {{sales: {{}}, support: {{}}, '
        "cbq: {}}}\n")
    tongdai(product.env, "config", "apply", str(config))
    reader = product.reader()
    api = Publisher(product.bootstrap, product.tenant)
    phone = carrier = None
    try:
        api.command("agent_pause_requested", agent_id="a1", reason="callback test")
        api.flush()
        reader.wait_for(lambda es: any(e.type == "agent_state_changed" and
                                       e.payload["agent_id"] == "a1" and
                                       e.payload["state"] == "paused" for e in es),
                        timeout=30, what="a1 paused")
        workdir = product.folder / "sipp"
        name = f"cbcaller_{uuid.uuid4().hex[:6]}"
        keys = sipp.dtmf_pcaps(workdir, "11", prefix=name)
        scenario = sipp.caller_scenario(keys, first_after_ms=3000, between_ms=4000)
        scenario = scenario[:scenario.index("  <pause milliseconds", scenario.rindex(
            "play_pcap_audio"))] + HANGS_UP
        caller = sipp.run(workdir, name, scenario, f"127.0.0.1:{product.switch.external_port}",
                          free_port(), ["-s", did, "-m", "1", "-key", "caller", customer,
                                        "-mi", "127.0.0.1", "-mp", str(free_port())],
                          timeout_s=60)
        assert caller.wait(60) == 0, caller.messages()[-3000:]  # the switch hung up
        reader.wait_for(lambda es: any(e.type == "callback_requested" for e in es), timeout=20,
                        what="callback_requested")
        (requested,) = reader.of_type("callback_requested")
        assert requested.payload["number"] == numbers.to_e164(customer)
        assert not [e for e in reader.of_type("call_abandoned") if e.call_id == requested.call_id]

        phone = product.agent_phone(a1, ring_ms=1000, timeout_s=90)
        # the customer talks 15 s, through a node snapshot, then hangs up
        carrier = sipp.run(workdir, f"carrier_{uuid.uuid4().hex[:6]}",
                           sipp.agent_scenario(1000, sipp.hang_up(TALK_MS)),
                           None, product.carrier_port,
                           ["-m", "1", "-mi", "127.0.0.1", "-mp", str(free_port())], timeout_s=90)
        api.command("agent_resume_requested", agent_id="a1")
        api.flush()
        reader.wait_for(lambda es: any(e.type == "callback_completed" for e in es), timeout=60,
                        what="callback_completed")
        (done,) = reader.of_type("callback_completed")
        assert (done.call_id, done.payload["outcome"], done.payload["agent_id"]) == (
            requested.call_id, "connected", "a1"), done.payload
        assert carrier.wait(TALK_MS / 1000 + 30) == 0, carrier.messages()[-3000:]  # its BYE
    finally:
        for p in (phone, carrier):
            if p is not None:
                p.stop()
        api.close()
        reader.close()
    offered = [e for e in reader.of_type("call_offered") if e.call_id == requested.call_id]
    assert offered and offered[0].payload["agent_id"] == "a1"
    invite = carrier.messages().split("INVITE sip:", 1)[1].split("\n\n", 1)[0]
    assert invite.startswith(f"{customer}@"), invite  # the customer's phone rang
    # presented: one of the tenant's geographic numbers (028…), never the customer's own
    assert re.search(r"^From: .*<sip:028\d{7,8}@", invite, re.M), invite
    row = callback_row(product, requested.call_id)
    assert (row["disposition"], row["callback"], row["callback_attempts"], row["agent_id"]) == (
        "answered", "connected", 1, "a1"), row
    assert row["answer_us"] >= done.occurred_at - 1_000_000, row
    # the customer hung up: no snapshot cut the conversation as an orphaned agent leg
    assert row["talk_ms"] >= TALK_MS - 1000 and row["hangup_side"] == "caller", row
    assert row["corrections"] == "", row
    assert row["legs"] == 3, row  # the caller's, the agent's and the customer's, one call
    assert row["leg_rows"] == 0, row  # neither the agent's leg nor the customer's is a call


def callback_row(product, call_id: str, timeout: float = 90) -> dict:
    """The call's live row once its callback has ended (the sink has folded its end),
    with how many legs' creations the call log holds under its id and how many live rows
    (a row the sink cancelled when a bridge joined its leg is none) bear those legs' ids."""
    client = product.clickhouse()
    deadline = time.monotonic() + timeout
    row: dict = {}
    try:
        while time.monotonic() < deadline:
            data, cols = client.execute(
                "SELECT disposition, callback, callback_attempts, agent_id, answer_us, end_us,"
                " talk_ms, hangup_side, corrections FROM calls"
                " WHERE tenant = %(t)s AND call_id = %(c)s AND sign = 1"
                " ORDER BY version DESC LIMIT 1",
                {"t": product.tenant, "c": call_id}, with_column_types=True)
            row = dict(zip([c for c, _ in cols], data[0])) if data else {}
            # the router's facts may be folded before the switch's: wait for the bridge
            if row.get("end_us") and row.get("answer_us") and row.get("callback") != "requested":
                legs = [r[0] for r in client.execute(
                    "SELECT DISTINCT visitParamExtractString(payload, 'leg_id') FROM events"
                    " WHERE tenant = %(t)s AND call_id = %(c)s AND type = 'channel_created'",
                    {"t": product.tenant, "c": call_id})]
                row["legs"] = len(legs)
                row["leg_rows"] = client.execute(
                    "SELECT sum(sign) FROM calls WHERE tenant = %(t)s AND call_id IN %(legs)s"
                    " AND call_id != %(c)s", {"t": product.tenant, "c": call_id,
                                              "legs": tuple(legs) or ("",)})[0][0]
                return row
            time.sleep(1)
    finally:
        client.disconnect()
    raise AssertionError(f"the callback of {call_id} not ended in the call log: {row}")
