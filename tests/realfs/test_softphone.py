"""The agent page's browser softphone against the real FreeSWITCH (issue 18): Chromium with
fake media devices registers over the internal profile's secure WebSocket with the SIP
credentials the API gave this page session, takes a queue's call offered by the router
(the INVITE in the same pop-up as the CRM lookup), answers it (WebRTC media: ICE,
DTLS-SRTP), sends DTMF, holds and resumes, mutes, transfers the caller to a desk phone (REFER); then
the page unregisters.

Truth: the switch (`sofia status` registrations, CHANNEL_BRIDGE, DTMF, CHANNEL_HOLD and
CHANNEL_UNHOLD events), the router's facts (the call answered by the agent) and the
browser's own WebRTC statistics. Figures (registration time, ring and answer-to-bridge
times, packets) are printed and saved in var/test-artifacts/realfs/softphone.json.
"""
from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from api.auth import Tokens

from .conftest import ARTIFACTS, DESK_EXT, free_port

pytestmark = [pytest.mark.realfs, pytest.mark.stack]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def spki_sha256(cert: Path) -> str:
    """The certificate's public-key pin, for Chromium's --ignore-certificate-errors-spki-list:
    the switch's self-signed wss certificate is trusted by this browser and nothing else."""
    pub = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         capture_output=True, check=True).stdout
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der,
                            capture_output=True, check=True).stdout
    import base64

    return base64.b64encode(digest).decode()


def _put(base: str, token: str, path: str, body: dict) -> dict:
    r = requests.put(f"{base}{path}", json=body, timeout=15,
                     headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def test_a_browser_softphone_registers_and_answers_a_queue_call(product, tmp_path):
    from playwright.sync_api import sync_playwright

    from tests.integration.harness import start_process, stop_process, wait_ready

    sw = product.switch
    assert sw.wss_port, "the switch was started without a wss port"
    base = f"http://127.0.0.1:{product.api_port}"
    admin, _ = Tokens(product.token_secret, 3600).mint(product.tenant, "admin", "sp-admin")
    run = uuid.uuid4().hex[:4]
    ext, agent, queue = "2101", f"web{run}", f"webq{run}"
    did = f"0283{random.randrange(10**6, 10**7)}"
    _put(base, admin, f"/api/v1/queues/{queue}", {"strategy": "longest-idle-agent",
                                                    "offer_timeout_s": 30, "wrapup_s": 1})
    _put(base, admin, f"/api/v1/extensions/{ext}", {"display_name": "Web", "agent_id": agent})
    _put(base, admin, f"/api/v1/agents/{agent}", {"extension": ext, "queues": {queue: {}}})
    _put(base, admin, f"/api/v1/users/{agent}", {"role": "agent", "agent_id": agent})
    _put(base, admin, f"/api/v1/dids/{did}", {"queue": queue})
    r = requests.post(f"{base}/api/v1/tokens", json={"user": agent, "role": "agent"},
                      headers={"Authorization": f"Bearer {admin}"}, timeout=15)
    assert r.status_code == 201, r.text
    agent_token = r.json()["token"]

    # The agent page from an API process with the softphone on (the same config topic: the
    # switch's mod_xml_curl, answered by the product's API, sees the session it writes).
    port = free_port()
    wss = f"wss://127.0.0.1:{sw.wss_port}"
    page_api = start_process("api", tmp_path, {
        **product.env, "TONGDAI_API_PORT": str(port), "TONGDAI_API_WORKERS": "1",
        "TONGDAI_API_SOFTPHONE_WSS_URL": wss, "TONGDAI_API_WEBHOOKS_ENABLED": "false"})
    esl = sw.esl()
    esl.command("event plain CHANNEL_BRIDGE CHANNEL_HOLD CHANNEL_UNHOLD DTMF CHANNEL_ANSWER")
    reader = product.reader()
    figures: dict[str, float | int | str] = {}
    caller = None
    try:
        wait_ready(page_api, "Listening at")
        cert = sw.folder / "conf" / "runtime" / "tls" / "wss.crt"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream", "--allow-loopback-in-peer-connection",
                f"--ignore-certificate-errors-spki-list={spki_sha256(cert)}"])
            page = browser.new_page(viewport={"width": 1300, "height": 1100})
            logged: list[str] = []
            page.on("console", lambda m: logged.append(f"{m.type}: {m.text}"))
            page.goto(f"http://127.0.0.1:{port}/web/static/agent.html#token={agent_token}")
            page.wait_for_function(f"document.body.dataset.agent === {agent!r}", timeout=30_000)

            t0 = time.monotonic()
            page.click("#sp-start")
            try:
                page.wait_for_function("document.getElementById('sp-status').dataset.state "
                                       "=== 'registered'", timeout=30_000)
            except Exception:
                raise AssertionError(f"not registered; page: {logged[-20:]}") from None
            figures["register_ms"] = round((time.monotonic() - t0) * 1000)
            # The switch's own answer to "where is this user?" (what `user/<ext>` dials).
            contact = esl.api(f"sofia_contact */{ext}@{product.domain}")
            assert "transport=ws" in contact.lower(), contact
            page.screenshot(path=str(ARTIFACTS / "softphone-1-registered.png"), full_page=True)

            page.click("#btn-login")
            page.wait_for_function("document.body.dataset.state === 'available'", timeout=60_000)

            # Every routing worker on the shared topics routes every tenant: one started by
            # other work, with no configuration of this test's queue, overflows the call
            # ("queue ... is not configured") as soon as ours offers it. Such a call is
            # placed again (at most 3 times); any other failure fails the test.
            bridge = None
            for attempt in range(3):
                number = f"0903{random.randrange(10**5, 10**6)}"
                t_call = time.monotonic()
                caller = product.call(did, hold_ms=25_000, caller=number, timeout_s=90,
                                      speak_s=20)  # a voice the browser must hear
                page.wait_for_selector("#phone-ring:not(.hidden)", timeout=45_000)
                figures["dial_to_browser_ring_ms"] = round((time.monotonic() - t_call) * 1000)
                t_answer = time.monotonic()
                try:
                    page.click("#sp-answer", timeout=5_000)
                except Exception:  # the offer was cancelled before the click
                    pass
                # (tongdai_connect: the answering leg intercepts the caller; whichever leg
                # the event names first, one of the two is this caller)
                bridge = esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_BRIDGE"
                                        and any(v.endswith(number[1:]) for k, v in e.items()
                                                if k.endswith("Caller-ID-Number")), 15)
                if bridge is not None:
                    break
                reader.poll(2)
                foreign = [e for e in reader.of_type("call_overflowed")
                           if "is not configured" in e.payload.get("reason", "")]
                caller.stop()
                caller = None
                assert foreign, f"no bridge, and no foreign router to blame; page: {logged[-20:]}"
                page.wait_for_selector("#phone-ring", state="hidden", timeout=30_000)
            assert bridge is not None, "a foreign routing worker took every attempt"
            figures["answer_to_bridge_ms"] = round((time.monotonic() - t_answer) * 1000)
            figures["attempts"] = attempt + 1
            # The same pop-up: the router's offer with the caller and the CRM lookup.
            page.wait_for_function("document.body.dataset.popups > 0", timeout=15_000)
            assert page.inner_text("#popup-caller") == "+84" + number[1:]
            assert page.inner_text("#popup-crm").strip() == "Không tìm thấy khách hàng"
            page.wait_for_function("document.getElementById('phone-call').dataset.state "
                                   "=== 'talking'", timeout=15_000)
            reader.wait_for(lambda es: any(e.type == "call_answered"
                                           and e.payload.get("agent_id") == agent for e in es),
                            timeout=20, what=f"{agent} answered in the router's facts")
            browser_leg = {bridge.get("Unique-ID"), bridge.get("Other-Leg-Unique-ID")}

            # Media both ways over DTLS-SRTP (ICE on loopback).
            stats_js = """async () => {
              const pc = window.tongdaiPhoneSession && window.tongdaiPhoneSession();
              const out = {state: pc ? pc.connectionState : 'none', sent: 0, received: 0};
              if (!pc) return out;
              (await pc.getStats()).forEach((s) => {
                if (s.type === 'outbound-rtp' && s.kind === 'audio') out.sent += s.packetsSent;
                if (s.type === 'inbound-rtp' && s.kind === 'audio') out.received += s.packetsReceived;
              });
              return out;
            }"""
            deadline = time.monotonic() + 20
            while True:
                stats = page.evaluate(stats_js)
                if stats["state"] == "connected" and stats["sent"] > 50 and stats["received"] > 50:
                    break
                assert time.monotonic() < deadline, f"no media both ways: {stats}"
                time.sleep(0.5)
            figures.update(packets_sent=stats["sent"], packets_received=stats["received"])

            page.fill("#sp-dtmf", "5")
            page.click("#sp-dtmf-send")
            dtmf = esl.wait_event(lambda e: e.get("Event-Name") == "DTMF"
                                  and e.get("DTMF-Digit") == "5"
                                  and e.get("Unique-ID") in browser_leg, 15)
            assert dtmf is not None, "the switch got no DTMF 5"

            page.click("#sp-hold")
            assert esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_HOLD"
                                  and e.get("Unique-ID") in browser_leg, 15), "no hold"
            page.wait_for_function("document.getElementById('sp-hold').getAttribute("
                                   "'aria-pressed') === 'true'", timeout=10_000)
            page.click("#sp-hold")
            assert esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_UNHOLD"
                                  and e.get("Unique-ID") in browser_leg, 15), "no resume"
            page.click("#sp-mute")
            assert page.evaluate("window.tongdaiPhoneSession().getSenders()"
                                 ".every((s) => !s.track || !s.track.enabled)")
            page.click("#sp-mute")
            page.screenshot(path=str(ARTIFACTS / "softphone-3-talking.png"), full_page=True)

            # Blind transfer (REFER) to the tenant's desk phone: the switch rings it with
            # the caller, the browser's leg ends.
            desk = product.agent_phone(product.desk, ring_ms=300, timeout_s=60)
            try:
                page.fill("#sp-xfer-to", DESK_EXT)
                page.click("#sp-xfer")
                page.wait_for_function("document.getElementById('phone-call').classList"
                                       ".contains('hidden')", timeout=20_000)
                assert desk.wait(45) == 0, desk.messages()[-3000:]
            finally:
                desk.stop()
            invite = desk.messages().split("INVITE sip:", 1)[1].split("\n\n", 1)[0]
            assert re.search(rf"^From: .*{number[1:]}", invite, re.M), invite
            page.click("#sp-stop")
            page.wait_for_function("document.getElementById('sp-status').dataset.state "
                                   "=== 'ended'", timeout=15_000)
            browser.close()
        # The page unregistered when its phone was stopped.
        deadline = time.monotonic() + 10
        while "transport=ws" in esl.api(f"sofia_contact */{ext}@{product.domain}").lower():
            assert time.monotonic() < deadline, "the browser's registration outlived the page"
            time.sleep(0.5)
    finally:
        if caller is not None:
            caller.stop()
        reader.close()
        esl.close()
        stop_process(page_api)
        for path in (f"/api/v1/dids/{did}", f"/api/v1/agents/{agent}",
                     f"/api/v1/users/{agent}", f"/api/v1/extensions/{ext}",
                     f"/api/v1/queues/{queue}"):
            requests.delete(f"{base}{path}", headers={"Authorization": f"Bearer {admin}"},
                            timeout=15)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "softphone.json").write_text(json.dumps(figures, indent=1))
        print("softphone figures:", json.dumps(figures))
