"""The actuator's gevent side on a real ESL socket: decisions that arrive while earlier ones
wait for the switch's replies are sent at once, in order, and marked done in order."""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import gevent
import gevent.event
import pytest

from esl_bridge.actuator import Actuator
from esl_bridge.connection import Connection
from esl_bridge.legs import LegBook
from esl_bridge.settings import BridgeSettings
from routing.contract import Envelope, deterministic_id, encode
from esl_peer import accept_authenticated

pytestmark = pytest.mark.bridge


@dataclass
class Node:
    address: str


@dataclass
class Link:
    """What the actuator reads of a bridge's link to a node, around a real Connection."""
    connection: Connection
    core_uuid: str = "core-1"
    node: Node = field(default_factory=lambda: Node("127.0.0.1:0"))
    legs: LegBook = field(default_factory=LegBook)
    connected: gevent.event.Event = field(default_factory=gevent.event.Event)
    job_listener: object = None


class Outbox:
    def __init__(self) -> None:
        self.records: list[Envelope] = []

    def put(self, envelope: Envelope) -> None:
        self.records.append(envelope)


def switch_answering_after(commands: int) -> tuple[socket.socket, list[str]]:
    """A switch that reads `commands` bgapi lines before it answers any of them, then
    answers each `+OK Job-UUID`."""
    server = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def serve() -> None:
        conn, buf = accept_authenticated(server)
        with conn:
            conn.settimeout(10)
            while len(seen) < commands:
                while b"\n\n" in buf:
                    line, buf = buf.split(b"\n\n", 1)
                    if line.strip():
                        seen.append(line.decode())
                if len(seen) < commands:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
            for i, _ in enumerate(seen):
                conn.sendall(f"Content-Type: command/reply\nReply-Text: +OK Job-UUID: "
                             f"job-{i}\nJob-UUID: job-{i}\n\n".encode())
            try:
                conn.recv(4096)
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    return server, seen


def offer(n: int) -> bytes:
    offer_id = f"offer-{n}"
    return encode(Envelope(
        event_id=deterministic_id("decision", offer_id), type="offer_call", version=1,
        occurred_at=time.time_ns() // 1000, tenant="acme", source="router", seq=None,
        call_id=f"call-{n}",
        payload={"command_id": f"cmd-{n}", "node": "core-1", "offer_id": offer_id,
                 "extension": "1000", "domain": "acme.vn", "caller_id_number": "0903123456",
                 "caller_id_name": "Khach hang", "timeout_s": 20}))


def test_a_decision_is_sent_while_one_from_an_earlier_poll_waits_for_its_reply(tmp_path):
    """Two polls a moment apart, one decision each, and a switch that answers nothing
    until it has both: the second must go out while the first waits. Started a poll at a
    time, the second waited for the first's reply, which never came (it would have
    waited behind a busy switch's events)."""
    server, seen = switch_answering_after(2)
    conn = Connection("127.0.0.1", server.getsockname()[1], "pw", on_event=lambda f: None,
                      on_protocol_error=lambda e: None)
    conn.connect()
    link = Link(conn)
    link.connected.set()
    outbox = Outbox()
    actuator = Actuator(BridgeSettings(actuator_state_dir=str(tmp_path / "actuator")),
                        [link], outbox)
    looping = [gevent.spawn(actuator._execute_loop), gevent.spawn(actuator._done_loop)]
    try:
        actuator._inbox.put((("decisions", 0), 10, offer(1)))
        actuator._wake.set()
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            gevent.sleep(0.01)
        assert len(seen) == 1  # the first is on the wire, waiting for its reply
        actuator._inbox.put((("decisions", 0), 11, offer(2)))  # the next poll
        actuator._wake.set()
        done: list[tuple] = []
        deadline = time.monotonic() + 5
        while len(done) < 2 and time.monotonic() < deadline:
            try:
                done.append(actuator._done.get_nowait())
            except Exception:
                gevent.sleep(0.01)
        assert [line.split("origination_uuid=")[1].split(",")[0] for line in seen] == \
            ["offer-1", "offer-2"]  # in the order decided
        assert done == [(("decisions", 0), 10), (("decisions", 0), 11)]  # done in order
        assert actuator.executed == 2
        assert set(actuator._jobs) == {"job-0", "job-1"}
    finally:
        gevent.killall(looping)
        conn.close()
        server.close()
        actuator.claims.close()
