"""Announcing a waiting caller's position and estimated wait. Pure.

When: a queue's ``announce_every_s`` (None: never) gives the moments, counted from the
caller's entry into the queue: ``ENTRY_DELAY_S`` after it, then every ``announce_every_s``
seconds (0: at entry only). The delay is not politeness: the switch starts the waiting
music one second after the park, and a broadcast nests inside whatever plays when it
arrives; an announcement that started before the music would have the never-ending music
nested inside it and never end, while one that arrives during the music plays and then
gives the music back. A moment is due when it falls between the router's clock before a
record and after it, so every moment is announced once whatever records carry time on,
and a replay announces the same moments.

What: the prompt is one ``file_string://`` of short files, Vietnamese then English (as the
product's other prompts), relative to the switch's ``sound_prefix``; ``deploy/freeswitch/
make-sounds.sh`` speaks every file of :data:`PROMPT_FILES`, and ``tongdai config apply``
refuses a queue that announces while one is missing.
"""

from __future__ import annotations

from routing.model import US

__all__ = ["ENTRY_DELAY_S", "MAX_SPOKEN", "DIR", "PROMPT_FILES", "due", "prompt", "minutes"]

ENTRY_DELAY_S = 2
MAX_SPOKEN = 60
"""Numbers are spoken up to this; a larger position or wait is said as "more than" it."""
DIR = "tongdai/ewt"
LANGS = ("vi", "en")

# The phrases of each language, by role; make-sounds.sh speaks them (keep the two in step).
PHRASES = ("position", "wait", "minutes", "under_a_minute", "more_than")


def _f(lang: str, name: str) -> str:
    return f"{DIR}/{lang}/{name}.wav"


def _n(lang: str, n: int) -> str:
    return f"{DIR}/{lang}/n/{n}.wav"


PROMPT_FILES: tuple[str, ...] = tuple(
    [_f(lang, p) for lang in LANGS for p in PHRASES]
    + [_n(lang, n) for lang in LANGS for n in range(1, MAX_SPOKEN + 1)])


def due(enqueued_us: int, every_s: int | None, before_us: int, now_us: int) -> int | None:
    """The announcement moment (µs) in (before_us, now_us], if any; the latest one when
    several fall in (a router that was away announces once, not a burst)."""
    if every_s is None or now_us <= before_us:
        return None
    first = enqueued_us + ENTRY_DELAY_S * US
    if now_us < first:
        return None
    if every_s == 0:
        return first if before_us < first else None
    k = (now_us - first) // (every_s * US)
    moment = first + k * every_s * US
    return moment if moment > before_us else None


def minutes(ewt_s: int) -> int:
    """The wait said to a caller, in whole minutes rounded up (0: under a minute)."""
    return -(-ewt_s // 60) if ewt_s >= 60 else 0


def _number(lang: str, n: int) -> list[str]:
    if n > MAX_SPOKEN:
        return [_f(lang, "more_than"), _n(lang, MAX_SPOKEN)]
    return [_n(lang, max(1, n))]


def prompt(position: int, ewt_s: int | None) -> str:
    """The ``file_string://`` a caller hears: "you are number <position>; your estimated
    wait is about <n> minutes" (or "under a minute"; no wait when there is no estimate),
    in Vietnamese then English."""
    files: list[str] = []
    for lang in LANGS:
        files += [_f(lang, "position"), *_number(lang, position)]
        if ewt_s is not None:
            m = minutes(ewt_s)
            files += ([_f(lang, "under_a_minute")] if m == 0 else
                      [_f(lang, "wait"), *_number(lang, m), _f(lang, "minutes")])
    return "file_string://" + "!".join(files)
