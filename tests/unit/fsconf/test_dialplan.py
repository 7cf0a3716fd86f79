"""Calls through fs-conf's dialplan: which extensions and applications a number, a caller
and a time reach (times in Asia/Ho_Chi_Minh), and what the rest of the product reads from
them (the bridge's normalizer, the router's commands)."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esl_bridge.actuator import esl_command
from esl_bridge.normalize import normalize
from esl_bridge.protocol import Event
from routing.contract import Envelope
from tests.unit.fsconf import fsxml

pytestmark = pytest.mark.fsconf

TUE_10 = dt.datetime(2026, 11, 24, 10, 0)
TUE_22 = dt.datetime(2026, 11, 24, 22, 0)
SUN_10 = dt.datetime(2026, 11, 22, 10, 0)
SAT_9 = dt.datetime(2026, 11, 28, 9, 0)
SAT_13 = dt.datetime(2026, 11, 28, 13, 0)
TET_MON_10 = dt.datetime(2027, 2, 8, 10, 0)
ACME = "acme.tongdai.local"


def inbound(fs, did="19009001", caller="+84903123456", at=TUE_10, **kw) -> fsxml.Outcome:
    return fsxml.run(fs, fsxml.Call(destination=did, caller=caller, context="public",
                                    at=at, **kw))


def from_phone(fs, ext: str, dest: str, domain: str = ACME, at=TUE_10, **kw) -> fsxml.Outcome:
    """A call from a registered phone: its directory variables, its user_context."""
    variables = fsxml.directory_user(fs, ext, domain)
    variables.update(kw.pop("variables", {}))
    return fsxml.run(fs, fsxml.Call(destination=dest, caller=ext, at=at,
                                    context=variables["user_context"], variables=variables, **kw))


def normalized(headers: dict[str, str]):
    return normalize(Event(headers))


# ---------------------------------------------------------------- inbound: the spine
def test_hotline_call_in_hours_reaches_the_main_menu_and_parks_in_the_chosen_queue(fs):
    out = inbound(fs, digits=["1"])
    assert out.extensions == ["public_setup", "did_19009001", "inbound_setup", "inbound_limit",
                              "hours_mon_fri", "inbound_route", "ivr_main", "ivr_main_1",
                              "enqueue"]
    assert out.end == "park"
    v = out.variables
    assert (v["tongdai_tenant"], v["tongdai_queue"], v["tongdai_did"]) == ("acme", "sales", "19009001")
    assert v["tongdai_direction"] == "inbound" and v["tongdai_call_id"] == "call-uuid-1"
    apps = [s.application for s in out.steps]
    # answer, record, music on hold, then park, in that order
    assert apps.index("answer") < apps.index("record_session") < len(apps) - 2 \
        and apps[-1] == "park"
    [(when, group, command)] = out.scheduled  # the music, a second after the park
    assert (when, group) == ("+1", "tongdai_music") and '"app":"playback"' in command
    assert '"uuid":"call-uuid-1"' in command and '"arg":"${tongdai_waiting_music}"' in command
    assert out.apps("record_session") == ["/var/lib/freeswitch/recordings/acme/2026-11-24/call-uuid-1.wav"]
    assert out.apps("limit") == ["hash tongdai_acme inbound 30 limit_exceeded XML tongdai_acme_inbound"]


def test_the_park_is_what_the_router_enqueues(fs):
    env = normalized(inbound(fs, digits=["1"]).parked)
    assert env.type == "channel_parked" and env.tenant == "acme"
    p = env.payload
    assert (p["leg"], p["queue"], p["direction"], p["ivr_path"]) == ("a", "sales", "inbound", "1")
    assert p["caller"] == "+84903123456" and p["domain"] == ACME
    assert p["recording_path"] is None and p["language"] == "vi"


def test_the_ivr_choice_fires_the_products_custom_event(fs):
    out = inbound(fs, digits=["2", "1"])
    assert [e["IVR-Path"] for e in out.events] == ["2", "2>1"]
    assert [(e["IVR-Menu"], e["IVR-Choice"]) for e in out.events] == [("main", "2"), ("support", "1")]
    env = normalized(out.events[-1])
    assert env.type == "ivr_choice_made" and env.tenant == "acme"
    assert env.payload["ivr_choice"] == "1" and env.payload["ivr_path"] == "2>1"
    parked = normalized(out.parked).payload
    assert parked["queue"] == "support" and parked["skills"] == {"billing": 5}


@pytest.mark.parametrize("digits, queue, path, extra", [
    (["1"], "sales", "1", {}),
    (["2", "2"], "support", "2>2", {"tongdai_skills": "technical:3"}),
    (["3"], "support", "3", {"tongdai_language": "en", "tongdai_skills": "english:3"}),
    (["0"], "operator", "0", {}),  # press 0 for the operator
    (["2", "0"], "operator", "2>0", {}),  # ... in every menu
])
def test_menu_choices(fs, digits, queue, path, extra):
    out = inbound(fs, digits=digits)
    assert out.end == "park" and out.variables["tongdai_queue"] == queue
    assert out.variables["tongdai_ivr_path"] == path
    for name, value in extra.items():
        assert out.variables[name] == value


@pytest.mark.parametrize("digits, prompts", [
    (["7", "9", "5"], 3),  # invalid entries: the invalid prompt, three tries
    ([None, None, None], 3),  # timeouts
    (["#", "7", None], 3),
])
def test_invalid_entries_and_timeouts_end_at_the_operator(fs, digits, prompts):
    out = inbound(fs, digits=digits)
    assert out.prompts == prompts and out.events == []
    assert "ivr_main_failed" in out.extensions
    assert out.end == "park" and out.variables["tongdai_queue"] == "operator"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(digits=st.lists(st.one_of(st.none(), st.sampled_from(list("0123456789*#"))), max_size=8))
def test_every_key_sequence_ends_in_a_queue_with_a_consistent_path(fs, digits):
    out = inbound(fs, digits=digits)
    assert out.end == "park" and out.prompts <= 6  # two menus, three tries each
    parked = normalized(out.parked).payload
    assert parked["queue"] in ("sales", "support", "operator")
    if out.events:
        assert out.events[-1]["IVR-Path"] == parked["ivr_path"]
        assert [e["IVR-Choice"] for e in out.events] == parked["ivr_path"].split(">")
    else:
        assert parked["queue"] == "operator" and parked["ivr_path"] is None


def test_an_invalid_entry_then_a_valid_one(fs):
    out = inbound(fs, digits=["9", "1"])
    assert out.prompts == 2 and out.variables["tongdai_queue"] == "sales"


@pytest.mark.parametrize("at, open_", [
    (TUE_10, True), (TUE_22, False), (SUN_10, False), (SAT_9, True), (SAT_13, False),
    (dt.datetime(2026, 11, 28, 11, 59, 30), True), (dt.datetime(2026, 11, 28, 12, 0, 30), False),
    (TET_MON_10, False), (dt.datetime(2026, 9, 2, 10, 0), False),  # national day
    (dt.datetime(2026, 11, 24, 8, 0), True), (dt.datetime(2026, 11, 24, 7, 59), False),
    (dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.timezone.utc), True),  # 10:00 in Hanoi
])
def test_business_hours(fs, at, open_):
    out = inbound(fs, at=at, digits=["1"])
    if open_:
        assert "ivr_main" in out.extensions and out.end == "park"
    else:
        assert "after_hours" in out.extensions and "ivr_main" not in out.extensions
        assert out.end == f"voicemail default {ACME} q_operator" and out.prompts == 0


@pytest.mark.parametrize("caller", ["0912345678", "+84912345678", "84912345678", "0988000111"])
def test_blocklisted_callers_are_rejected_before_answer(fs, caller):
    out = inbound(fs, caller=caller, digits=["1"])
    assert out.end == "hangup CALL_REJECTED"
    assert "answer" not in [s.application for s in out.steps] and out.parked is None
    assert out.apps("limit") == []  # a rejected call takes no slot


def test_a_caller_like_a_blocklisted_one_is_not_rejected(fs):
    assert inbound(fs, caller="09123456789", digits=["1"]).end == "park"


def test_concurrent_call_limit(fs):
    busy = inbound(fs, limits={"tongdai_acme/inbound": 30}, digits=["1"])
    assert busy.end == "hangup USER_BUSY" and busy.parked is None
    assert "limit_exceeded" in busy.extensions
    assert inbound(fs, limits={"tongdai_acme/inbound": 29}, digits=["1"]).end == "park"
    # another tenant's calls do not count
    assert inbound(fs, limits={"tongdai_beta/inbound": 99}, digits=["1"]).end == "park"


def test_vip_callers_get_priority(fs):
    p = normalized(inbound(fs, caller="0903999999", digits=["1"]).parked).payload
    assert p["vip"] is True and p["priority"] == 10
    p = normalized(inbound(fs, digits=["1"]).parked).payload
    assert p["vip"] is None and p["priority"] is None


@pytest.mark.parametrize("dialed", ["02873009001", "+842873009001", "842873009001"])
def test_geographic_did_in_every_form(fs, dialed):
    out = inbound(fs, did=dialed, digits=["1"])
    assert out.variables["tongdai_did"] == "02873009001" and out.variables["tongdai_region"] == "HCM"
    assert normalized(out.parked).payload["region"] == "HCM"


def test_second_tenant_goes_straight_to_its_queue_at_any_hour(fs):
    for at in (TUE_10, SUN_10, TUE_22):
        out = inbound(fs, did="18005678", caller="0281234567", at=at)
        assert out.end == "park" and out.prompts == 0
        env = normalized(out.parked)
        assert env.tenant == "beta" and env.payload["queue"] == "hotline"
        assert out.apps("record_session")[0].startswith("/var/lib/freeswitch/recordings/beta/")


@pytest.mark.parametrize("dialed", ["19009999", "0909123456", "1000", "*8", "113", "00441234567",
                                    "voicemail_sales", "ivr_main", "queue_sales"])
def test_unknown_numbers_from_carriers_go_nowhere(fs, dialed):
    out = inbound(fs, did=dialed)
    assert out.end == "hangup UNALLOCATED_NUMBER"
    assert out.extensions == ["public_setup", "did_unknown"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dialed=st.one_of(st.from_regex(r"\A\+?[0-9*#]{1,16}\Z"), st.text(max_size=20)),
       caller=st.from_regex(r"\A\+?[0-9]{3,15}\Z"),
       digits=st.lists(st.one_of(st.none(), st.from_regex(r"\A[0-9*#]\Z")), max_size=4))
def test_carriers_never_reach_an_outside_line(fs, dialed, caller, digits):
    """No open relay: whatever a carrier sends, the call parks for the router, goes to
    voicemail, or ends; it never bridges anywhere."""
    out = inbound(fs, did=dialed, caller=caller, digits=digits)
    assert not out.end.startswith("bridge"), out.end
    assert out.end.split()[0] in ("park", "hangup", "voicemail")
    if out.end == "park":
        assert out.variables["tongdai_tenant"] and out.variables["tongdai_queue"]


# ------------------------------------------------------- what the router asks FreeSWITCH
def command(kind: str, **payload) -> str:
    env = Envelope(event_id="e1", type=kind, version=1, occurred_at=1, tenant="acme",
                   source="router", seq=None, call_id="call-uuid-1",
                   payload={"command_id": "c1", "node": "n1", **payload})
    return esl_command(env)


def run_uuid_transfer(fs, line: str, variables: dict[str, str]) -> fsxml.Outcome:
    verb, _uuid, dest, dialplan, context = line.split()
    assert (verb, dialplan) == ("uuid_transfer", "XML")
    return fsxml.run(fs, fsxml.Call(destination=dest, caller="0903123456", context=context,
                                    at=TUE_22, variables=variables))


CALLER_LEG = {"tongdai_tenant": "acme", "tongdai_direction": "inbound",
              "tongdai_call_id": "call-uuid-1", "tongdai_queue": "sales"}


def test_router_voicemail_reaches_the_queues_mailbox(fs):
    line = command("transfer_leg", leg_id="call-uuid-1", destination="voicemail_sales",
                   context="tongdai_acme")
    out = run_uuid_transfer(fs, line, CALLER_LEG)
    assert out.end == f"voicemail default {ACME} q_sales"


def test_router_forward_to_a_mobile_presents_the_tenants_geographic_number(fs):
    line = command("transfer_leg", leg_id="call-uuid-1", destination="0987654321",
                   context="tongdai_acme_outbound")
    out = run_uuid_transfer(fs, line, CALLER_LEG)
    assert out.end == "bridge sofia/gateway/carrier/0987654321"
    assert out.variables["effective_caller_id_number"] == "02873009001"
    assert out.variables["tongdai_direction"] == "inbound"  # still the customer's inbound call


@pytest.mark.parametrize("dest", ["00441234567", "+441234567890", "19009001"])
def test_router_cannot_forward_abroad_or_to_premium_numbers(fs, dest):
    out = run_uuid_transfer(fs, f"uuid_transfer x {dest} XML tongdai_acme_outbound", CALLER_LEG)
    assert out.end == "hangup OUTGOING_CALL_BARRED"


def run_click_to_call(fs, caller_id: str, number: str = "0912345678") -> fsxml.Outcome:
    """The actuator's click-to-call originate: the agent's phone (its directory variables
    and the originate's {variables}) answers and runs `<number> XML <context>`."""
    line = command("originate_call", leg_id="leg-1", request_id="r-1", agent_id="lan",
                   extension="1000", domain=ACME, destination=number,
                   context="tongdai_acme_outbound", caller_id_number=number,
                   outbound_caller_id=caller_id, timeout_s=30)
    head, target, dest, dialplan, context = line.split(" ")
    assert head.startswith("originate") and target.endswith(f"user/1000@{ACME}")
    assert dialplan == "XML"
    variables = fsxml.directory_user(fs, "1000", ACME)
    inline = line[line.index("{") + 1:line.index("}")]
    variables.update(dict(part.split("=", 1) for part in inline.split(",")))
    return fsxml.run(fs, fsxml.Call(destination=dest, caller=number, context=context,
                                    at=TUE_10, variables=variables))


def test_click_to_call_presents_the_caller_id_the_product_chose(fs):
    out = run_click_to_call(fs, "02873009999")
    assert out.end == "bridge sofia/gateway/carrier/0912345678"
    assert out.variables["effective_caller_id_number"] == "02873009999"
    assert out.variables["tongdai_tenant"] == "acme"


def test_click_to_call_never_presents_a_service_number(fs):
    # Should the API ever send one, the dialplan keeps the tenant's geographic number.
    out = run_click_to_call(fs, "19009001")
    assert out.end == "bridge sofia/gateway/carrier/0912345678"
    assert out.variables["effective_caller_id_number"] == "02873009001"


# --------------------------------------------------------------------- phones
def test_extension_to_extension(fs):
    out = from_phone(fs, "1000", "1003")
    assert out.end == f"bridge user/1003@{ACME}" and out.variables["tongdai_direction"] == "internal"
    assert out.apps("bind_meta_app") == ["1 b s execute_extension::dx XML tongdai_features",
                                         "4 b s execute_extension::att_xfer XML tongdai_features"]
    assert out.hash == {f"{ACME}-last_dial_ext/1003": "call-uuid-1",
                        f"{ACME}-last_dial/support": "call-uuid-1"}


def test_no_answer_goes_to_the_extensions_voicemail(fs):
    out = from_phone(fs, "1000", "1003", failing=(f"user/1003@{ACME}",))
    assert out.end == f"voicemail default {ACME} 1003"


@pytest.mark.parametrize("caller", ["1003", "1002"])  # 1002 may not call out itself
def test_an_unanswered_extension_forwards_to_its_mobile(fs, caller):
    out = from_phone(fs, caller, "1000", failing=(f"user/1000@{ACME}",))
    assert out.end == "bridge sofia/gateway/carrier/0903000111"
    assert out.variables["tongdai_forwarded_by"] == "1000"
    assert out.variables["effective_caller_id_number"] == "02873009001"
    assert "voicemail" not in [s.application for s in out.steps]


def test_an_answered_extension_does_not_forward(fs):
    assert from_phone(fs, "1003", "1000").end == f"bridge user/1000@{ACME}"


def test_tenants_are_separate(fs):
    assert from_phone(fs, "1000", "1001", domain="beta.tongdai.local").end == \
        "bridge user/1001@beta.tongdai.local"
    assert from_phone(fs, "1000", "1001").end == f"bridge user/1001@{ACME}"


def test_group_and_directed_pickup(fs):
    ringing = from_phone(fs, "1003", "1000", uuid="ringing-call")  # 1000 is in call group sales
    out = from_phone(fs, "1001", "*8", hash=ringing.hash)  # 1001 is in sales too
    assert out.end == "intercept ringing-call"
    out = from_phone(fs, "1003", "**1000", hash=ringing.hash)
    assert out.end == "intercept ringing-call"


def test_voicemail_feature_codes(fs):
    assert from_phone(fs, "1000", "*97").end == f"voicemail check default {ACME} 1000"
    assert from_phone(fs, "1000", "*98").end == f"voicemail check default {ACME}"


def test_blind_transfer_key(fs):
    """*1 during a call: the other party goes to the dialed number, in the tenant's context."""
    agent = fsxml.directory_user(fs, "1000", ACME)
    out = fsxml.run(fs, fsxml.Call(destination="dx", caller="1000", context="tongdai_features",
                                   at=TUE_10, variables=agent, digits=["1003"]))
    assert out.apps("transfer") == ["-bleg 1003 XML tongdai_acme"]
    assert out.end == f"bridge user/1003@{ACME}"


def test_attended_transfer_key(fs):
    agent = fsxml.directory_user(fs, "1000", ACME)
    out = fsxml.run(fs, fsxml.Call(destination="att_xfer", caller="1000", context="tongdai_features",
                                   at=TUE_10, variables=agent, digits=["1003"]))
    assert out.end == "att_xfer loopback/1003/tongdai_acme"


def test_inter_branch_calls(fs):
    assert from_phone(fs, "1000", "2001").end == "bridge sofia/branches/acme-2001@branch-hcm.invalid"
    out = fsxml.run(fs, fsxml.Call(destination="acme-1003", caller="2001", at=TUE_10,
                                   context="tongdai_branch_in"))
    assert out.end == f"bridge user/1003@{ACME}" and out.variables["tongdai_tenant"] == "acme"
    for dest in ("acme-0903123456", "beta-1000", "0903123456"):
        out = fsxml.run(fs, fsxml.Call(destination=dest, caller="2001", at=TUE_10,
                                       context="tongdai_branch_in"))
        assert out.end == "hangup UNALLOCATED_NUMBER"


def test_a_phone_without_a_tenant_goes_nowhere(fs):
    for variables in ({}, {"tongdai_tenant": "../x"}, {"tongdai_tenant": ""}):
        out = fsxml.run(fs, fsxml.Call(destination="1003", caller="1000", at=TUE_10,
                                       context="tongdai", variables=variables))
        assert out.end == "hangup CALL_REJECTED"


def test_unauthenticated_calls_are_rejected(fs):
    out = fsxml.run(fs, fsxml.Call(destination="0903123456", caller="x", at=TUE_10,
                                   context="tongdai_reject"))
    assert out.end == "hangup CALL_REJECTED"


# ---------------------------------------------------------------------- outbound
@pytest.mark.parametrize("ext, dest, end", [
    ("1000", "0903123456", "bridge sofia/gateway/carrier/0903123456"),
    ("1000", "+84903123456", "bridge sofia/gateway/carrier/0903123456"),
    ("1000", "84903123456", "bridge sofia/gateway/carrier/0903123456"),
    ("1000", "02439876543", "bridge sofia/gateway/carrier/02439876543"),
    ("1000", "18001090", "bridge sofia/gateway/carrier/18001090"),
    ("1000", "+8419009001", "bridge sofia/gateway/carrier/19009001"),
    ("1000", "00441234567", "hangup OUTGOING_CALL_BARRED"),  # international: blocked by default
    ("1000", "+441234567890", "hangup OUTGOING_CALL_BARRED"),
    ("1001", "00441234567", "bridge sofia/gateway/carrier/00441234567"),  # ... unless permitted
    ("1002", "0903123456", "hangup OUTGOING_CALL_BARRED"),  # an extension without outbound
    ("1002", "113", "bridge sofia/gateway/carrier/113"),  # emergency numbers always
    ("1000", "0123", "hangup UNALLOCATED_NUMBER"),
])
def test_outbound_permissions(fs, ext, dest, end):
    out = from_phone(fs, ext, dest)
    assert out.end == end
    assert out.variables["effective_caller_id_number"] == "02873009001"
    assert out.variables["tongdai_direction"] == "outbound"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dest=st.from_regex(r"\A\+?[0-9]{3,16}\Z"), ext=st.sampled_from(["1000", "1001", "1002"]),
       tenant=st.sampled_from([ACME, "beta.tongdai.local"]))
def test_outbound_never_presents_a_service_number(fs, dest, ext, tenant):
    if ext == "1002" and tenant != ACME:
        ext = "1001"
    out = from_phone(fs, ext, dest, domain=tenant)
    if out.end.startswith("bridge sofia/gateway"):
        cid = out.variables["effective_caller_id_number"]
        assert not cid.lstrip("+").removeprefix("84").lstrip("0").startswith(("1800", "1900"))
        assert out.variables.get("tongdai_dest_class")
        if out.variables["tongdai_dest_class"] == "international":
            assert "international" in out.variables["tongdai_outbound"]


def test_outbound_calls_are_recorded_per_tenant_and_date(fs):
    out = from_phone(fs, "1000", "0903123456")
    assert out.apps("record_session") == ["/var/lib/freeswitch/recordings/acme/2026-11-24/call-uuid-1.wav"]
