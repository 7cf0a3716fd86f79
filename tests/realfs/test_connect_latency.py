"""Dead air after the agent answers (issue 15), on a real FreeSWITCH with SIPp phones: a
queue the switch connects (fs-conf's tongdai_connect) against the same queue connected by
the router (the answered leg parks, the router orders uuid_bridge), in one test on one switch
with the same phones, so only the connect differs; calls one at a time. Measured on the switch's own clock: the agent leg's
CHANNEL_ANSWER to the CHANNEL_BRIDGE that joins it to its caller (Event-Date-Timestamp, 20 ms
steps with the default core timer)."""
from __future__ import annotations

import statistics

import pytest

from routing.contract import topics
from tests.integration.harness import Publisher

pytestmark = [pytest.mark.realfs, pytest.mark.stack]

CALLS = 6
SALES = {"strategy": "longest-idle-agent", "offer_timeout_s": 20, "wrapup_s": 1}


def _answer_to_bridge_ms(events: list[dict]) -> dict[str, float]:
    answered: dict[str, int] = {}
    out = {}
    for e in events:
        name = e.get("Event-Name")
        if name == "CHANNEL_ANSWER" and e.get("variable_tongdai_offer_id"):
            answered[e["Unique-ID"]] = int(e["Event-Date-Timestamp"])
        elif name == "CHANNEL_BRIDGE":
            for leg in (e.get("Bridge-A-Unique-ID"), e.get("Bridge-B-Unique-ID")):
                if leg in answered:
                    out[leg] = (int(e["Event-Date-Timestamp"]) - answered.pop(leg)) / 1000
    return out


def test_the_switch_connects_the_answering_agent_faster_than_the_router(product):
    phones = [product.agent_phone(a, calls=CALLS, ring_ms=1000, timeout_s=300)
              for a in product.agents.values()]
    esl = product.switch.esl()
    esl.command("event plain CHANNEL_ANSWER CHANNEL_BRIDGE")
    reader = product.reader()
    config = Publisher(product.bootstrap, product.tenant)
    try:
        for connect in ("switch", "router"):
            config.config("queue", "sales", {**SALES, "connect": connect})
            config.flush()
            for _ in range(CALLS):  # one at a time: every caller reaches a free phone
                caller = product.call(product.queue_did, hold_ms=3000)
                assert caller.wait(90) == 0, caller.messages()[-2000:]
        measured = _answer_to_bridge_ms(esl.plain_events())
        reader.poll(2)
    finally:
        config.config("queue", "sales", SALES)
        config.flush()
        config.close()
        for phone in phones:
            phone.stop()
        esl.close()
        reader.close()
    mode = {e.payload["offer_id"]: e.payload["connect"]
            for e in reader.envelopes(topics.ROUTING_DECISIONS) if e.type == "offer_call"}
    figures: dict[str, list[float]] = {"switch": [], "router": []}
    for leg, ms in measured.items():
        figures[mode[leg]].append(ms)
    for connect, values in figures.items():
        assert len(values) >= CALLS - 1, (connect, figures)
        print(f"answer -> bridged, connected by the {connect}: p50 "
              f"{statistics.median(values):.0f} ms, max {max(values):.0f} ms over {len(values)}")
    ratio = statistics.median(figures["switch"]) / statistics.median(figures["router"])
    print(f"switch / router (p50): {ratio:.2f}")
    # Both ways share a slow mode (a silent caller taken from the park around the time its
    # music starts: 135-175 ms either way, in 2-3 calls of 6 on a real switch), which makes
    # six calls' medians a coin toss; the fastest of each is the path's own cost.
    assert min(figures["switch"]) < min(figures["router"]), figures
