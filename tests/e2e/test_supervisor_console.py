"""Supervisor actions from the wallboard in a real browser, on `tongdai up`'s demo tenant:

- an agent paused by a supervisor (with a reason, audited) shows paused on the agent's
  own page, and resumes the same way; the agent's day at a glance is on the panel;
- listen, then whisper, on an agent's call in progress: the API's command reaches the
  routing worker, whose decision the bridge executes on the (simulated) switch: the
  supervisor's phone (demo extension 1099) answers the leg named by the monitoring.

Screenshots land in var/test-artifacts/.
"""
from __future__ import annotations

import time

import pytest
import requests

from tests.e2e.conftest import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.stack]
FRESH = "document.body.dataset.ageMs !== '' && Number(document.body.dataset.ageMs) < 5000"


def _wallboard(context, product):
    page = context.new_page()
    page.set_viewport_size({"width": 1500, "height": 1000})
    page.goto(product.wallboard)
    page.wait_for_function(FRESH, timeout=60_000)
    return page


def _audit(product, action: str) -> list[dict]:
    r = requests.get(f"{product.base}/api/v1/audit", params={"action": action}, timeout=10,
                     headers={"Authorization": f"Bearer {product.admin_token}"})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_an_agent_paused_by_a_supervisor_shows_paused_on_the_agents_page(product, context):
    board = _wallboard(context, product)
    board.click("#agents [data-agent='lan']")
    board.wait_for_selector("#sup:not(.hidden)")
    assert board.get_attribute("#sup", "data-agent") == "lan"
    assert board.inner_text("#sup-title").startswith("lan · 1000")
    # the day at a glance: today's figures from the reports, today's calls
    board.wait_for_function("document.querySelectorAll('#sup-figs .fig').length === 7 && "
                            "document.querySelector('#sup-figs .value').innerText !== '–'",
                            timeout=30_000)
    assert "Cuộc gọi đã xử lý" in board.inner_text("#sup-figs")

    # Without a reason: refused beside the field (the page checks, and so does the API).
    board.select_option("#sup-action", "pause")
    board.click("#sup-apply")
    board.wait_for_selector("#sup-state [data-field=reason] .field-error")
    reason = f"Kèm cặp {time.strftime('%H%M%S')}"
    board.fill("#sup-reason", reason)
    board.click("#sup-apply")
    board.wait_for_selector("#sup-state-msg [data-command]", timeout=15_000)
    assert board.locator("#sup-state .field-error").count() == 0
    assert board.inner_text("#sup-state-msg").startswith("Đã gửi lệnh (202): Tạm nghỉ")
    command_id = board.get_attribute("#sup-state-msg [data-command]", "data-command")

    # The agent's own page shows it paused, with the supervisor's reason. A call in
    # progress ends first (the demo's agents are busy).
    desk = context.new_page()
    desk.set_viewport_size({"width": 1300, "height": 1000})
    desk.goto(product.agent)
    desk.wait_for_function("document.body.dataset.agent === 'lan'", timeout=30_000)
    desk.wait_for_function("document.body.dataset.state === 'paused'", timeout=150_000)
    assert desk.inner_text("#state") == "Tạm nghỉ"
    assert desk.inner_text("#state-note").startswith(f"lý do: {reason}")
    board.wait_for_function("document.getElementById('sup-state-now') && "
                            "document.getElementById('sup-state-now').dataset.state === 'paused'",
                            timeout=30_000)
    board.screenshot(path=str(ARTIFACTS / "supervisor-1-paused.png"), full_page=True)
    desk.screenshot(path=str(ARTIFACTS / "supervisor-2-agent-page-paused.png"), full_page=True)

    entries = [e for e in _audit(product, "agent.state.pause")
               if e["detail"].get("command_id") == command_id]
    assert [(e["user"], e["role"], e["target"], e["detail"]["reason"]) for e in entries] == [
        ("demo-supervisor", "supervisor", "agent/lan", reason)]

    # Back to work, the same way.
    board.select_option("#sup-action", "resume")
    board.fill("#sup-reason", "Hết giờ kèm cặp")
    board.click("#sup-apply")
    board.wait_for_function("document.getElementById('sup-state-msg').innerText"
                            ".startsWith('Đã gửi lệnh (202): Sẵn sàng')", timeout=15_000)
    desk.wait_for_function("document.body.dataset.state !== 'paused'", timeout=30_000)

    board.select_option("#lang", "en")
    assert board.inner_text("#sup h3") == "THE DAY AT A GLANCE" or \
        board.inner_text("#sup h3").lower() == "the day at a glance"
    board.keyboard.press("Escape")
    assert board.is_hidden("#sup")


def _monitor_a_call(board, logged: list[str], deadline: float) -> str:
    """Listen on a call in progress from the wallboard: the monitoring's id."""
    while True:
        assert time.monotonic() < deadline, "no agent call could be monitored in time"
        board.wait_for_selector("#agents [data-state='on_call']", timeout=60_000)
        agent = board.get_attribute("#agents [data-state='on_call']", "data-agent")
        board.click(f"#agents [data-agent='{agent}']")
        board.wait_for_selector("#sup:not(.hidden)")
        board.fill("#sup-ext", "1099")
        board.click("#sup-monitor [data-mode=listen]")
        try:
            board.wait_for_function(
                "document.getElementById('sup-monitor-msg').innerText !== ''", timeout=15_000)
        except Exception:
            raise AssertionError(f"no answer shown; the page logged: {logged}") from None
        if board.locator("#sup-monitor-msg [data-monitor]").count():
            assert board.inner_text("#sup-monitor-msg").startswith(
                "Đang giám sát (202): Nghe xen")
            return board.get_attribute("#sup-monitor-msg [data-monitor]", "data-monitor")
        # the call ended between the tile and the click (409): another one
        assert "không có cuộc gọi" in board.inner_text("#sup-monitor-msg")
        board.click("#sup-close")


def test_a_supervisor_listens_then_whispers_on_an_agents_call(product, context, local_stack):
    from routing.contract import topics
    from tests.integration.harness import Reader

    # The demo's calls last 15-75 s: one may end while the supervisor listens, and its
    # monitoring with it. The router then refuses the mode change (no monitoring in
    # progress) and the supervisor's leg has hung up; that is the product right, and the
    # test takes another call. A refusal without that hangup is a failure.
    seen = Reader(local_stack.kafka_bootstrap,
                  [topics.ROUTING_DECISIONS, topics.FS_EVENTS, topics.CC_EVENTS],
                  lambda e: (e.tenant == "demo" and e.type in ("monitor_call", "send_dtmf",
                                                                "command_refused"))
                  or e.type in ("channel_answered", "channel_hungup"))
    board = _wallboard(context, product)
    logged: list[str] = []
    board.on("console", lambda m: logged.append(f"{m.type}: {m.text}"))
    board.on("pageerror", lambda e: logged.append(f"error: {e}"))

    def ours(monitor_id: str, type_: str) -> list:
        return [e for e in seen.of_type(type_) if monitor_id in (
            e.payload.get("leg_id"), e.payload.get("request_id"), e.payload.get("uuid"),
            e.payload.get("unique_id"), e.call_id) or (
            type_ == "channel_answered" and monitor_id in repr(e.payload))]

    try:
        deadline = time.monotonic() + 240
        whispered = None
        while whispered is None:
            monitor_id = _monitor_a_call(board, logged, deadline)
            seen.wait_for(lambda es: any(e.type == "monitor_call" and e.payload["leg_id"]
                                         == monitor_id for e in es),
                          timeout=30, what="the router's monitor_call decision")
            start = ours(monitor_id, "monitor_call")[0]
            assert (start.payload["extension"], start.payload["mode"]) == ("1099", "listen")
            # The bridge ran it on the switch: the supervisor's phone answered that leg.
            seen.wait_for(lambda es: bool(ours(monitor_id, "channel_answered")), timeout=30,
                          what="the supervisor's leg answered on the switch")
            board.screenshot(path=str(ARTIFACTS / "supervisor-3-listening.png"),
                             full_page=True)

            board.click("#sup-monitor [data-mode=whisper]")
            board.wait_for_selector("#sup-monitor-msg [data-current-mode=whisper]",
                                    timeout=15_000)
            seen.wait_for(lambda es: bool(ours(monitor_id, "send_dtmf")
                                          or ours(monitor_id, "command_refused")),
                          timeout=30, what="the router's DTMF for whisper (or its refusal)")
            if ours(monitor_id, "send_dtmf"):
                whispered = monitor_id
                break
            refusal = ours(monitor_id, "command_refused")[0].payload
            assert refusal["command"] == "monitor_mode_requested", refusal
            assert "no monitoring" in refusal["reason"], refusal
            seen.wait_for(lambda es: bool(ours(monitor_id, "channel_hungup")), timeout=10,
                          what=f"the hangup of the supervisor's leg that explains {refusal}")
            board.click("#sup-close")
        audited = sorted((e["action"], e["detail"].get("mode", ""), e["user"])
                         for e in _audit(product, "call.monitor.")
                         if e["detail"].get("monitor_id") == whispered)
        assert audited == [("call.monitor.listen", "", "demo-supervisor"),
                           ("call.monitor.mode", "whisper", "demo-supervisor")], audited
    finally:
        seen.close()
