"""One follower of a busy topic feeds several views (api.bus.fan_out)."""
from __future__ import annotations

import logging

from api.bus import MemoryBus, envelope, fan_out


def test_every_view_gets_every_record_even_after_one_fails(caplog) -> None:
    seen: dict[str, list[str]] = {"first": [], "last": []}

    def broken(env) -> None:
        raise RuntimeError(f"view bug on {env.type}")

    bus = MemoryBus()
    bus.follow("events", fan_out("events", lambda e: seen["first"].append(e.type), broken,
                                 lambda e: seen["last"].append(e.type)))
    with caplog.at_level(logging.ERROR, logger="tongdai.api.bus"):
        for kind in ("CHANNEL_PARK", "CHANNEL_ANSWER"):
            bus.publish("events", b"k", envelope(kind, "acme", {}))
    assert seen == {"first": ["CHANNEL_PARK", "CHANNEL_ANSWER"],
                    "last": ["CHANNEL_PARK", "CHANNEL_ANSWER"]}
    assert [r.exc_info[1].args[0] for r in caplog.records] == [
        "view bug on CHANNEL_PARK", "view bug on CHANNEL_ANSWER"]
