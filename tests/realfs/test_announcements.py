"""Position and estimated-wait announcements on a real FreeSWITCH (issue 19): the router's
`play_announcement` reaches the waiting caller through the bridge as `uuid_broadcast`, the
switch stops the waiting music (`uuid_break`), plays the prompt and then the music again.

Truth: the switch's own events (CHANNEL_PARK, CHANNEL_EXECUTE[_COMPLETE] of each playback
on the caller's leg, with FreeSWITCH's Application-Response) and the RTP it sends the
caller, counted by a socket of the test's.
"""
from __future__ import annotations

import random

import pytest

from . import sipp
from .conftest import free_port, tongdai

pytestmark = [pytest.mark.realfs, pytest.mark.stack]

EVENTS = "event plain CHANNEL_PARK CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP"


def _at(event: dict) -> float:
    return int(event["Event-Date-Timestamp"]) / 1e6


def test_a_waiting_caller_hears_its_position_inside_the_music(product):
    # 0299 (Soc Trang): a number of the product tenant's that sorts after its 0283 ones, so
    # the tenant's caller ID (its first geographic number) stays what other tests expect
    did = f"0299{random.Random().randrange(10**6, 10**7)}"
    config = product.folder / f"announce_{did}.yaml"
    # No agent serves the queue: the caller waits the whole call and hears its position.
    config.write_text(f"tenant: {product.tenant}\nqueues:\n"
                      "  announced: {announce_every_s: 8, offer_timeout_s: 20}\n"
                      f'dids:\n  "{did}": {{queue: announced}}\n')
    tongdai(product.env, "config", "apply", str(config))
    rtp = sipp.RtpCounter(free_port())
    esl = product.switch.esl()
    esl.command(EVENTS)
    try:
        caller = product.call(did, hold_ms=16000, hears=rtp.port)
        assert caller.wait(60) == 0, caller.messages()[-3000:]
    finally:
        esl.close()
        rtp.close()
    events = esl.plain_events()
    parked = [e for e in events if e.get("Event-Name") == "CHANNEL_PARK"
              and e.get("variable_tongdai_queue") == "announced"]
    assert parked, "the caller never parked in the queue"
    uid, park = parked[0]["Unique-ID"], _at(parked[0])
    mine = [e for e in events if e.get("Unique-ID") == uid]
    plays = [(e["Event-Name"], _at(e), e.get("Application-Data", ""),
              e.get("Application-Response", "")) for e in mine
             if e.get("Application") == "playback"]
    started = [(at, data) for name, at, data, _ in plays if name == "CHANNEL_EXECUTE"]
    prompts = [(at, data) for at, data in started if data.startswith("file_string://tongdai/ewt")]
    music = [(at, data) for at, data in started if data.startswith("local_stream://")]
    assert music and park + 0.5 < music[0][0] < park + 2.5, (park, plays)
    assert len(prompts) >= 2, plays  # on entry (+2 s) and 8 s later
    assert park + 1.5 < prompts[0][0] < park + 4.5, (park, prompts)
    assert "tongdai/ewt/vi/n/1.wav" in prompts[0][1] and "tongdai/ewt/en/" in prompts[0][1]
    # The music was broken into (its playback ends as the first prompt starts), and each
    # prompt brings it back: the caller hears sound between the first prompt's end (about
    # 6 s of speech) and the second prompt.
    music_done = [at for name, at, data, _ in plays
                  if name == "CHANNEL_EXECUTE_COMPLETE" and data.startswith("local_stream://")]
    assert music_done and abs(music_done[0] - prompts[0][0]) < 1.0, (music_done, prompts)
    assert prompts[0][1].endswith("!local_stream://moh"), prompts[0][1]
    # The music is plucked chords (deploy/freeswitch/make-sounds.sh), each decaying over its
    # 3.75 s: a 1.5 s gap in a chord's tail has few loud packets (7-36 of 76 measured), one
    # at its start most. Silence has none, so: media flows, and some of it is sound.
    gap = (prompts[0][0] + 6.5, prompts[1][0])
    flowing, resumed = rtp.between(*gap), rtp.between(*gap, loud=True)
    assert flowing > 0.8 * 50 * (gap[1] - gap[0]) and resumed >= 3, \
        (flowing, resumed, gap, prompts)
    assert not [line for line in product.switch.errors() if "tongdai/ewt" in line]
