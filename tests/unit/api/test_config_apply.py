"""`tongdai config apply`: a file is validated as a set and written referenced-first."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from api.auth import Principal
from api.config.apply import apply, write_order
from routing.contract import topics

pytestmark = pytest.mark.api
WHO = Principal("acme", "admin", "cli:test", "t", 2**31)
DEMO = Path(__file__).resolve().parents[3] / "deploy" / "local" / "demo" / "demo.yaml"

# Written in the order a reader thinks: the DID, its main menu, the sub-menu, the queues.
FORWARD = {
    "tenant": "acme",
    "dids": {"1900 1234": {"ivr": "main"}},
    "ivrs": {"main": {"greeting": "ivr/main.wav",
                      "options": {"1": {"queue": "sales"}, "2": {"ivr": "support_menu"}}},
             "support_menu": {"greeting": "ivr/support.wav",
                              "options": {"1": {"queue": "support"}, "0": {"ivr": "main"}}}},
    "queues": {"sales": {"after_hours": {"kind": "queue", "target": "support"}},
               "support": {}},
    "users": {"mai": {"role": "supervisor", "extension": "1009"}},
    "extensions": {"1009": {"display_name": "Mai", "can_monitor": True}},
}


def _written(bus) -> list[tuple[str, str]]:
    return [(e.payload["kind"], e.payload["entity_id"])
            for _, e in bus.records.get(topics.CONFIG, []) if e.payload["kind"] != "claim"]


def test_references_may_point_forward_in_the_file_and_menus_may_form_a_cycle(app, bus):
    svc = app.extensions["tongdai"].config
    outcomes = apply(svc, WHO, FORWARD)
    assert {(o.kind, o.entity_id): o.status for o in outcomes} == {
        ("queue", "sales"): "created", ("queue", "support"): "created",
        ("ivr", "main"): "created", ("ivr", "support_menu"): "created",
        ("did", "19001234"): "created", ("extension", "1009"): "created",
        ("user", "mai"): "created"}
    assert all(not o.errors for o in outcomes)
    written = _written(bus)
    assert sorted(written) == sorted((o.kind, o.entity_id) for o in outcomes)
    # referenced first: the overflow queue before its queue, menus before the DID, the
    # sub-menu before the menu that enters it (the cycle is cut where it closes)
    pos = {key: i for i, key in enumerate(written)}
    assert pos[("queue", "support")] < pos[("queue", "sales")]
    assert pos[("ivr", "main")] < pos[("did", "19001234")]
    assert pos[("ivr", "support_menu")] < pos[("ivr", "main")]
    assert pos[("extension", "1009")] < pos[("user", "mai")]
    assert svc.get("acme", "ivr", "support_menu")["options"]["0"] == {"ivr": "main"}
    assert {o.status for o in apply(svc, WHO, FORWARD)} == {"unchanged"}


def test_a_reference_missing_from_the_file_and_the_config_names_entity_field_and_target(app, bus):
    svc = app.extensions["tongdai"].config
    bad = copy.deepcopy(FORWARD)
    del bad["ivrs"]["support_menu"]
    bad["queues"]["sales"]["after_hours"]["target"] = "nowhere"
    bad["users"]["mai"]["extension"] = "1010"
    outcomes = apply(svc, WHO, bad)
    invalid = {(o.kind, o.entity_id): o.errors for o in outcomes if o.status == "invalid"}
    where = " (neither in this file nor in the configuration)"
    assert invalid == {
        ("ivr", "main"): [{"field": "options.2", "rule": f"unknown IVR 'support_menu'{where}"}],
        ("queue", "sales"): [{"field": "after_hours.target",
                              "rule": f"unknown queue 'nowhere'{where}"}],
        ("user", "mai"): [{"field": "extension", "rule": f"unknown extension '1010'{where}"}]}
    assert topics.CONFIG not in bus.records  # nothing written


def test_a_reference_to_the_existing_configuration_is_enough(app, client, auth):
    h = auth("admin")
    assert client.put("/api/v1/queues/support", json={}, headers=h).status_code == 200
    svc = app.extensions["tongdai"].config
    outcomes = apply(svc, WHO, {"tenant": "acme", "dids": {"19005555": {"queue": "support"}}})
    assert [(o.kind, o.status) for o in outcomes] == [("did", "created")]


def test_two_agents_of_the_file_may_not_share_an_extension(app, client, auth, bus):
    h = auth("admin")
    client.put("/api/v1/queues/support", json={}, headers=h)
    client.put("/api/v1/agents/lan", json={"extension": "1001"}, headers=h)
    svc = app.extensions["tongdai"].config
    before = len(bus.records.get(topics.CONFIG, []))
    doc = {"tenant": "acme", "agents": {"binh": {"extension": "1002"},
                                        "chi": {"extension": "1002"},
                                        "dung": {"extension": "1001"}}}
    invalid = {o.entity_id: o.errors[0]["rule"] for o in apply(svc, WHO, doc)
               if o.status == "invalid"}
    assert invalid == {"binh": "unique per tenant: 1002 is also agent 'chi''s",
                       "chi": "unique per tenant: 1002 is also agent 'binh''s",
                       "dung": "unique per tenant: 1001 is also agent 'lan''s"}
    assert len(bus.records.get(topics.CONFIG, [])) == before
    # moving lan to another extension in the same file frees 1001
    swap = {"tenant": "acme", "agents": {"lan": {"extension": "1003"},
                                         "dung": {"extension": "1001"}}}
    assert {o.status for o in apply(svc, WHO, swap)} == {"updated", "created"}


def test_write_order_is_the_files_order_when_nothing_refers_to_anything():
    prepared = [("queue", q, {}, {}, "created") for q in ("b", "a", "c")]
    assert [p[1] for p in write_order(prepared)] == ["b", "a", "c"]


def test_the_demo_configuration_applies(app):
    doc = yaml.safe_load(DEMO.read_text())
    doc["tenant"] = "acme"
    outcomes = apply(app.extensions["tongdai"].config, WHO, doc)
    assert [o for o in outcomes if o.status not in ("created",)] == []


def test_missing_only_keeps_an_admins_changes_and_deletions_and_adds_what_is_new(
        app, client, auth):
    """`tongdai up` applies the demo with --missing-only at every start: a call limit an
    admin raised to 2,000 stays 2,000, a queue they deleted stays deleted, and an extension
    a newer demo.yaml adds is created (with its SIP password, shown once)."""
    svc = app.extensions["tongdai"].config
    doc = yaml.safe_load(DEMO.read_text())
    doc["tenant"] = "acme"
    del doc["extensions"]["1011"]
    first = apply(svc, WHO, doc, missing_only=True)
    assert {o.status for o in first} == {"created"}
    assert {o.entity_id for o in first if o.kind == "extension" and o.secret} == {
        f"{1000 + i}" for i in range(11)} | {"1099"}
    h = auth("admin")
    raised = client.put("/api/v1/tenant", json={**doc["settings"], "max_concurrent_calls": 2000},
                        headers=h)
    assert raised.status_code == 200, raised.get_json()
    assert client.delete("/api/v1/customers/kh-0002", headers=h).status_code in (200, 204)

    doc = yaml.safe_load(DEMO.read_text())
    doc["tenant"] = "acme"
    again = {(o.kind, o.entity_id): o for o in apply(svc, WHO, doc, missing_only=True)}
    assert again[("extension", "1011")].status == "created" and again[("extension", "1011")].secret
    assert {key for key, o in again.items() if o.status != "kept"} == {("extension", "1011")}
    assert svc.get_tenant("acme")["max_concurrent_calls"] == 2000
    assert svc.view.get("acme", "customer", "kh-0002") is None
    assert not any(o.secret for key, o in again.items() if key != ("extension", "1011"))
    # without --missing-only the file wins again
    plain = {(o.kind, o.entity_id): o.status for o in apply(svc, WHO, doc)}
    assert plain[("tenant", "acme")] == "updated" and plain[("customer", "kh-0002")] == "created"
    assert svc.get_tenant("acme")["max_concurrent_calls"] == 30


def test_missing_only_refuses_a_new_entity_that_refers_to_a_deleted_one(app, client, auth):
    svc = app.extensions["tongdai"].config
    apply(svc, WHO, {"tenant": "acme", "queues": {"sales": {}}}, missing_only=True)
    assert client.delete("/api/v1/queues/sales", headers=auth("admin")).status_code in (200, 204)
    outcomes = apply(svc, WHO, {"tenant": "acme", "queues": {"sales": {}},
                                "dids": {"02873001234": {"queue": "sales"}}}, missing_only=True)
    status = {(o.kind, o.entity_id): o.status for o in outcomes}
    assert status == {("queue", "sales"): "kept", ("did", "02873001234"): "invalid"}


def test_a_sound_the_switch_does_not_have_makes_its_entity_invalid(app, tmp_path):
    """With the switch's sounds folder known, a missing greeting, invalid-entry sound or
    music on hold is refused (a caller would hear silence); rate folders and absolute
    paths count, tone streams always exist."""
    callie = tmp_path / "en" / "us" / "callie"
    (callie / "ivr" / "8000").mkdir(parents=True)
    (callie / "ivr" / "main.wav").write_bytes(b"RIFF")
    (callie / "ivr" / "8000" / "ivr-that_was_an_invalid_entry.wav").write_bytes(b"RIFF")
    (tmp_path / "music" / "8000").mkdir(parents=True)
    doc = {"tenant": "acme",
           "queues": {"sales": {"music_on_hold": "local_stream://moh"},
                      "vip": {"music_on_hold": "/nowhere/vip.wav"},
                      "tones": {"music_on_hold": "tone_stream://%(500,500,440)"}},
           "ivrs": {"main": {"greeting": "ivr/main.wav", "options": {"1": {"queue": "sales"}}},
                    "bad": {"greeting": "ivr/missing.wav", "invalid_sound": "ivr/no.wav",
                            "options": {"1": {"queue": "sales"}}}}}
    svc = app.extensions["tongdai"].config
    outcomes = apply(svc, WHO, doc, sounds=tmp_path)
    invalid = {(o.kind, o.entity_id): sorted(e["field"] for e in o.errors)
               for o in outcomes if o.status == "invalid"}
    assert invalid == {("queue", "sales"): ["music_on_hold"],  # moh: an empty folder
                       ("queue", "vip"): ["music_on_hold"],
                       ("ivr", "bad"): ["greeting", "invalid_sound"]}
    assert "ivr/missing.wav" in next(o for o in outcomes if o.entity_id == "bad").errors[0]["rule"]
    (tmp_path / "music" / "8000" / "moh.wav").write_bytes(b"RIFF")
    del doc["queues"]["vip"], doc["ivrs"]["bad"]
    assert {o.status for o in apply(svc, WHO, doc, sounds=tmp_path)} == {"created"}
