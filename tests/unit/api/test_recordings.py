"""A call's recording played in the browser (HTTP range requests) and downloaded, by the
roles allowed, every listen and download audited; only the tenant's own files."""
from __future__ import annotations

import pytest

from api import settings as api_settings
from api.app import create_app
from api.bus import MemoryBus
from tests.unit.api.conftest import SECRET

pytestmark = pytest.mark.api
SWITCH_PATH = "/var/lib/freeswitch/recordings/{tenant}/2026-12-06/{call}.wav"
AUDIO = bytes(range(256)) * 40  # 10,240 bytes: what the player gets back, byte for byte


@pytest.fixture
def served(tmp_path, monkeypatch):
    app = create_app(api_settings.load({"TONGDAI_API_TOKEN_SECRET": SECRET,
                                        "TONGDAI_API_RECORDINGS_DIR": str(tmp_path)}),
                     MemoryBus(), None)
    svc = app.extensions["tongdai"]
    calls = {"call-1": ("support", SWITCH_PATH.format(tenant="acme", call="call-1")),
             "call-beta": ("support", SWITCH_PATH.format(tenant="beta", call="call-beta")),
             "call-gone": ("support", SWITCH_PATH.format(tenant="acme", call="call-gone"))}
    monkeypatch.setattr(svc.reports, "recording", lambda tenant, call_id: calls[call_id])
    folder = tmp_path / "acme" / "2026-12-06"
    folder.mkdir(parents=True)
    (folder / "call-1.wav").write_bytes(AUDIO)
    (tmp_path / "beta" / "2026-12-06").mkdir(parents=True)
    (tmp_path / "beta" / "2026-12-06" / "call-beta.wav").write_bytes(AUDIO)

    def headers(role: str, user: str = "mai") -> dict:
        return {"Authorization": f"Bearer {svc.tokens.mint('acme', role, user)[0]}"}

    def audit() -> list[tuple[str, str, str]]:
        items = app.test_client().get("/api/v1/audit", query_string={"action": "recording."},
                                      headers=headers("admin", "boss")).get_json()["items"]
        return sorted((e["user"], e["action"], e["target"]) for e in items)

    return app.test_client(), headers, audit


def test_played_with_range_requests_and_one_listen_audited(served):
    client, headers, audit = served
    url = "/api/v1/calls/call-1/recording/audio"
    whole = client.get(url, headers=headers("supervisor"))
    assert whole.status_code == 200 and whole.data == AUDIO
    assert whole.headers["Content-Type"] == "audio/wav"
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert "attachment" not in whole.headers.get("Content-Disposition", "")
    part = client.get(url, headers={**headers("supervisor"), "Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.data == AUDIO[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(AUDIO)}"
    start = client.get(url, headers={**headers("supervisor"), "Range": "bytes=0-"})
    assert start.status_code in (200, 206) and start.data == AUDIO
    # the first request and the one from the start are listens; the seek is not
    assert audit() == [("mai", "recording.listen", "call/call-1")] * 2


def test_downloaded_as_an_attachment_and_audited(served):
    client, headers, audit = served
    r = client.get("/api/v1/calls/call-1/recording/audio?download=true",
                   headers=headers("admin", "boss"))
    assert r.status_code == 200 and r.data == AUDIO
    assert r.headers["Content-Disposition"].startswith("attachment")
    assert "call-1.wav" in r.headers["Content-Disposition"]
    assert audit() == [("boss", "recording.download", "call/call-1")]


def test_agents_may_not_and_another_tenants_or_a_missing_file_is_not_found(served):
    client, headers, audit = served
    assert client.get("/api/v1/calls/call-1/recording/audio",
                      headers=headers("agent")).status_code == 403
    # acme's supervisor, a call log row pointing into beta's folder: never served
    assert client.get("/api/v1/calls/call-beta/recording/audio",
                      headers=headers("supervisor")).status_code == 404
    assert client.get("/api/v1/calls/call-gone/recording/audio",
                      headers=headers("supervisor")).status_code == 404
    assert audit() == []


def test_a_tenants_recording_policy_is_validated_and_defaults_to_every_call_kept(
        app, client, auth):
    h = auth("admin")
    r = client.put("/api/v1/tenant", json={"domain": "acme.example",
                                           "recording": {"retention_days": 90}}, headers=h)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["recording"] == {"calls": "all", "retention_days": 90}
    bad = client.put("/api/v1/tenant", json={"recording": {"calls": "some",
                                                           "retention_days": -1}}, headers=h)
    assert bad.status_code == 400
    fields = {d["field"] for d in bad.get_json()["details"]}
    assert fields == {"recording.calls", "recording.retention_days"}, bad.get_json()


def test_retention_deletes_the_days_past_each_tenants_policy_and_audits_them(app, client, auth,
                                                                             tmp_path):
    import datetime as dt

    from api.reports.retention import Purged, purge

    h = auth("admin")
    assert client.put("/api/v1/tenant", json={"domain": "acme.example",
                                              "recording": {"retention_days": 30}},
                      headers=h).status_code == 200
    assert client.put("/api/v1/tenant", json={"domain": "beta.example"},
                      headers=auth("admin", tenant="beta")).status_code == 200
    for tenant, day in [("acme", "2026-10-01"), ("acme", "2026-11-05"), ("acme", "2026-11-06"),
                        ("beta", "2026-01-01")]:
        (tmp_path / tenant / day).mkdir(parents=True)
        (tmp_path / tenant / day / "call.wav").write_bytes(b"RIFF")
    (tmp_path / "acme" / "not-a-day").mkdir()
    view = app.extensions["tongdai"].view
    audited: list[Purged] = []
    today = dt.date(2026, 12, 6)  # 30 days kept: 2026-11-06 and later
    assert purge(view, tmp_path, today, audited.append, dry_run=True) == [
        Purged("acme", "2026-10-01", 1), Purged("acme", "2026-11-05", 1)]
    assert audited == [] and (tmp_path / "acme" / "2026-10-01").exists()
    purge(view, tmp_path, today, audited.append)
    assert audited == [Purged("acme", "2026-10-01", 1), Purged("acme", "2026-11-05", 1)]
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob("*/*"))
    assert left == ["acme/2026-11-06", "acme/not-a-day", "beta/2026-01-01"]
