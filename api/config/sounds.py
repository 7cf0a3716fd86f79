"""Sounds a configuration refers to, checked against the switch's sounds folder.

FreeSWITCH plays a relative file from its `sound_prefix` (fs-conf: `<sounds>/en/us/callie`;
a packaged sound may sit in a rate folder, `ivr/8000/x.wav`), an absolute one as it is, and
`local_stream://<name>` from a local_stream.conf folder (fs-conf: `moh` is `<sounds>/music/
8000`). A missing file is silence for the caller and an [ERR] for the switch; a menu whose
greeting is missing ends before its keys are read. `tongdai config apply` refuses such a
reference when it knows the folder (`TONGDAI_API_SOUNDS_DIR`).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from routing.announce import PROMPT_FILES
from routing.callbacks import PROMPT_FILES as CALLBACK_PROMPTS

#: fs-conf's sound_prefix below the sounds folder
PREFIX = Path("en") / "us" / "callie"
#: the ivr.conf default the API renders when a menu names no invalid-entry sound
DEFAULT_INVALID = "ivr/ivr-that_was_an_invalid_entry.wav"
STREAMS = {"moh": Path("music") / "8000"}
RATES = ("8000", "16000", "32000", "48000")


def references(kind: str, data: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, sound) pairs of an entity."""
    if kind == "ivr":
        yield "greeting", data.get("greeting") or ""
        yield "invalid_sound", data.get("invalid_sound") or DEFAULT_INVALID
    if kind == "queue" and data.get("music_on_hold"):
        yield "music_on_hold", data["music_on_hold"]
    if kind == "queue" and data.get("announce_every_s") is not None:
        for ref in PROMPT_FILES:  # position and wait announcements (routing/announce.py)
            yield "announce_every_s", ref
    if kind == "queue" and data.get("callback_key") is not None:
        for ref in CALLBACK_PROMPTS:  # the callback's questions (routing/callbacks.py)
            yield "callback_key", ref


def exists(sounds: Path, ref: str) -> bool:
    """Whether the switch finds `ref` (see the module's docstring); other streams
    (tone_stream://, silence_stream://) always exist."""
    if "://" in ref:
        scheme, _, name = ref.partition("://")
        if scheme != "local_stream":
            return True
        folder = STREAMS.get(name.split("/")[0])
        return folder is not None and any((sounds / folder).glob("*.wav"))
    path = Path(ref) if ref.startswith("/") else sounds / PREFIX / ref
    if path.is_file():
        return True
    return any((path.parent / rate / path.name).is_file() for rate in RATES)


def missing(kind: str, data: Mapping[str, Any], sounds: Path) -> dict[str, list[str]]:
    """{field: [error]} for each sound of the entity the switch would not find."""
    found: dict[str, list[str]] = {}
    for field, ref in references(kind, data):
        if ref and not exists(sounds, ref):
            found.setdefault(field, []).append(ref)
    return {field: [f"no sound {refs[0]!r} under {sounds} (the switch would play silence)"
                    + (f" and {len(refs) - 1} more (deploy/freeswitch/make-sounds.sh makes "
                       "them)" if len(refs) > 1 else "")]
            for field, refs in found.items()}
