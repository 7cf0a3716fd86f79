"""The ESL simulator over real sockets: click-to-call (originate into the tenant's outbound
dialplan), monitoring (originate ... &eavesdrop) and uuid_recv_dtmf, as the actuator sends
them, with the event sequences and headers of a real FreeSWITCH."""

from __future__ import annotations

import re
from collections.abc import Iterator

import orjson
import pytest

from esl_bridge.protocol import EVENT_JSON, Event, encode_event_json, encode_frame, parse_event
from esl_bridge.simulator import AgentSpec, NumberSpec, Scenario, Simulator, parse_dtmf

# The sibling module's raw-socket client (pytest imports both from this directory).
from test_simulator import Client, caller, named

pytestmark = pytest.mark.bridge

SPEED = 50.0
CUSTOMER = "0912345678"
LEG = "4c1f2a9e-0b7d-4d55-9a51-7d3e0c2f1a01"
MON = "9d0e6b3c-52f1-4b8e-8f60-1a2b3c4d5e6f"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(speed=SPEED, seed=3, heartbeat=None).start()
    yield simulator
    simulator.stop()
    assert simulator.node.errors == []


@pytest.fixture
def client(sim: Simulator) -> Iterator[Client]:
    c = Client(sim.address)
    c.auth()
    yield c
    c.close()


def click_to_call(client: Client, *, ext: str = "1000", leg: str = LEG,
                  number: str = CUSTOMER, cid: str = "02873001234", timeout: int = 30) -> str:
    """The actuator's click-to-call line (esl_bridge/actuator.py, originate_call)."""
    job = client.cmd(
        f"bgapi originate {{origination_uuid={leg},tongdai_tenant=acme,"
        f"tongdai_click_to_call=req-1,tongdai_agent_id=lan,tongdai_command_id=cmd-1,"
        f"origination_caller_id_number={number},origination_caller_id_name='Nguyễn Văn A',"
        f"effective_caller_id_number={cid},tongdai_outbound_caller_id={cid},"
        f"originate_timeout={timeout},ignore_early_media=true}}"
        f"user/{ext}@127.0.0.1 {number} XML tongdai_acme_outbound")
    assert job.startswith("+OK Job-UUID: ")
    return job.split(": ", 1)[1]


def monitor(client: Client, target: str, *, mode: str = "listen", aleg: bool = False,
            bleg: bool = False, dtmf: bool = True, ext: str = "1099", leg: str = MON) -> str:
    """The actuator's monitoring line (esl_bridge/actuator.py, monitor_call)."""
    flag = {True: "true", False: "false"}
    job = client.cmd(
        f"bgapi originate {{origination_uuid={leg},tongdai_tenant=acme,"
        f"tongdai_monitor_id=mon-1,tongdai_monitor_mode={mode},"
        f"eavesdrop_enable_dtmf={flag[dtmf]},eavesdrop_whisper_aleg={flag[aleg]},"
        f"eavesdrop_whisper_bleg={flag[bleg]},originate_timeout=30,"
        f"origination_caller_id_number=1099}}user/{ext}@127.0.0.1 &eavesdrop({target})")
    assert job.startswith("+OK Job-UUID: ")
    return job.split(": ", 1)[1]


def trail(client: Client, uuids: dict[str, str], job: str | None = None) -> list[tuple[str, str]]:
    """(event name, role) of every event of the given legs (uuid -> role) and the job."""
    out = []
    for e in client.events():
        if e.get("Unique-ID") in uuids:
            out.append((e.name, uuids[e["Unique-ID"]]))
        elif job is not None and e.get("Job-UUID") == job:
            out.append((e.name, "job"))
    return out


def customer_leg(client: Client) -> Event:
    return client.wait_event(lambda e: e.name == "CHANNEL_CREATE"
                             and e.get("Channel-Name", "").startswith("sofia/gateway/"))


def bridged_acd_call(sim: Simulator, client: Client, offer: str = "offer-9") -> str:
    """A queue call bridged to agent 1000's leg ``offer`` (the DESIGN's ACD flow)."""
    call = sim.place_call(caller())
    client.wait_event(named("CHANNEL_PARK", call))
    client.cmd(f"bgapi originate {{origination_uuid={offer},origination_caller_id_number="
               f"0903123456,tongdai_tenant=acme,tongdai_call_id={call}}}user/1000@127.0.0.1"
               f" &park()")
    client.wait_event(named("CHANNEL_PARK", offer))
    assert client.cmd(f"api uuid_bridge {call} {offer}") == f"+OK {offer}\n"
    client.wait_event(named("CHANNEL_BRIDGE", call))
    return call


def register(sim: Simulator, client: Client, *agents: AgentSpec) -> None:
    for agent in agents:
        sim.add_agent(agent)
    for agent in agents:
        client.wait_event(lambda e, a=agent: e.name == "CUSTOM sofia::register"
                          and e["from-user"] == a.ext)


# --------------------------------------------------------------------------- click-to-call


def test_click_to_call_rings_the_agent_then_bridges_the_customer(sim: Simulator,
                                                                 client: Client) -> None:
    client.cmd("event plain ALL")
    register(sim, client, AgentSpec(ext="1000", answer_delay=0.5))
    sim.add_number(NumberSpec(CUSTOMER, answer_delay=1.0, talk=2.0))
    job = click_to_call(client)
    b = customer_leg(client)["Unique-ID"]
    client.wait_event(named("CHANNEL_DESTROY", LEG), timeout=10)
    assert trail(client, {LEG: "agent", b: "customer"}, job) == [
        ("CHANNEL_CREATE", "agent"), ("CHANNEL_PROGRESS", "agent"), ("CHANNEL_ANSWER", "agent"),
        ("BACKGROUND_JOB", "job"),
        ("RECORD_START", "agent"),  # the outbound context records mobile calls
        ("CHANNEL_CREATE", "customer"), ("CHANNEL_PROGRESS", "customer"),
        ("CHANNEL_ANSWER", "customer"), ("CHANNEL_BRIDGE", "agent"),
        # the customer hangs up after talking; hangup_after_bridge ends the agent's leg
        ("CHANNEL_HANGUP", "customer"), ("RECORD_STOP", "agent"), ("CHANNEL_HANGUP", "agent"),
        ("CHANNEL_HANGUP_COMPLETE", "customer"), ("CHANNEL_UNBRIDGE", "agent"),
        ("CHANNEL_DESTROY", "customer"), ("CHANNEL_HANGUP_COMPLETE", "agent"),
        ("CHANNEL_DESTROY", "agent")]
    events = {(e.name, e.get("Unique-ID") or e.get("Job-UUID")): e for e in client.events()}
    assert events["BACKGROUND_JOB", job].body == f"+OK {LEG}\n"
    assert events["BACKGROUND_JOB", job]["Job-Command"] == "originate"
    ring = events["CHANNEL_CREATE", LEG]
    assert ring["Caller-Caller-ID-Number"] == CUSTOMER  # the agent's phone shows the customer
    assert ring["Caller-Caller-ID-Name"] == "Nguyễn Văn A"
    assert ring["Caller-Destination-Number"] == "1000"
    create = events["CHANNEL_CREATE", b]
    assert create["Call-Direction"] == "outbound"
    assert create["Channel-Name"] == f"sofia/gateway/carrier/{CUSTOMER}"
    assert create["Caller-Caller-ID-Number"] == "02873001234"  # the effective caller ID
    assert create["Caller-Destination-Number"] == CUSTOMER
    assert create["Other-Type"] == "originator" and create["Other-Leg-Unique-ID"] == LEG
    assert create["Channel-Call-UUID"] == b  # not yet bridged
    assert create["variable_originator"] == LEG
    # Only exported variables reach a B leg: fs-conf's outbound_setup exports the tenant
    # (the carrier leg is the tenant's too) and only sets the domain.
    assert create["variable_tongdai_tenant"] == "acme"
    assert "variable_tongdai_domain" not in create
    bridge = events["CHANNEL_BRIDGE", LEG]
    assert bridge["Bridge-A-Unique-ID"] == LEG and bridge["Bridge-B-Unique-ID"] == b
    assert bridge["Other-Type"] == "originatee" and bridge["Other-Leg-Unique-ID"] == b
    assert bridge["Other-Leg-Caller-ID-Number"] == "02873001234"
    assert bridge["Caller-Destination-Number"] == CUSTOMER
    assert bridge["Caller-Context"] == "tongdai_acme_outbound"
    assert bridge["Caller-Profile-Index"] == "2"
    assert re.match(rf"^\d+:[0-9a-f-]+:bl_xfer:{CUSTOMER}/tongdai_acme_outbound/XML$",
                    bridge["Caller-Transfer-Source"])
    for name, value in (("tongdai_tenant", "acme"), ("tongdai_click_to_call", "req-1"),
                        ("tongdai_agent_id", "lan"), ("tongdai_direction", "outbound"),
                        ("tongdai_dest_class", "mobile"), ("hangup_after_bridge", "true"),
                        ("effective_caller_id_number", "02873001234"),
                        ("current_application", "bridge")):
        assert bridge[f"variable_{name}"] == value, name
    record = events["RECORD_START", LEG]
    assert record["Record-File-Path"] == (f"/var/lib/freeswitch/recordings/acme/"
                                          f"{record['Event-Date-Local'][:10]}/{LEG}.wav")
    assert bridge["variable_tongdai_recording"] == record["Record-File-Path"]
    hangup_b = events["CHANNEL_HANGUP", b]
    assert hangup_b["Channel-Call-UUID"] == LEG  # a B leg belongs to its A leg's call
    assert hangup_b["Hangup-Cause"] == "NORMAL_CLEARING"
    stamp = {k: int(e["Event-Date-Timestamp"]) for k, e in events.items()}
    assert stamp["CHANNEL_ANSWER", b] - stamp["CHANNEL_CREATE", b] >= 1_000_000
    assert stamp["CHANNEL_HANGUP", b] - stamp["CHANNEL_BRIDGE", LEG] >= 2_000_000
    complete = events["CHANNEL_HANGUP_COMPLETE", LEG]
    assert complete["variable_sip_hangup_disposition"] == "send_bye"
    assert events["CHANNEL_HANGUP_COMPLETE", b]["variable_sip_hangup_disposition"] == "recv_bye"
    assert events["CHANNEL_DESTROY", b]["Channel-Call-UUID"] == b


def test_click_to_call_agent_does_not_answer(sim: Simulator, client: Client) -> None:
    client.cmd("event plain ALL")
    register(sim, client, AgentSpec(ext="1001", answer="no_answer"))
    job = click_to_call(client, ext="1001", timeout=2)
    done = client.wait_event(lambda e: e.get("Job-UUID") == job)
    assert done.body == "-ERR NO_ANSWER\n"
    client.wait_event(named("CHANNEL_DESTROY", LEG))
    assert trail(client, {LEG: "agent"}, job) == [
        ("CHANNEL_CREATE", "agent"), ("CHANNEL_PROGRESS", "agent"),
        ("CHANNEL_HANGUP", "agent"), ("CHANNEL_HANGUP_COMPLETE", "agent"),
        ("CHANNEL_DESTROY", "agent"), ("BACKGROUND_JOB", "job")]
    assert not [e for e in client.events() if e.name == "CHANNEL_CREATE"
                and e["Unique-ID"] != LEG], "the customer is never dialled"


@pytest.mark.parametrize(("behaviour", "cause", "ring"), [
    ("busy", "USER_BUSY", False),
    ("invalid", "UNALLOCATED_NUMBER", False),
    ("reject", "CALL_REJECTED", True),
    ("no_answer", "NO_ANSWER", True),
])
def test_click_to_call_customer_fails(sim: Simulator, client: Client, behaviour: str,
                                      cause: str, ring: bool) -> None:
    client.cmd("event plain CHANNEL_CREATE CHANNEL_PROGRESS CHANNEL_ANSWER CHANNEL_BRIDGE "
               "CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CHANNEL_DESTROY BACKGROUND_JOB "
               "CUSTOM sofia::register")
    register(sim, client, AgentSpec(ext="1000", answer_delay=0.5))
    sim.add_number(NumberSpec(CUSTOMER, answer=behaviour, answer_delay=1.0))
    job = click_to_call(client)
    b = customer_leg(client)["Unique-ID"]
    client.wait_event(named("CHANNEL_DESTROY", LEG), timeout=10)
    customer = [("CHANNEL_CREATE", "customer")] + ([("CHANNEL_PROGRESS", "customer")]
                                                   if ring else [])
    assert trail(client, {LEG: "agent", b: "customer"}, job) == [
        ("CHANNEL_CREATE", "agent"), ("CHANNEL_PROGRESS", "agent"), ("CHANNEL_ANSWER", "agent"),
        ("BACKGROUND_JOB", "job"), *customer,
        ("CHANNEL_HANGUP", "customer"), ("CHANNEL_HANGUP_COMPLETE", "customer"),
        ("CHANNEL_DESTROY", "customer"),
        # without continue_on_fail the bridge's failure hangs the agent's leg up with its cause
        ("CHANNEL_HANGUP", "agent"), ("CHANNEL_HANGUP_COMPLETE", "agent"),
        ("CHANNEL_DESTROY", "agent")]
    events = {(e.name, e.get("Unique-ID") or e.get("Job-UUID")): e for e in client.events()}
    assert events["BACKGROUND_JOB", job].body == f"+OK {LEG}\n"  # the agent did answer
    assert events["CHANNEL_HANGUP", b]["Hangup-Cause"] == cause
    agent_done = events["CHANNEL_HANGUP_COMPLETE", LEG]
    assert agent_done["Hangup-Cause"] == cause
    assert agent_done["variable_originate_failed_cause"] == cause
    if behaviour == "no_answer":  # the outbound context's call_timeout=60
        waited = (int(events["CHANNEL_HANGUP", b]["Event-Date-Timestamp"])
                  - int(events["CHANNEL_CREATE", b]["Event-Date-Timestamp"]))
        assert 60e6 <= waited < 65e6


@pytest.mark.parametrize(("number", "cid", "cause"), [
    (CUSTOMER, "19001234", "CALL_REJECTED"),  # outbound_cid_guard: never show a 1900 number
    (CUSTOMER, "+8418005678", "CALL_REJECTED"),
    ("00441234567890", "02873001234", "OUTGOING_CALL_BARRED"),  # not in the phone's classes
    ("12345", "02873001234", "UNALLOCATED_NUMBER"),  # outbound_unknown
])
def test_click_to_call_refused_by_the_outbound_dialplan(sim: Simulator, client: Client,
                                                        number: str, cid: str,
                                                        cause: str) -> None:
    client.cmd("event plain ALL")
    register(sim, client, AgentSpec(ext="1000", answer_delay=0.5))
    job = click_to_call(client, number=number, cid=cid)
    client.wait_event(named("CHANNEL_DESTROY", LEG))
    assert trail(client, {LEG: "agent"}, job) == [
        ("CHANNEL_CREATE", "agent"), ("CHANNEL_PROGRESS", "agent"), ("CHANNEL_ANSWER", "agent"),
        ("BACKGROUND_JOB", "job"), ("CHANNEL_HANGUP", "agent"),
        ("CHANNEL_HANGUP_COMPLETE", "agent"), ("CHANNEL_DESTROY", "agent")]
    hangup = next(e for e in client.events() if e.name == "CHANNEL_HANGUP")
    assert hangup["Hangup-Cause"] == cause and hangup["Caller-Destination-Number"] == number
    assert not [e for e in client.events() if e.name == "CHANNEL_CREATE"
                and e["Unique-ID"] != LEG], "no customer leg"


def test_click_to_call_plus84_number_and_agent_hanging_up_while_it_rings(
        sim: Simulator, client: Client) -> None:
    client.cmd("event plain CHANNEL_CREATE CHANNEL_HANGUP CHANNEL_DESTROY CHANNEL_BRIDGE "
               "CUSTOM sofia::register")
    register(sim, client, AgentSpec(ext="1000", answer_delay=0.5))
    sim.add_number(NumberSpec(CUSTOMER, answer="no_answer"))
    click_to_call(client, number="+84" + CUSTOMER[1:])
    create = customer_leg(client)
    assert create["Caller-Destination-Number"] == CUSTOMER  # outbound_e164: 0 + national
    assert client.cmd(f"api uuid_kill {LEG}") == "+OK\n"
    client.wait_event(named("CHANNEL_DESTROY", LEG))
    hangups = [(e["Unique-ID"], e["Hangup-Cause"]) for e in client.events()
               if e.name == "CHANNEL_HANGUP"]
    assert hangups == [(LEG, "NORMAL_CLEARING"), (create["Unique-ID"], "ORIGINATOR_CANCEL")]
    assert "CHANNEL_BRIDGE" not in client.events_names()
    assert sim.node.channels == {}


def test_new_legs_are_in_show_channels(sim: Simulator, client: Client) -> None:
    client.cmd("event plain CHANNEL_BRIDGE CHANNEL_EXECUTE CUSTOM sofia::register")
    register(sim, client, AgentSpec(ext="1000", answer_delay=0.5),
             AgentSpec(ext="1099", answer_delay=0.5))
    sim.add_number(NumberSpec(CUSTOMER, answer_delay=0.5, talk=None))
    click_to_call(client)
    client.wait_event(named("CHANNEL_BRIDGE", LEG))
    monitor(client, LEG)
    client.wait_event(named("CHANNEL_EXECUTE", MON))
    rows = {r["uuid"]: r for r in orjson.loads(client.cmd("api show channels as json"))["rows"]}
    assert len(rows) == 3
    agent, supervisor = rows.pop(LEG), rows.pop(MON)
    (customer,) = rows.values()
    assert (agent["application"], agent["application_data"]) == (
        "bridge", f"sofia/gateway/carrier/{CUSTOMER}")
    assert (agent["dest"], agent["context"], agent["callstate"]) == (
        CUSTOMER, "tongdai_acme_outbound", "ACTIVE")
    assert customer["name"] == f"sofia/gateway/carrier/{CUSTOMER}"
    assert (customer["direction"], customer["cid_num"], customer["dest"]) == (
        "outbound", "02873001234", CUSTOMER)
    assert (supervisor["application"], supervisor["application_data"]) == ("eavesdrop", LEG)
    calls = orjson.loads(client.cmd("api show calls as json"))
    assert calls["row_count"] == 1 and calls["rows"][0]["uuid"] == LEG
    assert calls["rows"][0]["b_uuid"] == customer["uuid"]
    assert client.cmd("api hupall") == "+OK hangup all channels with cause MANAGER_REQUEST\n"
    assert client.cmd("api show channels as json") == '{"row_count": 0}\n'


# --------------------------------------------------------------------------- monitoring


def test_monitor_eavesdrops_switches_modes_by_dtmf_and_ends_with_the_call(
        sim: Simulator, client: Client) -> None:
    client.cmd("event json ALL")
    register(sim, client, AgentSpec(ext="1000", answer_delay=0.3),
             AgentSpec(ext="1099", answer_delay=0.5))
    call = bridged_acd_call(sim, client, offer="offer-9")
    job = monitor(client, "offer-9")
    execute = client.wait_event(named("CHANNEL_EXECUTE", MON))
    assert (execute["Application"], execute["Application-Data"]) == ("eavesdrop", "offer-9")
    state = sim.monitor("mon-1")
    assert state is not None and state.active and state.target == "offer-9"
    assert (state.requested, state.mode, state.leg) == ("listen", "listen", MON)

    assert client.cmd(f"api uuid_recv_dtmf {MON} 2") == "-ERR no reply\n"  # mod_commands prints nothing
    dtmf = client.wait_event(named("DTMF", MON))
    assert (dtmf["DTMF-Digit"], dtmf["DTMF-Duration"], dtmf["DTMF-Source"]) == ("2", "2000", "APP")
    assert dtmf["Event-Calling-Function"] == "switch_channel_dequeue_dtmf"
    assert state.mode == "whisper"  # 2: the eavesdropped leg (the agent) hears the supervisor
    dtmf_job = client.cmd(f"bgapi uuid_recv_dtmf {MON} 3").split(": ", 1)[1]
    done = client.wait_event(lambda e: e.get("Job-UUID") == dtmf_job)
    assert done.body is None and done["Job-Command"] == "uuid_recv_dtmf"  # empty: no body
    client.wait_event(lambda e: e.name == "DTMF" and e["DTMF-Digit"] == "3")
    assert state.mode == "barge"  # 3: three-way
    client.cmd(f"api uuid_recv_dtmf {MON} 1@100+0")
    client.wait_event(lambda e: e.name == "DTMF" and e["DTMF-Digit"] == "0")
    digits = [(e["DTMF-Digit"], e["DTMF-Duration"]) for e in client.events() if e.name == "DTMF"]
    assert digits == [("2", "2000"), ("3", "2000"), ("1", "800"), ("0", "2000")]
    assert [(d, m) for _, d, m in state.history] == [
        ("2", "whisper"), ("3", "barge"), ("1", "whisper_partner"), ("0", "listen")]

    sim.hangup(call)  # the customer hangs up: the agent's leg goes, eavesdrop returns
    client.wait_event(named("CHANNEL_DESTROY", MON))
    assert not state.active and state.end_reason == "target_hangup"
    assert trail(client, {MON: "supervisor", "offer-9": "agent"})[-7:] == [
        ("CHANNEL_HANGUP", "agent"), ("CHANNEL_HANGUP_COMPLETE", "agent"),
        ("CHANNEL_DESTROY", "agent"),
        ("CHANNEL_EXECUTE_COMPLETE", "supervisor"), ("CHANNEL_HANGUP", "supervisor"),
        ("CHANNEL_HANGUP_COMPLETE", "supervisor"), ("CHANNEL_DESTROY", "supervisor")]
    sup = trail(client, {MON: "supervisor"}, job)
    assert sup == [
        ("CHANNEL_CREATE", "supervisor"), ("CHANNEL_PROGRESS", "supervisor"),
        ("CHANNEL_ANSWER", "supervisor"), ("BACKGROUND_JOB", "job"),
        ("CHANNEL_EXECUTE", "supervisor"), ("DTMF", "supervisor"), ("DTMF", "supervisor"),
        ("DTMF", "supervisor"), ("DTMF", "supervisor"),
        ("CHANNEL_EXECUTE_COMPLETE", "supervisor"), ("CHANNEL_HANGUP", "supervisor"),
        ("CHANNEL_HANGUP_COMPLETE", "supervisor"), ("CHANNEL_DESTROY", "supervisor")]
    complete = next(e for e in client.events() if e.name == "CHANNEL_EXECUTE_COMPLETE")
    assert complete["Application-UUID"] == execute["Application-UUID"]
    assert next(e for e in client.events() if e.name == "CHANNEL_HANGUP"
                and e["Unique-ID"] == MON)["Hangup-Cause"] == "NORMAL_CLEARING"
    for frame in client.frames:  # the new events encode like the real JSON events
        if frame.content_type == EVENT_JSON:
            event = parse_event(frame)
            assert encode_event_json(event, event.body) == encode_frame(frame.headers, frame.body)


@pytest.mark.parametrize(("aleg", "bleg", "mode"), [
    (False, False, "listen"),
    (False, True, "whisper"),  # eavesdrop_whisper_bleg: mixed into what the target hears
    (True, True, "barge"),
    (True, False, "whisper_partner"),  # eavesdrop_whisper_aleg: the target's partner hears
])
def test_monitor_initial_mode_follows_the_whisper_variables(sim: Simulator, client: Client,
                                                            aleg: bool, bleg: bool,
                                                            mode: str) -> None:
    client.cmd("event plain CHANNEL_PARK CHANNEL_BRIDGE CHANNEL_EXECUTE CUSTOM sofia::register")
    register(sim, client, AgentSpec(ext="1000", answer_delay=0.3),
             AgentSpec(ext="1099", answer_delay=0.3))
    bridged_acd_call(sim, client)
    monitor(client, "offer-9", aleg=aleg, bleg=bleg)
    client.wait_event(named("CHANNEL_EXECUTE", MON))
    state = sim.monitor(MON)
    assert state is not None and state.mode == mode and state.dtmf


def test_eavesdrop_on_a_missing_leg_returns_at_once(sim: Simulator, client: Client) -> None:
    client.cmd("event plain ALL")
    register(sim, client, AgentSpec(ext="1099", answer_delay=0.5))
    job = monitor(client, "no-such-leg")
    client.wait_event(named("CHANNEL_DESTROY", MON))
    assert trail(client, {MON: "supervisor"}, job) == [
        ("CHANNEL_CREATE", "supervisor"), ("CHANNEL_PROGRESS", "supervisor"),
        ("CHANNEL_ANSWER", "supervisor"), ("BACKGROUND_JOB", "job"),
        ("CHANNEL_EXECUTE", "supervisor"), ("CHANNEL_EXECUTE_COMPLETE", "supervisor"),
        ("CHANNEL_HANGUP", "supervisor"), ("CHANNEL_HANGUP_COMPLETE", "supervisor"),
        ("CHANNEL_DESTROY", "supervisor")]
    events = {(e.name, e.get("Unique-ID") or e.get("Job-UUID")): e for e in client.events()}
    assert events["BACKGROUND_JOB", job].body == f"+OK {MON}\n"  # the phone answered
    assert events["CHANNEL_EXECUTE_COMPLETE", MON]["Application-Data"] == "no-such-leg"
    assert events["CHANNEL_EXECUTE_COMPLETE", MON]["Application-Response"] == "_none_"
    assert events["CHANNEL_HANGUP", MON]["Hangup-Cause"] == "NORMAL_CLEARING"
    state = sim.monitor("mon-1")
    assert state is not None and not state.active and state.end_reason == "no_such_channel"


def test_monitor_star_key_and_supervisor_hangup(sim: Simulator, client: Client) -> None:
    client.cmd("event plain ALL")
    register(sim, client, AgentSpec(ext="1000", answer_delay=0.3),
             AgentSpec(ext="1099", answer_delay=0.3), AgentSpec(ext="1098", answer_delay=0.3))
    call = bridged_acd_call(sim, client)
    monitor(client, "offer-9")
    client.wait_event(named("CHANNEL_EXECUTE", MON))
    client.cmd(f"api uuid_recv_dtmf {MON} *")  # * leaves eavesdrop: the call goes on
    client.wait_event(named("CHANNEL_DESTROY", MON))
    state = sim.monitor(MON)
    assert state is not None and state.end_reason == "dtmf"
    assert [n for n, _ in trail(client, {MON: "s"})][-5:] == [
        "DTMF", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE",
        "CHANNEL_DESTROY"]
    assert call in sim.node.channels and "offer-9" in sim.node.channels

    other = "5b7c1e2d-3f4a-4b6c-8d9e-0f1a2b3c4d5e"
    monitor(client, "offer-9", ext="1098", leg=other, dtmf=False)
    client.wait_event(named("CHANNEL_EXECUTE", other))
    client.cmd(f"api uuid_recv_dtmf {other} 3")  # keys off: nothing reads the digit
    assert client.cmd(f"api uuid_kill {other}") == "+OK\n"  # the supervisor hangs up
    client.wait_event(named("CHANNEL_DESTROY", other))
    assert [n for n, _ in trail(client, {other: "s"})][-5:] == [
        "CHANNEL_EXECUTE", "CHANNEL_HANGUP", "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"]
    second = sim.monitor(other)
    assert second is not None and second.mode == "listen" and second.end_reason == "hangup"
    assert call in sim.node.channels  # the monitored call is untouched


# --------------------------------------------------------------------------- uuid_recv_dtmf


def test_uuid_recv_dtmf_replies_like_mod_commands(sim: Simulator, client: Client) -> None:
    client.cmd("event plain DTMF BACKGROUND_JOB CHANNEL_PARK")
    missing = "00000000-0000-0000-0000-000000000000"
    assert client.cmd(f"api uuid_recv_dtmf {missing} 1") == "-ERR Cannot locate session!\n"
    assert client.cmd("api uuid_recv_dtmf") == "-USAGE: <uuid> <dtmf_data>\n"
    assert client.cmd(f"api uuid_recv_dtmf {missing}") == "-USAGE: <uuid> <dtmf_data>\n"
    job = client.cmd(f"bgapi uuid_recv_dtmf {missing} 1").split(": ", 1)[1]
    done = client.wait_event(lambda e: e.get("Job-UUID") == job)
    assert done.body == "-ERR Cannot locate session!\n"
    assert done["Job-Command-Arg"] == f"{missing} 1"
    # A parked caller pressing keys: DTMF events on its leg, one per frame read.
    uid = sim.place_call(caller())
    client.wait_event(named("CHANNEL_PARK", uid))
    assert client.cmd(f"api uuid_recv_dtmf {uid} 12#") == "-ERR no reply\n"
    client.wait_event(lambda e: e.name == "DTMF" and e["DTMF-Digit"] == "#")
    dtmf = [e for e in client.events() if e.name == "DTMF"]
    assert [e["DTMF-Digit"] for e in dtmf] == ["1", "2", "#"]
    assert all(e["Unique-ID"] == uid and e["Caller-Caller-ID-Number"] == "0903123456"
               and e["variable_tongdai_queue"] == "support" for e in dtmf)
    gaps = [int(b["Event-Date-Timestamp"]) - int(a["Event-Date-Timestamp"])
            for a, b in zip(dtmf, dtmf[1:])]
    assert all(g >= 20_000 for g in gaps)


def test_parse_dtmf_like_switch_channel_queue_dtmf_string() -> None:
    assert parse_dtmf("12") == [("1", 2000), ("2", 2000)]
    assert parse_dtmf("~1@100+2@10+#@99999") == [("1", 800), ("2", 2000), ("#", 192000)]
    assert parse_dtmf("1x 2") == [("1", 2000), ("2", 2000)]
    assert parse_dtmf("") == []


def test_scenario_numbers() -> None:
    scenario = Scenario.parse({"numbers": [
        {"number": CUSTOMER, "answer": "busy"},
        {"number": "0987654321", "answer_delay": 3, "talk": None, "hangup_by": "agent"}]})
    assert scenario.numbers == [NumberSpec(CUSTOMER, answer="busy"),
                                NumberSpec("0987654321", answer_delay=3.0, talk=None,
                                           hangup_by="agent")]
    with pytest.raises(ValueError, match=re.escape("numbers[0].answer")):
        Scenario.parse({"numbers": [{"number": "1", "answer": "maybe"}]})
    with pytest.raises(ValueError, match=re.escape("numbers[0].number: required")):
        Scenario.parse({"numbers": [{"answer": "busy"}]})
