"""The bridge's own ESL client (`esl_bridge.connection`) on real sockets: against a server
that replays the real FreeSWITCH captures byte for byte, and against the ESL simulator."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import gevent
import gevent.event
import pytest

from esl_bridge.connection import AuthenticationFailed, Connection, NotConnectedError
from esl_bridge.protocol import (
    API_RESPONSE,
    COMMAND_REPLY,
    EVENT_JSON,
    EVENT_PLAIN,
    EVENT_XML,
    CommandReply,
    Frame,
    FrameParser,
    ProtocolError,
    parse_event,
    parse_reply,
)
from esl_bridge.simulator import AgentSpec, CallerSpec, Simulator
from esl_peer import accept_authenticated

pytestmark = pytest.mark.bridge

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "esl"
MARKER = re.compile(rb"^===== [0-9.]+ (<<< RECV|>>> SENT) ([0-9]+) bytes", re.M)
EVENT_TYPES = (EVENT_PLAIN, EVENT_JSON, EVENT_XML)


def script_of(name: str) -> list[tuple[str, bytes]]:
    """The capture as the server lived it: ("recv", bytes FreeSWITCH sent) and ("sent",
    bytes the client sent), in the transcript's order."""
    received = (FIXTURES / f"{name}.txt").read_bytes()
    sent = (FIXTURES / f"{name}.sent.txt").read_bytes()
    script: list[tuple[str, bytes]] = []
    at = {"recv": 0, "sent": 0}
    for way, size in MARKER.findall((FIXTURES / f"{name}.transcript.txt").read_bytes()):
        kind = "recv" if way.startswith(b"<<<") else "sent"
        data = received if kind == "recv" else sent
        script.append((kind, data[at[kind]:at[kind] + int(size)]))
        at[kind] += int(size)
    assert at == {"recv": len(received), "sent": len(sent)}
    return script


class Replay:
    """A one-connection TCP server that plays FreeSWITCH's side of a capture: it sends what
    FreeSWITCH sent and, where the client spoke, reads and keeps what this client sends."""

    def __init__(self, script: list[tuple[str, bytes]]) -> None:
        self.script = script
        self.heard: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(10)
        with conn:
            for kind, data in self.script:
                if kind == "recv":
                    conn.sendall(data)
                    continue
                got = b""
                while len(got) < len(data):
                    chunk = conn.recv(len(data) - len(got))
                    if not chunk:
                        return
                    got += chunk
                self.heard.append(got)
        self.listener.close()


class Recorder:
    """on_event / on_protocol_error of a Connection, waited on with a bound."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.errors: list[ProtocolError] = []
        self.changed = gevent.event.Event()

    def on_event(self, frame: Frame) -> None:
        self.frames.append(frame)
        self.changed.set()

    def on_protocol_error(self, exc: ProtocolError) -> None:
        self.errors.append(exc)

    def wait_for(self, predicate, timeout: float = 10) -> None:
        with gevent.Timeout(timeout, AssertionError(f"not seen within {timeout} s")):
            while not predicate(self.frames):
                self.changed.clear()
                self.changed.wait()


def connection(port: int, password: str, recorder: Recorder) -> Connection:
    return Connection("127.0.0.1", port, password, on_event=recorder.on_event,
                      on_protocol_error=recorder.on_protocol_error)


@pytest.mark.parametrize("name", ["misc_api_bgapi", "plain_inbound_park_bridge",
                                  "json_registration_agents"])
def test_replayed_capture_gives_every_reply_and_event_in_wire_order(name: str) -> None:
    script = script_of(name)
    commands = [data for kind, data in script if kind == "sent"]
    password = commands[0].decode().removeprefix("auth ").strip()
    frames = FrameParser().feed((FIXTURES / f"{name}.txt").read_bytes())
    replies = [parse_reply(f) for f in frames if f.content_type in (COMMAND_REPLY, API_RESPONSE)]
    events = [f for f in frames if f.content_type in EVENT_TYPES]
    server, recorder = Replay(script), Recorder()
    conn = connection(server.port, password, recorder)
    conn.connect()
    got: list[CommandReply] = []
    for command in commands[1:]:
        text = command.decode().removesuffix("\n\n")
        if text == "exit":
            conn.stop()
            break
        got.append(conn.send(text))
    assert conn.closed.wait(timeout=10)
    assert server.heard == commands  # the client said what the recorded client said
    assert got == replies[1:len(got) + 1]  # each command got its own reply
    assert [f.headers for f in recorder.frames] == [f.headers for f in events]
    assert [f.body for f in recorder.frames] == [f.body for f in events]
    assert recorder.errors == []
    for frame in recorder.frames:
        parse_event(frame)


def test_refused_password_from_the_capture() -> None:
    server = Replay(script_of("misc_auth_failure"))
    conn = connection(server.port, "WrongPassword", Recorder())
    with pytest.raises(AuthenticationFailed, match="-ERR invalid"):
        conn.connect()
    assert conn.closed.wait(timeout=10)
    with pytest.raises(NotConnectedError):
        conn.send("api status")


def test_broken_framing_is_reported_and_ends_the_connection() -> None:
    script = [("recv", b"Content-Type: auth/request\n\n"), ("sent", b"auth ClueCon\n\n"),
              ("recv", b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"),
              ("recv", b"Content-Type: text/event-plain\nContent-Length: nope\n\n")]
    recorder = Recorder()
    conn = connection(Replay(script).port, "ClueCon", recorder)
    conn.connect()
    assert conn.closed.wait(timeout=10)
    assert len(recorder.errors) == 1 and not conn.connected


def test_nothing_listening_is_not_connected() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(NotConnectedError, match="cannot connect"):
        connection(port, "ClueCon", Recorder()).connect()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(speed=20, seed=3, heartbeat=None) as simulator:
        yield simulator


def test_simulated_call_events_in_order_with_commands_between(sim: Simulator) -> None:
    recorder = Recorder()
    conn = connection(sim.port, sim.password, recorder)
    conn.connect()
    assert conn.send("event plain CHANNEL_CREATE CHANNEL_PARK BACKGROUND_JOB").ok
    sim.add_agent(AgentSpec(ext="1000"))
    # A value holding a newline survives (decoded per value, after the split into lines).
    call = sim.place_call(CallerSpec(number="0903123456", did="19001234",
                                     variables={"tongdai_note": "line 1\nline 2"}))
    recorder.wait_for(lambda fs: any(parse_event(f).name == "CHANNEL_PARK" for f in fs))
    job = conn.send("bgapi originate {origination_uuid=offer-1}user/1000@127.0.0.1 &park()")
    assert job.ok and job.job_uuid
    recorder.wait_for(lambda fs: any(parse_event(f).name == "BACKGROUND_JOB" for f in fs))
    assert conn.api("uuid_exists offer-1").text == "true"
    events = [parse_event(f) for f in recorder.frames]
    assert [e.name for e in events][:2] == ["CHANNEL_CREATE", "CHANNEL_PARK"]
    assert events[1]["Unique-ID"] == call and events[1]["variable_tongdai_note"] == "line 1\nline 2"
    seqs = [int(e["Event-Sequence"]) for e in events]
    assert seqs == sorted(seqs)
    background = [e for e in events if e.name == "BACKGROUND_JOB"]
    assert background[0]["Job-UUID"] == job.job_uuid and background[0].body == "+OK offer-1\n"
    conn.stop()
    assert conn.closed.is_set() and not conn.connected
    with pytest.raises(NotConnectedError):
        conn.api("status")


def test_server_gone_fails_the_waiting_command() -> None:
    """FreeSWITCH reads the command and closes without answering it."""
    script = [("recv", b"Content-Type: auth/request\n\n"), ("sent", b"auth ClueCon\n\n"),
              ("recv", b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"),
              ("sent", b"api status\n\n")]
    conn = connection(Replay(script).port, "ClueCon", Recorder())
    conn.connect()
    with pytest.raises(NotConnectedError, match="closed the connection"):
        conn.api("status")
    assert conn.closed.wait(timeout=10)


def test_no_reply_within_the_timeout_closes_the_connection() -> None:
    script = [("recv", b"Content-Type: auth/request\n\n"), ("sent", b"auth ClueCon\n\n"),
              ("recv", b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"),
              ("sent", b"api status\n\n"), ("sent", b"never sent\n\n")]
    conn = connection(Replay(script).port, "ClueCon", Recorder())
    conn.connect()
    with pytest.raises(NotConnectedError, match="no reply within 0.2 s"):
        conn.send("api status", timeout=0.2)
    assert conn.closed.wait(timeout=10) and not conn.connected


def test_wrong_password_on_the_simulator(sim: Simulator) -> None:
    with pytest.raises(AuthenticationFailed):
        connection(sim.port, "nope", Recorder()).connect()


def test_commands_from_several_greenlets_go_out_without_waiting_and_get_their_own_replies():
    """The actuator's greenlets send at once: a server that answers only once three
    commands are in (as a switch whose replies wait behind events) still answers each
    command with its own reply."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    seen: list[str] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"Content-Type: auth/request\n\n")
            buf = b""
            while len(seen) < 4:  # auth, then three commands, before any reply
                buf += conn.recv(4096)
                while b"\n\n" in buf:
                    command, buf = buf.split(b"\n\n", 1)
                    seen.append(command.decode())
                    if len(seen) == 1:
                        conn.sendall(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
            for command in seen[1:]:
                conn.sendall(f"Content-Type: command/reply\nReply-Text: +OK {command}\n\n"
                             .encode())
            conn.recv(4096)  # until the client goes

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    conn = Connection("127.0.0.1", server.getsockname()[1], "pw", on_event=lambda f: None,
                      on_protocol_error=lambda e: None)
    conn.connect()
    try:
        sends = [gevent.spawn(conn.send, f"bgapi job {i}", timeout=5) for i in range(3)]
        gevent.joinall(sends, timeout=10, raise_error=True)
        assert [g.value.text for g in sends] == [f"+OK bgapi job {i}" for i in range(3)]
        assert seen[1:] == [f"bgapi job {i}" for i in range(3)]
    finally:
        conn.close()
        server.close()


def test_wake_newlines_go_out_while_idle() -> None:
    """With `wake_ms`, a bare newline goes out every few ms while nothing else does: it
    ends mod_event_socket's 20 ms idle poll, so queued events leave at once
    (connection.Connection._wake_loop). The socket is TCP_NODELAY: a command must not wait
    for the ACK of the newline before it."""
    server = socket.create_server(("127.0.0.1", 0))
    got = bytearray()

    def serve() -> None:
        conn, first = accept_authenticated(server)
        got.extend(first)
        with conn:
            conn.settimeout(2)
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                got.extend(data)

    threading.Thread(target=serve, daemon=True).start()
    conn = Connection("127.0.0.1", server.getsockname()[1], "pw", on_event=lambda f: None,
                      on_protocol_error=lambda e: None, wake_ms=2)
    conn.connect()
    try:
        assert conn.sock is not None
        assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        gevent.sleep(0.2)
        # every 2 ms: up to 100 in 0.2 s, fewer on a loaded machine, never anything else
        assert set(got) == {ord("\n")} and 5 <= len(got) <= 110, len(got)
    finally:
        conn.close()
        server.close()


def test_wake_newlines_never_split_a_command(sim: Simulator) -> None:
    """Commands from many greenlets while newlines go out every millisecond: each goes
    out whole (the newline waits for the send lock) and gets its own reply; the switch,
    and the simulator as it does, drops a newline that starts a packet."""
    conn = Connection("127.0.0.1", sim.port, sim.password, on_event=lambda f: None,
                      on_protocol_error=lambda e: None, wake_ms=1)
    conn.connect()
    try:
        sends = []
        for i in range(40):  # newlines go out between them
            sends.append(gevent.spawn(conn.send, f"api uuid_exists {'x' * 600}{i}", timeout=5))
            gevent.sleep(0.001 + (i % 4) * 0.001)
        gevent.joinall(sends, timeout=20, raise_error=True)
        assert [g.value.text for g in sends] == ["false"] * 40
        assert conn.api("global_getvar core_uuid").text == sim.node.core_uuid
    finally:
        conn.close()


def test_a_command_is_answered_while_events_keep_coming() -> None:
    """Behind a backlog every recv finds data and returns without yielding; the reader
    must still let the other greenlets run, or a command's reply (read and set) reaches
    its sender only once the events stop: at 30 calls/s, the actuator's next commands
    would wait for the whole backlog. The server here writes events without pause for
    3 s and answers the command at once."""
    server = socket.create_server(("127.0.0.1", 0))
    flood_s = 3.0
    ended: list[float] = []
    asked = threading.Event()
    body = b"Event-Name: HEARTBEAT\nCore-UUID: c\n" + b"X-Pad: " + b"a" * 2000 + b"\n\n"
    event = b"Content-Length: %d\nContent-Type: text/event-plain\n\n%s" % (len(body), body)
    reply = b"Content-Type: api/response\nContent-Length: 3\n\n+OK"

    def serve() -> None:
        conn, first = accept_authenticated(server)
        with conn:
            def hear() -> None:
                got = first
                while b"api status\n\n" not in got:
                    data = conn.recv(4096)
                    if not data:
                        return
                    got += data
                asked.set()

            threading.Thread(target=hear, daemon=True).start()
            answered = False
            until = time.monotonic() + flood_s
            while time.monotonic() < until:
                if asked.is_set() and not answered:
                    conn.sendall(reply)
                    answered = True
                conn.sendall(event * 8)
            ended.append(time.monotonic())
            time.sleep(1)

    threading.Thread(target=serve, daemon=True).start()
    counted = [0]

    def on_event(frame: Frame) -> None:  # a reader slower than the switch writes
        counted[0] += 1
        time.sleep(0.0002)

    conn = Connection("127.0.0.1", server.getsockname()[1], "pw", on_event=on_event,
                      on_protocol_error=lambda e: None)
    conn.connect()
    try:
        gevent.sleep(0.3)  # the flood is on
        reply_at: list[float] = []
        sender = gevent.spawn(lambda: (conn.api("status"), reply_at.append(time.monotonic())))
        sender.join(timeout=flood_s + 5)
        assert reply_at, "no reply"
        assert sender.value is not None and sender.value[0].text == "+OK"
        deadline = time.monotonic() + flood_s + 5
        while not ended and time.monotonic() < deadline:
            gevent.sleep(0.05)
        assert ended, "the server's flood did not end"
        # answered while the events were still coming, not after they stopped
        assert reply_at[0] < ended[0] - 1.0, (reply_at[0], ended[0])
        assert counted[0] > 0
    finally:
        conn.close()
        server.close()
