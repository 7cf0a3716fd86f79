"""The ESL simulator over real sockets: protocol behaviour, call flows, and conformance of its
frames to the rules of the real FreeSWITCH captures."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from esl_bridge.protocol import (
    API_RESPONSE,
    COMMAND_REPLY,
    DISCONNECT_NOTICE,
    EVENT_JSON,
    EVENT_PLAIN,
    EVENT_XML,
    Event,
    Frame,
    FrameParser,
    encode_command,
    encode_event_json,
    encode_event_plain,
    encode_event_xml,
    encode_frame,
    parse_event,
    parse_reply,
    url_encode,
)
from esl_bridge.simulator import (
    AgentSpec,
    CallerSpec,
    IvrSpec,
    Scenario,
    Simulator,
    load_scenario,
    parse_originate,
)

pytestmark = pytest.mark.bridge

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "esl"
SPEED = 50.0


class Client:
    """A raw-socket ESL client built on FrameParser; a thread collects every frame."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=5)
        self.parser = FrameParser()
        self.raw = bytearray()
        self.frames: list[Frame] = []
        self.eof = False
        self._cond = threading.Condition()
        self._reply_pos = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            with self._cond:
                if not data:
                    self.eof = True
                    self._cond.notify_all()
                    return
                self.raw += data
                self.frames += self.parser.feed(data)
                self._cond.notify_all()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, command: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.sock.sendall(encode_command(command, headers))

    def wait_frame(self, pred: Callable[[Frame], bool], start: int = 0,
                   timeout: float = 5.0) -> tuple[int, Frame]:
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.frames):
                    if pred(self.frames[i]):
                        return i, self.frames[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    raise AssertionError(f"frame not received in {timeout}s "
                                         f"({len(self.frames)} frames, eof={self.eof})")
                self._cond.wait(left)

    def reply(self, timeout: float = 5.0) -> Frame:
        i, frame = self.wait_frame(
            lambda f: f.content_type in (COMMAND_REPLY, API_RESPONSE), self._reply_pos, timeout)
        self._reply_pos = i + 1
        return frame

    def cmd(self, command: str, headers: tuple[tuple[str, str], ...] = ()) -> str:
        self.send(command, headers)
        return parse_reply(self.reply()).text

    def auth(self, password: str = "ClueCon") -> None:
        assert self.cmd(f"auth {password}") == "+OK accepted"

    def events(self) -> list[Event]:
        with self._cond:
            frames = list(self.frames)
        return [parse_event(f) for f in frames
                if f.content_type in (EVENT_PLAIN, EVENT_JSON, EVENT_XML)]

    def events_names(self) -> list[str]:
        return [e.name for e in self.events()]

    def wait_event(self, pred: Callable[[Event], bool], timeout: float = 5.0) -> Event:
        def match(f: Frame) -> bool:
            return f.content_type in (EVENT_PLAIN, EVENT_JSON, EVENT_XML) and pred(parse_event(f))

        return parse_event(self.wait_frame(match, 0, timeout)[1])

    def wait_eof(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.eof:
                left = deadline - time.monotonic()
                assert left > 0, "connection not closed"
                self._cond.wait(left)


def named(name: str, uid: str | None = None) -> Callable[[Event], bool]:
    return lambda e: e.name == name and (uid is None or e.get("Unique-ID") == uid)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(speed=SPEED, seed=7, heartbeat=None).start()
    yield simulator
    simulator.stop()
    assert simulator.node.errors == []


@pytest.fixture
def client(sim: Simulator) -> Iterator[Client]:
    c = Client(sim.address)
    c.auth()
    yield c
    c.close()


def caller(**kw: object) -> CallerSpec:
    base: dict[str, object] = {"number": "0903123456", "did": "19001234",
                               "variables": {"tongdai_tenant": "acme",
                                             "tongdai_queue": "support"}}
    base.update(kw)
    return CallerSpec(**base)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- protocol basics


def test_auth_request_then_accepted(sim: Simulator) -> None:
    c = Client(sim.address)
    _, first = c.wait_frame(lambda f: True)
    assert first.headers == (("Content-Type", "auth/request"),) and first.body is None
    assert c.cmd("api status") == "-ERR command not found"  # not yet authenticated
    c.auth()
    assert c.cmd("api status").startswith("UP 0 years")
    c.close()


def test_auth_failure_bytes_match_the_capture(sim: Simulator) -> None:
    c = Client(sim.address)
    c.send("auth WrongPassword")
    c.wait_eof()
    assert bytes(c.raw) == (FIXTURES / "misc_auth_failure.txt").read_bytes()


def test_exit_says_bye_then_disconnect_notice(client: Client) -> None:
    client.send("exit")
    client.wait_eof()
    expected_tail = (FIXTURES / "misc_api_bgapi.txt").read_bytes()[-(49 + 124):]
    assert bytes(client.raw).endswith(expected_tail)
    assert [f.content_type for f in client.frames[-2:]] == [COMMAND_REPLY, DISCONNECT_NOTICE]


def test_socket_command_replies_match_the_capture(client: Client) -> None:
    assert client.cmd("event plain BACKGROUND_JOB") == "+OK event listener enabled plain"
    assert client.cmd("noevents") == "+OK no longer listening for events"
    assert client.cmd("event plain CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE "
                      "CUSTOM callcenter::info sofia::register") == \
        "+OK event listener enabled plain"
    assert client.cmd("nixevent CHANNEL_ANSWER") == "+OK events nixed"
    uid = "00000000-0000-0000-0000-000000000000"
    assert client.cmd(f"filter Unique-ID {uid}") == f"+OK filter added. [Unique-ID]=[{uid}]"
    assert client.cmd(f"filter delete Unique-ID {uid}") == \
        f"+OK filter deleted. [Unique-ID][{uid}]"
    assert client.cmd("filter delete all") == "+OK filter deleted. [all][]"
    assert client.cmd("divert_events on") == "-ERR not controlling a session."
    assert client.cmd("log 7") == "+OK log level 7 [7]"
    assert client.cmd("nolog") == "+OK no longer logging"
    assert client.cmd("bogus_socket_command") == "-ERR command not found"
    assert client.cmd("event json HEARTBEAT") == "+OK event listener enabled json"
    assert client.cmd("api no_such_command foo") == "-ERR no_such_command Command not found!\n"
    assert client.cmd(f"api uuid_kill {uid}") == "-ERR No such channel!\n"
    assert client.cmd(f"api uuid_transfer {uid} 1000 XML default") == "-ERR No such channel!\n"
    assert client.cmd(f"api uuid_bridge {uid} {uid}") == "-ERR No such channel!\n"


def test_mod_event_socket_edge_cases(sim: Simulator) -> None:
    c = Client(sim.address)
    c.send("exit")  # allowed before auth, like mod_event_socket
    c.wait_eof()
    assert parse_reply(c.frames[1]).text == "+OK bye"
    assert c.frames[2].content_type == DISCONNECT_NOTICE
    c = Client(sim.address)
    c.auth()
    assert c.cmd("noevents") == "-ERR not listening for events"
    assert c.cmd("nolog") == "-ERR not loging"  # sic
    assert c.cmd("event json") == "-ERR no keywords supplied"
    assert c.cmd("event plain ALL") == "+OK event listener enabled plain"
    assert c.cmd("linger") == "-ERR not controlling a session"
    assert c.cmd("nixevent CHANNEL_CREATE") == "+OK events nixed"  # ALL minus one
    uid = sim.place_call(caller(patience=0.1))
    c.wait_event(named("CHANNEL_DESTROY", uid))
    assert "CHANNEL_CREATE" not in c.events_names() and "CHANNEL_PARK" in c.events_names()
    c.close()


def test_server_stop_says_goodbye() -> None:
    sim = Simulator(speed=SPEED, heartbeat=None).start()
    c = Client(sim.address)
    c.auth()
    sim.stop()
    c.wait_eof()
    assert c.frames[-1].content_type == DISCONNECT_NOTICE


def test_show_channels_as_json_empty_and_non_empty(sim: Simulator, client: Client) -> None:
    client.send("api show channels as json")
    empty = client.reply()
    assert encode_frame(empty.headers, empty.body) == \
        b'Content-Type: api/response\nContent-Length: 17\n\n{"row_count": 0}\n'
    client.cmd("event plain CHANNEL_PARK")
    uid = sim.place_call(caller())
    client.wait_event(named("CHANNEL_PARK", uid))
    body = client.cmd("api show channels as json")
    assert not body.endswith("\n")
    data = orjson.loads(body)
    assert data["row_count"] == 1 and data["rows"][0]["uuid"] == uid
    real = orjson.loads(_real_show_channels()[0])
    assert list(data["rows"][0]) == list(real["rows"][0])
    assert all(isinstance(v, str) for v in data["rows"][0].values())


def _real_show_channels() -> list[bytes]:
    frames = FrameParser().feed((FIXTURES / "plain_inbound_park_bridge.txt").read_bytes())
    return [f.body for f in frames if f.content_type == API_RESPONSE and f.body
            and f.body.startswith(b'{"row_count":') and b'"rows"' in f.body]


def test_heartbeat_every_interval() -> None:
    with Simulator(speed=SPEED, heartbeat=1.0) as sim:
        c = Client(sim.address)
        c.auth()
        c.cmd("event plain HEARTBEAT")
        first = c.wait_event(named("HEARTBEAT"))
        c.wait_frame(lambda f: f.content_type == EVENT_PLAIN
                     and parse_event(f)["Event-Sequence"] != first["Event-Sequence"])
        beats = [e for e in c.events() if e.name == "HEARTBEAT"]
        assert len(beats) >= 2
        assert beats[0]["Core-UUID"] == sim.node.core_uuid
        gap = int(beats[1]["Event-Date-Timestamp"]) - int(beats[0]["Event-Date-Timestamp"])
        # Simulated microseconds, not wall time; a busy machine only makes it later.
        assert 1e6 <= gap < 4e6
        c.close()


# --------------------------------------------------------------------------- calls


def test_queue_call_events_in_order_with_dialplan_variables(sim: Simulator,
                                                            client: Client) -> None:
    client.cmd("event plain ALL")
    uid = sim.place_call(caller(
        name="Nguyen Van A", patience=3.0,
        variables={"tongdai_tenant": "acme", "tongdai_did": "19001234", "tongdai_priority": "5",
                   "tongdai_skills": "billing:5,vi:3", "tongdai_language": "vi",
                   "tongdai_region": "HN", "tongdai_vip": "true"},
        ivr=IvrSpec(choice="2", after=1.0, variables={"tongdai_queue": "sales",
                                                      "tongdai_ivr_path": "main>2"})))
    client.wait_event(named("CHANNEL_DESTROY", uid), timeout=10)
    events = [e for e in client.events() if e.get("Unique-ID") == uid]
    assert [e.name for e in events] == [
        "CHANNEL_CREATE", "CHANNEL_ANSWER", "CUSTOM tongdai::ivr", "CHANNEL_PARK",
        "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"]
    create, answer, ivr, park, hangup, complete, _ = events
    assert "variable_tongdai_tenant" not in create  # the dialplan has not run yet
    assert answer["variable_tongdai_tenant"] == "acme"
    assert "variable_tongdai_queue" not in answer  # chosen in the IVR
    assert ivr.pairs[0] == ("Event-Subclass", "tongdai::ivr")
    assert ivr["IVR-Choice"] == "2"
    assert park["variable_tongdai_queue"] == "sales"
    assert park["variable_tongdai_ivr_path"] == "main>2"
    assert park["variable_tongdai_vip"] == "true"
    assert park["variable_tongdai_skills"] == "billing:5,vi:3"
    assert park["Caller-Caller-ID-Number"] == "0903123456"
    assert park["Caller-Caller-ID-Name"] == "Nguyen Van A"
    assert park["Caller-Destination-Number"] == "19001234"
    assert park["Call-Direction"] == "inbound" and park["Answer-State"] == "answered"
    assert park["Channel-Call-State"] == "ACTIVE"
    assert hangup["Hangup-Cause"] == "NORMAL_CLEARING"
    assert complete["variable_sip_hangup_disposition"] == "recv_bye"
    waited = int(complete["Event-Date-Timestamp"]) - int(park["Event-Date-Timestamp"])
    assert 3e6 <= waited < 8e6  # patience of 3 simulated seconds (late, never early)
    sequences = [int(e["Event-Sequence"]) for e in events]
    assert sequences == sorted(sequences)
    assert len({e["Core-UUID"] for e in events}) == 1


def test_full_fidelity_call_setup_matches_the_real_sequence() -> None:
    """Up to the park, the inbound leg fires the same event sequence as the real capture
    (minus CODEC/PRESENCE_IN and the CS_NEW state the simulator does not model)."""
    kinds = {"CHANNEL_STATE", "CHANNEL_CREATE", "CHANNEL_CALLSTATE", "CHANNEL_EXECUTE",
             "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_ANSWER", "CHANNEL_PARK"}

    def setup(events: list[Event], uid: str) -> list[tuple[str, str]]:
        out = []
        for e in events:
            if e.get("Unique-ID") != uid or e.name not in kinds:
                continue
            if e.name == "CHANNEL_STATE" and e["Channel-State"] == "CS_NEW":
                continue
            out.append((e.name, e.get("Channel-State", "") if e.name == "CHANNEL_STATE"
                        else e.get("Application", "") or e.get("Channel-Call-State", "")))
            if e.name == "CHANNEL_PARK":
                break
        return out

    frames = FrameParser().feed((FIXTURES / "plain_inbound_park_bridge.txt").read_bytes())
    real_events = [parse_event(f) for f in frames if f.content_type == EVENT_PLAIN]
    real = setup(real_events, "96671f03-e24d-45d9-bdbd-8c89bdf961c6")
    with Simulator(speed=SPEED, seed=1, heartbeat=None, fidelity="full") as sim:
        c = Client(sim.address)
        c.auth()
        c.cmd("event plain ALL")
        uid = sim.place_call(caller(variables={"cc_route": "esl"}))
        c.wait_event(named("CHANNEL_PARK", uid))
        ours = setup(c.events(), uid)
        c.close()
    assert ours == real
    assert ("CHANNEL_EXECUTE", "set") in ours


def test_unset_variables_are_absent(sim: Simulator, client: Client) -> None:
    client.cmd("event plain CHANNEL_PARK")
    uid = sim.place_call(CallerSpec(number="0281234567", did="19009999",
                                    variables={"tongdai_queue": "support"}))
    park = client.wait_event(named("CHANNEL_PARK", uid))
    tongdai = {k for k in park.headers if k.startswith("variable_tongdai_")}
    assert tongdai == {"variable_tongdai_queue"}


def _originate(client: Client, ext: str, offer: str, call: str, extra: str = "") -> str:
    job = client.cmd(
        f"bgapi originate {{origination_uuid={offer},origination_caller_id_number=0903123456,"
        f"origination_caller_id_name='Nguyen Van A',cc_caller_uuid={call}{extra}}}"
        f"user/{ext}@127.0.0.1 &park()")
    assert job.startswith("+OK Job-UUID: ")
    return job.split(": ", 1)[1]


def test_originate_answer_park_bridge_hangup(sim: Simulator, client: Client) -> None:
    client.cmd("event plain ALL")
    sim.add_agent(AgentSpec(ext="1000", answer_delay=1.0))
    client.wait_event(named("CUSTOM sofia::register"))
    call = sim.place_call(caller())
    client.wait_event(named("CHANNEL_PARK", call))
    offer = "e3f2d8d7-006f-427a-bd99-adf05297e4c9"
    job = _originate(client, "1000", offer, call)
    agent_park = client.wait_event(named("CHANNEL_PARK", offer))
    names = [e.name for e in client.events() if e.get("Unique-ID") == offer
             or e.get("Job-UUID") == job]
    assert names == ["CHANNEL_CREATE", "CHANNEL_PROGRESS", "CHANNEL_ANSWER", "BACKGROUND_JOB",
                     "CHANNEL_PARK"]
    result = client.wait_event(lambda e: e.get("Job-UUID") == job)
    assert result.body == f"+OK {offer}\n"
    assert result["Job-Command"] == "originate"
    assert agent_park["Call-Direction"] == "outbound"
    assert agent_park["variable_cc_caller_uuid"] == call
    assert agent_park["Caller-Callee-ID-Number"] == "0903123456"

    assert client.cmd(f"api uuid_bridge {call} {offer}") == f"+OK {offer}\n"
    bridge = client.wait_event(named("CHANNEL_BRIDGE"))
    assert bridge["Unique-ID"] == call
    assert bridge["Bridge-A-Unique-ID"] == call and bridge["Bridge-B-Unique-ID"] == offer
    assert bridge["Other-Leg-Unique-ID"] == offer and bridge["Other-Type"] == "originatee"
    assert [e.name for e in client.events()].count("CHANNEL_BRIDGE") == 1

    dump = orjson.loads(client.cmd(f"api uuid_dump {call} json"))
    assert dump["Event-Name"] == "CHANNEL_DATA" and dump["variable_bridge_uuid"] == offer
    calls = orjson.loads(client.cmd("api show calls as json"))
    assert calls["row_count"] == 1 and calls["rows"][0]["b_uuid"] == offer

    assert client.cmd(f"api uuid_kill {call} NORMAL_CLEARING") == "+OK\n"  # as in the capture
    client.wait_event(named("CHANNEL_DESTROY", call), timeout=10)
    tail = [(e.name, e.get("Unique-ID")) for e in client.events()
            if e.get("Unique-ID") in (call, offer)
            and e.name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_UNBRIDGE",
                           "CHANNEL_DESTROY")]
    assert tail == [("CHANNEL_HANGUP", call), ("CHANNEL_HANGUP", offer),
                    ("CHANNEL_HANGUP_COMPLETE", offer), ("CHANNEL_UNBRIDGE", call),
                    ("CHANNEL_DESTROY", offer), ("CHANNEL_HANGUP_COMPLETE", call),
                    ("CHANNEL_DESTROY", call)]
    complete = [e for e in client.events() if e.name == "CHANNEL_HANGUP_COMPLETE"
                and e["Unique-ID"] == call][0]
    assert complete.pairs[13] == ("Hangup-Cause", "NORMAL_CLEARING")
    assert complete["variable_billsec"].isdigit()
    assert int(complete["variable_uduration"]) > int(complete["variable_waitusec"]) > 0
    assert int(complete["variable_waitusec"]) > 0
    assert complete["variable_bridge_uuid"] == offer
    assert client.cmd("api show channels as json") == '{"row_count": 0}\n'


@pytest.mark.parametrize(
    ("agent", "result", "cause"),
    [
        (AgentSpec(ext="1001", answer="no_answer"), "-ERR NO_ANSWER\n", "NO_ANSWER"),
        (AgentSpec(ext="1001", answer="busy"), "-ERR USER_BUSY\n", "USER_BUSY"),
        (AgentSpec(ext="1001", answer="reject", answer_delay=0.5), "-ERR CALL_REJECTED\n",
         "CALL_REJECTED"),
        (AgentSpec(ext="1001", answer="answer", answer_delay=5.0), "-ERR NO_ANSWER\n",
         "NO_ANSWER"),
    ],
    ids=["no_answer", "busy", "reject", "answers_after_timeout"],
)
def test_originate_failures(sim: Simulator, client: Client, agent: AgentSpec, result: str,
                            cause: str) -> None:
    client.cmd("event plain CHANNEL_CREATE CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB "
               "CUSTOM sofia::register")
    sim.add_agent(agent)
    client.wait_event(named("CUSTOM sofia::register"))
    job = _originate(client, "1001", "offer-1", "call-1", ",originate_timeout=2")
    done = client.wait_event(lambda e: e.get("Job-UUID") == job)
    assert done.body == result
    complete = client.wait_event(named("CHANNEL_HANGUP_COMPLETE", "offer-1"))
    assert complete["Hangup-Cause"] == cause
    names = [e.name for e in client.events() if e.get("Unique-ID") == "offer-1"]
    assert names == ["CHANNEL_CREATE", "CHANNEL_HANGUP_COMPLETE"]


def test_originate_not_registered_and_unknown(sim: Simulator, client: Client) -> None:
    sim.add_agent(AgentSpec(ext="1002", register_at=None))
    client.cmd("event plain ALL")
    job = _originate(client, "1002", "offer-2", "call-2")
    assert client.wait_event(lambda e: e.get("Job-UUID") == job).body == \
        "-ERR USER_NOT_REGISTERED\n"
    job = _originate(client, "1099", "offer-3", "call-3")
    assert client.wait_event(lambda e: e.get("Job-UUID") == job).body == \
        "-ERR SUBSCRIBER_ABSENT\n"
    assert not [e for e in client.events() if e.get("Unique-ID") in ("offer-2", "offer-3")]


def test_unregister_then_originate_fails(sim: Simulator, client: Client) -> None:
    client.cmd("event json CUSTOM sofia::register sofia::unregister sofia::expire")
    sim.add_agent(AgentSpec(ext="1003"))
    client.wait_event(named("CUSTOM sofia::register"))
    sim.unregister("1003")
    unreg = client.wait_event(named("CUSTOM sofia::unregister"))
    assert unreg["from-user"] == "1003" and unreg.format == "json"
    client.cmd("event json BACKGROUND_JOB")
    job = _originate(client, "1003", "offer-4", "call-4")
    assert client.wait_event(lambda e: e.get("Job-UUID") == job).body == \
        "-ERR USER_NOT_REGISTERED\n"


def test_bgapi_job_uuid_from_client_and_correlation(client: Client) -> None:
    client.cmd("event plain BACKGROUND_JOB")
    job = "7f4db5a8-1111-4222-8333-444455556666"
    client.send("bgapi status", (("Job-UUID", job),))
    reply = client.reply()
    assert reply.headers == (("Content-Type", "command/reply"),
                             ("Reply-Text", f"+OK Job-UUID: {job}"), ("Job-UUID", job))
    jobs = [_bg(client, "show channels as json"), _bg(client, "uuid_kill nope"), job]
    bodies = {j: client.wait_event(lambda e, j=j: e.get("Job-UUID") == j).body for j in jobs}
    assert bodies[jobs[0]] == '{"row_count": 0}\n'
    assert bodies[jobs[1]] == "-ERR No such channel!\n"
    assert bodies[job] is not None and bodies[job].startswith("UP ")
    show = client.wait_event(lambda e: e.get("Job-UUID") == jobs[0])
    assert show["Job-Command"] == "show" and show["Job-Command-Arg"] == "channels as json"


def _bg(client: Client, command: str) -> str:
    return client.cmd(f"bgapi {command}").split(": ", 1)[1]


def test_kill_transfer_setvar_broadcast(sim: Simulator, client: Client) -> None:
    client.cmd("event plain CHANNEL_PARK CHANNEL_HANGUP_COMPLETE")
    uid = sim.place_call(caller())
    client.wait_event(named("CHANNEL_PARK", uid))
    assert client.cmd(f"api uuid_setvar {uid} tongdai_note hello world") == "+OK\n"
    assert client.cmd(f"api uuid_getvar {uid} tongdai_note") == "hello world"
    assert client.cmd(f"api uuid_broadcast {uid} /tmp/x.wav aleg") == "+OK Message sent\n"
    assert client.cmd(f"api uuid_hold {uid}") == "+OK Success\n"
    assert client.cmd(f"api uuid_hold off {uid}") == "+OK Success\n"
    assert client.cmd(f"api uuid_record {uid} start /rec/{uid}.wav") == "+OK Success\n"
    assert client.cmd(f"api uuid_record {uid} stop all") == "+OK Success\n"
    assert client.cmd(f"api uuid_exists {uid}") == "true"
    assert client.cmd(f"api uuid_transfer {uid} 19005555 XML default") == "+OK\n"
    parks = [e for e in client.events() if e.name == "CHANNEL_PARK"]
    assert len(parks) == 2 and parks[1]["Caller-Destination-Number"] == "19005555"
    assert parks[1]["variable_tongdai_note"] == "hello world"
    assert client.cmd(f"api uuid_kill {uid} USER_BUSY") == "+OK\n"
    complete = client.wait_event(named("CHANNEL_HANGUP_COMPLETE", uid))
    assert complete["Hangup-Cause"] == "USER_BUSY"
    assert complete["variable_hangup_cause_q850"] == "17"


def test_sendevent_is_delivered_to_subscribers(sim: Simulator, client: Client) -> None:
    client.cmd("event json CUSTOM tongdai::test")
    other = Client(sim.address)
    other.auth()
    body = "hello\nworld"
    other.send("sendevent CUSTOM", (("Event-Subclass", "tongdai::test"), ("X-Thing", "a b"),
                                    ("Content-Length", str(len(body)))))
    other.sock.sendall(body.encode())
    assert other.reply().get("Reply-Text", "").startswith("+OK ")
    event = client.wait_event(named("CUSTOM tongdai::test"))
    assert event["X-Thing"] == "a b" and event.body == body
    assert event.pairs[0] == ("Event-Subclass", "tongdai::test")
    other.close()


def test_many_clients_get_the_same_events(sim: Simulator) -> None:
    clients = [Client(sim.address) for _ in range(6)]
    for i, c in enumerate(clients):
        c.auth()
        c.cmd("event json CHANNEL_CREATE" if i % 2 else "event plain CHANNEL_CREATE")
    uids = [sim.place_call(caller(number=f"09000000{i:02d}")) for i in range(5)]
    for c in clients:
        for uid in uids:
            c.wait_event(named("CHANNEL_CREATE", uid))
        seen = [e["Unique-ID"] for e in c.events()]
        assert seen == uids
        c.close()


def test_filter_limits_events(sim: Simulator, client: Client) -> None:
    client.cmd("event plain CHANNEL_CREATE")
    keep = sim.place_call(caller(number="0911111111"))
    client.wait_event(named("CHANNEL_CREATE", keep))
    client.cmd("filter Caller-Caller-ID-Number 0922222222")
    sim.place_call(caller(number="0933333333"))
    wanted = sim.place_call(caller(number="0922222222"))
    client.wait_event(named("CHANNEL_CREATE", wanted))
    assert [e["Caller-Caller-ID-Number"] for e in client.events()] == \
        ["0911111111", "0922222222"]


def test_scenario_file_and_load_mode(tmp_path: Path) -> None:
    scenario = {
        "dids": {"19001234": {"tongdai_tenant": "acme", "tongdai_did": "19001234"}},
        "agents": [{"ext": "1000"}, {"ext": "1001", "register_at": 3.0}],
        "callers": [{"at": 3, "number": "0903000001", "did": "19001234", "queue": "support",
                     "vip": True, "skills": ["billing:5", "vi:3"], "patience": 1}],
        "load": {"cps": 10, "start": 3, "agents": 3, "first_ext": 2000, "max_calls": 4,
                 "dids": ["19001234"], "handle_time": 1, "patience": {"dist": "exp", "mean": 2}},
    }
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario))
    # Slower clock: the client must subscribe before t=3 (0.6 s of wall time).
    with Simulator(speed=5, seed=3, heartbeat=None, scenario=path) as sim:
        c = Client(sim.address)
        c.auth()
        c.cmd("event plain CHANNEL_PARK CHANNEL_DESTROY CUSTOM sofia::register")
        park = c.wait_event(lambda e: e.name == "CHANNEL_PARK"
                            and e["Caller-Caller-ID-Number"] == "0903000001")
        assert park["variable_tongdai_tenant"] == "acme"
        assert park["variable_tongdai_queue"] == "support"
        assert park["variable_tongdai_vip"] == "true"
        assert park["variable_tongdai_skills"] == "billing:5,vi:3"
        assert park["variable_tongdai_did"] == "19001234"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if sum(1 for e in c.events() if e.name == "CHANNEL_PARK") >= 5:
                break
            time.sleep(0.02)
        # Registrations at t=0 happen before anyone subscribes, as on a real node.
        regs = orjson.loads(c.cmd("api show registrations as json"))
        assert {r["reg_user"] for r in regs["rows"]} == {"1000", "1001", "2000", "2001", "2002"}
        assert "1001" in {e["from-user"] for e in c.events()
                          if e.name == "CUSTOM sofia::register"}  # registered at t=3
        assert sum(1 for e in c.events() if e.name == "CHANNEL_PARK") == 5
        c.close()


def test_example_yaml_scenario_runs() -> None:
    path = REPO / "esl_bridge" / "simulator" / "example_scenario.yaml"
    scenario, raw = load_scenario(path)
    assert raw["seed"] == 42 and len(scenario.agents) == 7
    first = scenario.callers[0]
    assert first.ivr is not None and first.ivr.variables["tongdai_queue"] == "sales"
    assert scenario.callers[2].variables == {"tongdai_tenant": "beta", "tongdai_did": "18005678",
                                             "tongdai_queue": "hotline", "tongdai_vip": "true"}
    with Simulator(speed=10, seed=raw["seed"], heartbeat=None, scenario=scenario) as sim:
        c = Client(sim.address)
        c.auth()
        c.cmd("event plain CHANNEL_PARK")
        park = c.wait_event(lambda e: e.name == "CHANNEL_PARK"
                            and e["Caller-Caller-ID-Number"] == "0912000111")
        assert park["variable_tongdai_vip"] == "true"
        c.close()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"agents": [{"answer": "answer"}]}, "agents[0].ext: required"),
        ({"agents": [{"ext": "1", "answer": "maybe"}]}, "agents[0].answer"),
        ({"callers": [{"number": "1"}]}, "callers[0].did: required"),
        ({"callers": [{"number": "1", "did": "2", "hangup_by": "x"}]}, "callers[0].hangup_by"),
        ({"load": {"cps": 0}}, "load.cps"),
        ({"load": {"patience": {"dist": "zipf"}}}, "load.patience.dist"),
        ({"agent": []}, "unknown keys"),
    ],
)
def test_bad_scenarios_name_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Scenario.parse(data)


def test_seeded_runs_are_reproducible() -> None:
    def run() -> list[tuple[str, str]]:
        with Simulator(speed=SPEED, seed=11, heartbeat=None) as sim:
            c = Client(sim.address)
            c.auth()
            c.cmd("event plain CHANNEL_CREATE")
            uids = [sim.place_call(caller(number=f"090000000{i}")) for i in range(3)]
            for uid in uids:
                c.wait_event(named("CHANNEL_CREATE", uid))
            out = [(sim.node.core_uuid, e["Unique-ID"]) for e in c.events()]
            c.close()
            return out

    assert run() == run()


def test_parse_originate() -> None:
    assert parse_originate("{a=1,b='x, y'}user/1000@dom &park()") == (
        {"a": "1", "b": "x, y"}, "user/1000@dom", "&park()")


def test_cli_entry_point() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "esl_bridge.simulator", "--port", "0",
                             "--seed", "1", "--speed", "10", "--heartbeat", "1"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on 127.0.0.1:" in line, line + (proc.stderr.read() if proc.stderr else "")
        port = int(line.split("127.0.0.1:")[1].split()[0])
        c = Client(("127.0.0.1", port))
        c.auth()
        c.cmd("event plain HEARTBEAT")
        c.wait_event(named("HEARTBEAT"))
        c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


GREENSWITCH_SCRIPT = textwrap.dedent("""
    import json, sys
    import gevent
    from greenswitch import InboundESL
    port = int(sys.argv[1])
    esl = InboundESL(host="127.0.0.1", port=port, password="ClueCon")
    esl.connect()
    seen = []
    done = gevent.event.Event()
    def on_event(event):
        seen.append({k: event.headers.get(k) for k in (
            "Event-Name", "Unique-ID", "variable_tongdai_queue", "Job-UUID")})
        if event.headers.get("Event-Name") == "CHANNEL_PARK":
            done.set()
    esl.register_handle("*", on_event)
    esl.send("event plain CHANNEL_CREATE CHANNEL_PARK BACKGROUND_JOB")
    status = esl.send("api status").data
    job = esl.send("bgapi status").headers.get("Job-UUID")
    print("READY", flush=True)
    done.wait(timeout=10)
    gevent.sleep(0.1)
    print(json.dumps({"status": status, "job": job, "seen": seen}), flush=True)
    esl.stop()
""")


def test_greenswitch_inbound_client_in_a_subprocess(sim: Simulator) -> None:
    proc = subprocess.Popen([sys.executable, "-c", GREENSWITCH_SCRIPT, str(sim.port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        uid = sim.place_call(caller())
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"].startswith("UP 0 years"), err
    names = [(s["Event-Name"], s["Unique-ID"]) for s in result["seen"]]
    assert ("CHANNEL_CREATE", uid) in names and ("CHANNEL_PARK", uid) in names
    assert {"Event-Name": "BACKGROUND_JOB", "Unique-ID": None, "variable_tongdai_queue": None,
            "Job-UUID": result["job"]} in result["seen"]
    park = [s for s in result["seen"] if s["Event-Name"] == "CHANNEL_PARK"][0]
    assert park["variable_tongdai_queue"] == "support"


# --------------------------------------------------------------------------- conformance


def _real_names() -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for path in FIXTURES.glob("*.txt"):
        if path.name.endswith((".sent.txt", ".transcript.txt")):
            continue
        for frame in FrameParser().feed(path.read_bytes()):
            if frame.content_type in (EVENT_PLAIN, EVENT_JSON, EVENT_XML):
                event = parse_event(frame)
                names.setdefault(event.name, set()).update(k for k, _ in event.pairs)
    return names


def _full_call_frames(fmt: str, fidelity: str) -> tuple[list[Frame], bytes]:
    with Simulator(speed=SPEED, seed=5, heartbeat=1.0, fidelity=fidelity) as sim:
        c = Client(sim.address)
        c.auth()
        c.cmd(f"event {fmt} ALL")
        sim.add_agent(AgentSpec(ext="1000", answer_delay=0.5))
        c.wait_event(named("CUSTOM sofia::register"))
        call = sim.place_call(caller(
            name="Trần Thị B", talk=1.0,
            variables={"tongdai_tenant": "acme", "tongdai_queue": "support",
                       "tongdai_skills": "billing:5", "tongdai_ivr_path": "main>1 & 2?"},
            ivr=IvrSpec(choice="1", after=0.2)))
        c.wait_event(named("CHANNEL_PARK", call))
        offer = "11111111-2222-4333-8444-555555555555"
        _originate(c, "1000", offer, call)
        c.wait_event(named("CHANNEL_PARK", offer))
        assert c.cmd(f"api uuid_bridge {call} {offer}") == f"+OK {offer}\n"
        c.wait_event(named("CHANNEL_DESTROY", call), timeout=10)
        c.wait_event(named("HEARTBEAT"))
        sim.unregister("1000")
        c.wait_event(named("CUSTOM sofia::unregister"))
        c.send("exit")
        c.wait_eof()
        return list(c.frames), bytes(c.raw)


@pytest.fixture(scope="module")
def plain_run() -> tuple[list[Frame], bytes]:
    return _full_call_frames("plain", "full")


@pytest.fixture(scope="module")
def json_run() -> tuple[list[Frame], bytes]:
    return _full_call_frames("json", "core")


def test_conformance_framing(plain_run: tuple[list[Frame], bytes],
                             json_run: tuple[list[Frame], bytes]) -> None:
    for frames, raw in (plain_run, json_run):
        # Every byte is part of a frame, and the frames re-encode to exactly what was sent.
        assert b"".join(encode_frame(f.headers, f.body) for f in frames) == raw
        for frame in frames:
            assert (frame.get("Content-Length") is not None) == (frame.body is not None)
            if frame.content_type == COMMAND_REPLY:
                assert frame.body is None


def test_conformance_plain_encoding(plain_run: tuple[list[Frame], bytes]) -> None:
    frames, _ = plain_run
    events = 0
    for frame in frames:
        if frame.content_type != EVENT_PLAIN:
            continue
        events += 1
        event = parse_event(frame)
        # The encoder that reproduces the captures byte for byte reproduces these too ...
        assert encode_event_plain(event, event.body) == encode_frame(frame.headers, frame.body)
        # ... and every raw value is already in FreeSWITCH's encoded form.
        assert frame.body is not None
        block = frame.body.split(b"\n\n", 1)[0].decode()
        for line in block.split("\n"):
            _, _, value = line.partition(": ")
            assert url_encode(value) == value, line
        if event.event_name == "CUSTOM":
            assert event.pairs[0][0] == "Event-Subclass" and event.pairs[1][0] == "Event-Name"
    assert events > 20


def test_conformance_json(json_run: tuple[list[Frame], bytes]) -> None:
    frames, _ = json_run
    jobs = 0
    for frame in frames:
        if frame.content_type != EVENT_JSON:
            continue
        assert frame.body is not None and frame.body.endswith(b"}")
        obj = orjson.loads(frame.body)
        assert all(isinstance(v, str) for v in obj.values())
        if obj["Event-Name"] == "CUSTOM":
            assert list(obj)[:2] == ["Event-Subclass", "Event-Name"]
        if obj["Event-Name"] == "BACKGROUND_JOB":
            jobs += 1
            assert list(obj)[-2:] == ["Content-Length", "_body"]
            assert obj["Content-Length"] == str(len(obj["_body"].encode()))
        event = parse_event(frame)
        assert encode_event_json(event, event.body) == encode_frame(frame.headers, frame.body)
    assert jobs == 1


def test_conformance_xml(sim: Simulator, client: Client) -> None:
    assert client.cmd("event xml ALL") == "+OK event listener enabled xml"
    uid = sim.place_call(caller(name="Lê Văn C <vip>", patience=0.2))
    client.wait_event(named("CHANNEL_DESTROY", uid))
    job = _bg(client, "status")
    client.wait_event(lambda e: e.get("Job-UUID") == job)
    frames = [f for f in client.frames if f.content_type == EVENT_XML]
    assert len(frames) >= 7
    for frame in frames:
        event = parse_event(frame)
        assert encode_event_xml(event, event.body) == encode_frame(frame.headers, frame.body)
    park = next(parse_event(f) for f in frames if parse_event(f).name == "CHANNEL_PARK")
    assert park["Caller-Caller-ID-Name"] == "Lê Văn C <vip>"
    assert b"L%C3%AA%20V%C4%83n%20C%20%3Cvip%3E" in b"".join(f.body or b"" for f in frames)


CHECKED = ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_PARK", "CHANNEL_BRIDGE",
           "CHANNEL_UNBRIDGE", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY",
           "CHANNEL_PROGRESS", "CHANNEL_UNPARK", "BACKGROUND_JOB", "HEARTBEAT", "API",
           "CUSTOM sofia::register", "CHANNEL_STATE", "CHANNEL_CALLSTATE", "CHANNEL_EXECUTE",
           "CHANNEL_EXECUTE_COMPLETE")


def test_conformance_header_names(plain_run: tuple[list[Frame], bytes]) -> None:
    real = _real_names()
    frames, _ = plain_run
    seen: set[str] = set()
    for frame in frames:
        if frame.content_type != EVENT_PLAIN:
            continue
        event = parse_event(frame)
        if event.name not in CHECKED:
            continue
        seen.add(event.name)
        ours = {k for k, _ in event.pairs if not k.startswith("variable_tongdai_")}
        extra = ours - real[event.name]
        assert not extra, (event.name, sorted(extra))
        assert [k for k, _ in event.pairs if k != "Event-Subclass"][:13] == list(_CORE)
    assert seen == set(CHECKED)


_CORE = ("Event-Name", "Core-UUID", "FreeSWITCH-Hostname", "FreeSWITCH-Switchname",
         "FreeSWITCH-IPv4", "FreeSWITCH-IPv6", "Event-Date-Local", "Event-Date-GMT",
         "Event-Date-Timestamp", "Event-Calling-File", "Event-Calling-Function",
         "Event-Calling-Line-Number", "Event-Sequence")


def test_conformance_event_sequence_and_timestamps(plain_run: tuple[list[Frame], bytes]) -> None:
    frames, _ = plain_run
    events = [parse_event(f) for f in frames if f.content_type == EVENT_PLAIN]
    seqs = [int(e["Event-Sequence"]) for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    stamps = [int(e["Event-Date-Timestamp"]) for e in events]
    assert stamps == sorted(stamps)
    assert all(e["Event-Date-GMT"].endswith(" GMT") for e in events)
