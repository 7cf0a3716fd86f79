"""The router tells waiting callers their position and estimated wait through the switch:
`play_announcement` commands the actuator turns into `uuid_broadcast`."""
from __future__ import annotations

import pytest

from esl_bridge.actuator import esl_command
from routing.contract import topics
from routing.contract.schemas import RecordSchema
from streams.router import handle
from test_router import T0, cmd, fs, leg, setup

pytestmark = pytest.mark.streams


def plays(outs) -> list:
    return [o.envelope for o in outs if o.envelope.type == "play_announcement"]


def test_waiting_callers_hear_position_and_wait_on_entry_and_every_interval():
    r = setup(agents=("a1",), announce_every_s=60)
    rung = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    offer = next(o for o in rung if o.envelope.type == "offer_call").envelope.payload
    out = handle(r, fs("channel_parked", 11, "c2", **leg("c2", "c2", queue="support")))
    assert plays(out) == [], "the waiting music starts a second after the park"
    assert plays(handle(r, cmd("tick", 12.5))) == []
    (first,) = plays(handle(r, cmd("tick", 13.2)))  # 2 s after c2 entered
    assert first.call_id == "c2" and first.payload["leg_id"] == "c2"
    assert first.payload["node"] == "node-core-uuid"
    path = first.payload["path"]
    assert path.startswith("file_string://tongdai/ewt/vi/position.wav!tongdai/ewt/vi/n/1.wav")
    assert "tongdai/ewt/en/position.wav" in path
    assert RecordSchema().validate(first.to_dict()) == {}
    assert esl_command(first) == f"uuid_broadcast c2 {path}!${{tongdai_waiting_music}} aleg"
    assert plays(handle(r, cmd("tick", 14))) == []
    # a1 never answered (the switch says so at 24 s) and goes on a break: c1 waits again
    # too, and hears its minute-mark (entered at 10: 12, 72, ...); c2's comes at 73.
    handle(r, fs("command_executed", 24, "c1", command_id=offer["offer_id"],
                 command="offer_call", ok=False, result="-ERR NO_ANSWER", job_uuid="j1"))
    handle(r, cmd("agent_pause_requested", 24.5, agent_id="a1", reason="break"))
    assert [e.call_id for e in plays(handle(r, cmd("tick", 72.9)))] == ["c1"]
    (again,) = plays(handle(r, cmd("tick", 73.1)))
    assert again.call_id == "c2" and again.payload["command_id"] != first.payload["command_id"]
    assert "tongdai/ewt/vi/n/2.wav" in again.payload["path"], "c1 is ahead of c2 now"


def test_the_music_is_broken_into_first_and_comes_back_after_the_prompt():
    r = setup(agents=("a1",), announce_every_s=60)
    handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    handle(r, fs("channel_parked", 11, "c2", **leg("c2", "c2", queue="support")))
    outs = [o.envelope for o in handle(r, cmd("tick", 13.2))
            if o.envelope.type in ("break_playback", "play_announcement")]
    assert [(e.type, e.version) for e in outs] == [("break_playback", 1),
                                                  ("play_announcement", 2)]
    assert esl_command(outs[0]) == "uuid_break c2"
    assert outs[1].payload["then_music"] is True
    assert all(RecordSchema().validate(e.to_dict()) == {} for e in outs)


def test_a_queue_with_callbacks_offers_them_after_the_wait():
    r = setup(agents=("a1",), announce_every_s=60, callback_key="1")
    handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    handle(r, fs("channel_parked", 11, "c2", **leg("c2", "c2", queue="support")))
    (said,) = plays(handle(r, cmd("tick", 13.2)))
    files = said.payload["path"].removeprefix("file_string://").split("!")
    assert files[-2:] == ["tongdai/callback/vi/offer.wav", "tongdai/callback/en/offer.wav"]


def test_no_announcements_unless_the_queue_asks_and_none_to_a_ringing_caller():
    r = setup(agents=("a1",))
    handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    handle(r, fs("channel_parked", 11, "c2", **leg("c2", "c2", queue="support")))
    assert all(plays(handle(r, cmd("tick", t))) == [] for t in (13, 14, 80))
    r = setup(agents=("a1",), announce_every_s=0)
    handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    said = [e.call_id for t in (12.5, 13, 80, 200) for e in plays(handle(r, cmd("tick", t)))]
    assert said == [], "c1 was ringing a1 the whole time"


def test_a_replayed_log_repeats_the_same_command_ids():
    def run():
        r = setup(agents=(), announce_every_s=30)
        handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
        return [e.payload["command_id"] for t in (12, 13, 45)
                for e in plays(handle(r, cmd("tick", t)))]
    first = run()
    assert len(first) == 2 and run() == first, "the actuator drops what it already ran"
