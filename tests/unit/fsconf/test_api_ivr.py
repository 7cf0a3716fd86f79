"""The api's IVR (ivr.conf menus and the choices' dialplan), as FreeSWITCH runs it.

mod_ivr's `menu-exec-app` runs one application (name, then its argument after the first
space) and goes back to the menu; only a transfer leaves it (switch_ivr_menu.c). So a
choice rendered as `multiset set tongdai_ivr_choice=1:set tongdai_queue=sales:park` sets
`tongdai_queue` to `sales:park` and never parks (issue 14): these tests run the rendering as
the switch does.
"""
from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest

pytest.importorskip("flask")  # the api's package imports Flask
from api.config.view import ConfigView  # noqa: E402
from api.freeswitch import render  # noqa: E402
from routing.contract import Envelope  # noqa: E402
from tests.unit.fsconf import fsxml  # noqa: E402

pytestmark = pytest.mark.fsconf

AT = dt.datetime(2026, 11, 24, 10, 0)
DID = "+842873001234"


def view() -> ConfigView:
    v = ConfigView()
    records = [
        ("acme", "tenant", "acme", {"domain": "acme.tongdai.local"}),
        ("acme", "queue", "support", {"music_on_hold": "local_stream://support"}),
        ("acme", "did", DID, {"kind": "geographic", "ivr": "main"}),
        ("acme", "ivr", "main", {"greeting": "ivr/main.wav", "default_queue": "support",
                                 "options": {"1": {"queue": "sales"}, "2": {"ivr": "lang"},
                                             "9": {"hangup": True}}}),
        ("acme", "ivr", "lang", {"greeting": "ivr/lang.wav", "options": {
            "1": {"queue": "support"}, "2": {"queue": "support_en"}, "9": {"ivr": "main"}}}),
        ("beta", "tenant", "beta", {"domain": "beta.tongdai.local"}),
    ]
    for n, (tenant, kind, entity_id, data) in enumerate(records):
        v.apply(Envelope(event_id=f"e{n}", type="config_changed", version=1, occurred_at=n + 1,
                         tenant=tenant, source="test", seq=None, call_id=None,
                         payload={"kind": kind, "entity_id": entity_id, "data": data}))
    return v


def menu(name: str) -> ET.Element:
    doc = ET.fromstring(render.render(view(), {"section": "configuration",
                                               "key_value": "ivr.conf"}))
    return doc.find(f".//menu[@name='{name}']")


def press(menu_name: str, digits: str) -> tuple[str, str]:
    """The application and argument mod_ivr runs for `digits`, split as FreeSWITCH does."""
    entry = menu(menu_name).find(f"entry[@digits='{digits}']")
    assert entry.get("action") == "menu-exec-app"
    app, _, arg = entry.get("param").partition(" ")
    return app, arg


def choice(dest: str, tenant: str = "acme", did: str = DID) -> fsxml.Outcome:
    """The transfer's lookup (context public, the channel's variables) and its execution."""
    form = {"section": "dialplan", "Caller-Destination-Number": dest, "Hunt-Context": "public",
            "variable_tongdai_tenant": tenant, "variable_tongdai_did": did}
    doc = fsxml.parse_document(render.render(view(), form))
    return fsxml.run(doc, fsxml.Call(destination=dest, caller="0903123456", context="public",
                                     at=AT, variables={"tongdai_tenant": tenant}))


def test_a_queue_choice_leaves_the_menu_by_a_transfer():
    app, arg = press("tongdai_acme_main", "1")
    assert app == "transfer"  # anything else returns to the menu: the greeting again
    dest, dialplan, context = arg.split()
    assert (dialplan, context) == ("XML", "public")
    out = choice(dest)
    assert out.end == "park"
    v = out.variables
    assert (v["tongdai_queue"], v["tongdai_ivr_choice"], v["tongdai_ivr_path"]) == ("sales", "1", "1")
    assert [e["IVR-Path"] for e in out.events] == ["1"]


def test_a_sub_menus_choice_carries_the_path_from_the_root_and_the_queues_music():
    _, arg = press("tongdai_acme_lang", "1")
    out = choice(arg.split()[0])
    assert out.end == "park"
    assert (out.variables["tongdai_ivr_path"], out.variables["hold_music"]) == \
        ("2>1", "local_stream://support")
    assert out.variables["tongdai_waiting_music"] == "local_stream://support"
    [(when, _, command)] = out.scheduled
    assert when == "+1" and '"arg":"${tongdai_waiting_music}"' in command


def test_max_failures_go_to_the_default_queue():
    m = menu("tongdai_acme_main")
    app, _, arg = m.get("exec-on-max-failures").partition(" ")
    assert app == "transfer" and m.get("exec-on-max-timeouts") == m.get("exec-on-max-failures")
    assert choice(arg.split()[0]).variables["tongdai_queue"] == "support"
    assert menu("tongdai_acme_lang").get("exec-on-max-failures") is None


def test_one_key_menus_do_not_wait_for_more_digits():
    assert menu("tongdai_acme_main").get("digit-len") == "1"


@pytest.mark.parametrize("dest,tenant", [
    ("ivr_main_1", ""),         # a carrier dialing the name: no tenant on the channel
    ("ivr_main_1", "beta"),     # another tenant's channel
    ("ivr_main_2", "acme"),     # a sub-menu, not a queue
    ("ivr_main_7", "acme"),     # no such option
    ("ivr_lang_failed", "acme"),  # no default queue
])
def test_choices_that_are_not_a_queue_of_the_callers_tenant_are_not_found(dest, tenant):
    form = {"section": "dialplan", "Caller-Destination-Number": dest, "Hunt-Context": "public",
            "variable_tongdai_tenant": tenant}
    root = ET.fromstring(render.render(view(), form))
    assert root.find("./section/result").get("status") == "not found"


def test_the_asked_menu_comes_with_the_menus_it_leads_to():
    """mod_dptools' `ivr` asks ivr.conf with Menu-Name and builds the sub-menus from the same
    answer; without them a real switch logs "Invalid Menu!" when a caller picks a sub-menu."""
    doc = ET.fromstring(render.render(view(), {"section": "configuration", "key_value": "ivr.conf",
                                               "Menu-Name": "tongdai_acme_main"}))
    names = {m.get("name") for m in doc.iter("menu")}
    assert names == {"tongdai_acme_main", "tongdai_acme_lang"}
    for entry in doc.iter("entry"):
        if entry.get("action") == "menu-sub":
            assert entry.get("param") in names
