"""ESL framing, decoding and encoding against the real FreeSWITCH captures."""

from __future__ import annotations

import collections
import re
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from esl_bridge.protocol import (
    API_RESPONSE,
    AUTH_REQUEST,
    COMMAND_REPLY,
    DISCONNECT_NOTICE,
    EVENT_JSON,
    EVENT_PLAIN,
    EVENT_XML,
    Event,
    Frame,
    FrameParser,
    ProtocolError,
    encode_api_response,
    encode_auth_request,
    encode_disconnect_notice,
    encode_event_json,
    encode_event_plain,
    encode_event_xml,
    encode_frame,
    encode_reply,
    is_channel_data,
    parse_channel_data,
    parse_event,
    parse_reply,
    url_decode,
    url_encode,
)
from esl_bridge.protocol import _parse_header_block, _plain_values

pytestmark = pytest.mark.bridge

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "esl"

CAPTURES = sorted(
    p for p in FIXTURES.glob("*.txt")
    if not p.name.endswith((".sent.txt", ".transcript.txt"))
)
CAPTURE_IDS = [p.stem for p in CAPTURES]
MARKER = re.compile(rb"^===== [0-9.]+ <<< RECV ([0-9]+) bytes \(([^)]*)\)$", re.M)


def frames_of(path: Path) -> list[Frame]:
    parser = FrameParser()
    frames = parser.feed(path.read_bytes())
    assert parser.buffered == 0
    return frames


def transcript_recv(path: Path) -> list[tuple[int, str]]:
    """(size, content type) of every received frame, from the transcript's marker lines only."""
    text = (FIXTURES / f"{path.stem}.transcript.txt").read_bytes()
    return [(int(n), ct.decode()) for n, ct in MARKER.findall(text)]


def events_of(path: Path) -> list[Event]:
    return [parse_event(f) for f in frames_of(path)
            if f.content_type in (EVENT_PLAIN, EVENT_JSON, EVENT_XML)]


def test_captures_present() -> None:
    assert len(CAPTURES) == 14
    assert {p.stem for p in PLAIN_CAPTURES} == {
        "plain_inbound_park_bridge", "plain_callcenter_info_only_1901", "outbound_socket_1902",
        "misc_api_bgapi", "plain_ivr_choice_1_sales", "plain_ivr_submenu_2_1_support",
        "plain_caller_leaves_1000ms", "plain_caller_leaves_2450ms", "plain_caller_leaves_2600ms",
        "plain_click_to_call", "plain_refer_to_extension", "plain_refer_to_queue"}


# --------------------------------------------------------------------------- framing


@pytest.mark.parametrize("path", CAPTURES, ids=CAPTURE_IDS)
def test_every_frame_parses_and_counts_match_transcript(path: Path) -> None:
    frames = frames_of(path)
    expected = transcript_recv(path)
    got = collections.Counter(f.content_type for f in frames)
    assert got == collections.Counter(ct for _, ct in expected)
    # Frame by frame, the same sizes in the same order: nothing merged, nothing split.
    assert [len(encode_frame(f.headers, f.body)) for f in frames] == [n for n, _ in expected]
    # And the frames are the capture, byte for byte.
    assert b"".join(encode_frame(f.headers, f.body) for f in frames) == path.read_bytes()
    for frame in frames:
        if frame.content_type in (EVENT_PLAIN, EVENT_JSON, EVENT_XML):
            parse_event(frame)
        elif frame.content_type in (COMMAND_REPLY, API_RESPONSE):
            parse_reply(frame)


@pytest.mark.parametrize("path", CAPTURES, ids=CAPTURE_IDS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=40))
def test_chunking_does_not_change_frames(path: Path, sizes: list[int]) -> None:
    data = path.read_bytes()
    whole = frames_of(path)
    parser = FrameParser()
    got: list[Frame] = []
    pos = i = 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        got += parser.feed(data[pos:pos + size])
        pos += size
        i += 1
    assert got == whole
    assert parser.buffered == 0


@given(st.data())
@settings(max_examples=50, deadline=None)
def test_byte_by_byte_and_random_splits_small_capture(data: st.DataObject) -> None:
    raw = (FIXTURES / "misc_api_bgapi.txt").read_bytes()
    cuts = sorted(data.draw(st.sets(st.integers(1, len(raw) - 1), max_size=200)))
    parser = FrameParser()
    got: list[Frame] = []
    prev = 0
    for cut in [*cuts, len(raw)]:
        got += parser.feed(raw[prev:cut])
        prev = cut
    assert got == frames_of(FIXTURES / "misc_api_bgapi.txt")


def test_one_byte_at_a_time() -> None:
    raw = (FIXTURES / "misc_auth_failure.txt").read_bytes()
    parser = FrameParser()
    got = [f for b in raw for f in parser.feed(bytes([b]))]
    assert [f.content_type for f in got] == [AUTH_REQUEST, COMMAND_REPLY, DISCONNECT_NOTICE]


def test_content_length_only_on_frames_with_a_body() -> None:
    for path in CAPTURES:
        for frame in frames_of(path):
            has_length = frame.get("Content-Length") is not None
            assert has_length == (frame.body is not None), (path.name, frame.headers)
            if frame.content_type in (AUTH_REQUEST, COMMAND_REPLY):
                assert not has_length


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"Content-Type: api/response\nContent-Length: abc\n\n", "bad_content_length"),
        (b"Content-Type: api/response\nContent-Length: -4\n\n", "bad_content_length"),
        (b"Content-Type: api/response\nContent-Length: 99999999999\n\n", "content_length_too_large"),
        (b"Content-Type: api/response\nContent-Length: 3\nContent-Length: 4\n\n",
         "conflicting_content_length"),
        (b"Content-Type: command/reply\nno colon here\n\n", "bad_header_line"),
        (b"Content-Type: command/reply\n: empty name\n\n", "bad_header_line"),
    ],
)
def test_malformed_frames_raise_protocol_error(raw: bytes, reason: str) -> None:
    parser = FrameParser()
    with pytest.raises(ProtocolError) as info:
        parser.feed(b"Content-Type: auth/request\n\n" + raw)
    assert info.value.reason == reason
    assert [f.content_type for f in info.value.frames] == [AUTH_REQUEST]
    assert info.value.raw
    # The bad block is dropped; the parser carries on with what follows.
    assert parser.feed(b"Content-Type: auth/request\n\n")[0].content_type == AUTH_REQUEST


def test_unknown_content_type_is_a_frame() -> None:
    frames = FrameParser().feed(b"Content-Type: x/unknown\nContent-Length: 2\n\nhi"
                                b"X-Thing: 1\n\n")
    assert frames[0].content_type == "x/unknown" and frames[0].body == b"hi"
    assert frames[1].content_type is None and frames[1].get("X-Thing") == "1"


def test_malformed_event_bodies() -> None:
    with pytest.raises(ProtocolError, match="bad_json"):
        parse_event(Frame((("Content-Type", EVENT_JSON),), b"{nope"))
    with pytest.raises(ProtocolError, match="bad_xml"):
        parse_event(Frame((("Content-Type", EVENT_XML),), b"<event>"))
    with pytest.raises(ProtocolError, match="short_event_body"):
        parse_event(Frame((("Content-Type", EVENT_PLAIN),),
                          b"Event-Name: BACKGROUND_JOB\nContent-Length: 10\n\nabc"))
    with pytest.raises(ProtocolError, match="not_an_event"):
        parse_event(Frame((("Content-Type", COMMAND_REPLY),), None))


# --------------------------------------------------------------------------- events

PLAIN_CAPTURES = [p for p in CAPTURES
                  if any(f.content_type == EVENT_PLAIN for f in frames_of(p))]


@pytest.mark.parametrize("path", PLAIN_CAPTURES, ids=[p.stem for p in PLAIN_CAPTURES])
def test_plain_events_carry_the_core_headers(path: Path) -> None:
    events = [parse_event(f) for f in frames_of(path) if f.content_type == EVENT_PLAIN]
    assert events
    # Around a phone's REFER the real switch also sends text/event-plain frames that are
    # only a channel's variables (no Event-Name, no core headers); the normalizer skips
    # them (test below).
    bare = [e for e in events if not e.get("Event-Name") and e.get("uuid")]
    events = [e for e in events if e not in bare]
    sequences = []
    for event in events:
        for name in ("Event-Name", "Core-UUID", "Event-Date-Timestamp", "Event-Sequence"):
            assert event.get(name), (event.name, name)
        assert event.headers["Event-Date-Timestamp"].isdigit()
        sequences.append(int(event.headers["Event-Sequence"]))
        if event.event_name == "CUSTOM":
            assert event.pairs[0][0] == "Event-Subclass"
            assert event.name == f"CUSTOM {event.subclass}"
    # Unique per node, but not delivered in order: events are queued from several threads.
    assert len(set(sequences)) == len(sequences)


def test_event_names_in_park_bridge_capture() -> None:
    names = collections.Counter(e.name for e in events_of(FIXTURES / "plain_inbound_park_bridge.txt"))
    assert names["CHANNEL_PARK"] == 2
    assert names["CHANNEL_BRIDGE"] == 1
    assert names["CHANNEL_HANGUP_COMPLETE"] == 2
    assert names["BACKGROUND_JOB"] == 1


def test_values_are_decoded_per_value_after_splitting() -> None:
    bridge = [e for e in events_of(FIXTURES / "plain_inbound_park_bridge.txt")
              if e.event_name == "CHANNEL_BRIDGE"][0]
    assert bridge["Channel-Name"].startswith("sofia/internal/")
    assert "@" in bridge["Channel-Name"]
    # An encoded newline stays inside its value (greenswitch's decode-then-split breaks this).
    frame = Frame((("Content-Type", EVENT_PLAIN),),
                  b"Event-Name: CUSTOM\nvariable_sip_multipart: a%0AEvil-Header%3A%20x\n"
                  b"Next: ok\n\n")
    event = parse_event(frame)
    assert event["variable_sip_multipart"] == "a\nEvil-Header: x"
    assert "Evil-Header" not in event
    assert event["Next"] == "ok"


def _line_by_line(block: bytes) -> list[tuple[str, str]] | str:
    """The reference parse of a plain event's header block: split, then decode each value."""
    try:
        return [(k, url_decode(v)) for k, v in _parse_header_block(block, what="event")]
    except ProtocolError as err:
        return err.reason


def _fast_or_reference(block: bytes) -> list[tuple[str, str]] | str:
    fast = _plain_values(block)
    return list(zip(*fast)) if fast is not None else _line_by_line(block)


@pytest.mark.parametrize("path", PLAIN_CAPTURES, ids=[p.stem for p in PLAIN_CAPTURES])
def test_real_plain_events_take_the_fast_path_and_agree(path: Path) -> None:
    # Every real event's header block is the shape the C-pass parse takes (else it would
    # silently fall back to the slow one), and it yields what the line-by-line parse does.
    blocks = [f.body.split(b"\n\n", 1)[0] for f in frames_of(path)
              if f.content_type == EVENT_PLAIN]
    assert blocks
    for block in blocks:
        if b"\nContent-Length: " in block:
            continue  # BACKGROUND_JOB: its own length and body, parsed line by line
        fast = _plain_values(block)
        assert fast is not None, block[:200]
        assert list(zip(*fast)) == _line_by_line(block)


_NAMES = [b"Name", b"A-B", b"", b" M", b"M ", b"\tM", b"a:b", b"%41"]
_SEPARATORS = [b": ", b":", b"", b" : ", b"::"]
_PIECES = [b"a", b" ", b"\t", b":", b": ", b"\n", b"\r\n", b"\x00", b"%", b"%4", b"%41",
           b"%0A", b"%00", b"%00%20", b"%%41", b"%20", b"\\", b"\\x41", b"\xc3\xa9",
           b"\xff", b"%C3%A9", b"%e9", b"\n "]
_LINES = st.lists(st.tuples(st.sampled_from(_NAMES), st.sampled_from(_SEPARATORS),
                            st.lists(st.sampled_from(_PIECES), max_size=4)), max_size=6)


@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
@given(_LINES)
@example([(b"N", b": ", [b"a", b":", b"b"]), (b" M", b"", [])])  # a ':' too many, a line short
def test_the_fast_plain_parse_agrees_with_line_by_line(
        lines: list[tuple[bytes, bytes, list[bytes]]]) -> None:
    # Whatever the block (bad lines, stray ':' or spaces, bad escapes, encoded NUL or
    # newline), the fast path either declines or yields exactly the reference result.
    block = b"\n".join([b"Event-Name: X"] + [name + sep + b"".join(value)
                                             for name, sep, value in lines])
    assert _fast_or_reference(block) == _line_by_line(block)


def test_background_job_body_is_not_url_decoded() -> None:
    jobs = [e for e in events_of(FIXTURES / "misc_api_bgapi.txt") if e.name == "BACKGROUND_JOB"]
    assert [j["Job-Command"] for j in jobs] == ["status", "show", "originate"]
    assert jobs[0].body is not None and jobs[0].body.startswith("UP 0 years")
    assert jobs[1].body == '{"row_count": 0}\n'
    assert jobs[1]["Job-Command-Arg"] == "channels as json"
    assert jobs[2].body == "-ERR SUBSCRIBER_ABSENT\n"
    assert jobs[2]["Job-Command-Arg"] == "user/1099@127.0.0.1 &park()"
    assert "Content-Length" not in jobs[0]


def test_heartbeat_plain_json_xml_decode_alike() -> None:
    beats = [e for e in events_of(FIXTURES / "misc_api_bgapi.txt") if e.name == "HEARTBEAT"]
    assert [b.format for b in beats] == ["plain", "json", "xml"]
    names = [[k for k, _ in b.pairs] for b in beats]
    assert names[0] == names[1] == names[2]
    varying = {"Event-Date-Local", "Event-Date-GMT", "Event-Date-Timestamp", "Event-Sequence",
               "Up-Time", "Uptime-msec", "Idle-CPU"}
    stable = [{k: v for k, v in b.pairs if k not in varying} for b in beats]
    assert stable[0] == stable[1] == stable[2]
    assert stable[0]["FreeSWITCH-IPv6"] == "fd00::2"
    assert stable[0]["FreeSWITCH-Version"].startswith("1.11.3-dev+git~")
    for beat in beats:
        assert beat["Event-Date-GMT"].endswith(" GMT")
        assert ", " in beat["Up-Time"]


def test_json_events_all_strings_no_trailing_newline() -> None:
    for path in CAPTURES:
        for frame in frames_of(path):
            if frame.content_type == EVENT_JSON:
                assert frame.body is not None and frame.body.endswith(b"}")
                obj = orjson.loads(frame.body)
                assert all(isinstance(v, str) for v in obj.values())


def test_registration_event_from_json_capture() -> None:
    regs = [e for e in events_of(FIXTURES / "json_registration_agents.txt")
            if e.name == "CUSTOM sofia::register"]
    assert [r["from-user"] for r in regs] == ["1000", "1001", "1002"]
    assert regs[0]["contact"] == '"" <sip:1000@127.0.0.1:5071;transport=UDP>'
    assert regs[0].pairs[0] == ("Event-Subclass", "sofia::register")


def test_duplicate_headers_are_kept_in_pairs() -> None:
    hangups = [e for e in events_of(FIXTURES / "plain_inbound_park_bridge.txt")
               if e.name == "CHANNEL_HANGUP_COMPLETE"]
    for event in hangups:
        assert [k for k, _ in event.pairs].count("Hangup-Cause") == 2
        assert event["Hangup-Cause"] == "NORMAL_CLEARING"


# --------------------------------------------------------------------------- replies


def test_replies() -> None:
    frames = frames_of(FIXTURES / "misc_api_bgapi.txt")
    replies = [parse_reply(f) for f in frames if f.content_type == COMMAND_REPLY]
    assert replies[0].text == "+OK accepted" and replies[0].ok
    jobs = [r for r in replies if r.job_uuid]
    assert jobs[0].job_uuid == "7f4db5a8-1111-4222-8333-444455556666"
    assert jobs[0].text == "+OK Job-UUID: 7f4db5a8-1111-4222-8333-444455556666"
    errors = {r.error for r in replies if not r.ok}
    assert "command not found" in errors and "not controlling a session." in errors
    apis = [parse_reply(f) for f in frames if f.content_type == API_RESPONSE]
    assert "-ERR no_such_command Command not found!\n" in [a.text for a in apis]
    assert '{"row_count": 0}\n' in [a.text for a in apis]
    with pytest.raises(ProtocolError):
        parse_reply(Frame((("Content-Type", EVENT_PLAIN),), b""))


def test_auth_failure_sequence() -> None:
    frames = frames_of(FIXTURES / "misc_auth_failure.txt")
    assert [f.content_type for f in frames] == [AUTH_REQUEST, COMMAND_REPLY, DISCONNECT_NOTICE]
    assert parse_reply(frames[1]).error == "invalid"


def test_outbound_connect_reply_is_channel_data() -> None:
    frames = frames_of(FIXTURES / "outbound_socket_1902.txt")
    assert is_channel_data(frames[0])
    assert not any(is_channel_data(f) for f in frames[1:])
    data = parse_channel_data(frames[0])
    assert data["Event-Name"] == "CHANNEL_DATA"
    assert data["Reply-Text"] == "+OK\n"
    assert data["Socket-Mode"] == "async" and data["Control"] == "full"
    assert data["Unique-ID"]
    assert parse_reply(frames[0]).ok is False  # Reply-Text is still URL-encoded at frame level


# --------------------------------------------------------------------------- encoding


def _plain_payload(frame: Frame) -> bytes:
    return (f"Content-Length: {len(frame.body or b'')}\nContent-Type: {frame.content_type}\n\n"
            .encode() + (frame.body or b""))


@pytest.mark.parametrize("path", CAPTURES, ids=CAPTURE_IDS)
def test_reencoding_captured_events_gives_the_capture(path: Path) -> None:
    """Proves the URL-encoding charset, header order, CUSTOM order, JSON form and bodies."""
    encoders = {EVENT_PLAIN: encode_event_plain, EVENT_JSON: encode_event_json,
                EVENT_XML: encode_event_xml}
    checked = 0
    for frame in frames_of(path):
        encoder = encoders.get(frame.content_type or "")
        if encoder is None:
            continue
        event = parse_event(frame)
        assert encoder(event, event.body) == _plain_payload(frame)
        # decode(encode(x)) == x
        again = parse_event(FrameParser().feed(encoder(event, event.body))[0])
        assert again == event and again.pairs == event.pairs
        checked += 1
    if path.stem != "misc_auth_failure":
        assert checked


def test_reencoding_replies_and_notices() -> None:
    frames = frames_of(FIXTURES / "misc_api_bgapi.txt")
    raw = [encode_frame(f.headers, f.body) for f in frames]
    assert encode_auth_request() == raw[0]
    assert encode_reply("+OK accepted") == raw[1]
    assert encode_disconnect_notice() == raw[-1]
    assert encode_reply("", job_uuid="7f4db5a8-1111-4222-8333-444455556666") in raw
    assert encode_api_response('{"row_count": 0}\n') in raw
    assert encode_api_response("-ERR No such channel!\n") in raw


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("fd00::2", "fd00%3A%3A2"),
        ("Sun, 22 Nov 2026 04:55:13 GMT", "Sun,%2022%20Nov%202026%2004%3A55%3A13%20GMT"),
        ("user/1099@127.0.0.1 &park()", "user/1099%40127.0.0.1%20%26park()"),
        ("1.11.3-dev+git~2026", "1.11.3-dev%2Bgit~2026"),
        ("tone_stream://%(300,200,440);loops=2", "tone_stream%3A//%25(300,200,440)%3Bloops%3D2"),
        ("a%3Ab", "a%3Ab"),  # already encoded: kept
        ("a%3ab", "a%253ab"),  # FreeSWITCH only recognises uppercase hex as encoded
        ("Nguyễn", "Nguy%E1%BB%85n"),
        ("{x|y}<\"q\">#?[]^`\\", "%7Bx%7Cy%7D%3C%22q%22%3E%23%3F%5B%5D%5E%60%5C"),
        ("'single' *!$", "'single'%20*!$"),
    ],
)
def test_url_encode_table(value: str, encoded: str) -> None:
    assert url_encode(value) == encoded


SAFE = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="%"), max_size=60)


@given(SAFE)
def test_url_encode_roundtrip(value: str) -> None:
    encoded = url_encode(value)
    assert url_decode(encoded) == value
    assert url_encode(encoded) == encoded  # what FreeSWITCH sends re-encodes to itself
    assert "\n" not in encoded and " " not in encoded and ":" not in encoded


@given(st.lists(st.tuples(st.from_regex(r"[A-Za-z][A-Za-z0-9_\-]{0,20}", fullmatch=True),
                          SAFE), max_size=20),
       st.one_of(st.none(), st.text(min_size=1, max_size=80)))
@settings(max_examples=60)
def test_encode_decode_roundtrip_all_formats(pairs: list[tuple[str, str]],
                                             body: str | None) -> None:
    pairs = [(k, v) for k, v in pairs if k != "Content-Length"]
    headers = [("Event-Name", "CUSTOM"), *pairs] if pairs else [("Event-Name", "HEARTBEAT")]
    event = Event(headers, body)
    for encoder in (encode_event_plain, encode_event_json):
        frames = FrameParser().feed(encoder(event, body))
        assert len(frames) == 1
        decoded = parse_event(frames[0])
        if encoder is encode_event_json:
            # JSON objects cannot hold a name twice: the last one wins.
            assert decoded.headers == {k: v for k, v in event.pairs}
        else:
            assert decoded == event


def test_custom_event_subclass_goes_first() -> None:
    raw = encode_event_plain({"Event-Name": "CUSTOM", "Core-UUID": "x",
                              "Event-Subclass": "tongdai::ivr"})
    payload = raw.split(b"\n\n", 1)[1]
    assert payload.startswith(b"Event-Subclass: tongdai%3A%3Aivr\nEvent-Name: CUSTOM\n")
    assert payload.endswith(b"\n\n")
    as_json = encode_event_json({"Event-Name": "CUSTOM", "Event-Subclass": "a::b"})
    assert as_json.endswith(b'{"Event-Subclass":"a::b","Event-Name":"CUSTOM"}')


def test_event_with_body_carries_its_own_length() -> None:
    raw = encode_event_plain([("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", "j")], "+OK x\n")
    assert raw.endswith(b"Job-UUID: j\nContent-Length: 6\n\n+OK x\n")
    assert raw.startswith(b"Content-Length: %d\nContent-Type: text/event-plain\n\n"
                          % (len(raw) - raw.index(b"\n\n") - 2))
    as_json = orjson.loads(encode_event_json({"Event-Name": "BACKGROUND_JOB"}, "+OK x\n")
                           .split(b"\n\n", 1)[1])
    assert as_json == {"Event-Name": "BACKGROUND_JOB", "Content-Length": "6", "_body": "+OK x\n"}


def test_a_bare_variables_frame_is_skipped_not_dead_lettered() -> None:
    from esl_bridge.normalize import NormalizerConfig, Skipped, normalize

    path = next(p for p in CAPTURES if p.stem == "plain_refer_to_queue")
    bare = [e for e in (parse_event(f) for f in frames_of(path)
                        if f.content_type == EVENT_PLAIN) if not e.get("Event-Name")]
    assert bare, "the capture holds the switch's bare variables frames"
    for event in bare:
        with pytest.raises(Skipped):
            normalize(event, NormalizerConfig())
