"""Callbacks that keep the caller's place (routing/callbacks.py): keys and results in,
steps out."""

from __future__ import annotations

import pytest

from routing import callbacks as cbk

pytestmark = pytest.mark.routing

KW = dict(call_id="c1", queue="support", callback_key="1", max_attempts=2, at_us=5)


def files(prompt: str) -> list[str]:
    assert prompt.startswith("file_string://")
    return prompt.removeprefix("file_string://").split("!")


def test_the_key_reads_back_the_calling_number_then_confirming_hangs_up_keeping_the_place():
    cb, step = cbk.press(None, "1", caller="+84912345678", **KW)
    assert (cb.stage, cb.number) == (cbk.ASKED, "+84912345678")
    read = files(step.prompt)
    vi = [f.rsplit("/", 1)[1] for f in read if "/vi/d/" in f]
    assert vi == [f"{d}.wav" for d in "0912345678"], "read back in the national form"
    assert read[0].endswith("vi/confirm_number.wav") and read[-1].endswith("en/confirm_keys.wav")
    assert step.then_music and not step.hang_up
    cb, step = cbk.press(cb, cbk.CONFIRM, caller="+84912345678", **{**KW, "at_us": 9})
    assert (cb.stage, cb.confirmed_us) == (cbk.CONFIRMED, 9)
    assert step.hang_up and not step.then_music and step.fact == "callback_requested"
    assert set(files(step.prompt)) | set(read) <= set(cbk.PROMPT_FILES)


@pytest.mark.parametrize("caller", ["0912345678", "84912345678", "+84912345678"])
def test_every_form_of_the_number_is_called_back_in_e164(caller):
    cb, _ = cbk.press(None, "1", caller=caller, **KW)
    assert cb.number == "+84912345678"


def test_cancel_other_keys_and_queues_without_callbacks():
    cb, _ = cbk.press(None, "1", caller="0912345678", **KW)
    gone, step = cbk.press(cb, cbk.CANCEL, caller="0912345678", **KW)
    assert gone is None and step.prompt and step.then_music and not step.hang_up
    assert cbk.press(cb, "7", caller="0912345678", **KW) == (cb, None)
    assert cbk.press(None, "1", caller="0912345678", **{**KW, "callback_key": None}) == (None, None)
    assert cbk.press(None, "2", caller="0912345678", **KW) == (None, None)
    assert cbk.press(None, "1", caller="anonymous", **KW) == (None, None), "no number to call"


def test_an_unreached_customer_goes_back_to_its_place_until_the_attempts_run_out():
    cb, _ = cbk.press(None, "1", caller="0912345678", **KW)
    cb, _ = cbk.press(cb, "1", caller="0912345678", **KW)
    cb = cbk.connected(cb, "a1")
    assert (cb.stage, cb.agent_id) == (cbk.DIALING, "a1")
    cb, step = cbk.attempt_ended(cb, reached=False)
    assert (cb.stage, cb.attempts, step.requeue, step.fact) == (cbk.CONFIRMED, 1, True,
                                                               "callback_attempted")
    cb, step = cbk.attempt_ended(cbk.connected(cb, "a2"), reached=False)
    assert (cb.stage, cb.outcome, step.requeue, step.fact) == (cbk.DONE, "failed", False,
                                                              "callback_completed")


def test_a_reached_customer_completes_the_callback():
    cb = cbk.Callback("c1", "support", "+84912345678", cbk.DIALING, attempts=1, agent_id="a1")
    cb, step = cbk.attempt_ended(cb, reached=True)
    assert (cb.outcome, cb.attempts, step.fact, step.requeue) == ("connected", 2,
                                                                   "callback_completed", False)
