"""The simulated FreeSWITCH node on a manual clock: exact timelines, races, invariants."""

from __future__ import annotations

import collections

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esl_bridge.protocol import Event
from esl_bridge.simulator import AgentSpec, CallerSpec, IvrSpec, ManualClock, Node
from esl_bridge.simulator.syntax import parse_broadcast, playback_seconds

pytestmark = pytest.mark.bridge

DOMAIN = "127.0.0.1"


class Tap:
    def __init__(self, node: Node) -> None:
        self.events: list[Event] = []
        node.listeners.append(self.events.append)

    def of(self, uid: str) -> list[str]:
        return [e.name for e in self.events if e.get("Unique-ID") == uid]

    def first(self, name: str, uid: str | None = None) -> Event:
        return next(e for e in self.events
                    if e.name == name and (uid is None or e.get("Unique-ID") == uid))

    def at(self, name: str, uid: str | None = None) -> int:
        return int(self.first(name, uid)["Event-Date-Timestamp"])


def make_node(**kw: object) -> tuple[Node, Tap]:
    node = Node(clock=ManualClock(), seed=1, heartbeat=None, **kw)  # type: ignore[arg-type]
    tap = Tap(node)
    node.start()
    return node, tap


def originate(node: Node, ext: str, offer: str, **variables: str) -> list[str]:
    results: list[str] = []
    extra = "".join(f",{k}={v}" for k, v in variables.items())
    node.originate(f"{{origination_uuid={offer},origination_caller_id_number=0903123456"
                   f"{extra}}}user/{ext}@{DOMAIN} &park()", results.append)
    return results


def test_exact_timeline_of_a_queue_call() -> None:
    node, tap = make_node()
    node.add_agent(AgentSpec(ext="1000", answer_delay=1.5))
    node.advance(0)
    t0 = node.clock.now_us()
    call = node.place_call(CallerSpec(number="0903123456", did="19001234", answer_delay=0.1,
                                      ivr=IvrSpec(choice="1", after=2.0,
                                                  variables={"tongdai_queue": "sales"}),
                                      talk=30.0))
    node.advance(5)
    assert tap.at("CHANNEL_CREATE", call) == t0
    assert tap.at("CHANNEL_ANSWER", call) == t0 + 100_000
    assert tap.at("CUSTOM tongdai::ivr", call) == t0 + 2_100_000
    assert tap.at("CHANNEL_PARK", call) == t0 + 2_100_000
    results = originate(node, "1000", "offer-1")
    t1 = node.clock.now_us()
    node.advance(1.49)
    assert results == []
    node.advance(0.01)
    assert tap.at("CHANNEL_ANSWER", "offer-1") == t1 + 1_500_000
    assert results == []  # the originate completes answer_to_park (20 ms) after the answer
    node.advance(0.02)
    assert results == ["+OK offer-1\n"]
    assert tap.at("CHANNEL_PARK", "offer-1") == t1 + 1_520_000
    assert node.uuid_bridge(call, "offer-1") == "+OK offer-1\n"
    node.advance(30)
    assert call not in node.channels and "offer-1" not in node.channels
    # Caller: created t0, answered t0+0.1, bridged t0+6.52, hung up t0+36.52 (talk 30 s).
    complete = tap.first("CHANNEL_HANGUP_COMPLETE", call)
    assert complete["variable_billusec"] == "36420000"
    assert complete["variable_billsec"] == "36"  # whole epoch seconds, as FreeSWITCH counts
    assert complete["variable_waitusec"] == "6520000"
    assert complete["variable_uduration"] == "36520000"
    assert complete["variable_duration"] == "36"
    agent_complete = tap.first("CHANNEL_HANGUP_COMPLETE", "offer-1")
    assert int(agent_complete["variable_billusec"]) == 30_020_000  # answered 20 ms before the bridge


@pytest.mark.parametrize(("lost_rate", "bridged"), [(0.0, True), (1.0, False)])
def test_bridge_on_answer_races_the_originate(lost_rate: float, bridged: bool) -> None:
    node, tap = make_node(lost_bridge_rate=lost_rate)
    node.add_agent(AgentSpec(ext="1000", answer_delay=1.0))
    call = node.place_call(CallerSpec(number="1", did="2"))
    node.advance(0.5)
    results = originate(node, "1000", "o")
    node.advance(1.0)  # CHANNEL_ANSWER of the agent leg, originate not finished yet
    assert tap.of("o")[-1] == "CHANNEL_ANSWER" and results == []
    assert node.uuid_bridge(call, "o") == "+OK o\n"  # +OK either way
    assert results == ["-ERR ORIGINATOR_CANCEL\n"]
    node.advance(1)
    assert ("CHANNEL_BRIDGE" in tap.of(call)) is bridged
    assert "CHANNEL_PARK" not in tap.of("o")
    if not bridged:  # both legs stranded until someone acts: confirm bridges by CHANNEL_BRIDGE
        assert call in node.channels and "o" in node.channels
        assert node.uuid_bridge(call, "o") == "+OK o\n"  # a retry after the race works
        assert "CHANNEL_BRIDGE" in tap.of(call)


def test_caller_abandons_while_agent_rings_then_offer_is_killed() -> None:
    node, tap = make_node()
    node.add_agent(AgentSpec(ext="1000", answer_delay=10))
    call = node.place_call(CallerSpec(number="1", did="2", patience=3))
    node.advance(1)
    results = originate(node, "1000", "offer-1")
    node.advance(2.5)  # patience runs out while the agent's phone rings
    assert tap.of(call)[-1] == "CHANNEL_DESTROY"
    assert node.uuid_bridge(call, "offer-1") == "-ERR No such channel!\n"
    assert node.hangup("offer-1", "ORIGINATOR_CANCEL", disposition="send_cancel")
    assert results == ["-ERR ORIGINATOR_CANCEL\n"]
    assert tap.of("offer-1") == ["CHANNEL_CREATE", "CHANNEL_PROGRESS", "CHANNEL_HANGUP",
                                 "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"]
    node.advance(20)
    assert results == ["-ERR ORIGINATOR_CANCEL\n"]  # the job finished once
    assert not node.channels
    assert node.agents[f"1000@{DOMAIN}"].legs == set()


def test_caller_hangs_up_just_after_the_agent_answers() -> None:
    node, tap = make_node()
    node.add_agent(AgentSpec(ext="1000", answer_delay=2))
    call = node.place_call(CallerSpec(number="1", did="2", patience=3))
    node.advance(1)
    results = originate(node, "1000", "offer-1")
    node.advance(2.01)  # agent answers at t=3.0, the caller's patience ends at t=3.02
    assert call in node.channels and results == []
    node.advance(0.02)  # t=3.02: the originate completes and the caller hangs up
    assert results == ["+OK offer-1\n"]
    assert call not in node.channels
    assert node.uuid_bridge(call, "offer-1") == "-ERR No such channel!\n"
    assert "offer-1" in node.channels  # the agent leg is parked, the router must kill it
    assert node.hangup("offer-1")
    assert not node.hangup("offer-1")


def test_agent_busy_while_on_a_call() -> None:
    node, _ = make_node()
    node.add_agent(AgentSpec(ext="1000", answer_delay=0.5))
    node.advance(0)
    first = originate(node, "1000", "a")
    second = originate(node, "1000", "b")
    node.advance(1)
    assert first == ["+OK a\n"] and second == ["-ERR USER_BUSY\n"]


def test_unregistered_and_expired_agents() -> None:
    node, tap = make_node(unregistered_cause="SUBSCRIBER_ABSENT")
    node.add_agent(AgentSpec(ext="1000", expire_at=5))
    node.advance(6)
    assert tap.first("CUSTOM sofia::expire")["user"] == "1000"
    assert originate(node, "1000", "x") == ["-ERR SUBSCRIBER_ABSENT\n"]


def test_transfer_while_bridged_hangs_up_the_agent_and_reparks() -> None:
    node, tap = make_node()
    node.set_did("19005555", {"tongdai_queue": "billing"})
    node.add_agent(AgentSpec(ext="1000", answer_delay=0.5))
    call = node.place_call(CallerSpec(number="1", did="2", variables={"tongdai_queue": "a"}))
    node.advance(1)
    originate(node, "1000", "offer-1")
    node.advance(1)
    node.uuid_bridge(call, "offer-1")
    assert node.uuid_transfer(call, "19005555") == "+OK\n"
    assert tap.of(call)[-2:] == ["CHANNEL_UNBRIDGE", "CHANNEL_PARK"]
    assert tap.of("offer-1")[-1] == "CHANNEL_DESTROY"
    park = [e for e in tap.events if e.name == "CHANNEL_PARK" and e["Unique-ID"] == call][-1]
    assert park["variable_tongdai_queue"] == "billing"
    assert park["Caller-Destination-Number"] == "19005555"


def test_hold_and_recording_show_in_the_cdr() -> None:
    node, tap = make_node()
    node.add_agent(AgentSpec(ext="1000", answer_delay=0.5))
    call = node.place_call(CallerSpec(number="1", did="2"))
    node.advance(1)
    originate(node, "1000", "o")
    node.advance(1)
    node.uuid_bridge(call, "o")
    assert node.uuid_record(call, "start", "/rec/a.wav") == "+OK Success\n"
    node.advance(10)
    assert node.uuid_hold(call) == "+OK Success\n"
    assert tap.first("CHANNEL_HOLD", call)["Channel-Call-State"] == "HELD"
    node.advance(15)
    assert node.uuid_hold(call, "toggle") == "+OK Success\n"
    assert tap.first("CHANNEL_UNHOLD", call)["Caller-Channel-Hold-Accum"] == "15000000"
    node.advance(5)
    assert node.uuid_hold(call) == "+OK Success\n"
    node.advance(2)
    node.hangup(call)
    complete = tap.first("CHANNEL_HANGUP_COMPLETE", call)
    assert complete["variable_hold_accum_seconds"] == "17"
    assert complete["variable_hold_accum_usec"] == "17000000"
    assert complete["variable_record_seconds"] == "32"
    assert tap.first("RECORD_STOP", call)["Record-File-Path"] == "/rec/a.wav"
    names = tap.of(call)
    assert names.index("RECORD_STOP") < names.index("CHANNEL_HANGUP_COMPLETE")
    assert node.uuid_hold("nope") == "-ERR No such channel!\n"


def test_forward_to_a_mobile_behind_a_gateway() -> None:
    node, tap = make_node(external_answer_delay=6.0)
    node.add_agent(AgentSpec(ext="0912000111", gateway="viettel", answer="no_answer"))
    node.advance(0)
    assert not [e for e in tap.events if e.name.startswith("CUSTOM sofia::")]
    results: list[str] = []
    node.originate("{origination_uuid=m1,originate_timeout=20}sofia/gateway/viettel/0912000111"
                   " &park()", results.append)
    node.originate("{origination_uuid=m2}sofia/gateway/viettel/0988777666 &park()",
                   results.append)
    node.advance(5.9)
    assert results == []
    node.advance(0.2)
    assert results == ["+OK m2\n"]  # unknown numbers answer after external_answer_delay
    assert tap.first("CHANNEL_ANSWER", "m2")["Channel-Name"] == "sofia/gateway/viettel/0988777666"
    node.advance(20)
    assert results[1] == "-ERR NO_ANSWER\n"


def test_intercept_bridges_on_answer() -> None:
    node, tap = make_node()
    node.add_agent(AgentSpec(ext="1000", answer_delay=0.5))
    call = node.place_call(CallerSpec(number="1", did="2"))
    node.advance(1)
    results: list[str] = []
    node.originate(f"{{origination_uuid=o}}user/1000@{DOMAIN} &intercept({call})",
                   results.append)
    node.advance(1)
    assert results == ["+OK o\n"]
    bridge = tap.first("CHANNEL_BRIDGE")
    assert bridge["Bridge-A-Unique-ID"] == call and bridge["Bridge-B-Unique-ID"] == "o"


def test_full_fidelity_counts_like_a_real_parked_call() -> None:
    node, tap = make_node(fidelity="full")
    call = node.place_call(CallerSpec(number="1", did="2", patience=5,
                                      variables={"tongdai_tenant": "acme",
                                                 "tongdai_queue": "support"}))
    node.advance(10)
    # A real switch sends about 30 events for a parked-only call under ALL
    # (tests/fixtures/esl/README.md), some (CODEC, PRESENCE_IN, ...) not modelled here.
    assert 20 <= len(tap.of(call)) <= 35
    assert tap.of(call)[-2:] == ["CHANNEL_DESTROY", "CHANNEL_STATE"]


# --------------------------------------------------------------------------- uuid_broadcast

@pytest.mark.parametrize(("path", "app", "arg", "cause"), [
    ("/tmp/x.wav", "playback", "/tmp/x.wav", None),
    ("file_string://a.wav!b.wav", "playback", "file_string://a.wav!b.wav", None),
    ("playback!NORMAL_CLEARING::file_string://a.wav!b.wav", "playback",
     "file_string://a.wav!b.wav", "NORMAL_CLEARING"),
    ("playback!::a.wav", "playback", "a.wav", "NORMAL_CLEARING"),
    ("playback!user_busy::a.wav", "playback", "a.wav", "user_busy"),
    ("speak::flite|kal|hello", "speak", "flite|kal|hello", None),
])
def test_broadcast_paths_read_as_switch_ivr_broadcast_reads_them(
        path: str, app: str, arg: str, cause: str | None) -> None:
    assert parse_broadcast(path) == (app, arg, cause)


@pytest.mark.parametrize(("arg", "seconds"), [
    ("a.wav", 2.0),
    ("file_string://a.wav!b.wav!c.wav", 6.0),
    ("silence_stream://1500", 1.5),
    ("file_string://a.wav!silence_stream://500", 2.5),
    ("silence_stream://-1", None),
    ("local_stream://moh", None),
    ("file_string://a.wav!${tongdai_waiting_music}", None),  # the music: until stopped
    ("file_string://a.wav!${short}", 2.25),
])
def test_how_long_a_playback_lasts(arg: str, seconds: float | None) -> None:
    assert playback_seconds(arg, 2.0, {"short": "silence_stream://250"}) == seconds


def api(node: Node, command: str, arg: str) -> str:
    """An api command's reply (these answer at once)."""
    replies: list[str] = []
    node.execute(command, arg, replies.append)
    (reply,) = replies
    return reply


def parked_caller(**kw: object) -> tuple[Node, Tap, str]:
    node, tap = make_node(**kw)
    call = node.place_call(CallerSpec(number="0903123456", did="19001234"))
    node.advance(1)
    assert tap.of(call)[-1] == "CHANNEL_PARK"
    return node, tap, call


def test_a_broadcast_with_a_cause_hangs_the_caller_up_once_played() -> None:
    """``playback!NORMAL_CLEARING::<file>`` (switch_ivr_broadcast): the switch plays the
    prompt, then runs ``hangup NORMAL_CLEARING`` on the leg: its BYE, not the caller's."""
    node, tap, call = parked_caller(fidelity="full", prompt_file_s=1.5)
    t0 = node.clock.now_us()
    assert api(node, "uuid_broadcast", f"{call} playback!NORMAL_CLEARING::"
                             "file_string://tongdai/callback/vi/confirmed.wav!"
                             "tongdai/callback/en/confirmed.wav aleg") == "+OK Message sent\n"
    node.advance(2.99)
    assert call in node.channels  # the two files play for 3 s
    node.advance(0.01)
    assert call not in node.channels
    hangup = tap.first("CHANNEL_HANGUP", call)
    assert int(hangup["Event-Date-Timestamp"]) == t0 + 3_000_000
    complete = tap.first("CHANNEL_HANGUP_COMPLETE", call)
    assert complete["Hangup-Cause"] == "NORMAL_CLEARING"
    assert complete["variable_sip_hangup_disposition"] == "send_bye"  # the switch hung up
    assert complete["variable_last_app"] == "hangup"
    apps = [(e.name, e["Application"], e["Application-Data"]) for e in tap.events
            if e.get("Unique-ID") == call and e.name.startswith("CHANNEL_EXECUTE")
            and int(e["Event-Date-Timestamp"]) >= t0]
    played = "file_string://tongdai/callback/vi/confirmed.wav!tongdai/callback/en/confirmed.wav"
    assert apps == [("CHANNEL_EXECUTE", "playback", played),
                    ("CHANNEL_EXECUTE_COMPLETE", "playback", played),
                    ("CHANNEL_EXECUTE", "hangup", "NORMAL_CLEARING")]


def test_a_broadcast_without_a_cause_leaves_the_caller_up() -> None:
    node, tap, call = parked_caller()
    assert api(node, "uuid_broadcast", f"{call} file_string://a.wav!b.wav aleg") \
        == "+OK Message sent\n"
    node.advance(60)
    assert call in node.channels and "CHANNEL_HANGUP" not in tap.of(call)


def test_a_broadcast_queued_behind_the_music_runs_when_a_break_stops_it() -> None:
    """The router's way: the waiting music never ends by itself, so the prompt that hangs
    up follows a uuid_break (which stops what plays, a frame later); without the break it
    would wait behind the music."""
    node, tap, call = parked_caller()
    api(node, "uuid_broadcast", f"{call} file_string://a.wav!${{tongdai_waiting_music}}"
                      " aleg")
    api(node, "uuid_broadcast", f"{call} playback!NORMAL_CLEARING::bye.wav aleg")
    node.advance(60)
    assert call in node.channels  # still behind the music
    t0 = node.clock.now_us()
    assert api(node, "uuid_break", call) == "+OK\n"
    node.advance(2.0)
    assert call in node.channels  # the music stops at the next frame, then bye.wav plays
    node.advance(0.02)
    assert call not in node.channels
    assert tap.at("CHANNEL_HANGUP", call) == t0 + 2_020_000


def test_breaking_a_prompt_that_hangs_up_hangs_up_at_once_unless_all() -> None:
    node, tap, call = parked_caller()
    api(node, "uuid_broadcast", f"{call} playback!USER_BUSY::bye.wav aleg")
    node.advance(0.5)
    api(node, "uuid_break", call)
    node.advance(0.02)
    assert tap.first("CHANNEL_HANGUP_COMPLETE", call)["Hangup-Cause"] == "USER_BUSY"

    node, tap, call = parked_caller()
    api(node, "uuid_broadcast", f"{call} playback!NORMAL_CLEARING::bye.wav aleg")
    node.advance(0.5)
    api(node, "uuid_break", f"{call} all")  # flushes the queued hangup
    node.advance(60)
    assert call in node.channels


def test_a_bridge_stops_the_music_but_a_queued_hangup_still_runs() -> None:
    """switch_ivr_uuid_bridge stops what either leg's broadcast plays; what was queued
    after it (a prompt, its hangup) runs in the bridge."""
    node, tap, call = parked_caller()
    node.add_agent(AgentSpec(ext="1000", answer_delay=1.0))
    node.advance(0)
    results = originate(node, "1000", "o")
    api(node, "uuid_broadcast", f"{call} local_stream://moh aleg")
    api(node, "uuid_broadcast", f"{call} playback!NORMAL_CLEARING::bye.wav aleg")
    node.advance(1.1)
    assert results == ["+OK o\n"]
    t0 = node.clock.now_us()
    assert node.uuid_bridge(call, "o") == "+OK o\n"
    node.advance(2.0)
    assert call in node.channels and "CHANNEL_BRIDGE" in tap.of(call)
    node.advance(0.02)  # the music stopped a frame after the bridge, bye.wav played 2 s
    assert call not in node.channels and "o" not in node.channels
    assert tap.at("CHANNEL_HANGUP", call) == t0 + 2_020_000


def test_an_unknown_leg_is_refused_as_mod_commands_does() -> None:
    node, _, _ = parked_caller()
    assert api(node, "uuid_broadcast", "nope a.wav aleg") == "-ERR invalid uuid\n"
    assert api(node, "uuid_broadcast", "nope") == \
        "-USAGE: <uuid> <path> [aleg|bleg|holdb|both]\n"
    assert api(node, "uuid_break", "nope") == "-ERR No such channel!\n"


# --------------------------------------------------------------------------- random races

OPS = st.lists(st.one_of(
    st.tuples(st.just("call"), st.floats(0.5, 20), st.one_of(st.none(), st.floats(0.5, 20))),
    st.tuples(st.just("originate"), st.integers(0, 3), st.integers(0, 20)),
    st.tuples(st.just("bridge"), st.integers(0, 20), st.integers(0, 20)),
    st.tuples(st.just("kill"), st.integers(0, 20)),
    st.tuples(st.just("transfer"), st.integers(0, 20)),
    st.tuples(st.just("unregister"), st.integers(0, 3)),
    st.tuples(st.just("register"), st.integers(0, 3)),
    st.tuples(st.just("advance"), st.floats(0, 5)),
    st.tuples(st.just("hold"), st.integers(0, 20), st.sampled_from(["on", "off", "toggle"])),
    st.tuples(st.just("record"), st.integers(0, 20), st.sampled_from(["start", "stop"])),
    st.tuples(st.just("broadcast"), st.integers(0, 20),
              st.sampled_from(["a.wav", "local_stream://moh", "playback!NORMAL_CLEARING::a.wav",
                               "playback!USER_BUSY::silence_stream://300"]),
              st.sampled_from(["aleg", "bleg", "both", ""])),
    st.tuples(st.just("break"), st.integers(0, 20), st.booleans()),
), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS, st.sampled_from(["core", "full"]))
def test_random_command_sequences_keep_the_node_consistent(
        ops: list[tuple], fidelity: str) -> None:
    node, tap = make_node(fidelity=fidelity, lost_bridge_rate=0.5)
    behaviours = ["answer", "no_answer", "busy", "reject"]
    for i, behaviour in enumerate(behaviours):
        node.add_agent(AgentSpec(ext=str(1000 + i), answer=behaviour, answer_delay=1.0))
    node.advance(0)
    uids: list[str] = []
    jobs: list[list[str]] = []
    for op in ops:
        kind = op[0]
        if kind == "call":
            uids.append(node.place_call(CallerSpec(number="1", did="2", patience=op[1],
                                                   talk=op[2])))
        elif kind == "originate":
            uid = f"offer-{len(jobs)}"
            jobs.append(originate(node, str(1000 + op[1]), uid, originate_timeout="5"))
            uids.append(uid)
        elif kind == "bridge" and uids:
            node.uuid_bridge(uids[op[1] % len(uids)], uids[op[2] % len(uids)])
        elif kind == "kill" and uids:
            node.hangup(uids[op[1] % len(uids)])
        elif kind == "transfer" and uids:
            node.uuid_transfer(uids[op[1] % len(uids)], "19005555")
        elif kind == "unregister":
            node.unregister(f"{1000 + op[1]}@{DOMAIN}")
        elif kind == "register":
            node.register(f"{1000 + op[1]}@{DOMAIN}")
        elif kind == "advance":
            node.advance(op[1])
        elif kind == "hold" and uids:
            node.uuid_hold(uids[op[1] % len(uids)], op[2])
        elif kind == "record" and uids:
            node.uuid_record(uids[op[1] % len(uids)], op[2], "/rec/x.wav")
        elif kind == "broadcast" and uids:
            node.execute("uuid_broadcast", f"{uids[op[1] % len(uids)]} {op[2]} {op[3]}",
                         lambda body: None)
        elif kind == "break" and uids:
            node.execute("uuid_break", uids[op[1] % len(uids)] + (" all" if op[2] else ""),
                         lambda body: None)
    node.advance(60)
    for uid in list(node.channels):
        node.hangup(uid)
    node.advance(60)

    assert node.errors == []
    assert not node.channels
    assert all(len(j) == 1 for j in jobs), jobs  # every originate answered exactly once
    seqs = [int(e["Event-Sequence"]) for e in tap.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    by_uid: dict[str, list[str]] = collections.defaultdict(list)
    for e in tap.events:
        if e.get("Unique-ID"):
            by_uid[e["Unique-ID"]].append(e.name)
    for uid, names in by_uid.items():
        core = [n for n in names if n not in ("CHANNEL_STATE", "CHANNEL_CALLSTATE",
                                               "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE")]
        assert core[0] == "CHANNEL_CREATE" and core[-1] == "CHANNEL_DESTROY", (uid, core)
        for once in ("CHANNEL_CREATE", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE",
                     "CHANNEL_DESTROY"):
            assert core.count(once) == 1, (uid, core)
        assert core.index("CHANNEL_HANGUP") < core.index("CHANNEL_HANGUP_COMPLETE")
        assert core.count("CHANNEL_ANSWER") <= 1
        assert core.count("CHANNEL_BRIDGE") == core.count("CHANNEL_UNBRIDGE"), (uid, core)
        assert core.count("RECORD_START") == core.count("RECORD_STOP"), (uid, core)
        assert core.count("CHANNEL_HOLD") - core.count("CHANNEL_UNHOLD") in (0, 1)
    for e in tap.events:
        if e.name in ("CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE"):
            assert e["Unique-ID"] == e["Bridge-A-Unique-ID"]
    for agent in node.agents.values():
        assert agent.legs == set()
    for e in tap.events:
        if e.name == "CHANNEL_HANGUP_COMPLETE":
            assert int(e["variable_hold_accum_usec"]) <= int(e["variable_uduration"])
