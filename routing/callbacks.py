"""Callbacks that keep the caller's place. Pure: the caller's keys and the attempts' results
in, the next step out.

A caller waiting in a queue whose ``callback_key`` is set presses it; the switch reads back
the number it will call (the calling number, normalized to E.164) and asks to confirm (1)
or cancel (2). Confirmed, the caller hears that they will be called back and the switch
hangs up; the call stays in the queue where it was (same entry time, same priority), so
the callback is offered to an agent when the caller's turn comes, as the call would have
been. The agent's phone rings showing the customer's number; when the agent answers, the
agent's leg dials the customer through the tenant's outbound dialplan (its caller-ID
rules). A customer who does not answer (or is busy) goes back to its place for the next
free agent, up to ``callback_attempts`` attempts; then the callback ends ``failed``.

Stages: ``asked`` (the number was read back) → ``confirmed`` (the caller may hang up;
waiting for its turn) → ``dialing`` (an agent answered; the customer's phone rings) →
``done`` (``connected``, ``failed`` or ``cancelled``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from routing.numbers import to_e164

__all__ = ["Callback", "Step", "press", "attempt_ended", "connected", "PROMPT_FILES", "offer_prompt",
           "CONFIRM", "CANCEL", "ASKED", "CONFIRMED", "DIALING", "DONE", "digits_prompt"]

CONFIRM, CANCEL = "1", "2"
ASKED, CONFIRMED, DIALING, DONE = "asked", "confirmed", "dialing", "done"
LANGS = ("vi", "en")
_DIR = "tongdai/callback"
_PHRASES = ("offer", "confirm_number", "confirm_keys", "confirmed", "cancelled")


def _f(lang: str, name: str) -> str:
    return f"{_DIR}/{lang}/{name}.wav"


def _digit(lang: str, d: str) -> str:
    return f"{_DIR}/{lang}/d/{d}.wav"


PROMPT_FILES: tuple[str, ...] = tuple(
    [_f(lang, p) for lang in LANGS for p in _PHRASES]
    + [_digit(lang, str(d)) for lang in LANGS for d in range(10)])


@dataclass(frozen=True, slots=True)
class Callback:
    call_id: str
    queue: str
    number: str  # E.164
    stage: str = ASKED
    asked_us: int = 0
    confirmed_us: int | None = None
    attempts: int = 0
    max_attempts: int = 3
    agent_id: str | None = None
    outcome: str | None = None  # connected | failed | cancelled, once done


@dataclass(frozen=True, slots=True)
class Step:
    """What the switch and the log should do after a key or a result."""

    prompt: str | None = None  # file_string:// to play the caller
    then_music: bool = True  # the waiting music after the prompt
    hang_up: bool = False  # hang the caller up once the prompt is played
    fact: str | None = None  # callback_requested | callback_attempted | callback_completed
    requeue: bool = False  # the customer was not reached: back to its place


def _files(files: list[str]) -> str:
    return "file_string://" + "!".join(files)


def digits_prompt(lang: str, number: str) -> list[str]:
    """The number read digit by digit, in its national form (0…) as callers know it."""
    national = "0" + number[3:] if number.startswith("+84") else number.lstrip("+")
    return [_digit(lang, d) for d in national if d.isdigit()]


def offer_prompt() -> str:
    """"Press <key> to be called back and keep your place" (added to announcements)."""
    return _files([_f(lang, "offer") for lang in LANGS])


def press(cb: Callback | None, key: str, *, call_id: str, queue: str, caller: str,
          callback_key: str | None, max_attempts: int, at_us: int
          ) -> tuple[Callback | None, Step | None]:
    """A key the waiting caller pressed. Returns the callback (None: none, or cancelled)
    and what to do (None: the key means nothing here)."""
    if cb is None:
        if callback_key is None or key != callback_key:
            return None, None
        try:
            number = to_e164(caller)
        except ValueError:
            return None, None  # no number to call back (anonymous, malformed)
        cb = Callback(call_id, queue, number, ASKED, at_us, max_attempts=max_attempts)
        files = []
        for lang in LANGS:
            files += [_f(lang, "confirm_number"), *digits_prompt(lang, number),
                      _f(lang, "confirm_keys")]
        return cb, Step(prompt=_files(files))
    if cb.stage == ASKED and key == CONFIRM:
        return (replace(cb, stage=CONFIRMED, confirmed_us=at_us),
                Step(prompt=_files([_f(lang, "confirmed") for lang in LANGS]), then_music=False,
                     hang_up=True, fact="callback_requested"))
    if cb.stage == ASKED and key == CANCEL:
        return None, Step(prompt=_files([_f(lang, "cancelled") for lang in LANGS]))
    return cb, None


def attempt_ended(cb: Callback, reached: bool) -> tuple[Callback, Step]:
    """The agent's leg dialled the customer and it ended before a bridge (``reached``
    False: no answer, busy, refused) or the customer answered (True)."""
    attempts = cb.attempts + 1
    if reached:
        return (replace(cb, stage=DONE, attempts=attempts, outcome="connected"),
                Step(fact="callback_completed"))
    if attempts >= cb.max_attempts:
        return (replace(cb, stage=DONE, attempts=attempts, outcome="failed"),
                Step(fact="callback_completed"))
    return replace(cb, stage=CONFIRMED, attempts=attempts, agent_id=None), \
        Step(fact="callback_attempted", requeue=True)


def connected(cb: Callback, agent_id: str) -> Callback:
    """An agent answered the callback's offer: its leg now dials the customer."""
    return replace(cb, stage=DIALING, agent_id=agent_id)
