"""Position and estimated-wait announcements (routing/announce.py): when and what."""

from __future__ import annotations

import pytest

from routing.announce import DIR, ENTRY_DELAY_S, MAX_SPOKEN, PROMPT_FILES, due, minutes, prompt

pytestmark = pytest.mark.routing

S = 1_000_000
E = 1_000 * S  # the caller entered the queue


@pytest.mark.parametrize("every, before, now, expected", [
    (None, E, E + 100 * S, None),  # the queue does not announce
    (60, E, E + 1 * S, None),  # the music has not started yet
    (60, E + 1 * S, E + 2 * S, E + ENTRY_DELAY_S * S),  # on entry, once the music plays
    (60, E + 2 * S, E + 3 * S, None),  # already said
    (60, E + 61 * S, E + 62 * S, E + 62 * S),  # a minute later
    (60, E + 30 * S, E + 200 * S, E + 182 * S),  # away for a while: the latest only
    (0, E + 1 * S, E + 5 * S, E + 2 * S),  # 0: on entry only...
    (0, E + 5 * S, E + 500 * S, None),  # ...and never again
    (60, E + 62 * S, E + 62 * S, None),  # no time passed
])
def test_announcements_are_due_once_per_moment(every, before, now, expected):
    assert due(E, every, before, now) == expected


def test_every_moment_is_due_exactly_once_however_time_is_sliced():
    cuts = [E + int(x * S) for x in (0, 0.5, 1.9, 2.0, 2.1, 40, 61.99, 62, 63, 121, 122.5, 300)]
    moments = [m for a, b in zip(cuts, cuts[1:]) if (m := due(E, 60, a, b)) is not None]
    assert moments == [E + 2 * S, E + 62 * S, E + 122 * S, E + 242 * S]


def test_the_prompt_says_position_and_minutes_in_vietnamese_then_english():
    p = prompt(3, 130)
    assert p.startswith("file_string://") and " " not in p
    files = p.removeprefix("file_string://").split("!")
    assert files == [f"{DIR}/vi/position.wav", f"{DIR}/vi/n/3.wav", f"{DIR}/vi/wait.wav",
                     f"{DIR}/vi/n/3.wav", f"{DIR}/vi/minutes.wav",
                     f"{DIR}/en/position.wav", f"{DIR}/en/n/3.wav", f"{DIR}/en/wait.wav",
                     f"{DIR}/en/n/3.wav", f"{DIR}/en/minutes.wav"]
    assert set(files) <= set(PROMPT_FILES), "make-sounds speaks every file a prompt uses"


@pytest.mark.parametrize("position, ewt, expected_tail", [
    (1, 20, ["en/position.wav", "en/n/1.wav", "en/under_a_minute.wav"]),
    (2, None, ["en/position.wav", "en/n/2.wav"]),  # no agent serves: position only
    (500, 90 * 60, ["en/position.wav", "en/more_than.wav", f"en/n/{MAX_SPOKEN}.wav",
                    "en/wait.wav", "en/more_than.wav", f"en/n/{MAX_SPOKEN}.wav",
                    "en/minutes.wav"]),
])
def test_short_waits_unknown_waits_and_large_numbers(position, ewt, expected_tail):
    files = prompt(position, ewt).removeprefix("file_string://").split("!")
    en = [f.removeprefix(DIR + "/") for f in files if f.startswith(DIR + "/en/")]
    assert en == expected_tail
    assert set(files) <= set(PROMPT_FILES)


def test_minutes_round_up():
    assert [minutes(s) for s in (0, 59, 60, 61, 120, 121)] == [0, 0, 1, 2, 2, 3]
