"""The admin console (admin.html) in a real browser on `tongdai up`'s demo tenant: what an
admin changes there must change the product.

- A queue made in the browser (its validation errors shown beside the field first) is
  routed by the worker: it appears on the supervisors' wallboard.
- An IVR menu and a number made in the browser route a simulated call to the queue chosen:
  the test plays FreeSWITCH (the API's mod_xml_curl rendering of that number, menu and
  choice, from the configuration the browser wrote), a simulated node of its own places the
  call through its bridge, and the product's routing worker enqueues it in that queue.

Every entity is named for this run and deleted at the end (the demo tenant is shared with
the other e2e tests). Screenshots land in var/test-artifacts/.
"""
from __future__ import annotations

import random
import re
import time
import uuid
import xml.etree.ElementTree as ET

import pytest
import requests

from tests.e2e.conftest import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


def _delete(product, plural: str, entity_id: str) -> None:
    requests.delete(f"{product.base}/api/v1/{plural}/{entity_id}", timeout=10,
                    headers={"Authorization": f"Bearer {product.admin_token}"})


def _open(context, product, tab: str):
    page = context.new_page()
    page.set_viewport_size({"width": 1400, "height": 1100})
    url = product.admin.replace("admin.html#", f"admin.html?tab={tab}#")
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready === '1'", timeout=30_000)
    assert page.get_attribute("body", "data-tab") == tab
    return page


def _save(page, form: str) -> None:
    page.click(f"{form} button[type=submit]")
    page.wait_for_function(f"document.querySelector('{form} .msg').innerText !== ''",
                           timeout=15_000)


def test_a_queue_made_in_the_console_appears_on_the_wallboard(product, context):
    qid = f"e2e-q-{uuid.uuid4().hex[:6]}"
    page = _open(context, product, "queues")
    assert page.inner_text("h1") == "Quản trị tổng đài — tổng đài CSKH"
    try:
        page.fill("#f-queues [data-field=id] input", qid)
        page.fill("#f-queues [data-field=name] input", "Hàng đợi thử")
        page.select_option("#f-queues [data-field=strategy] select", "round-robin")
        page.fill("#f-queues [data-field=skills] input", "vi:3")
        page.fill("#f-queues [data-field='schedule.hours.mon'] input", "8h-17h")  # refused
        page.fill("#f-queues [data-field=max_wait_s] input", "90")
        page.select_option("#f-queues [data-field='max_wait_action.kind'] select", "queue")
        page.check("#f-queues [data-field='schedule.tet_years'] input[value='2027']")
        page.fill("#f-queues [data-field=music_on_hold] input", "local_stream://moh")
        _save(page, "#f-queues")
        # The API's errors, each beside the field it names.
        assert "Lỗi 400" in page.inner_text("#f-queues .msg")
        hours = page.locator("#f-queues [data-field='schedule.hours.mon'] .field-error")
        assert "is not HH:MM-HH:MM" in hours.inner_text()
        target = page.locator("#f-queues [data-field='max_wait_action.target'] .field-error")
        assert target.inner_text() == "required when kind is queue or forward"
        assert page.get_attribute("#f-queues [data-field='schedule.hours.mon'] input",
                                  "aria-invalid") == "true"
        page.screenshot(path=str(ARTIFACTS / "admin-1-queue-errors.png"), full_page=True)
        assert requests.get(f"{product.base}/api/v1/queues/{qid}", timeout=10, headers={
            "Authorization": f"Bearer {product.admin_token}"}).status_code == 404

        page.fill("#f-queues [data-field='schedule.hours.mon'] input", "00:00-24:00")
        for day in ("tue", "wed", "thu", "fri", "sat", "sun"):
            page.fill(f"#f-queues [data-field='schedule.hours.{day}'] input", "00:00-24:00")
        page.select_option("#f-queues [data-field='max_wait_action.kind'] select", "voicemail")
        _save(page, "#f-queues")
        assert page.locator("#f-queues .field-error").count() == 0
        page.wait_for_selector(f"#f-queues [data-saved='{qid}']")
        page.wait_for_selector(f"[data-list=queues] tr[data-id='{qid}']")
        saved = requests.get(f"{product.base}/api/v1/queues/{qid}", timeout=10, headers={
            "Authorization": f"Bearer {product.admin_token}"}).json()
        assert saved["strategy"] == "round-robin" and saved["skills"] == {"vi": 3}
        assert saved["schedule"]["tet_years"] == [2027] and saved["max_wait_s"] == 90
        assert saved["max_wait_action"] == {"kind": "voicemail"}
        page.screenshot(path=str(ARTIFACTS / "admin-2-queue-saved.png"), full_page=True)

        # The routing worker reads it from the config topic; the wallboard shows it.
        board = context.new_page()
        board.set_viewport_size({"width": 1400, "height": 950})
        board.goto(product.wallboard)
        board.wait_for_function(
            f"[...document.querySelectorAll('#queues tr')].some(r => "
            f"r.cells[0] && r.cells[0].innerText === {qid!r})", timeout=60_000)
        board.screenshot(path=str(ARTIFACTS / "admin-3-queue-on-wallboard.png"), full_page=True)

        page.select_option("#lang", "en")
        assert page.inner_text("h1") == "Switchboard admin — contact center"
        assert page.inner_text("#tab-queues") == "Queues"
    finally:
        _delete(product, "queues", qid)


def _actions(xml: str) -> list[tuple[str, str]]:
    return [(a.get("application"), a.get("data") or "")
            for a in ET.fromstring(xml).iter("action")]


def _sets(actions: list[tuple[str, str]]) -> dict[str, str]:
    return dict(data.split("=", 1) for app, data in actions if app == "set" and "=" in data)


def _config_view(bootstrap: str):
    """The configuration as every API process folds it: the config topic from its start."""
    from kafka import KafkaConsumer, TopicPartition

    from api.config.view import ConfigView
    from routing.contract import decode, topics

    view = ConfigView()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             group_id=None)
    try:
        tps = [TopicPartition(topics.CONFIG, p)
               for p in consumer.partitions_for_topic(topics.CONFIG) or {0}]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, "the config topic was not read in 60 s"
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    if record.value is not None:
                        view.apply(decode(record.value))
    finally:
        consumer.close()
    return view


def test_an_ivr_built_in_the_console_routes_a_simulated_call_to_the_queue_chosen(
        product, context, local_stack, tmp_path):
    from api.freeswitch.render import render
    from esl_bridge.simulator import Simulator
    from esl_bridge.simulator.model import CallerSpec, IvrSpec
    from routing.contract import topics
    from tests.integration.harness import (Reader, bridge_env, start_process, stop_process,
                                           wait_ready)

    run = uuid.uuid4().hex[:6]
    qid, menu = f"e2e-ivrq-{run}", f"e2e-menu-{run}"
    did = f"0287{random.randrange(10**6, 10**7)}"
    did_e164 = "+84" + did[1:]
    page = _open(context, product, "queues")
    try:
        page.fill("#f-queues [data-field=id] input", qid)
        page.fill("#f-queues [data-field=name] input", "Đích của IVR thử")
        _save(page, "#f-queues")
        page.wait_for_selector(f"#f-queues [data-saved='{qid}']")

        # The menu: 1 -> sales, 3 -> the new queue, 9 -> hang up; too many wrong keys -> sales.
        page.click("#tab-ivrs")
        page.wait_for_selector("#f-ivrs")
        page.fill("#ivr-id", menu)
        page.fill("#ivr-name", "Menu thử")
        page.fill("#ivr-greeting", "ivr/demo_main.wav")
        page.fill("#ivr-timeout_s", "0")  # refused beside the field
        rows = page.locator("#ivr-options .opt")
        rows.nth(0).locator("[data-part=key]").fill("1")
        rows.nth(0).locator("[data-part=target]").select_option("sales")
        page.click("#ivr-add-option")
        rows.nth(1).locator("[data-part=key]").fill("3")
        rows.nth(1).locator("[data-part=target]").select_option(qid)
        page.click("#ivr-add-option")
        rows.nth(2).locator("[data-part=key]").fill("9")
        rows.nth(2).locator("[data-part=kind]").select_option("hangup")
        page.select_option("#ivr-default_queue", "sales")
        preview = page.inner_text("#ivr-preview")
        assert "Phát lời chào «ivr/demo_main.wav»." in preview
        assert f"Nhấn 3: chuyển tới hàng đợi «{qid}»" in preview
        assert "Nhấn 9: kết thúc cuộc gọi" in preview
        _save(page, "#f-ivrs")
        assert "must be greater than or equal to 1" in page.inner_text(
            "#f-ivrs [data-field=timeout_s] .field-error").lower()
        page.fill("#ivr-timeout_s", "6")
        _save(page, "#f-ivrs")
        page.wait_for_selector(f"#f-ivrs [data-saved='{menu}']")
        assert "Không bấm phím trong 6 giây hoặc bấm sai 3 lần: chuyển tới hàng đợi «sales»." \
            in page.inner_text("#ivr-preview")

        # The number, to the menu; the tree shows the menu under it.
        page.click("#tab-dids")
        page.wait_for_selector("#f-dids")
        page.fill("#f-dids [data-field=id] input", did)
        page.select_option("#f-dids [data-field=_target] select", "ivr")
        page.fill("#f-dids [data-field=_to] input", menu)
        _save(page, "#f-dids")
        page.wait_for_selector(f"#f-dids [data-saved='{did_e164}']")
        page.click("#tab-ivrs")
        page.wait_for_selector(f"#ivr-tree [data-menu='{menu}']")
        assert did_e164 in page.inner_text("#ivr-tree")
        page.screenshot(path=str(ARTIFACTS / "admin-4-ivr-built.png"), full_page=True)

        # FreeSWITCH's questions to the API about this call, answered from the same
        # configuration: the number's extension, the menu (ivr.conf) and key 3's extension.
        view = _config_view(local_stack.kafka_bootstrap)
        caller = f"09{random.randrange(10**7, 10**8)}"
        did_actions = _actions(render(view, {"section": "dialplan", "Hunt-Context": "public",
                                             "Caller-Destination-Number": did,
                                             "Caller-Caller-ID-Number": caller}))
        assert ("ivr", f"tongdai_demo_{menu}") in did_actions, did_actions
        ivr_conf = ET.fromstring(render(view, {"section": "configuration",
                                               "key_value": "ivr.conf",
                                               "Menu-Name": f"tongdai_demo_{menu}"}))
        entry = next(e for m in ivr_conf.iter("menu") if m.get("name") == f"tongdai_demo_{menu}"
                     for e in m.iter("entry") if e.get("digits") == "3")
        dest = entry.get("param").split()[1]
        choice = _actions(render(view, {"section": "dialplan", "Hunt-Context": "public",
                                        "Caller-Destination-Number": dest,
                                        "variable_tongdai_tenant": "demo",
                                        "variable_tongdai_did": did_e164}))
        choice_vars = _sets(choice)
        assert choice_vars["tongdai_queue"] == qid

        # A node of its own, with its own bridge; the product's worker routes the call.
        sim = Simulator(port=0, password="e2e-ivr", heartbeat=3600, seed=7,
                        core_uuid=str(uuid.uuid4()))
        sim.start()
        reader = Reader(local_stack.kafka_bootstrap, [topics.CC_EVENTS],
                        lambda e: e.tenant == "demo")
        bridge = start_process("bridge", tmp_path, {
            **bridge_env(sim, tmp_path, local_stack.kafka_bootstrap),
            "TONGDAI_TENANT_DOMAINS": "demo.tongdai.local=demo"})
        try:
            wait_ready(bridge, "subscribed")
            call_id = sim.place_call(CallerSpec(
                number=caller, did=did, variables=_sets(did_actions), patience=40,
                ivr=IvrSpec(choice="3", after=1.0, menu=menu,
                            path=choice_vars["tongdai_ivr_path"],
                            variables={k: v for k, v in choice_vars.items()
                                       if k.startswith("tongdai_")},
                            entry=(entry.get("action"), entry.get("param")))))
            reader.wait_for(lambda es: any(e.type == "call_enqueued" and e.call_id == call_id
                                           for e in es), timeout=60,
                            what=f"call {call_id} enqueued")
            enqueued = next(e for e in reader.of_type("call_enqueued") if e.call_id == call_id)
            assert enqueued.payload["queue"] == qid, enqueued.payload
            # The supervisor sees it waiting in that queue.
            board = context.new_page()
            board.goto(product.wallboard)
            board.wait_for_function(
                f"[...document.querySelectorAll('#calls tr')].some(r => r.cells[1] && "
                f"r.cells[1].innerText === {qid!r})", timeout=30_000)
            board.screenshot(path=str(ARTIFACTS / "admin-5-ivr-call-waiting.png"),
                             full_page=True)
            sim.hangup(call_id)
        finally:
            reader.close()
            stop_process(bridge)
            sim.stop()
        assert re.fullmatch(r"3", choice_vars["tongdai_ivr_path"])
    finally:
        _delete(product, "dids", did_e164)
        _delete(product, "ivrs", menu)
        _delete(product, "queues", qid)


def test_the_blocklist_and_tenant_settings_made_in_the_console_reach_the_switch(
        product, context, local_stack):
    from api.freeswitch.render import render

    h = {"Authorization": f"Bearer {product.admin_token}"}
    before = requests.get(f"{product.base}/api/v1/tenant", headers=h, timeout=10).json()
    blocked = f"0909{random.randrange(10**5, 10**6)}"
    blocked_e164 = "+84" + blocked[1:]
    page = _open(context, product, "blocklist")
    try:
        page.fill("#f-blocklist [data-field=id] input", blocked)
        page.fill("#f-blocklist [data-field=reason] input", "Gọi quấy rối")
        _save(page, "#f-blocklist")
        page.wait_for_selector(f"[data-list=blocklist] tr[data-id='{blocked_e164}']")

        page.click("#tab-tenant")
        page.wait_for_function("document.getElementById('tn-domain').value !== ''")
        assert page.input_value("#tn-domain") == "demo.tongdai.local"
        page.fill("#tn-max", "-1")  # refused beside the field
        _save(page, "#f-tenant")
        assert "greater than or equal to 0" in page.inner_text(
            "#f-tenant [data-field=max_concurrent_calls] .field-error")
        page.fill("#tn-max", "25")
        page.select_option("#tn-rec", "inbound")
        page.fill("#tn-cid", "028 7300 1234")
        page.uncheck("input[name=classes][value=mobile]")
        _save(page, "#f-tenant")
        page.wait_for_selector("#f-tenant [data-saved=tenant]")
        after = requests.get(f"{product.base}/api/v1/tenant", headers=h, timeout=10).json()
        assert (after["max_concurrent_calls"], after["recording"]["calls"],
                after["outbound_caller_id"], after["outbound_classes"]) == (
            25, "inbound", "+842873001234", ["national"])
        assert after.get("region_prefixes") == before.get("region_prefixes")  # kept
        page.screenshot(path=str(ARTIFACTS / "admin-6-tenant.png"), full_page=True)

        # What FreeSWITCH is told about a call to the demo's number: a blocked caller is
        # rejected; another one is limited to 25 calls and recorded (inbound calls).
        view = _config_view(local_stack.kafka_bootstrap)
        ask = {"section": "dialplan", "Hunt-Context": "public",
               "Caller-Destination-Number": "02873001234"}
        rejected = _actions(render(view, {**ask, "Caller-Caller-ID-Number": blocked}))
        assert ("hangup", "CALL_REJECTED") in rejected and ("answer", "") not in rejected
        allowed = _actions(render(view, {**ask, "Caller-Caller-ID-Number": "0903555111"}))
        assert ("limit", "hash tongdai demo 25 !USER_BUSY") in allowed
        assert any(app == "record_session" for app, _ in allowed)
        internal = _actions(render(view, {"section": "dialplan", "Hunt-Context": "tongdai_demo",
                                          "Caller-Destination-Number": "1001",
                                          "variable_tongdai_tenant": "demo"}))
        assert internal and not any(app == "record_session" for app, _ in internal)
    finally:
        _delete(product, "blocklist", blocked_e164)
        restore = {k: v for k, v in before.items()
                   if k not in ("id", "changed_at_us", "webhook_secrets")}
        if "webhooks" in restore:
            restore["webhooks"] = [{k: w[k] for k in ("id", "url", "events") if k in w}
                                   for w in restore["webhooks"]]
        r = requests.put(f"{product.base}/api/v1/tenant", json=restore, headers=h, timeout=10)
        assert r.status_code == 200, r.text


def test_an_agent_and_a_user_made_in_the_console_work_in_the_product(product, context):
    h = {"Authorization": f"Bearer {product.admin_token}"}
    run = uuid.uuid4().hex[:5]
    ext, agent, user = f"18{random.randrange(10, 100)}", f"e2e-ag-{run}", f"e2e-sup-{run}"
    page = _open(context, product, "agents")
    try:
        page.fill("#f-extensions [data-field=id] input", ext)
        page.fill("#f-extensions [data-field=display_name] input", "Thử nghiệm")
        page.fill("#f-extensions [data-field=agent_id] input", agent)
        _save(page, "#f-extensions")
        secret = page.inner_text("#f-extensions [data-secret=sip_password]")
        assert len(secret) >= 24  # shown once, here

        page.fill("#f-agents [data-field=id] input", agent)
        page.fill("#f-agents [data-field=extension] input", ext)
        page.fill("#f-agents [data-field=skills] input", "vi:4, en:11")  # refused: 11
        page.check("#f-agents [data-field=queues] input[value=sales]")
        _save(page, "#f-agents")
        assert "less than or equal to 10" in page.inner_text(
            "#f-agents [data-field=skills] .field-error")
        page.fill("#f-agents [data-field=skills] input", "vi:4, en:2")
        _save(page, "#f-agents")
        page.wait_for_selector(f"#f-agents [data-saved='{agent}']")
        assert f"{agent} (4)" in page.inner_text("#skills-overview tr[data-skill=vi]")
        saved = requests.get(f"{product.base}/api/v1/agents/{agent}", headers=h, timeout=10).json()
        assert (saved["extension"], saved["skills"], list(saved["queues"])) == (
            ext, {"vi": 4, "en": 2}, ["sales"])

        # The router takes it: logged in (a supervisor's command, with a reason), it shows
        # on the wallboard (offline: its phone is not registered).
        r = requests.post(f"{product.base}/api/v1/agents/{agent}/login", headers=h, timeout=10,
                          json={"reason": "e2e"})
        assert r.status_code == 202, r.text
        board = context.new_page()
        board.goto(product.wallboard)
        board.wait_for_selector(f"#agents [data-agent='{agent}']", timeout=60_000)

        # A supervisor made and given a token here opens the wallboard with it; disabled
        # here, that token stops working.
        page.click("#tab-users")
        page.wait_for_selector("#f-users")
        page.fill("#f-users [data-field=id] input", user)
        page.select_option("#f-users [data-field=role] select", "supervisor")
        _save(page, "#f-users")
        page.wait_for_selector(f"#f-users [data-saved='{user}']")
        page.fill("#tok-user", user)
        page.select_option("#tok-role", "admin")  # the user's role is supervisor: refused
        _save(page, "#f-token")
        assert "has role 'supervisor'" in page.inner_text("#f-token [data-field=role] .field-error")
        page.select_option("#tok-role", "supervisor")
        _save(page, "#f-token")
        token = page.inner_text("#f-token [data-secret=token]")
        wall = context.new_page()
        wall.goto(f"{product.base}/web/static/wallboard.html#token={token}")
        wall.wait_for_function("document.body.dataset.ageMs !== undefined && "
                               "document.body.dataset.ageMs !== ''", timeout=60_000)
        assert wall.is_hidden("#login")
        page.click(f"[data-list=users] [data-edit='{user}']")
        page.check("#f-users [data-field=disabled] input")
        _save(page, "#f-users")
        wall.reload()
        wall.wait_for_selector("#login:not(.hidden)", timeout=30_000)
        page.click("#tab-audit")
        page.fill("#au-target", f"user/{user}")
        page.click("#f-audit button[type=submit]")
        page.wait_for_selector("#audit-list tr[data-action='user.put']")
        assert page.locator("#audit-list tr[data-action='token.create']").count() == 1
        page.screenshot(path=str(ARTIFACTS / "admin-7-audit.png"), full_page=True)
    finally:
        requests.post(f"{product.base}/api/v1/agents/{agent}/logout", headers=h, timeout=10,
                      json={"reason": "e2e done"})
        _delete(product, "agents", agent)
        _delete(product, "extensions", ext)
        _delete(product, "users", user)
