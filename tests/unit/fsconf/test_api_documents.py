"""The api's mod_xml_curl documents, checked like the static configuration: well-formed,
and evaluated call by call with the same dialplan evaluator.

The two must agree on the names fs-conf/README.md describes: the carriers' context
(`public`) and the context a phone's call starts in.
"""
from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET

import pytest

pytest.importorskip("flask")  # the api's package imports Flask
from api.config.view import ConfigView  # noqa: E402
from api.freeswitch import render  # noqa: E402
from routing.contract import Envelope  # noqa: E402
from tests.unit.fsconf import fsxml  # noqa: E402

pytestmark = pytest.mark.fsconf

AT = dt.datetime(2026, 11, 24, 10, 0)


def view() -> ConfigView:
    v = ConfigView()
    records = [
        ("acme", "tenant", "acme", {"domain": "acme.tongdai.local", "max_concurrent_calls": 2}),
        ("acme", "did", "19001234", {"kind": "premium", "queue": "sales"}),
        ("acme", "did", "+842873001234", {"kind": "geographic", "ivr": "main", "region": "HCM"}),
        ("acme", "blocklist", "+84912345678", {"reason": "abuse"}),
        ("acme", "extension", "1000", {"a1_hash": "0" * 32, "agent_id": "a1",
                                       "display_name": "Agent 1000"}),
        ("acme", "ivr", "main", {"greeting": "ivr/main.wav", "options": {
            "1": {"queue": "sales"}, "2": {"ivr": "support"}, "9": {"hangup": True}}}),
    ]
    for n, (tenant, kind, entity_id, data) in enumerate(records):
        v.apply(Envelope(event_id=f"e{n}", type="config_changed", version=1, occurred_at=n + 1,
                         tenant=tenant, source="test", seq=None, call_id=None,
                         payload={"kind": kind, "entity_id": entity_id, "data": data}))
    return v


def dialplan_doc(dest: str, caller: str = "+84903123456", context: str = "public"):
    text = render.render(view(), {"section": "dialplan", "Caller-Destination-Number": dest,
                                  "Caller-Caller-ID-Number": caller, "Caller-Context": context})
    return fsxml.parse_document(text)


def run(doc: ET.Element, dest: str, caller: str = "+84903123456", limits=None) -> fsxml.Outcome:
    context = doc.find("./section/context").get("name")
    return fsxml.run(doc, fsxml.Call(destination=dest, caller=caller, context=context, at=AT,
                                     limits=limits or {}))


@pytest.mark.parametrize("form", [
    {"section": "dialplan", "Caller-Destination-Number": "19001234"},
    {"section": "dialplan", "Caller-Destination-Number": "0000"},
    {"section": "directory", "domain": "acme.tongdai.local"},
    {"section": "directory", "domain": "acme.tongdai.local", "user": "1000"},
    {"section": "directory", "domain": "nobody.example"},
    {"section": "configuration", "key_value": "ivr.conf"},
    {"section": "configuration", "key_value": "sofia.conf"},
])
def test_every_answer_is_a_well_formed_freeswitch_document(form):
    root = ET.fromstring(render.render(view(), form))
    assert root.tag == "document" and root.get("type") == "freeswitch/xml"
    assert root.find("section") is not None


def test_a_did_with_a_queue_sets_the_products_variables_and_parks():
    out = run(dialplan_doc("19001234"), "19001234")
    assert out.end == "park"
    v = out.variables
    assert (v["tongdai_tenant"], v["tongdai_queue"], v["tongdai_did"]) == ("acme", "sales", "19001234")
    assert "answer" in [s.application for s in out.steps]


def test_a_queue_caller_hears_music_from_a_second_after_the_park_and_only_while_parked():
    """The default music (the queue names none), scheduled before the park so that it starts
    inside it; scheduled through a variable expanded when it plays, which a bridge or a
    transfer turns into a millisecond of silence first (a realfs test shows why)."""
    out = run(dialplan_doc("19001234"), "19001234")
    names = [s.application for s in out.steps]
    assert names[-2] == "set" and out.steps[-2].data.startswith("tongdai_music_task=+OK")
    assert out.end == "park"
    # a plain playback of the variable on the caller's own leg, queued by mod_commands'
    # JSON `execute`: not a broadcast, which first waits out 5 lead frames
    [(when, _, command)] = out.scheduled
    api, _, body = command.partition(" ")
    assert (when, api, json.loads(body)) == ("+1", "json", {
        "command": "execute",
        "data": {"uuid": "call-uuid-1", "app": "playback", "arg": "${tongdai_waiting_music}"}})
    assert "sched_broadcast" not in names
    v = out.variables
    assert v["hold_music"] == v["tongdai_waiting_music"] == render.DEFAULT_MOH
    silence = "set tongdai_waiting_music=silence_stream://1"
    assert v["execute_on_pre_bridge_tongdai_moh"] == silence
    assert v["execute_on_blind_transfer_tongdai_moh"] == silence


def test_a_blocklisted_caller_is_rejected():
    out = run(dialplan_doc("19001234", caller="0912345678"), "19001234", caller="0912345678")
    assert out.end == "hangup CALL_REJECTED" and out.parked is None


def test_the_concurrent_call_limit_hangs_up_when_full():
    doc = dialplan_doc("19001234")
    limit = [a for a in doc.iter("action") if a.get("application") == "limit"]
    assert len(limit) == 1
    realm, resource = limit[0].get("data").split()[1:3]
    assert run(doc, "19001234", limits={f"{realm}/{resource}": 2}).end == "hangup USER_BUSY"
    assert run(doc, "19001234", limits={f"{realm}/{resource}": 1}).end == "park"


def test_an_ivr_did_sets_the_region_and_enters_the_menu():
    out = run(dialplan_doc("02873001234"), "02873001234")
    assert out.variables["tongdai_region"] == "HCM"
    assert out.apps("ivr") == ["tongdai_acme_main"]


def test_unknown_numbers_are_not_found_so_freeswitch_uses_the_static_files():
    text = render.render(view(), {"section": "dialplan", "Caller-Destination-Number": "0000"})
    assert ET.fromstring(text).find("./section/result").get("status") == "not found"


def test_the_did_context_is_the_one_the_carrier_profile_uses(fs):
    contexts = {c.get("name") for c in dialplan_doc("19001234").iter("context")}
    profile = next(p for p in fsxml.configuration(fs, "sofia.conf").iter("profile")
                   if p.get("name") == "external")
    assert fsxml.params(profile.find("settings"))["context"] in contexts


def test_a_phone_of_the_apis_directory_reaches_its_tenants_context(fs):
    """The api gives every phone one user_context; the static `tongdai` context hands the
    call to `tongdai_<tenant>` (the context the actuator's voicemail transfer uses too)."""
    doc = ET.fromstring(render.render(view(), {"section": "directory",
                                               "domain": "acme.tongdai.local"}))
    user = doc.find(".//user[@id='1000']")
    variables = {v.get("name"): v.get("value") for v in user.iter("variable")}
    contexts = {c.get("name") for c in fsxml.section(fs, "dialplan").iter("context")}
    assert variables["user_context"] in contexts
    out = fsxml.run(fs, fsxml.Call(destination="1003", caller="1000", at=AT,
                                   context=variables["user_context"], variables=variables))
    assert out.visited[1] == ("tongdai_acme", "internal_setup")
    assert out.end == "bridge user/1003@acme.tongdai.local"


def test_a_phone_dialing_a_did_is_not_cut_off():
    text = render.render(view(), {"section": "dialplan", "Caller-Destination-Number": "19001234",
                                  "Caller-Caller-ID-Number": "1000", "Caller-Context": "tongdai_acme",
                                  "Hunt-Context": "tongdai_acme"})
    root = ET.fromstring(text)
    contexts = {c.get("name") for c in root.iter("context")}
    not_found = root.find("./section/result") is not None
    assert not_found or "tongdai_acme" in contexts


@pytest.mark.parametrize("context", ["tongdai", "default"])
def test_a_did_asked_in_another_context_than_public_is_not_found(context):
    text = render.render(view(), {"section": "dialplan", "Caller-Destination-Number": "19001234",
                                  "Caller-Caller-ID-Number": "1000", "Caller-Context": "public",
                                  "Hunt-Context": context})
    assert ET.fromstring(text).find("./section/result").get("status") == "not found"


@pytest.mark.parametrize("context", ["tongdai_acme", "tongdai_acme_outbound"])
def test_a_phone_dialing_its_own_tenants_number_takes_the_callers_path(context):
    text = render.render(view(), {"section": "dialplan", "Caller-Destination-Number": "19001234",
                                  "Caller-Caller-ID-Number": "1000", "Caller-Context": "public",
                                  "Hunt-Context": context, "variable_tongdai_tenant": "acme"})
    actions = [(a.get("application"), a.get("data"))
               for a in fsxml.parse_document(text).iter("action")]
    assert actions == [("transfer", "19001234 XML public")]


def test_the_hunt_context_wins_over_the_callers_first_context():
    """After a transfer the channel's Caller-Context may still be its first one."""
    doc = fsxml.parse_document(render.render(view(), {
        "section": "dialplan", "Caller-Destination-Number": "19001234",
        "Caller-Context": "tongdai_acme", "Hunt-Context": "public"}))
    assert [c.get("name") for c in doc.iter("context")] == ["public"]
    assert run(doc, "19001234").end == "park"


def _monitor_view() -> ConfigView:
    v = view()
    v.apply(Envelope(event_id="m1", type="config_changed", version=1, occurred_at=100,
                     tenant="acme", source="test", seq=None, call_id=None,
                     payload={"kind": "extension", "entity_id": "1009",
                              "data": {"a1_hash": "0" * 32, "can_monitor": True}}))
    return v


@pytest.mark.parametrize("context,answered", [("tongdai", True), ("tongdai_acme", True),
                                              ("public", False), ("tongdai_beta", False)])
def test_the_monitoring_feature_codes_answer_in_the_phones_contexts_only(context, answered):
    from api.monitor.services import CallsInProgress

    calls = CallsInProgress()
    form = {"section": "dialplan", "Caller-Destination-Number": "*331000",
            "variable_user_name": "1009", "variable_tongdai_tenant": "acme",
            "Caller-Context": context, "Hunt-Context": context}
    root = ET.fromstring(render.render(_monitor_view(), form, calls))
    contexts = [c.get("name") for c in root.iter("context")]
    assert contexts == ([context] if answered else [])
    if not answered:
        assert root.find("./section/result").get("status") == "not found"


def _recorded(fs, doc: ET.Element, dest: str) -> fsxml.Outcome:
    fsxml._GLOBALS[doc] = fsxml.globals_of(fs)  # the switch's globals (vars.xml)
    return run(doc, dest)


@pytest.mark.parametrize("dest", ["19001234", "02873001234"])
def test_a_did_call_is_recorded_from_its_answer_per_tenant_date_and_call(fs, dest):
    """A call routed through the API is recorded by the tenant's policy (default: every
    call): the caller's leg from the answer, before the IVR or the park (issue 14):
    <recordings>/<tenant>/<date in Vietnam>/<call id>.wav."""
    out = _recorded(fs, dialplan_doc(dest), dest)
    apps = [s.application for s in out.steps]
    assert apps.index("answer") < apps.index("record_session")
    assert apps.index("record_session") < apps.index(out.end.split()[0] if out.end != "park"
                                                     else "park")
    recordings = fsxml.globals_of(fs)["tongdai_recordings_dir"]
    path = out.variables["tongdai_recording"]
    assert path == f"{recordings}/acme/2026-11-24/{out.variables['uuid']}.wav"
    assert out.apps("record_session") == [path]
    assert out.variables["RECORD_STEREO"] == "true"


def test_a_tenant_that_records_no_call_gets_no_recording(fs):
    v = view()
    v.apply(Envelope(event_id="policy", type="config_changed", version=1, occurred_at=99,
                     tenant="acme", source="test", seq=None, call_id=None,
                     payload={"kind": "tenant", "entity_id": "acme",
                              "data": {"domain": "acme.tongdai.local",
                                       "recording": {"calls": "none"}}}))
    doc = fsxml.parse_document(render.render(v, {
        "section": "dialplan", "Caller-Destination-Number": "19001234",
        "Caller-Caller-ID-Number": "+84903123456", "Caller-Context": "public"}))
    out = _recorded(fs, doc, "19001234")
    assert out.end == "park" and out.apps("record_session") == []


def _tenant_view() -> ConfigView:
    v = view()
    v.apply(Envelope(event_id="q", type="config_changed", version=1, occurred_at=50,
                     tenant="acme", source="test", seq=None, call_id=None,
                     payload={"kind": "queue", "entity_id": "sales", "data": {}}))
    return v


def test_the_routers_voicemail_of_an_api_tenant_leaves_a_message_in_the_queues_box(fs):
    """The router's voicemail action transfers to voicemail_<queue> XML tongdai_<tenant>,
    a context the static files hold only for their own tenants: the API answers it for
    its tenants, into the box `q_<queue>` its directory lists."""
    form = {"section": "dialplan", "Caller-Destination-Number": "voicemail_sales",
            "Hunt-Context": "tongdai_acme", "Caller-Context": "public",
            "variable_tongdai_tenant": "acme"}
    doc = fsxml.parse_document(render.render(_tenant_view(), form))
    out = fsxml.run(doc, fsxml.Call(destination="voicemail_sales", caller="+84903123456",
                                    context="tongdai_acme", at=AT,
                                    variables={"tongdai_tenant": "acme"}))
    assert out.end == "voicemail default acme.tongdai.local q_sales"
    assert out.variables["tongdai_voicemail"] == "sales"
    box = ET.fromstring(render.render(_tenant_view(), {
        "section": "directory", "domain": "acme.tongdai.local", "user": "q_sales"}))
    params = {p.get("name"): p.get("value") for p in box.iter("param")}
    assert params["vm-enabled"] == "true" and len(params["a1-hash"]) == 32
    # another tenant's call, an unknown queue, a context of another tenant: not found
    for other in ({**form, "variable_tongdai_tenant": "beta"},
                  {**form, "Caller-Destination-Number": "voicemail_nowhere"},
                  {**form, "Hunt-Context": "tongdai_beta"}):
        root = ET.fromstring(render.render(_tenant_view(), other))
        assert root.find("./section/result").get("status") == "not found"


def _api_tenant_view(**tenant: object) -> ConfigView:
    v = view()
    records = [("tenant", "acme", {"domain": "acme.tongdai.local", "max_concurrent_calls": 2,
                                   **tenant}),
               ("extension", "1001", {"a1_hash": "1" * 32, "display_name": "Agent 1001"}),
               ("queue", "sales", {})]
    for n, (kind, entity_id, data) in enumerate(records):
        v.apply(Envelope(event_id=f"t{n}", type="config_changed", version=1,
                         occurred_at=100 + n, tenant="acme", source="test", seq=None,
                         call_id=None, payload={"kind": kind, "entity_id": entity_id,
                                                "data": data}))
    return v


def _phone_call(fs, v: ConfigView, dest: str, context: str = "tongdai_acme",
                variables: dict | None = None, hash_: dict | None = None) -> fsxml.Outcome:
    form = {"section": "dialplan", "Caller-Destination-Number": dest, "Hunt-Context": context,
            "Caller-Context": "tongdai", "variable_tongdai_tenant": "acme",
            **{f"variable_{k}": val for k, val in (variables or {}).items()}}
    doc = fsxml.parse_document(render.render(v, form))
    fsxml._GLOBALS[doc] = fsxml.globals_of(fs)
    return fsxml.run(doc, fsxml.Call(destination=dest, caller="1000", context=context, at=AT,
                                     variables={"tongdai_tenant": "acme", "user_name": "1000",
                                                **(variables or {})},
                                     hash=dict(hash_ or {})))


def test_an_api_tenants_phone_calls_another_extension_recorded_with_transfer_keys(fs):
    out = _phone_call(fs, _api_tenant_view(), "1001")
    assert out.end == "bridge user/1001@acme.tongdai.local"
    assert out.variables["tongdai_direction"] == "internal"
    assert out.variables["tongdai_recording"].endswith(f"/acme/2026-11-24/{out.variables['uuid']}.wav")
    assert out.apps("bind_meta_app") == ["1 b s execute_extension::dx XML tongdai_features",
                                         "4 b s execute_extension::att_xfer XML tongdai_features"]
    assert out.variables["force_transfer_context"] == "tongdai_acme"
    # pickup: *8 (the tenant's group) and **1001 intercept the call ringing there
    for dest in ("*8", "**1001"):
        picked = _phone_call(fs, _api_tenant_view(), dest, hash_=out.hash)
        assert picked.end == f"intercept {out.variables['uuid']}", (dest, picked.end)


def test_a_tenant_that_records_no_internal_call(fs):
    out = _phone_call(fs, _api_tenant_view(recording={"calls": "inbound"}), "1001")
    assert out.end == "bridge user/1001@acme.tongdai.local" and out.apps("record_session") == []


@pytest.mark.parametrize("dest,classes,chosen,end,cid", [
    # a mobile, default classes: the tenant's geographic number as caller ID, recorded
    ("0903000111", None, "", "bridge sofia/gateway/carrier/0903000111", "02873001234"),
    ("+84903000111", None, "", "bridge sofia/gateway/carrier/0903000111", "02873001234"),
    # the number click-to-call chose; a 1900 one is never shown
    ("02838123450", None, "02838123456", "bridge sofia/gateway/carrier/02838123450", None),
    ("0903000111", None, "19001234", "bridge sofia/gateway/carrier/0903000111", "02873001234"),
    ("19001111", None, "", "hangup OUTGOING_CALL_BARRED", None),
    ("19001111", ["service"], "", "bridge sofia/gateway/carrier/19001111", "02873001234"),
    ("+4420794600", None, "", "hangup OUTGOING_CALL_BARRED", None),
    ("113", None, "", "bridge sofia/gateway/carrier/113", None),
])
def test_an_api_tenants_outbound_rules_and_caller_id(fs, dest, classes, chosen, end, cid):
    tenant = {"outbound_classes": classes} if classes else {}
    variables = {"tongdai_outbound_caller_id": chosen} if chosen else {}
    first = render.render(_api_tenant_view(**tenant), {
        "section": "dialplan", "Caller-Destination-Number": dest, "Hunt-Context": "tongdai_acme",
        "variable_tongdai_tenant": "acme"})
    assert [(a.get("application"), a.get("data")) for a in ET.fromstring(first).iter("action")] \
        == [("transfer", f"{dest} XML tongdai_acme_outbound")]
    out = _phone_call(fs, _api_tenant_view(**tenant), dest, "tongdai_acme_outbound", variables)
    assert out.end == end
    if cid:
        assert out.variables["effective_caller_id_number"] == cid
        assert out.apps("record_session")
    if chosen == "02838123456":
        assert out.variables["effective_caller_id_number"] == "02838123456"


def test_a_forwarded_callers_leg_may_reach_national_and_mobile_numbers_only(fs):
    v = _api_tenant_view(outbound_classes=["national", "mobile", "international"])
    inbound = {"tongdai_direction": "inbound"}
    assert _phone_call(fs, v, "+4420794600", "tongdai_acme_outbound",
                       inbound).end == "hangup OUTGOING_CALL_BARRED"
    out = _phone_call(fs, v, "0903000111", "tongdai_acme_outbound", inbound)
    assert out.end == "bridge sofia/gateway/carrier/0903000111"
    assert out.variables["tongdai_direction"] == "inbound"
