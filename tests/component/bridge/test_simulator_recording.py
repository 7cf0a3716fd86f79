"""The simulator records a DID call from its answer, as the real switch does with the API's
dialplan (tests/realfs/test_recording.py: record_session right after the answer, before the
IVR or the park, <recordings>/<tenant>/<date in Vietnam>/<call uuid>.wav, stopped at the
hangup)."""
from __future__ import annotations

import pytest

from esl_bridge.simulator.clock import ManualClock
from esl_bridge.simulator.model import CallerSpec
from esl_bridge.simulator.node import Node

pytestmark = pytest.mark.bridge


def run(record_inbound: bool) -> list:
    node = Node(clock=ManualClock(), seed=1, heartbeat=None, record_inbound=record_inbound,
                recordings_dir="/rec", tz="Asia/Ho_Chi_Minh")
    events = []
    node.listeners.append(events.append)
    node.start()
    uid = node.place_call(CallerSpec.parse({
        "at": 0, "number": "0903123456", "did": "02873001234", "patience": 3,
        "variables": {"tongdai_tenant": "acme", "tongdai_queue": "sales"}}))
    node.advance(10)
    return [(e.headers.get("Event-Name"), e.headers.get("Record-File-Path"))
            for e in events if e.headers.get("Unique-ID") == uid], uid, node


def test_a_did_call_is_recorded_from_its_answer_to_its_hangup():
    seen, uid, node = run(True)
    names = [n for n, _ in seen]
    assert names.index("CHANNEL_ANSWER") < names.index("RECORD_START") \
        < names.index("CHANNEL_PARK") < names.index("RECORD_STOP")
    path = dict(seen)["RECORD_START"]
    assert path.startswith("/rec/acme/") and path.endswith(f"/{uid}.wav")
    assert dict(seen)["RECORD_STOP"] == path
    assert node.errors == []


def test_off_by_default_as_the_static_dialplan_records_at_the_queue():
    seen, _, _ = run(False)
    assert "RECORD_START" not in [n for n, _ in seen]
