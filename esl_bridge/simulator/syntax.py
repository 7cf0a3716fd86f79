"""FreeSWITCH's small text formats that commands carry: originate strings, DTMF strings,
``&app(args)``, uuid_broadcast paths and switch_true. Pure functions."""

from __future__ import annotations

import re
from collections.abc import Iterable

#: ``&app(args)``, ``&app`` or ``app(args)`` as an originate or a dialplan writes them.
APP = re.compile(r"^&?([A-Za-z_][\w]*)\((.*)\)$|^&?([A-Za-z_]\w*)$")
#: What switch_channel_queue_dtmf_string accepts (is_dtmf: digits, A-D, *, #, w/W, f/F).
_DTMF_CHARS = frozenset("0123456789ABCDabcd*#wWfF")
#: FreeSWITCH's default / minimum / maximum DTMF durations, in 8 kHz samples.
DTMF_DEFAULT_SAMPLES, DTMF_MIN_SAMPLES, DTMF_MAX_SAMPLES = 2000, 400, 192000


def parse_originate(arg: str) -> tuple[dict[str, str], str, str]:
    """``{a=1,b='x y'}user/1000@dom &park()`` → (variables, target, application)."""
    text = arg.strip()
    variables: dict[str, str] = {}
    while text[:1] in ("{", "[", "<"):
        end = _block_end(text)
        for item in _split_vars(text[1:end]):
            key, _, value = item.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1]
            variables[key.strip()] = value
        text = text[end + 1:]
    target, _, app = text.partition(" ")
    return variables, target.strip(), app.strip()


def _block_end(text: str) -> int:
    """Where the variable block opening `text` closes: nested braces (a value's
    `${var}`) and quoted values do not close it (switch_find_end_paren)."""
    opening = text[0]
    close = {"{": "}", "[": "]", "<": ">"}[opening]
    depth, quoted = 0, False
    for i, c in enumerate(text):
        if c == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif c == opening or (opening != "{" and c == "{"):
            depth += 1
        elif c == close or (opening != "{" and c == "}"):
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unterminated variable block")


def name_of(app: str) -> str:
    """The application of an originate's ``&app(args)``; "" for an extension."""
    m = APP.match(app) if app.startswith("&") else None
    return (m.group(1) or m.group(3)) if m else ""


def switch_true(value: str | None) -> bool:
    """FreeSWITCH's switch_true: yes/on/true/t/enabled/active/allow or a non-zero number."""
    if not value:
        return False
    text = value.strip().lower()
    if text in ("yes", "on", "true", "t", "enabled", "active", "allow"):
        return True
    return text.lstrip("+-").isdigit() and int(text) != 0


def parse_dtmf(text: str) -> list[tuple[str, int]]:
    """``uuid_recv_dtmf`` data → (digit, duration in 8 kHz samples) as
    switch_channel_queue_dtmf_string queues them: an optional leading ``~``, groups joined
    by ``+``, each ``digits[@ms]``; characters that are not DTMF are skipped."""
    out: list[tuple[str, int]] = []
    for group in text.removeprefix("~").split("+"):
        digits, at, ms = group.partition("@")
        samples = DTMF_DEFAULT_SAMPLES
        if at:
            lead = re.match(r"^[0-9]+", ms)
            duration = int(lead.group()) if lead else 0
            if duration > DTMF_MIN_SAMPLES // 8:
                samples = duration * 8
        samples = min(max(samples, DTMF_MIN_SAMPLES), DTMF_MAX_SAMPLES)
        out += [(d, samples) for d in digits if d in _DTMF_CHARS]
    return out


def parse_broadcast(path: str) -> tuple[str, str, str | None]:
    """``uuid_broadcast``'s path → (application, its argument, hangup cause or None), as
    switch_ivr_broadcast reads it: ``app::arg`` names the application (else ``playback`` of
    the whole path), and ``app!cause`` queues ``hangup <cause>`` after it (``app!`` alone:
    NORMAL_CLEARING)."""
    app, arg = "playback", path
    first = path.find(":")
    if first >= 0 and path[first + 1:first + 2] == ":":
        app, arg = path[:first], path[first + 2:]
    cause: str | None = None
    if "!" in app:
        app, _, cause = app.partition("!")
        cause = cause or "NORMAL_CLEARING"
    return app, arg, cause


def playback_seconds(arg: str, file_s: float, variables: dict[str, str]) -> float | None:
    """How long ``playback <arg>`` plays on a node without audio: ``silence_stream://<ms>``
    its milliseconds; a stream that never ends (``local_stream://``, a negative silence,
    a variable the leg does not have, such as the waiting music) None; any other file
    ``file_s``. A ``file_string://`` plays its ``!``-separated files one after another."""
    parts = arg.removeprefix("file_string://").split("!") \
        if arg.startswith("file_string://") else [arg]
    total = 0.0
    for part in parts:
        name = part.strip()
        var = re.fullmatch(r"\$\{([^}]+)\}", name)
        if var:
            if var.group(1) not in variables:
                return None
            name = variables[var.group(1)]
        if name.startswith("local_stream://"):
            return None
        if name.startswith("silence_stream://"):
            ms = re.match(r"-?[0-9]+", name.removeprefix("silence_stream://"))
            if ms is None or int(ms.group()) < 0:
                return None
            total += int(ms.group()) / 1000
        elif name:
            total += file_s
    return total


def _split_vars(block: str) -> Iterable[str]:
    item, quoted = "", False
    for ch in block:
        if ch == "'":
            quoted = not quoted
        if ch == "," and not quoted:
            if item:
                yield item
            item = ""
        else:
            item += ch
    if item:
        yield item

