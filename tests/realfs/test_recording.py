"""Recording of a tenant provisioned only through the API (issue 14: no call routed through
the API was recorded: no folder, an empty recording column for 1,301 calls).

Truth per call: the switch's own CHANNEL_ANSWER and CHANNEL_HANGUP of the caller's leg (the
recording runs from one to the other), the file on disk (its length from the WAV header),
the call log's `recording` column, and the API serving it with range requests, audited.
"""
from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
import wave
from zoneinfo import ZoneInfo

import pytest

from tests.realfs.conftest import tongdai
from tests.realfs.test_calls import call_row

pytestmark = [pytest.mark.realfs, pytest.mark.stack]


def token(product, role: str, user: str) -> str:
    env = {"TONGDAI_API_TOKEN_SECRET": product.token_secret}
    return tongdai(env, "api", "token", "--tenant", product.tenant, "--user", user,
                   "--role", role).strip()


def get(product, path: str, bearer: str, headers: dict | None = None):
    req = urllib.request.Request(f"http://127.0.0.1:{product.api_port}{path}",
                                 headers={"Authorization": f"Bearer {bearer}", **(headers or {})})
    try:
        return urllib.request.urlopen(req, timeout=20)
    except urllib.error.HTTPError as exc:
        return exc


@pytest.mark.parametrize("which,keys", [("queue_did", ""), ("ivr_did", "1")])
def test_a_call_is_recorded_per_tenant_date_and_call_and_played_by_the_api(product, which, keys):
    reader = product.reader()
    phones = [product.agent_phone(a) for a in product.agents.values()]
    esl = product.switch.esl()
    esl.command("event plain CHANNEL_ANSWER CHANNEL_HANGUP RECORD_START RECORD_STOP")
    try:
        caller = product.call(getattr(product, which), digits=keys, hold_ms=6000)
        reader.wait_for(lambda es: any(e.type == "call_answered" for e in es), timeout=60,
                        what="call_answered")
        call_id = reader.of_type("call_answered")[0].call_id
        assert caller.wait(60) == 0, caller.messages()[-3000:]
        reader.wait_for(lambda es: any(e.type == "call_ended" and e.call_id == call_id
                                       for e in es), timeout=30, what="call_ended")
        stop = esl.wait_event(lambda e: e.get("Event-Name") == "RECORD_STOP"
                              and e.get("Unique-ID") == call_id, timeout=15)
    finally:
        for phone in phones:
            phone.stop()
        esl.close()
        reader.close()
    assert stop is not None, "no RECORD_STOP for the caller's leg"
    events = {e["Event-Name"]: e for e in esl.plain_events() if e.get("Unique-ID") == call_id}
    answered_us = int(events["CHANNEL_ANSWER"]["Event-Date-Timestamp"])
    hung_up_us = int(events["CHANNEL_HANGUP"]["Event-Date-Timestamp"])
    call_s = (hung_up_us - answered_us) / 1e6

    today = dt.datetime.fromtimestamp(answered_us / 1e6, ZoneInfo("Asia/Ho_Chi_Minh")).date()
    file = product.folder / "recordings" / product.tenant / today.isoformat() / f"{call_id}.wav"
    assert file.is_file(), sorted(str(p) for p in (product.folder / "recordings").rglob("*"))
    with wave.open(str(file)) as w:
        rec_s = w.getnframes() / w.getframerate()
        assert w.getnchannels() == 2  # caller and the other side
    with open(product.folder / "recordings.txt", "a") as log:  # kept with the artifacts
        log.write(f"{call_id} {which} keys={keys!r} answer->hangup {call_s:.3f} s, "
                  f"recording {rec_s:.3f} s, {file.stat().st_size} bytes\n")
    # the recording runs from the answer to the hangup (the switch flushes its last frames)
    assert abs(rec_s - call_s) < 1.0, (rec_s, call_s)
    assert stop["Record-File-Path"] == str(file)

    row = call_row(product, call_id)
    assert row["disposition"] == "answered"
    assert _recording_column(product, call_id) == str(file)

    sup = token(product, "supervisor", "realfs-sup")
    whole = get(product, f"/api/v1/calls/{call_id}/recording/audio", sup)
    assert whole.status == 200 and whole.read() == file.read_bytes()
    part = get(product, f"/api/v1/calls/{call_id}/recording/audio", sup, {"Range": "bytes=44-8043"})
    assert part.status == 206 and part.headers["Content-Range"].startswith("bytes 44-8043/")
    assert len(part.read()) == 8000
    agent = token(product, "agent", "realfs-agent")
    assert get(product, f"/api/v1/calls/{call_id}/recording/audio", agent).status == 403
    admin = token(product, "admin", "realfs-admin")
    deadline = time.monotonic() + 10
    listens = []
    while time.monotonic() < deadline and not listens:
        items = json.load(get(product, "/api/v1/audit?action=recording.", admin))["items"]
        listens = [e for e in items if e["target"] == f"call/{call_id}"]
        time.sleep(0.5)
    assert [(e["user"], e["action"]) for e in listens] == [("realfs-sup", "recording.listen")]


def _recording_column(product, call_id: str, timeout: float = 20) -> str:
    client = product.clickhouse()
    deadline = time.monotonic() + timeout
    try:
        while True:
            rows = client.execute(
                "SELECT recording FROM calls FINAL WHERE tenant = %(t)s AND call_id = %(c)s"
                " AND sign = 1 ORDER BY version DESC LIMIT 1",
                {"t": product.tenant, "c": call_id})
            if (rows and rows[0][0]) or time.monotonic() > deadline:
                return rows[0][0] if rows else ""
            time.sleep(1)
    finally:
        client.disconnect()
