"""FreeSWITCH Event Socket (ESL) wire format: framing, decoding and encoding.

Pure code: no sockets, no threads, no gevent. The rules come from real FreeSWITCH 1.11
captures (``tests/fixtures/esl``):

- a frame is a header block ended by a blank line, followed by ``Content-Length`` bytes of
  body when (and only when) the block carries ``Content-Length``;
- ``text/event-plain`` and ``text/event-xml`` values are URL-encoded with FreeSWITCH's own
  charset (``switch_url_encode``), names are not; a ``%XX`` already present is kept;
- an event may carry its own ``Content-Length`` and an unencoded body (BACKGROUND_JOB);
- CUSTOM events put ``Event-Subclass`` before ``Event-Name``;
- ``text/event-json`` values are all strings, the body is ``_body``, no trailing newline.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from urllib.parse import unquote_to_bytes
from itertools import repeat
from operator import itemgetter

__all__ = [
    "AUTH_REQUEST",
    "API_RESPONSE",
    "COMMAND_REPLY",
    "DISCONNECT_NOTICE",
    "DISCONNECT_TEXT",
    "EVENT_JSON",
    "EVENT_PLAIN",
    "EVENT_XML",
    "LOG_DATA",
    "CommandReply",
    "Event",
    "Frame",
    "FrameParser",
    "ProtocolError",
    "encode_api_response",
    "encode_auth_request",
    "encode_command",
    "encode_disconnect_notice",
    "encode_event",
    "encode_event_json",
    "encode_event_plain",
    "encode_event_xml",
    "encode_frame",
    "encode_reply",
    "is_channel_data",
    "parse_channel_data",
    "parse_event",
    "parse_reply",
    "url_decode",
    "url_encode",
]

AUTH_REQUEST = "auth/request"
COMMAND_REPLY = "command/reply"
API_RESPONSE = "api/response"
EVENT_PLAIN = "text/event-plain"
EVENT_JSON = "text/event-json"
EVENT_XML = "text/event-xml"
DISCONNECT_NOTICE = "text/disconnect-notice"
LOG_DATA = "log/data"

#: The body FreeSWITCH sends with every disconnect notice on the inbound socket.
DISCONNECT_TEXT = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"

#: A header block longer than this without a blank line is treated as garbage, not waited on.
MAX_HEADER_BLOCK = 1 << 20
#: A Content-Length larger than this is rejected (FreeSWITCH events are kilobytes).
MAX_BODY = 64 << 20


class ProtocolError(ValueError):
    """Bytes that are not valid ESL. ``reason`` is a short machine-friendly tag, ``raw`` the
    offending bytes (for a dead-letter record), ``frames`` any frames parsed before it."""

    def __init__(self, reason: str, detail: str = "", raw: bytes = b"",
                 frames: list[Frame] | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.raw = raw
        self.frames: list[Frame] = frames or []


# --------------------------------------------------------------------------- URL coding

# switch_utils.h SWITCH_URL_UNSAFE, plus everything below ' ' and above '~' (non-ASCII bytes
# are encoded byte by byte). Proven against the captures by tests/unit/bridge.
_URL_UNSAFE = frozenset(b"\r\n \"#%&+:;<=>?@[\\]^`{|}")
_ENCODE_TABLE = [
    chr(b) if (0x20 <= b <= 0x7E and b not in _URL_UNSAFE) else f"%{b:02X}" for b in range(256)
]
_PCT_RE = re.compile(rb"%([0-9A-Fa-f]{2})")


# One regex finds what needs work: an already-encoded %XX (kept) or an unsafe character.
_ENCODE_RE = re.compile(r'%[0-9A-F]{2}|[^\x21-\x7e]|["#%&+:;<=>?@\[\\\]^`{|}]')


def _encode_match(m: re.Match[str]) -> str:
    text = m.group(0)
    if len(text) == 3:
        return text
    return "".join(_ENCODE_TABLE[b] for b in text.encode("utf-8", "surrogateescape"))


def url_encode(value: str) -> str:
    """Encode a header value exactly like FreeSWITCH's ``switch_url_encode_opt(.., SWITCH_FALSE)``:
    unsafe and non-ASCII bytes become ``%XX``; a ``%`` followed by two UPPERCASE hex digits is
    taken as already encoded and kept."""
    return _encode_cached(value) if len(value) < 512 else _ENCODE_RE.sub(_encode_match, value)


@functools.lru_cache(maxsize=1 << 16)
def _encode_cached(value: str) -> str:
    # Channel events repeat the same values over and over: caching makes encoding ~3x faster.
    return _ENCODE_RE.sub(_encode_match, value)


def url_decode(value: str | bytes) -> str:
    """Decode ``%XX`` escapes (either case) of one header value; ``+`` stays ``+``; a ``%``
    not followed by two hex digits stays as it is."""
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if b"%" in data:
        data = unquote_to_bytes(data)  # C-speed split on '%' and table lookups
    return data.decode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True, slots=True)
class Frame:
    """One ESL frame. ``headers`` keep wire order and raw (undecoded) values."""

    headers: tuple[tuple[str, str], ...]
    body: bytes | None = None

    @property
    def content_type(self) -> str | None:
        return self.get("Content-Type")

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of header ``name`` (raw, as on the wire)."""
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def header_dict(self) -> dict[str, str]:
        return dict(self.headers)


_NAME, _SEP, _VALUE = itemgetter(0), itemgetter(1), itemgetter(2)


def _parse_header_block(block: bytes, *, what: str) -> list[tuple[str, str]]:
    text = block.decode("utf-8", "surrogateescape")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    parts = [line.partition(": ") for line in text.split("\n") if line]
    names = list(map(_NAME, parts))
    # The common case checked in C: every line had ": " and a clean, non-empty name.
    if all(map(_SEP, parts)) and "" not in names and names == list(map(str.strip, names)) \
            and ":" not in "".join(names):
        return list(zip(names, map(_VALUE, parts)))
    return _parse_header_block_strict(block, what=what)


def _parse_header_block_strict(block: bytes, *, what: str) -> list[tuple[str, str]]:
    """Line by line, to name the line that is wrong (or to accept what the fast path did not)."""
    headers: list[tuple[str, str]] = []
    for line in block.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise ProtocolError("bad_header_line", f"{what}: {line[:80]!r}", raw=block)
        if value.startswith(b" "):
            value = value[1:]
        headers.append((name.decode("utf-8", "surrogateescape"),
                        value.decode("utf-8", "surrogateescape")))
    return headers


def _content_length(headers: Iterable[tuple[str, str]], raw: bytes) -> int | None:
    length: int | None = None
    for key, value in headers:
        if key == "Content-Length":
            text = value.strip()
            if not text.isdigit():
                raise ProtocolError("bad_content_length", repr(value), raw=raw)
            n = int(text)
            if n > MAX_BODY:
                raise ProtocolError("content_length_too_large", str(n), raw=raw)
            if length is not None and length != n:
                raise ProtocolError("conflicting_content_length", f"{length} vs {n}", raw=raw)
            length = n
    return length


class FrameParser:
    """Incremental ESL frame parser: ``feed`` any chunk, get back the frames it completed.

    After a ``ProtocolError`` the offending header block has been dropped, so the caller may
    dead-letter ``err.raw`` and keep feeding (the stream is usually lost anyway)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending: list[tuple[str, str]] | None = None
        self._need = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        # Frames are cut at a moving position and the consumed bytes dropped once per
        # call: deleting from the front of a bytearray per frame moves the rest each time.
        self._buf += data
        frames: list[Frame] = []
        buf = self._buf
        pos = 0
        try:
            while True:
                if self._pending is not None:
                    if len(buf) - pos < self._need:
                        break
                    body = bytes(buf[pos: pos + self._need])
                    pos += self._need
                    frames.append(Frame(tuple(self._pending), body))
                    self._pending = None
                    continue
                # Blank lines between frames are not frames.
                while pos < len(buf) and buf[pos] in (0x0A, 0x0D):
                    pos += 1
                end = buf.find(b"\n\n", pos)
                if end < 0:
                    if len(buf) - pos > MAX_HEADER_BLOCK:
                        raw = bytes(buf[pos: pos + 256])
                        pos = len(buf)
                        raise ProtocolError("header_block_too_large", str(MAX_HEADER_BLOCK),
                                            raw=raw, frames=frames)
                    break
                block = bytes(buf[pos:end])
                pos = end + 2
                try:
                    headers = _parse_header_block(block, what="frame")
                    length = _content_length(headers, block)
                except ProtocolError as err:
                    err.frames = frames
                    raise
                if length is None:
                    frames.append(Frame(tuple(headers), None))
                else:
                    self._pending = headers
                    self._need = length
        finally:
            if pos:
                del buf[:pos]
        return frames


# --------------------------------------------------------------------------- events


class Event:
    """A decoded FreeSWITCH event.

    ``pairs`` keep every header in wire order with decoded values (real events repeat some
    names, e.g. ``Hangup-Cause`` in CHANNEL_HANGUP_COMPLETE); ``headers`` is the dict view
    where the first occurrence wins, as in ``switch_event_get_header``. The event's own
    ``Content-Length`` is not a header here: it belongs to ``body``."""

    __slots__ = ("_pairs", "headers", "body", "format")

    def __init__(self, headers: Mapping[str, str] | Iterable[tuple[str, str]],
                 body: str | None = None, format: str = "plain") -> None:
        if isinstance(headers, Mapping):
            # A mapping has no repeated names: pairs are derived only when asked for.
            first = dict(headers)
            first.pop("Content-Length", None)
            self._pairs: tuple[tuple[str, str], ...] | None = None
        else:
            pairs = tuple(headers)
            first = dict(pairs)  # runs in C; repeated names are fixed up below
            if "Content-Length" in first:
                pairs = tuple((k, v) for k, v in pairs if k != "Content-Length")
                del first["Content-Length"]
            if len(first) != len(pairs):
                seen: set[str] = set()
                for key, value in pairs:
                    if key not in seen:
                        seen.add(key)
                        first[key] = value
            self._pairs = pairs
        self.headers: dict[str, str] = first
        self.body = body
        self.format = format

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """Every header in wire order, repeated names included."""
        if self._pairs is None:
            self._pairs = tuple(self.headers.items())
        return self._pairs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return self.pairs == other.pairs and self.body == other.body

    def __hash__(self) -> int:
        return hash((self.pairs, self.body))

    def __repr__(self) -> str:
        return f"Event({self.name!r}, {len(self.pairs)} headers, body={self.body!r:.40})"

    @property
    def name(self) -> str:
        """``Event-Name``; for CUSTOM events ``CUSTOM <Event-Subclass>``."""
        name = self.headers.get("Event-Name", "")
        if name == "CUSTOM" and "Event-Subclass" in self.headers:
            return f"CUSTOM {self.headers['Event-Subclass']}"
        return name

    @property
    def event_name(self) -> str:
        return self.headers.get("Event-Name", "")

    @property
    def subclass(self) -> str | None:
        return self.headers.get("Event-Subclass")

    @property
    def unique_id(self) -> str | None:
        return self.headers.get("Unique-ID")

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def __getitem__(self, name: str) -> str:
        return self.headers[name]

    def __contains__(self, name: object) -> bool:
        return name in self.headers


def _plain_values(block: bytes) -> tuple[list[str], list[str]] | None:
    """Names and decoded values of an event's header block in a few C passes, or None when
    the block is not the common shape (then the line-by-line parse decides).

    The common shape, which is what FreeSWITCH sends (it encodes ':', ' ' and control
    bytes in values, never in names): every line is `name: value` with one ':' and a clean
    name. Splitting the block at every ':' and '\n' then yields name, ' value', name, ...;
    the values are joined by NUL, %-decoded at once, and split at the NUL+space each
    starts with. The checks below hold exactly when every line has the shape: the values'
    slots hold only text after a ':' (it starts with ' ', a name never does), there are as
    many ':' as lines, so every line has one."""
    text = block.decode("utf-8", "surrogateescape")
    if "\r" in text or "\x00" in text or "\n " in text or text.startswith(" "):
        return None
    parts = text.replace(":", "\n").split("\n")
    names = parts[0::2]
    if len(parts) != 2 * (text.count("\n") + 1):
        return None
    joined_names = "".join(names)
    if "" in names or joined_names.split() != [joined_names]:
        return None  # an empty name, or whitespace in one
    joined = "\x00".join(parts[1::2])
    if not joined.startswith(" ") or joined.count("\x00 ") != len(names) - 1:
        return None  # a value not after ': '
    if "%" in joined:
        joined = _unquote_joined(joined)
        if joined is None:
            return None
    values = joined[1:].split("\x00 ")
    if len(values) != len(names):
        return None  # a value decoded to NUL + space
    return names, values


def _unquote_joined(joined: str) -> str | None:
    """Every %XX of `joined` decoded in C (each %XX becomes a \\xXX escape for the
    unicode_escape codec, whose Latin-1 result is the raw bytes); None when a '%' is not
    followed by two hex digits (then unquote_to_bytes keeps it, as FreeSWITCH does)."""
    if "\\" in joined:
        joined = joined.replace("\\", "\\\\")
    try:
        raw = joined.replace("%", "\\x").encode("utf-8", "surrogateescape") \
            .decode("unicode_escape").encode("latin-1")
    except UnicodeError:
        return None
    return raw.decode("utf-8", "surrogateescape")


def _decode_plain(data: bytes) -> Event:
    end = data.find(b"\n\n")
    block, rest = (data, b"") if end < 0 else (data[:end], data[end + 2:])
    fast = _plain_values(block)
    if fast is not None and "Content-Length" not in fast[0]:
        return Event(zip(*fast), None, "plain")
    headers = _parse_header_block(block, what="event")
    length: int | None = None
    if block.startswith(b"Content-Length:") or b"\nContent-Length:" in block:
        length = _content_length(headers, block)
        headers = [(k, v) for k, v in headers if k != "Content-Length"]
    # Split first, then decode each value: an encoded newline must stay inside its value.
    # The values are decoded in one pass, joined by NUL (never inside a C-string value).
    values = list(map(_SEP, headers))
    joined = "\x00".join(values)
    if "%" in joined:
        decoded = url_decode(joined).split("\x00")
        if len(decoded) == len(values):
            headers = list(zip(map(_NAME, headers), decoded))
        else:  # a value held an encoded NUL: fall back to one value at a time
            headers = [(k, url_decode(v)) for k, v in headers]
    body: str | None = None
    if length is not None:
        if len(rest) < length:
            raise ProtocolError("short_event_body", f"want {length} have {len(rest)}", raw=data)
        body = rest[:length].decode("utf-8", "surrogateescape")
    return Event(headers, body, "plain")


def _decode_json(data: bytes) -> Event:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise ProtocolError("bad_json", str(err), raw=data[:256]) from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad_json", "event is not an object", raw=data[:256])
    body = obj.pop("_body", None)
    if body is not None and not isinstance(body, str):
        body = orjson.dumps(body).decode()
    obj.pop("Content-Length", None)
    # FreeSWITCH sends every value as a string; anything else is made one (checked in C).
    if not all(map(isinstance, obj.values(), repeat(str))):
        obj = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in obj.items()}
    headers = obj
    return Event(headers, body, "json")


def _decode_xml(data: bytes) -> Event:
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as err:
        raise ProtocolError("bad_xml", str(err), raw=data[:256]) from None
    headers: list[tuple[str, str]] = []
    hdrs = root.find("headers")
    if hdrs is not None:
        for child in hdrs:
            if child.tag != "Content-Length":
                headers.append((child.tag, url_decode(child.text or "")))
    body_el = root.find("body")
    body = body_el.text or "" if body_el is not None else None
    return Event(headers, body, "xml")


def parse_event(frame: Frame) -> Event:
    """Decode a ``text/event-plain|json|xml`` frame into an Event."""
    ctype = frame.content_type
    data = frame.body or b""
    if ctype == EVENT_PLAIN:
        return _decode_plain(data)
    if ctype == EVENT_JSON:
        return _decode_json(data)
    if ctype == EVENT_XML:
        return _decode_xml(data)
    raise ProtocolError("not_an_event", f"content type {ctype!r}")


def is_channel_data(frame: Frame) -> bool:
    """The outbound-socket ``connect`` reply: a header-only ``command/reply`` frame whose
    headers are the channel's data, starting with ``Event-Name: CHANNEL_DATA``."""
    return (frame.content_type == COMMAND_REPLY and bool(frame.headers)
            and frame.headers[0] == ("Event-Name", "CHANNEL_DATA"))


def parse_channel_data(frame: Frame) -> Event:
    """Decode the outbound-socket connect reply into an Event (framing headers dropped)."""
    if not is_channel_data(frame):
        raise ProtocolError("not_channel_data", f"content type {frame.content_type!r}")
    return Event([(k, url_decode(v)) for k, v in frame.headers if k != "Content-Type"])


@dataclass(frozen=True, slots=True)
class CommandReply:
    """A ``command/reply`` or ``api/response``: ``text`` is Reply-Text or the api body."""

    text: str
    job_uuid: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.text.startswith("+OK")

    @property
    def error(self) -> str | None:
        """The text after ``-ERR `` or None when the reply is not an error."""
        if self.text.startswith("-ERR"):
            return self.text[4:].strip()
        return None


def parse_reply(frame: Frame) -> CommandReply:
    """Decode ``command/reply`` (Reply-Text, ``+OK Job-UUID: X``) or ``api/response`` (body)."""
    ctype = frame.content_type
    if ctype == COMMAND_REPLY:
        text = frame.get("Reply-Text", "") or ""
        job = frame.get("Job-UUID")
        if job is None and text.startswith("+OK Job-UUID:"):
            job = text.split(":", 1)[1].strip()
        return CommandReply(text, job, dict(frame.headers))
    if ctype == API_RESPONSE:
        text = (frame.body or b"").decode("utf-8", "surrogateescape")
        return CommandReply(text, None, dict(frame.headers))
    raise ProtocolError("not_a_reply", f"content type {ctype!r}")


# --------------------------------------------------------------------------- encoding


def encode_frame(headers: Iterable[tuple[str, str]], body: bytes | None = None) -> bytes:
    """Header block + blank line + body; the caller orders headers (Content-Length included)."""
    out = "".join(f"{k}: {v}\n" for k, v in headers).encode("utf-8", "surrogateescape")
    return out + b"\n" + (body or b"")


def _body_bytes(body: str | bytes | None) -> bytes | None:
    # FreeSWITCH treats an empty body as no body (no Content-Length).
    if not body:
        return None
    return body.encode("utf-8", "surrogateescape") if isinstance(body, str) else body


Headers = Mapping[str, Any] | Iterable[tuple[str, Any]] | Event


def _ordered(headers: Headers) -> list[tuple[str, str]]:
    if isinstance(headers, Event):
        pairs: list[tuple[str, Any]] = list(headers.pairs)
    elif isinstance(headers, Mapping):
        pairs = list(headers.items())
    else:
        pairs = list(headers)
    pairs = [(k, str(v)) for k, v in pairs if k != "Content-Length"]
    # FreeSWITCH fires CUSTOM events with Event-Subclass first.
    subclass = [p for p in pairs if p[0] == "Event-Subclass"]
    if subclass and pairs[0][0] != "Event-Subclass":
        pairs = subclass[:1] + [p for p in pairs if p[0] != "Event-Subclass"]
    return pairs


def _event_frame(content_type: str, payload: bytes) -> bytes:
    return (f"Content-Length: {len(payload)}\nContent-Type: {content_type}\n\n"
            .encode() + payload)


def encode_event_plain(headers: Headers,
                       body: str | bytes | None = None) -> bytes:
    """A whole ``text/event-plain`` frame as FreeSWITCH writes it."""
    pairs = _ordered(headers)
    raw_body = _body_bytes(body)
    text = "".join(f"{k}: {url_encode(v)}\n" for k, v in pairs)
    if raw_body is not None:
        payload = (text + f"Content-Length: {len(raw_body)}\n\n").encode(
            "utf-8", "surrogateescape") + raw_body
    else:
        payload = (text + "\n").encode("utf-8", "surrogateescape")
    return _event_frame(EVENT_PLAIN, payload)


def encode_event_json(headers: Headers,
                      body: str | bytes | None = None) -> bytes:
    """A whole ``text/event-json`` frame: all values strings, ``_body`` last, no newline."""
    obj = dict(_ordered(headers))
    raw_body = _body_bytes(body)
    if raw_body is not None:
        obj["Content-Length"] = str(len(raw_body))
        obj["_body"] = raw_body.decode("utf-8", "surrogateescape")
    return _event_frame(EVENT_JSON, orjson.dumps(obj))


def _xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def encode_event_xml(headers: Headers,
                     body: str | bytes | None = None) -> bytes:
    """A whole ``text/event-xml`` frame (values URL-encoded, two-space indent)."""
    pairs = _ordered(headers)
    raw_body = _body_bytes(body)
    lines = ["<event>", "  <headers>"]
    lines += [f"    <{k}>{url_encode(v)}</{k}>" for k, v in pairs]
    if raw_body is not None:
        lines.append(f"    <Content-Length>{len(raw_body)}</Content-Length>")
    lines.append("  </headers>")
    if raw_body is not None:
        lines.append(f"  <body>{_xml_text(raw_body.decode('utf-8', 'surrogateescape'))}</body>")
    lines.append("</event>")
    payload = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
    return _event_frame(EVENT_XML, payload)


def encode_event(fmt: str, headers: Headers,
                 body: str | bytes | None = None) -> bytes:
    """Encode in the subscriber's format: ``plain``, ``json`` or ``xml``."""
    if fmt == "json":
        return encode_event_json(headers, body)
    if fmt == "xml":
        return encode_event_xml(headers, body)
    return encode_event_plain(headers, body)


def encode_reply(text: str, job_uuid: str | None = None) -> bytes:
    """``command/reply``; with ``job_uuid`` the bgapi form ``+OK Job-UUID: X``."""
    if job_uuid is not None:
        return (f"Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job_uuid}\n"
                f"Job-UUID: {job_uuid}\n\n").encode()
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


def encode_api_response(body: str | bytes) -> bytes:
    """``api/response`` with its body."""
    data = _body_bytes(body) or b""
    return f"Content-Type: api/response\nContent-Length: {len(data)}\n\n".encode() + data


def encode_auth_request() -> bytes:
    return b"Content-Type: auth/request\n\n"


def encode_disconnect_notice(text: str = DISCONNECT_TEXT) -> bytes:
    data = text.encode()
    return (f"Content-Type: text/disconnect-notice\nContent-Length: {len(data)}\n\n"
            .encode() + data)


def encode_command(command: str, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """A client command (``api status``, ``bgapi ...`` + ``Job-UUID``): lines + blank line."""
    lines = [command] + [f"{k}: {v}" for k, v in headers]
    return ("\n".join(lines) + "\n\n").encode()
