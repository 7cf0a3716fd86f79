"""The agent page in a real browser, as demo agent `lan` (sales, billing and support) of `tongdai up`:
pause with a reason and resume, an incoming-call pop-up with the caller lookup, a note after
the call, click-to-call. Screenshots are saved to var/test-artifacts/.
"""
from __future__ import annotations

import re
import time
import uuid

import pytest
import requests

from tests.e2e.conftest import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


def _api(product, path: str, **params) -> dict:
    r = requests.get(product.base + path, params=params, timeout=10,
                     headers={"Authorization": f"Bearer {product.agent_token}"})
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def _notes(product, call_id: str, want: int = 1) -> list[dict]:
    """The call's notes through the API. Each API process (gunicorn runs two) reads notes
    back from their topic, so the one answering may not have a note the page saw yet:
    ask until it has `want` of them (bounded)."""
    deadline = time.monotonic() + 15
    while True:
        r = requests.get(product.base + f"/api/v1/calls/{call_id}/notes", timeout=10,
                         headers={"Authorization": f"Bearer {product.agent_token}"})
        items = r.json().get("items", []) if r.status_code == 200 else []
        if len(items) >= want or time.monotonic() > deadline:
            return items
        time.sleep(0.3)


def test_an_agent_pauses_resumes_gets_a_pop_up_notes_the_call_and_clicks_to_call(product,
                                                                                  context):
    page = context.new_page()
    page.set_viewport_size({"width": 1300, "height": 1000})
    page.goto(product.agent)
    # This run's live view (a view an earlier run left on the compacted topic is stale).
    page.wait_for_function("document.body.dataset.agent === 'lan' && "
                           "document.body.dataset.ageMs !== undefined && "
                           "document.body.dataset.ageMs !== '' && "
                           "Number(document.body.dataset.ageMs) < 5000", timeout=60_000)
    assert page.inner_text("h1") == "Màn hình điện thoại viên — tổng đài CSKH"
    who = page.inner_text("#who")
    assert "lan" in who and "máy nhánh 1000" in who and "billing, sales" in who
    page.wait_for_function("document.getElementById('popup-status').innerText"
                           ".startsWith('Đã kết nối')", timeout=30_000)

    # Pause for training. A call in progress ends first (the demo's agents are busy), so
    # the page may show the pause as pending before it shows it done.
    page.select_option("#pause-reason", "training")
    page.click("#btn-pause")
    page.wait_for_function("document.getElementById('cmd-result').innerText !== ''")
    assert page.inner_text("#cmd-result") == "Đã gửi lệnh: tạm nghỉ (đào tạo)"
    page.wait_for_function("document.body.dataset.state === 'paused'", timeout=150_000)
    assert page.inner_text("#state") == "Tạm nghỉ"
    assert page.inner_text("#state-note").startswith("lý do: đào tạo")
    assert re.fullmatch(r"\d+:\d\d", page.inner_text("#in-state"))
    assert page.is_enabled("#btn-resume") and not page.is_enabled("#btn-pause")
    assert _api(product, "/api/v1/agents/lan/state")["pause_reason"] == "training"
    page.screenshot(path=str(ARTIFACTS / "agent-1-paused.png"), full_page=True)

    # Resume: lan is ready for calls again. The demo's queues always have callers waiting,
    # so `sẵn sàng` turns into a ringing offer at once: any state but paused/logged out.
    popups_before = int(page.evaluate("Number(document.body.dataset.popups || 0)"))
    page.click("#btn-resume")
    page.wait_for_function("['available', 'offered', 'on_call', 'wrap_up']"
                           ".includes(document.body.dataset.state)", timeout=30_000)
    assert page.inner_text("#state") in ("Sẵn sàng", "Đang đổ chuông", "Đang gọi",
                                         "Hoàn tất sau cuộc gọi")
    assert page.inner_text("#cmd-result") == "Đã gửi lệnh: sẵn sàng"

    # The next call offered to lan pops up with the caller and the CRM lookup. An agent
    # writes notes only on calls it handled: go on with a popped-up call lan answered (the
    # demo's phones sometimes let an offer ring out; the next one pops up then).
    deadline = time.monotonic() + 180
    while True:
        page.wait_for_function(f"Number(document.body.dataset.popups || 0) > {popups_before}",
                               timeout=max(1_000, int((deadline - time.monotonic()) * 1000)))
        call_id = page.get_attribute("#popup-body", "data-call-id")
        answered = {c["call_id"] for c in _api(product, "/api/v1/agents/lan/state")
                    ["recent_calls"]}
        if call_id in answered:
            break
        assert time.monotonic() < deadline, f"lan answered none of the calls offered: {answered}"
        time.sleep(0.5)
    caller = page.inner_text("#popup-caller")
    assert call_id and re.fullmatch(r"\+84\d{9,10}", caller), (call_id, caller)
    assert re.match(r"Hàng đợi: (sales|billing|support) · lúc ", page.inner_text("#popup-meta"))
    crm = page.inner_text("#popup-crm")
    matches = _api(product, "/api/v1/lookup", number=caller)["matches"]
    if matches:
        for m in matches:
            assert m["name"] in crm
    else:
        assert crm == "Không tìm thấy khách hàng"
    page.screenshot(path=str(ARTIFACTS / "agent-2-pop-up.png"), full_page=True)

    # A note on that call, with a disposition; the page shows it saved, and so does the API.
    page.click("#popup-note")
    assert page.input_value("#note-call") == call_id
    page.click("#note-save")  # empty: refused, naming the field
    page.wait_for_function("document.getElementById('note-result').innerText !== ''")
    assert "Lỗi 400" in page.inner_text("#note-result")
    assert "Nội dung ghi chú (text)" in page.inner_text("#note-result")
    marker = f"Khách hỏi giá gói cước, hẹn gọi lại ({uuid.uuid4().hex[:8]})"
    page.fill("#note-text", marker)
    page.select_option("#note-disposition", "callback")
    page.click("#note-save")
    page.wait_for_function("document.getElementById('note-result').innerText === 'Đã lưu ghi chú.'",
                           timeout=15_000)
    page.wait_for_selector(f"#notes li[data-note-id] >> text={marker}", timeout=10_000)
    assert "Hẹn gọi lại" in page.inner_text("#notes")
    saved = _notes(product, call_id)
    assert [(n["text"], n["disposition"], n["agent_id"]) for n in saved] == [
        (marker, "callback", "lan")]
    page.screenshot(path=str(ARTIFACTS / "agent-3-note.png"), full_page=True)

    # Click-to-call: a bad number is refused naming the field; a good one is accepted (202)
    # with the caller id the customer will see (never a 1800/1900 number).
    page.fill("#c2c-number", "09x12")
    page.click("#c2c-go")
    page.wait_for_function("document.getElementById('c2c-result').dataset.status === '400'",
                           timeout=10_000)
    assert page.inner_text("#c2c-result").startswith("Lỗi 400 — dữ liệu không hợp lệ: number:")
    assert "Số điện thoại (number): not a telephone number" in page.inner_text("#c2c-result")
    page.fill("#c2c-number", "0912 345 678")
    page.click("#c2c-go")
    page.wait_for_function("document.getElementById('c2c-result').dataset.status === '202'",
                           timeout=10_000)
    assert page.inner_text(".c2c-number") == "+84912345678"
    caller_id = page.inner_text(".c2c-caller-id")
    assert re.fullmatch(r"\+84\d{9,10}", caller_id) and not re.match(r"\+?(84)?1[89]00", caller_id)
    assert re.fullmatch(r"[0-9a-f]{32}", page.inner_text(".c2c-request-id"))
    assert page.inner_text("#c2c-result").startswith("Đã gửi yêu cầu gọi (202)")
    page.screenshot(path=str(ARTIFACTS / "agent-4-click-to-call.png"), full_page=True)

    # The click-to-call is among the calls to note; one that never connected is noted as
    # such (it has no call log row: the note records it, with 0 duration).
    c2c_call = page.inner_text(".c2c-call-id")
    page.select_option("#note-call", c2c_call)
    assert page.is_visible("#note-failed")
    page.check("#note-failed")
    page.fill("#note-text", "Khách không nghe máy")
    page.click("#note-save")
    page.wait_for_function("document.getElementById('note-result').innerText === 'Đã lưu ghi chú.'",
                           timeout=15_000)
    # Notes are read from the notes topic: the page shows it once this API process has it.
    page.wait_for_selector("#notes li[data-note-id] >> text=Khách không nghe máy", timeout=10_000)
    noted = _notes(product, c2c_call)
    assert [(n["text"], n["outbound_failed"], n["number"]) for n in noted] == [
        ("Khách không nghe máy", True, "+84912345678")]

    # English labels too.
    page.select_option("#lang", "en")
    assert page.inner_text("h1") == "Agent desk — contact center"
    assert page.inner_text("#c2c-result").startswith("Call requested (202)")
    page.screenshot(path=str(ARTIFACTS / "agent-5-english.png"), full_page=True)
