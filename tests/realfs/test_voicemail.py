"""Voicemail of a tenant provisioned only through the API, on a FreeSWITCH built from source
(issue 14: voicemail hung up at once, "Can't find language en", when FreeSWITCH was not
installed under /etc/freeswitch; the router's voicemail transfer also named a context only
the static files had).

The tenant's queue `closed` has a holiday today and voicemail after hours: the router
transfers the caller to voicemail_closed in tongdai_<tenant>, the API answers that with the
queue's box, the caller speaks (a tone) and hangs up, and the message is listed.
"""
from __future__ import annotations

import os
import time

import pytest

from tests.realfs.test_calls import call_row

pytestmark = [pytest.mark.realfs, pytest.mark.stack]


def test_after_hours_a_voicemail_message_is_left_and_listed(product):
    reader = product.reader()
    box = f"q_closed@{product.domain}"
    esl = product.switch.esl()
    try:
        before = esl.api(f"vm_boxcount {box}").strip()  # new messages
        caller = product.call(product.closed_did, hold_ms=14000, speak_s=13)
        reader.wait_for(lambda es: any(e.type == "call_overflowed" for e in es), timeout=30,
                        what="the closed queue's after-hours action")
        overflowed = reader.of_type("call_overflowed")[0]
        call_id = overflowed.call_id
        assert overflowed.payload["after_hours"] and overflowed.payload["action"] == "voicemail"
        assert caller.wait(60) == 0, caller.messages()[-3000:]
        deadline = time.monotonic() + 20
        count = before
        while time.monotonic() < deadline and count == before:
            time.sleep(0.5)
            count = esl.api(f"vm_boxcount {box}").strip()
        listed = esl.api(f"vm_list {box}")
    finally:
        esl.close()
        reader.close()
    assert (before, count) == ("0", "1")
    # vm_list: created:read:user:domain:folder:path:uuid:cid name:cid number:length (s)
    rows = [line.split(":") for line in listed.strip().splitlines() if line.count(":") >= 9]
    assert len(rows) == 1, listed
    row = rows[0]
    assert row[2:5] == ["q_closed", product.domain, "inbox"], row
    assert row[-2].endswith("903123456"), row  # the caller's number
    seconds = int(row[-1])
    assert seconds >= 3, row  # a message (one under min-record-len is not kept)
    assert row[5].endswith(".wav") and os.path.isfile(row[5]), row
    with open(product.folder / "voicemail.txt", "a") as log:
        log.write(f"{call_id} message {seconds} s in {row[5]}\n")
    cdr = call_row(product, call_id, timeout=120)  # the sink may still be catching up
    assert cdr["disposition"] == "voicemail" and cdr["queue"] == "closed", cdr
