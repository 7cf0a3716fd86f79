"""One simulated FreeSWITCH node: channels, registrations, api commands and the events they fire.

Headers are modelled on the real captures in ``tests/fixtures/esl`` (same names, same order
style, same Event-Calling-* triples). Everything runs under ``Node.lock``: scheduled callbacks
(on the scheduler thread) and commands (on client threads) never interleave.
"""

from __future__ import annotations

import itertools
import logging
import random
import re
import threading
import time
import uuid as uuid_mod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import orjson

from esl_bridge.protocol import Event, url_encode

from . import dptools
from .clock import Scheduler, SimClock, Timer
from .model import AgentSpec, CallerSpec, NumberSpec

log = logging.getLogger(__name__)

Pairs = list[tuple[str, str]]
Done = Callable[[str], None]

VERSION = "1.11.3-dev+git~20260821T141014Z~cc93a683ca~64bit"

#: (file, function, line) FreeSWITCH stamps on each event type, from the captures.
CALLING: dict[str, tuple[str, str, int]] = {
    "API": ("switch_loadable_module.c", "switch_api_execute", 3140),
    "BACKGROUND_JOB": ("mod_event_socket.c", "api_exec", 1580),
    "CALL_UPDATE": ("switch_channel.c", "switch_channel_flip_cid", 3279),
    "CHANNEL_ANSWER": ("switch_channel.c", "switch_channel_perform_mark_answered", 3848),
    "CHANNEL_BRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", 1689),
    "CHANNEL_CALLSTATE": ("switch_channel.c", "switch_channel_perform_set_callstate", 302),
    "CHANNEL_CREATE": ("switch_core_state_machine.c", "switch_core_session_run", 626),
    "CHANNEL_DATA": ("mod_commands.c", "uuid_dump_function", 6495),
    "CHANNEL_DESTROY": ("switch_core_session.c", "switch_core_session_perform_destroy", 1588),
    "CHANNEL_EXECUTE": ("switch_core_session.c", "switch_core_session_exec", 2949),
    "CHANNEL_EXECUTE_COMPLETE": ("switch_core_session.c", "switch_core_session_exec", 2972),
    "CHANNEL_HANGUP": ("switch_channel.c", "switch_channel_perform_hangup", 3447),
    "CHANNEL_HANGUP_COMPLETE": ("switch_core_state_machine.c",
                                "switch_core_session_reporting_state", 943),
    "CHANNEL_ORIGINATE": ("switch_core_state_machine.c", "switch_core_session_run", 632),
    "CHANNEL_PARK": ("switch_ivr.c", "switch_ivr_park", 1002),
    "CHANNEL_PROGRESS": ("switch_channel.c", "switch_channel_perform_mark_ring_ready_value", 3507),
    "CHANNEL_UNBRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", 1879),
    "CHANNEL_UNPARK": ("switch_ivr.c", "switch_ivr_park", 1213),
    "CHANNEL_HOLD": ("switch_channel.c", "switch_channel_perform_mark_hold", 1217),
    "CHANNEL_UNHOLD": ("switch_channel.c", "switch_channel_perform_mark_hold", 1217),
    # Not in the captures: the function that fires it (FreeSWITCH master), line approximate.
    "DTMF": ("switch_channel.c", "switch_channel_dequeue_dtmf", 574),
    "RECORD_START": ("switch_ivr_async.c", "record_callback", 1265),
    "RECORD_STOP": ("switch_ivr_async.c", "record_callback", 1440),
    "HEARTBEAT": ("switch_core.c", "send_heartbeat", 95),
    "sofia::register": ("sofia_reg.c", "sofia_reg_handle_register_token", 2059),
    "sofia::unregister": ("sofia_reg.c", "sofia_reg_handle_register_token", 1873),
    "sofia::expire": ("sofia_reg.c", "sofia_reg_del_callback", 667),
    "tongdai::ivr": ("mod_dptools.c", "event_function", 1340),
}

#: hangup cause → Q.850 code, as FreeSWITCH's variable_hangup_cause_q850 prints it.
Q850 = {
    "NORMAL_CLEARING": 16, "USER_BUSY": 17, "NO_USER_RESPONSE": 18, "NO_ANSWER": 19,
    "SUBSCRIBER_ABSENT": 20, "CALL_REJECTED": 21, "NORMAL_UNSPECIFIED": 31,
    "ORIGINATOR_CANCEL": 487, "USER_NOT_REGISTERED": 606, "ALLOTTED_TIMEOUT": 602,
    "MANAGER_REQUEST": 503, "LOSE_RACE": 502, "NORMAL_TEMPORARY_FAILURE": 41,
    "UNALLOCATED_NUMBER": 1, "NO_ROUTE_DESTINATION": 3, "OUTGOING_CALL_BARRED": 52,
}

CALLSTATE_NUMBER = {"DOWN": 0, "DIALING": 1, "RINGING": 2, "EARLY": 3, "ACTIVE": 4, "HELD": 5,
                    "RING_WAIT": 6, "HANGUP": 7, "UNHELD": 8}

STATE_NUMBER = {
    "CS_NEW": 0, "CS_INIT": 1, "CS_ROUTING": 2, "CS_SOFT_EXECUTE": 3, "CS_EXECUTE": 4,
    "CS_EXCHANGE_MEDIA": 5, "CS_PARK": 6, "CS_CONSUME_MEDIA": 7, "CS_HIBERNATE": 8,
    "CS_RESET": 9, "CS_HANGUP": 10, "CS_REPORTING": 11, "CS_DESTROY": 12,
}

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ORIGINATE_TARGET = re.compile(r"^user/([^@\s]+)(?:@(\S+))?$")
_GATEWAY_TARGET = re.compile(r"^sofia/gateway/([^/\s]+)/([^@\s]+)$")
_APP = re.compile(r"^&?([A-Za-z_][\w]*)\((.*)\)$|^&?([A-Za-z_]\w*)$")
#: fs-conf's queue_voicemail extension of a tenant's context (voicemail_<queue>).
_VOICEMAIL_EXTENSION = re.compile(r"^voicemail_(.+)$")
#: The tenant's outbound context of fs-conf (tongdai_<tenant>_outbound).
_OUTBOUND_CONTEXT = re.compile(r"^tongdai_(.+)_outbound$")
#: outbound_cid_guard: never present a 1800/1900 (service) number as the caller ID.
_SERVICE_CID = re.compile(r"^(?:\+?84|0)?1[89]00")
#: The outbound classes of fs-conf's tongdai_<tenant>_outbound, in the dialplan's order.
_OUTBOUND_CLASSES = (
    ("mobile", re.compile(r"^0[35789][0-9]{8}$")),
    ("national", re.compile(r"^02[0-9]{9}$")),
    ("service", re.compile(r"^1[89]00[0-9]{4,6}$")),
    ("international", re.compile(r"^(?:00|\+)[1-9][0-9]{6,15}$")),
)
#: Classes whose calls the outbound dialplan records (record_session before the bridge).
_RECORDED_CLASSES = ("mobile", "national", "international")
#: What switch_channel_queue_dtmf_string accepts (is_dtmf: digits, A-D, *, #, w/W, f/F).
_DTMF_CHARS = frozenset("0123456789ABCDabcd*#wWfF")
#: FreeSWITCH's default / minimum / maximum DTMF durations, in 8 kHz samples.
DTMF_DEFAULT_SAMPLES, DTMF_MIN_SAMPLES, DTMF_MAX_SAMPLES = 2000, 400, 192000


def gmt_text(epoch: float) -> str:
    t = datetime.fromtimestamp(epoch, timezone.utc)
    return (f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year} "
            f"{t:%H:%M:%S} GMT")


def stamp_text(us: int, tz: ZoneInfo | timezone) -> str:
    return datetime.fromtimestamp(us / 1_000_000, tz).strftime("%Y-%m-%d %H:%M:%S")


def parse_originate(arg: str) -> tuple[dict[str, str], str, str]:
    """``{a=1,b='x y'}user/1000@dom &park()`` → (variables, target, application)."""
    text = arg.strip()
    variables: dict[str, str] = {}
    while text[:1] in ("{", "[", "<"):
        close = {"{": "}", "[": "]", "<": ">"}[text[0]]
        end = text.find(close)
        if end < 0:
            raise ValueError("unterminated variable block")
        for item in _split_vars(text[1:end]):
            key, _, value = item.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1]
            variables[key.strip()] = value
        text = text[end + 1:]
    target, _, app = text.partition(" ")
    return variables, target.strip(), app.strip()


def name_of(app: str) -> str:
    """The application of an originate's ``&app(args)``; "" for an extension."""
    m = _APP.match(app) if app.startswith("&") else None
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


@dataclass(eq=False)
class Agent:
    spec: AgentSpec
    domain: str
    port: int
    registered: bool = False
    call_id: str = ""
    legs: set[str] = field(default_factory=set)

    @property
    def ext(self) -> str:
        return self.spec.ext

    @property
    def key(self) -> str:
        return f"{self.spec.ext}@{self.domain}"

    @property
    def gateway(self) -> str | None:
        return self.spec.gateway


@dataclass(eq=False)
class Channel:
    """One call leg. Times are epoch microseconds, 0 = not yet."""

    uuid: str
    direction: str
    name: str
    cid_name: str
    cid_num: str
    dest: str
    ani: str
    context: str
    source: str
    presence_id: str
    created_us: int
    username: str | None = None
    dialplan: str = ""
    network_addr: str = "127.0.0.1"
    orig_cid_name: str = ""
    orig_cid_num: str = ""
    callee_name: str | None = None
    callee_num: str | None = None
    hit_dialplan: bool = True
    state: str = "CS_INIT"
    callstate: str = "DOWN"
    answer_state: str = "ringing"
    media: bool = False
    profile_index: int = 1
    profile_created_us: int = 0
    answered_us: int = 0
    progress_us: int = 0
    hangup_us: int = 0
    transfer_us: int = 0
    bridged_us: int = 0
    last_hold_us: int = 0
    hold_accum_us: int = 0
    held: bool = False
    recording: str | None = None
    record_started_us: int = 0
    transfer_source: str | None = None
    hangup_cause: str | None = None
    disposition: str = "send_bye"
    application: str = ""
    application_data: str = ""
    app_uuid: str = ""
    variables: dict[str, str] = field(default_factory=dict, repr=False)
    other: Channel | None = field(default=None, repr=False)
    other_type: str | None = None
    bridged_to: str | None = None
    bridge_a: bool = False
    parked: bool = False
    originating: bool = False
    gone: bool = False
    #: The leg this one's dialplan ``bridge`` is ringing (cancelled if this one hangs up).
    dialing: str | None = None
    #: The running application fires CHANNEL_EXECUTE[_COMPLETE] at every fidelity.
    app_always: bool = False
    # simulation bookkeeping
    caller: CallerSpec | None = field(default=None, repr=False)
    agent: Agent | None = field(default=None, repr=False)
    job: Done | None = field(default=None, repr=False)
    timers: list[Timer] = field(default_factory=list, repr=False)
    #: The ``{...}`` variables of the originate that created the leg, as given.
    originate_vars: dict[str, str] = field(default_factory=dict, repr=False)
    #: DTMF queued on the leg (uuid_recv_dtmf) that no application has read yet.
    dtmf_queue: list[tuple[str, int]] = field(default_factory=list, repr=False)

    @property
    def logical_direction(self) -> str:
        return self.direction

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()


#: eavesdrop's audio paths → the monitoring mode they amount to. ``mux_read``: the
#: eavesdropper's voice is mixed into what the target leg *reads* (its phone's audio, sent
#: to its bridge partner: the other party hears); ``mux_write``: into what is *written* to
#: the target leg (its own phone hears). switch_ivr_async.c: ED_MUX_READ / ED_MUX_WRITE.
MONITOR_MODES = {(False, False): "listen", (False, True): "whisper", (True, True): "barge",
                 (True, False): "whisper_partner"}


@dataclass(eq=False)
class Monitor:
    """One running (or finished) ``eavesdrop``: the eavesdropper's leg on a target leg.

    ``mode``: ``listen`` (hears both sides, heard by no one), ``whisper`` (heard by the
    target leg only: the agent, when the target is the agent's leg), ``barge`` (heard by
    both), ``whisper_partner`` (heard by the target's partner only: the customer)."""

    leg: str
    target: str
    monitor_id: str | None
    requested: str | None
    dtmf: bool
    mux_read: bool
    mux_write: bool
    started_us: int
    active: bool = True
    ended_us: int = 0
    end_reason: str = ""
    #: (simulated µs, digit, mode after it) for every digit eavesdrop read.
    history: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return MONITOR_MODES[(self.mux_read, self.mux_write)]


class Node:
    """A FreeSWITCH node as seen over ESL. Listeners get every event fired (an ``Event`` with
    decoded values); they run under the node lock and must not block."""

    def __init__(self, *, clock: SimClock | None = None, seed: int | None = None,
                 hostname: str = "sim", domain: str = "127.0.0.1", context: str = "public",
                 heartbeat: float | None = 20.0, core_uuid: str | None = None,
                 ipv4: str = "127.0.0.1", ipv6: str = "::1", tz: str = "UTC",
                 unregistered_cause: str = "USER_NOT_REGISTERED",
                 originate_timeout: float = 60.0, max_sessions: int = 1000,
                 fidelity: str = "core", external_answer_delay: float = 4.0,
                 answer_to_park: float = 0.02, lost_bridge_rate: float = 0.0,
                 customer_answer_delay: float = 2.0, customer_talk: float | None = 20.0,
                 carrier: str = "carrier", carrier_proxy: str = "carrier.invalid",
                 recordings_dir: str = "/var/lib/freeswitch/recordings",
                 record_inbound: bool = False) -> None:
        if fidelity not in ("core", "full"):
            raise ValueError("fidelity: must be 'core' or 'full'")
        self.clock = clock or SimClock()
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.scheduler = Scheduler(self.clock, self.lock, on_error=self._callback_failed)
        self.hostname = hostname
        self.domain = domain
        self.context = context
        self.heartbeat = heartbeat
        self.core_uuid = core_uuid or self.new_uuid()
        self.ipv4, self.ipv6 = ipv4, ipv6
        self.tz: ZoneInfo | timezone = timezone.utc if tz == "UTC" else ZoneInfo(tz)
        self.unregistered_cause = unregistered_cause
        self.originate_timeout = originate_timeout
        self.max_sessions = max_sessions
        #: How long a number behind a gateway (sofia/gateway/<gw>/<number>) rings before
        #: answering, unless the scenario lists it as an agent with ``gateway``.
        self.external_answer_delay = external_answer_delay
        #: Seconds between an originated leg's CHANNEL_ANSWER and its job result + park.
        self.answer_to_park = answer_to_park
        #: Chance that a uuid_bridge racing an unfinished originate is silently lost
        #: (measured on a real FreeSWITCH: about 1 in 200 → 0.005).
        self.lost_bridge_rate = lost_bridge_rate
        #: "core": the events a contact center uses; "full": also CHANNEL_STATE,
        #: CHANNEL_CALLSTATE and CHANNEL_EXECUTE[_COMPLETE], for `event plain ALL` load.
        self.full = fidelity == "full"
        #: How outside numbers reached through the carrier behave (click-to-call customers);
        #: a number not listed answers after ``customer_answer_delay`` and talks
        #: ``customer_talk`` seconds.
        self.numbers: dict[str, NumberSpec] = {}
        self.default_number = NumberSpec(number="", answer_delay=customer_answer_delay,
                                         talk=customer_talk)
        #: fs-conf's outbound gateway (sofia/gateway/<carrier>/<number>) and its proxy.
        self.carrier, self.carrier_proxy = carrier, carrier_proxy
        self.recordings_dir = recordings_dir
        #: The API's DID extension (api/freeswitch/render.py, a tenant recording its
        #: calls): record_session right after the answer, before the IVR or
        #: the park, into <recordings>/<tenant>/<date>/<call uuid>.wav, as the real switch
        #: did in tests/realfs/test_recording.py. Off by default (the static dialplan
        #: records at the queue instead).
        self.record_inbound = record_inbound
        #: Every eavesdrop that ran, by the eavesdropper's leg uuid.
        self.monitors: dict[str, Monitor] = {}
        self.hash: dict[str, str] = {}  # mod_hash's realm_key -> value
        self.channels: dict[str, Channel] = {}
        self.agents: dict[str, Agent] = {}
        self.listeners: list[Callable[[Event], None]] = []
        self.errors: list[BaseException] = []
        self._seq = itertools.count(1)
        self._session_ids = itertools.count(1)
        self._sessions_since_start = 0
        self._peak = 0
        self._started_us = self.clock.now_us()
        self._started = False
        self._dids: dict[str, dict[str, str]] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start heartbeats and (unless the clock is manual) the scheduler thread."""
        with self.lock:
            if self._started:
                return
            self._started = True
            self._started_us = self.clock.now_us()
            if self.heartbeat:
                self.scheduler.call_later(self.heartbeat, self._heartbeat_tick)
        if not self.clock.manual:
            self.scheduler.start()

    def advance(self, seconds: float) -> None:
        """Manual clock only: move simulated time on, firing whatever falls due."""
        self.scheduler.run_until(self.clock.now() + seconds)

    def stop(self) -> None:
        self.scheduler.stop()
        with self.lock:
            self._started = False

    def _callback_failed(self, err: BaseException) -> None:
        log.exception("simulator callback failed", exc_info=err)
        self.errors.append(err)

    def new_uuid(self) -> str:
        return str(uuid_mod.UUID(int=self.rng.getrandbits(128), version=4))

    def set_did(self, did: str, variables: dict[str, str]) -> None:
        """Variables the dialplan sets for calls to ``did`` (used by uuid_transfer too)."""
        with self.lock:
            self._dids[did] = dict(variables)

    # ------------------------------------------------------------------ events

    def _core(self, name: str, calling_key: str | None = None,
              subclass: str | None = None) -> Pairs:
        now = self.clock.now_us()
        file, func, line = CALLING.get(calling_key or subclass or name, ("switch_event.c",
                                                                        "switch_event_fire", 1))
        pairs: Pairs = [("Event-Subclass", subclass)] if subclass else []
        pairs += [
            ("Event-Name", name),
            ("Core-UUID", self.core_uuid),
            ("FreeSWITCH-Hostname", self.hostname),
            ("FreeSWITCH-Switchname", self.hostname),
            ("FreeSWITCH-IPv4", self.ipv4),
            ("FreeSWITCH-IPv6", self.ipv6),
            ("Event-Date-Local", stamp_text(now, self.tz)),
            ("Event-Date-GMT", gmt_text(now / 1_000_000)),
            ("Event-Date-Timestamp", str(now)),
            ("Event-Calling-File", file),
            ("Event-Calling-Function", func),
            ("Event-Calling-Line-Number", str(line)),
            ("Event-Sequence", str(next(self._seq))),
        ]
        return pairs

    def emit(self, pairs: Pairs, body: str | None = None) -> Event:
        event = Event(pairs, body)
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception as err:  # one broken subscriber must not stop the node
                self._callback_failed(err)
        return event

    def _profile(self, prefix: str, ch: Channel, *, other: bool = False) -> Pairs:
        p: Pairs = [(prefix + "Direction", ch.direction),
                    (prefix + "Logical-Direction", ch.logical_direction)]
        if ch.username:
            p.append((prefix + "Username", ch.username))
        if ch.dialplan:
            p.append((prefix + "Dialplan", ch.dialplan))
        p += [(prefix + "Caller-ID-Name", ch.cid_name), (prefix + "Caller-ID-Number", ch.cid_num),
              (prefix + "Orig-Caller-ID-Name", ch.orig_cid_name),
              (prefix + "Orig-Caller-ID-Number", ch.orig_cid_num)]
        if ch.callee_name is not None:
            p += [(prefix + "Callee-ID-Name", ch.callee_name),
                  (prefix + "Callee-ID-Number", ch.callee_num or "")]
        p += [(prefix + "Network-Addr", ch.network_addr), (prefix + "ANI", ch.ani),
              (prefix + "Destination-Number", ch.dest), (prefix + "Unique-ID", ch.uuid),
              (prefix + "Source", ch.source)]
        if ch.transfer_source and not other:
            p.append((prefix + "Transfer-Source", ch.transfer_source))
        p += [(prefix + "Context", ch.context), (prefix + "Channel-Name", ch.name)]
        if not other:
            p.append((prefix + "Profile-Index", str(ch.profile_index)))
        p += [(prefix + "Profile-Created-Time", str(ch.profile_created_us)),
              (prefix + "Channel-Created-Time", str(ch.created_us)),
              (prefix + "Channel-Answered-Time", str(ch.answered_us)),
              (prefix + "Channel-Progress-Time", str(ch.progress_us)),
              (prefix + "Channel-Progress-Media-Time", "0"),
              (prefix + "Channel-Hangup-Time", str(ch.hangup_us)),
              (prefix + "Channel-Transfer-Time", str(ch.transfer_us)),
              (prefix + "Channel-Resurrect-Time", "0"),
              (prefix + "Channel-Bridged-Time", str(ch.bridged_us)),
              (prefix + "Channel-Last-Hold", str(ch.last_hold_us)),
              (prefix + "Channel-Hold-Accum", str(ch.hold_accum_us)),
              (prefix + "Screen-Bit", "true"),
              (prefix + "Privacy-Hide-Name", "false"),
              (prefix + "Privacy-Hide-Number", "false")]
        return p

    def channel_pairs(self, ch: Channel, state: str | None = None,
                      number: int | None = None, *, variables: bool = True) -> Pairs:
        """The channel data FreeSWITCH appends to every channel event."""
        state = state or ch.state
        p: Pairs = [
            ("Channel-State", state),
            ("Channel-Call-State", ch.callstate),
            ("Channel-State-Number", str(STATE_NUMBER[state] if number is None else number)),
            ("Channel-Name", ch.name),
            ("Unique-ID", ch.uuid),
            ("Call-Direction", ch.direction),
            ("Presence-Call-Direction", ch.direction),
            ("Channel-HIT-Dialplan", "true" if ch.hit_dialplan else "false"),
            ("Channel-Presence-ID", ch.presence_id),
            ("Channel-Call-UUID", ch.variables.get("call_uuid", ch.uuid)),
            ("Answer-State", ch.answer_state),
        ]
        if ch.hangup_cause:
            p.append(("Hangup-Cause", ch.hangup_cause))
        if ch.media:
            p += [("Channel-Read-Codec-Name", "PCMU"), ("Channel-Read-Codec-Rate", "8000"),
                  ("Channel-Read-Codec-Bit-Rate", "64000"), ("Channel-Write-Codec-Name", "PCMU"),
                  ("Channel-Write-Codec-Rate", "8000"), ("Channel-Write-Codec-Bit-Rate", "64000")]
        p += self._profile("Caller-", ch)
        if ch.other is not None and ch.other_type:
            p.append(("Other-Type", ch.other_type))
            p += self._profile("Other-Leg-", ch.other, other=True)
        if variables:
            p += [(f"variable_{k}", v) for k, v in ch.variables.items()]
        return p

    def _channel_event(self, name: str, ch: Channel, *, state: str | None = None,
                       number: int | None = None, prefix: Pairs | None = None,
                       subclass: str | None = None, suffix: Pairs | None = None) -> Event:
        pairs = self._core(name, subclass=subclass)
        pairs += prefix or []
        # FreeSWITCH fires state changes with the channel's basic data only, no variables.
        pairs += self.channel_pairs(ch, state, number, variables=name not in (
            "CHANNEL_STATE", "CHANNEL_CALLSTATE"))
        pairs += suffix or []
        return self.emit(pairs)

    # State changes and dialplan applications: events only at full fidelity.

    def _state(self, ch: Channel, state: str) -> None:
        if ch.state != state:
            ch.state = state
            if self.full:
                self._channel_event("CHANNEL_STATE", ch)

    def _callstate(self, ch: Channel, callstate: str) -> None:
        if ch.callstate != callstate:
            old, ch.callstate = ch.callstate, callstate
            if self.full:
                self._channel_event("CHANNEL_CALLSTATE", ch, prefix=[
                    ("Original-Channel-Call-State", old),
                    ("Channel-Call-State-Number", str(CALLSTATE_NUMBER[callstate]))])

    def _app_start(self, ch: Channel, app: str, data: str = "", *,
                   always: bool = False) -> None:
        """CHANNEL_EXECUTE at full fidelity, or always for applications whose start is the
        only sign of what a leg does (eavesdrop fires no CHANNEL_BRIDGE)."""
        ch.application, ch.application_data = app, data
        ch.app_always = always
        ch.app_uuid = self.new_uuid() if self.full or always else ""
        if self.full or always:
            self._channel_event("CHANNEL_EXECUTE", ch, suffix=[
                ("Application", app), ("Application-Data", data),
                ("Application-UUID", ch.app_uuid)])

    def _app_done(self, ch: Channel) -> None:
        if (self.full or ch.app_always) and ch.app_uuid:
            self._channel_event("CHANNEL_EXECUTE_COMPLETE", ch, suffix=[
                ("Application", ch.application), ("Application-Data", ch.application_data),
                ("Application-Response", "_none_"), ("Application-UUID", ch.app_uuid)])
            ch.app_uuid = ""

    def _set(self, ch: Channel, name: str, value: str) -> None:
        """The dialplan's ``set`` application."""
        self._app_start(ch, "set", f"{name}={value}")
        ch.variables[name] = value
        self._app_done(ch)

    # ------------------------------------------------------------------ registrations

    def add_agent(self, spec: AgentSpec, *, at: float | None = None) -> Agent:
        """Add an agent phone; it registers ``spec.register_at`` seconds from now (or ``at``)."""
        with self.lock:
            domain = f"gateway:{spec.gateway}" if spec.gateway else (spec.domain or self.domain)
            agent = Agent(spec, domain, 5070 + len(self.agents) + 1)
            self.agents[agent.key] = agent
            if spec.gateway:  # a number behind a SIP trunk: always reachable, never registers
                agent.registered = True
                return agent
            start = self.clock.now() if at is None else at
            if spec.register_at is not None:
                self._at(start + spec.register_at, lambda: self.register(agent.key))
            if spec.unregister_at is not None:
                self._at(start + spec.unregister_at, lambda: self.unregister(agent.key))
            if spec.expire_at is not None:
                self._at(start + spec.expire_at, lambda: self.unregister(agent.key, expire=True))
            return agent

    def _at(self, due: float, fn: Callable[[], None]) -> Timer:
        return self.scheduler.call_at(due, fn)

    def _user_pairs(self, agent: Agent) -> Pairs:
        ext, dom = agent.ext, agent.domain
        name = agent.spec.name or f"Extension {ext}"
        return [("sip_number_alias", ext), ("sip_auth_username", ext), ("sip_auth_realm", dom),
                ("number_alias", ext), ("user_name", ext), ("domain_name", dom),
                ("record_stereo", "true"), ("transfer_fallback_extension", "operator"),
                ("toll_allow", "local"), ("accountcode", ext), ("user_context", "default"),
                ("effective_caller_id_name", name), ("effective_caller_id_number", ext),
                ("callgroup", "agents")]

    def register(self, key: str) -> None:
        """The agent's phone REGISTERs: CUSTOM sofia::register."""
        with self.lock:
            agent = self.agents[key]
            agent.registered = True
            agent.call_id = agent.call_id or f"{self.rng.randrange(1, 99999)}-{agent.port}@127.0.0.1"
            ext, dom = agent.ext, agent.domain
            pairs = self._core("CUSTOM", subclass="sofia::register")
            pairs += [
                ("profile-name", "internal"), ("from-user", ext), ("from-host", dom),
                ("presence-hosts", dom),
                ("contact", f'"" <sip:{ext}@127.0.0.1:{agent.port};transport=UDP>'),
                ("call-id", agent.call_id), ("rpid", "unknown"), ("status", "Registered(UDP)"),
                ("expires", "3600"), ("to-user", ext), ("to-host", dom),
                ("network-ip", "127.0.0.1"), ("network-port", str(agent.port)),
                ("username", ext), ("realm", dom), ("user-agent", f"sim-agent-{ext}"),
            ]
            pairs += self._user_pairs(agent)
            self.emit(pairs)

    def unregister(self, key: str, *, expire: bool = False) -> None:
        """REGISTER with Expires: 0 (sofia::unregister) or registration timeout (sofia::expire)."""
        with self.lock:
            agent = self.agents[key]
            if not agent.registered:
                return
            agent.registered = False
            ext, dom = agent.ext, agent.domain
            contact = f'"" <sip:{ext}@127.0.0.1:{agent.port};transport=UDP>'
            if expire:
                pairs = self._core("CUSTOM", subclass="sofia::expire")
                pairs += [("profile-name", "internal"), ("call-id", agent.call_id),
                          ("user", ext), ("username", ext), ("host", dom), ("contact", contact),
                          ("expires", str(int(self.clock.now()))),
                          ("user-agent", f"sim-agent-{ext}")]
            else:
                pairs = self._core("CUSTOM", subclass="sofia::unregister")
                pairs += [("profile-name", "internal"), ("from-user", ext), ("from-host", dom),
                          ("contact", contact), ("call-id", agent.call_id), ("rpid", "unknown"),
                          ("status", "Unregistered(UDP)"), ("expires", "0"), ("to-user", ext),
                          ("to-host", dom), ("network-ip", "127.0.0.1"),
                          ("network-port", str(agent.port)), ("username", ext), ("realm", dom),
                          ("user-agent", f"sim-agent-{ext}")]
            self.emit(pairs)

    # ------------------------------------------------------------------ heartbeat & status

    def _uptime(self) -> tuple[str, int]:
        us = max(0, self.clock.now_us() - self._started_us)
        ms, usec = divmod(us, 1000)
        sec, msec = divmod(ms, 1000)
        mins, s = divmod(sec, 60)
        hours, m = divmod(mins, 60)
        days, h = divmod(hours, 24)
        years, d = divmod(days, 365)
        text = (f"{years} years, {d} days, {h} hours, {m} minutes, {s} seconds, "
                f"{msec} milliseconds, {usec} microseconds")
        return text, us // 1000

    def heartbeat_event(self) -> Event:
        with self.lock:
            uptime, uptime_ms = self._uptime()
            pairs = self._core("HEARTBEAT")
            pairs += [
                ("Event-Info", "System Ready"), ("Up-Time", uptime),
                ("FreeSWITCH-Version", VERSION), ("Uptime-msec", str(uptime_ms)),
                ("Session-Count", str(len(self.channels))), ("Max-Sessions", str(self.max_sessions)),
                ("Session-Per-Sec", "30"), ("Session-Per-Sec-Last", "0"),
                ("Session-Per-Sec-Max", "0"), ("Session-Per-Sec-FiveMin", "0"),
                ("Session-Since-Startup", str(self._sessions_since_start)),
                ("Session-Peak-Max", str(self._peak)), ("Session-Peak-FiveMin", str(self._peak)),
                ("Idle-CPU", "99.000000"),
            ]
            return self.emit(pairs)

    def _heartbeat_tick(self) -> None:
        self.heartbeat_event()
        if self.heartbeat:
            self.scheduler.call_later(self.heartbeat, self._heartbeat_tick)

    def status_text(self) -> str:
        uptime, _ = self._uptime()
        n = len(self.channels)
        return (f"UP {uptime}\n"
                f"FreeSWITCH (Version 1.11.3-dev git cc93a68 2026-08-21 14:10:14Z 64bit) is ready\n"
                f"{self._sessions_since_start} session(s) since startup\n"
                f"{n} session(s) - peak {self._peak}, last 5min {self._peak} \n"
                f"0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n"
                f"{self.max_sessions} session(s) max\n"
                f"min idle cpu 0.00/99.00\n"
                f"Current Stack Size/Max 240K/8192K\n")

    # ------------------------------------------------------------------ channels

    def _new_channel(self, ch: Channel) -> Channel:
        self.channels[ch.uuid] = ch
        self._sessions_since_start += 1
        self._peak = max(self._peak, len(self.channels))
        return ch

    def _later(self, ch: Channel, delay: float, fn: Callable[[], None]) -> None:
        def run() -> None:
            if not ch.gone:
                fn()
        ch.timers.append(self.scheduler.call_later(delay, run))

    def place_call(self, spec: CallerSpec) -> str:
        """A customer dials ``spec.did``; returns the new channel's uuid."""
        with self.lock:
            now = self.clock.now_us()
            uid = spec.uuid or self.new_uuid()
            num = spec.number
            host = "127.0.0.1"
            name = f"sofia/internal/{num}@{host}"
            cid_name = spec.name or num
            session_id = str(next(self._session_ids))
            call_id = f"{self.rng.randrange(1, 1 << 30)}-{session_id}@{host}"
            ch = Channel(uuid=uid, direction="inbound", name=name, cid_name=cid_name, cid_num=num,
                         dest=spec.did, ani=num, context=self.context, source="mod_sofia",
                         presence_id=f"{num}@{host}", created_us=now, username=num,
                         dialplan="XML", orig_cid_name=cid_name, orig_cid_num=num,
                         profile_created_us=now, media=True, caller=spec)
            v = ch.variables
            v.update({
                "direction": "inbound", "uuid": uid, "session_id": session_id,
                "sip_from_user": num, "sip_from_uri": f"{num}@{host}", "sip_from_host": host,
                "video_media_flow": "disabled", "text_media_flow": "disabled",
                "channel_name": name, "sip_call_id": call_id,
                "sip_local_network_addr": "127.0.0.1", "sip_network_ip": host,
                "sip_network_port": "5080", "sip_invite_stamp": str(now),
                "sip_received_ip": host, "sip_received_port": "5080", "sip_via_protocol": "udp",
                "sip_from_user_stripped": num, "sip_from_tag": f"{session_id}SimTag001",
                "sofia_profile_name": "internal",
                "sofia_profile_url": "sip:mod_sofia@127.0.0.1:5060",
                "recovery_profile_name": "internal",
                "sip_full_via": f"SIP/2.0/UDP {host}:5080;branch=z9hG4bK-{session_id}-1-0",
                "sip_from_display": cid_name,
                "sip_full_from": f'"{cid_name}" <sip:{num}@{host}>;tag={session_id}SimTag001',
                "sip_full_to": f"<sip:{spec.did}@127.0.0.1>",
                "sip_allow": "INVITE, ACK, BYE, CANCEL, OPTIONS",
                "sip_req_user": spec.did, "sip_req_port": "5060",
                "sip_req_uri": f"{spec.did}@127.0.0.1:5060", "sip_req_host": "127.0.0.1",
                "sip_to_user": spec.did, "sip_to_uri": f"{spec.did}@127.0.0.1",
                "sip_to_host": "127.0.0.1", "sip_contact_params": "transport=UDP",
                "sip_contact_user": num, "sip_contact_port": "5080",
                "sip_contact_uri": f"{num}@{host}:5080", "sip_contact_host": host,
                "sip_user_agent": "sim-caller", "sip_via_host": host, "sip_via_port": "5080",
                "max_forwards": "70", "presence_id": f"{num}@{host}",
                "switch_r_sdp": ("v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
                                 "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6100 RTP/AVP 0 101\r\n"
                                 "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"),
                "ep_codec_string": "CORE_PCM_MODULE.PCMU@8000h@20i@64000b",
                "rtp_use_codec_string": "PCMU,PCMA", "remote_audio_media_flow": "sendrecv",
                "audio_media_flow": "sendrecv", "rtp_use_codec_name": "PCMU",
                "rtp_use_codec_rate": "8000", "rtp_use_codec_ptime": "20",
                "read_codec": "PCMU", "original_read_codec": "PCMU", "read_rate": "8000",
                "original_read_rate": "8000", "write_codec": "PCMU", "write_rate": "8000",
                "dtmf_type": "rfc2833",
            })
            self._new_channel(ch)
            if self.full:
                self._channel_event("CHANNEL_STATE", ch)
            self._channel_event("CHANNEL_CREATE", ch, state="CS_INIT", number=2)
            self._callstate(ch, "RINGING")
            self._state(ch, "CS_ROUTING")
            self._state(ch, "CS_EXECUTE")
            # The dialplan: set what it knows from the DID, answer, maybe IVR, park.
            v["call_uuid"] = uid
            for key, value in spec.variables.items():
                if not (spec.ivr and key in spec.ivr.variables):
                    self._set(ch, key, value)
            self._later(ch, spec.answer_delay, lambda: self._inbound_answer(ch))
            return uid

    def _inbound_answer(self, ch: Channel) -> None:
        now = self.clock.now_us()
        self._app_start(ch, "answer")
        ch.answered_us = now
        ch.answer_state = "answered"
        ch.variables.update({
            "rtp_local_sdp_str": ("v=0\r\no=FreeSWITCH 1 2 IN IP4 127.0.0.1\r\ns=FreeSWITCH\r\n"
                                  "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 16434 RTP/AVP 0 101\r\n"
                                  "a=rtpmap:0 PCMU/8000\r\n"),
            "local_media_ip": "127.0.0.1", "local_media_port": "16434",
            "advertised_media_ip": "127.0.0.1", "rtp_use_timer_name": "soft",
            "rtp_use_pt": "0", "remote_media_ip": "127.0.0.1", "remote_media_port": "6100",
            "endpoint_disposition": "ANSWER",
        })
        self._channel_event("CHANNEL_ANSWER", ch, state="CS_EXECUTE", number=4)
        self._callstate(ch, "ACTIVE")
        self._app_done(ch)
        if self.record_inbound:
            self._record_from_answer(ch)
        spec = ch.caller
        if spec is not None and spec.ivr is not None:
            self._later(ch, spec.ivr.after, lambda: self._ivr_choice(ch))
        else:
            self._park(ch)

    def _record_from_answer(self, ch: Channel) -> None:
        tenant = ch.variables.get("tongdai_tenant") or "unknown"
        day = datetime.fromtimestamp(self.clock.now(), self.tz).strftime("%Y-%m-%d")
        path = f"{self.recordings_dir}/{tenant}/{day}/{ch.uuid}.wav"
        self._set(ch, "RECORD_STEREO", "true")
        self._set(ch, "tongdai_recording", path)
        self._app_start(ch, "record_session", path)
        ch.recording, ch.record_started_us = path, self.clock.now_us()
        self._channel_event("RECORD_START", ch, suffix=[("Record-File-Path", path)])
        self._app_done(ch)

    def _ivr_choice(self, ch: Channel) -> None:
        spec = ch.caller
        assert spec is not None and spec.ivr is not None
        ivr = spec.ivr
        if ivr.entry is not None and not self._menu_entry(ch, *ivr.entry):
            return
        path = ivr.path or f"{ivr.menu}>{ivr.choice}"
        self._channel_event("CUSTOM", ch, subclass="tongdai::ivr", prefix=[
            ("IVR-Menu", ivr.menu), ("IVR-Choice", ivr.choice), ("IVR-Path", path)])
        for key, value in ivr.variables.items():
            self._set(ch, key, value)
        self._park(ch)

    def _menu_entry(self, ch: Channel, action: str, param: str) -> bool:
        """Run the caller's menu entry as mod_ivr does; True when it transfers the caller
        out of the menu (to the choice's extension). Otherwise the caller stays in the menu,
        hearing the greeting again, and hangs up after its patience (as a real caller of
        the old `multiset ...:park` rendering did); a `hangup` entry hangs up."""
        outcome = dptools.menu_entry(action, param)
        if outcome.ran:
            self._app_start(ch, outcome.ran, param.partition(" ")[2])
        for name, value in outcome.variables:
            if value is None:
                ch.variables.pop(name, None)
            else:
                ch.variables[name] = value
        if outcome.ran:
            self._app_done(ch)
        if outcome.hangup is not None:
            self.hangup(ch.uuid, outcome.hangup)
            return False
        if outcome.transfer is not None:
            return True
        log.info("call %s: IVR entry %s %r keeps the caller in the menu (FreeSWITCH leaves a "
                 "menu only by a transfer)", ch.uuid, action, param)
        spec = ch.caller
        if spec is not None and spec.patience is not None:
            self._later(ch, spec.patience, lambda: self._abandon(ch))
        return False

    def _park(self, ch: Channel) -> None:
        if ch.bridged_to:  # bridged (uuid_bridge before the dialplan got here): no park
            return
        self._state(ch, "CS_EXECUTE")
        ch.variables["current_application"] = "park"
        self._app_start(ch, "park")
        ch.parked = True
        self._channel_event("CHANNEL_PARK", ch, state="CS_EXECUTE", number=4)
        spec = ch.caller
        if spec is not None and spec.patience is not None and ch.direction == "inbound":
            self._later(ch, spec.patience, lambda: self._abandon(ch))

    def _abandon(self, ch: Channel) -> None:
        if ch.bridged_to is None:
            self.hangup(ch.uuid, "NORMAL_CLEARING", disposition="recv_bye")

    def _unpark(self, ch: Channel) -> None:
        if ch.parked:
            ch.parked = False
            self._channel_event("CHANNEL_UNPARK", ch)
            self._app_done(ch)

    # ------------------------------------------------------------------ hangup

    def hangup(self, uid: str, cause: str = "NORMAL_CLEARING", *,
               disposition: str = "send_bye") -> bool:
        """Hang up a leg (and the leg bridged to it). False when there is no such channel."""
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None or ch.gone or ch.hangup_cause:
                return False
            partner = self.channels.get(ch.bridged_to) if ch.bridged_to else None
            dialing = self.channels.get(ch.dialing) if ch.dialing else None
            self._mark_hangup(ch, cause, disposition)
            if dialing is not None and not dialing.hangup_cause:
                # The caller of a dialplan bridge hung up while the other leg rang: the
                # originate is cancelled (the other leg never reports back to it).
                ch.dialing, dialing.job = None, None
                self.hangup(dialing.uuid, "ORIGINATOR_CANCEL", disposition="send_cancel")
            if partner is not None and not partner.hangup_cause:
                self._mark_hangup(partner, "NORMAL_CLEARING",
                                  "send_bye" if disposition == "recv_bye" else "recv_bye")
            if partner is not None:
                a, b = (ch, partner) if ch.bridge_a else (partner, ch)
                self._complete(b)
                self._unbridge(a, b)
                self._destroy(b)
                self._complete(a)
                self._destroy(a)
            else:
                self._complete(ch)
                self._destroy(ch)
            return True

    def _mark_hangup(self, ch: Channel, cause: str, disposition: str) -> None:
        ch.cancel_timers()
        now = self.clock.now_us()
        if ch.held:
            ch.held = False
            ch.hold_accum_us += now - ch.last_hold_us
        if ch.recording:
            self._record_stop(ch)
        ch.hangup_cause = cause
        ch.hangup_us = now
        ch.answer_state = "hangup"
        ch.disposition = disposition
        ch.dtmf_queue.clear()
        self._channel_event("CHANNEL_HANGUP", ch, number=10)
        monitor = self.monitors.get(ch.uuid)
        if monitor is not None and monitor.active:
            # The eavesdropper hung up: its eavesdrop application returns now.
            self._monitor_ended(monitor, "hangup")
            self._app_done(ch)
        for other in list(self.monitors.values()):
            if other.active and other.target == ch.uuid:
                self._target_gone(other)
        self._state(ch, "CS_HANGUP")
        self._callstate(ch, "HANGUP")

    def _unbridge(self, a: Channel, b: Channel) -> None:
        for leg, other, role in ((a, b, "originator"), (b, a, "originatee")):
            leg.variables.update({"last_bridge_to": other.uuid,
                                  "last_sent_callee_id_name": other.cid_name,
                                  "last_sent_callee_id_number": other.cid_num,
                                  "last_bridge_role": role})
        a.variables["bridge_hangup_cause"] = b.hangup_cause or "NORMAL_CLEARING"
        b.variables["last_bridge_hangup_cause"] = b.hangup_cause or "NORMAL_CLEARING"
        # A B leg's Channel-Call-UUID is its A leg's while bridged, its own again after.
        b.variables["call_uuid"] = b.uuid
        self._channel_event("CHANNEL_UNBRIDGE", a, state="CS_SOFT_EXECUTE", number=10, prefix=[
            ("Bridge-A-Unique-ID", a.uuid), ("Bridge-B-Unique-ID", b.uuid)])
        a.bridged_to = b.bridged_to = None

    def _complete(self, ch: Channel) -> None:
        self._state(ch, "CS_REPORTING")
        cause = ch.hangup_cause or "NORMAL_CLEARING"
        v = ch.variables
        v["hangup_cause"] = cause
        v["hangup_cause_q850"] = str(Q850.get(cause, 16))
        v["digits_dialed"] = "none"

        def stamp(us: int) -> str:
            return stamp_text(us, self.tz) if us else ""

        start, end = ch.created_us, ch.hangup_us
        ans, prog, br = ch.answered_us, ch.progress_us, ch.bridged_us
        v["start_stamp"] = stamp(start)
        v["profile_start_stamp"] = stamp(ch.profile_created_us)
        if ans:
            v["answer_stamp"] = stamp(ans)
        if br:
            v["bridge_stamp"] = stamp(br)
        if prog:
            v["progress_stamp"] = stamp(prog)
        v["end_stamp"] = stamp(end)
        for name, us in (("start", start), ("profile_start", ch.profile_created_us),
                         ("answer", ans), ("bridge", br), ("last_hold", ch.last_hold_us),
                         ("hold_accum", None),
                         ("resurrect", 0), ("progress", prog), ("progress_media", 0),
                         ("end", end)):
            if us is None:
                held = ch.hold_accum_us
                v.update({"hold_accum_seconds": str(held // 1_000_000),
                          "hold_accum_usec": str(held), "hold_accum_ms": str(held // 1000)})
                continue
            v[f"{name}_epoch"] = str(us // 1_000_000)
            v[f"{name}_uepoch"] = str(us)
        v["last_app"] = ch.application or "park"
        v["caller_id"] = f'"{ch.cid_name}" <{ch.cid_num}>'

        def secs(a: int, b: int) -> int:
            return (a // 1_000_000 - b // 1_000_000) if a and b else 0

        def diff(a: int, b: int) -> int:
            return (a - b) if a and b else 0

        waited = diff(br, start)
        v["duration"] = str(secs(end, start))
        v["billsec"] = str(secs(end, ans))
        v["progresssec"] = str(secs(prog, start))
        v["answersec"] = str(secs(ans, start))
        v["waitsec"] = str(secs(br, start))
        v["progress_mediasec"] = "0"
        v["flow_billsec"] = str(secs(end, ans))
        v["mduration"] = str(diff(end, start) // 1000)
        v["billmsec"] = str(diff(end, ans) // 1000)
        v["progressmsec"] = str(diff(prog, start) // 1000)
        v["answermsec"] = str(diff(ans, start) // 1000)
        v["waitmsec"] = str(waited // 1000)
        v["progress_mediamsec"] = "0"
        v["flow_billmsec"] = str(diff(end, ans) // 1000)
        v["uduration"] = str(diff(end, start))
        v["billusec"] = str(diff(end, ans))
        v["progressusec"] = str(diff(prog, start))
        v["answerusec"] = str(diff(ans, start))
        v["waitusec"] = str(waited)
        v["progress_mediausec"] = "0"
        v["flow_billusec"] = str(diff(end, ans))
        v["sip_hangup_disposition"] = ch.disposition
        self._channel_event("CHANNEL_HANGUP_COMPLETE", ch, state="CS_REPORTING", number=11,
                            prefix=[("Hangup-Cause", cause)])

    def _destroy(self, ch: Channel) -> None:
        hook = ch.variables.get("api_hangup_hook", "")
        if hook.startswith("hash delete_ifmatch/"):
            realm, key, value = hook.split("/", 1)[1].split("/")
            if self.hash.get(f"{realm}_{key}") == value:
                del self.hash[f"{realm}_{key}"]
        self._channel_event("CHANNEL_DESTROY", ch, state="CS_REPORTING", number=12)
        self._state(ch, "CS_DESTROY")
        ch.gone = True
        self.channels.pop(ch.uuid, None)
        if ch.agent is not None:
            ch.agent.legs.discard(ch.uuid)
        if ch.job is not None:
            job, ch.job = ch.job, None
            job(f"-ERR {ch.hangup_cause or 'NORMAL_CLEARING'}\n")

    # ------------------------------------------------------------------ originate

    def originate(self, arg: str, done: Done) -> None:
        """``originate {vars}user/<ext>@<domain> &park()``; ``done`` gets the job result."""
        with self.lock:
            try:
                variables, target, app = parse_originate(arg)
            except ValueError:
                done("-ERR INVALID_GATEWAY\n")
                return
            m = _ORIGINATE_TARGET.match(target)
            g = _GATEWAY_TARGET.match(target)
            if g:
                gateway, number = g.group(1), g.group(2)
                agent = self.agents.get(f"{number}@gateway:{gateway}") or self.add_agent(
                    AgentSpec(ext=number, gateway=gateway, busy_when_in_call=False,
                              answer_delay=self.external_answer_delay))
            elif m:
                agent = self.agents.get(f"{m.group(1)}@{m.group(2) or self.domain}")
            else:
                done("-ERR DESTINATION_OUT_OF_ORDER\n")
                return
            if agent is None:
                done("-ERR SUBSCRIBER_ABSENT\n")
                return
            if not agent.registered:
                done(f"-ERR {self.unregistered_cause}\n")
                return
            uid = variables.get("origination_uuid") or self.new_uuid()
            if uid in self.channels:
                done("-ERR DESTINATION_OUT_OF_ORDER\n")
                return
            ch = self._outbound_leg(agent, uid, variables)
            ch.originate_vars = dict(variables)
            ch.job = done
            behaviour = agent.spec.answer
            if behaviour == "answer" and agent.spec.busy_when_in_call and agent.legs - {uid}:
                behaviour = "busy"
            timeout = float(variables.get("originate_timeout")
                            or variables.get("leg_timeout")
                            or variables.get("call_timeout") or self.originate_timeout)
            if behaviour == "busy":
                self._later(ch, 0.02, lambda: self.hangup(uid, "USER_BUSY",
                                                         disposition="recv_refuse"))
                return
            self._later(ch, 0.02, lambda: self._ringing(ch))
            delay = agent.spec.answer_delay
            if behaviour == "answer" and delay < timeout:
                self._later(ch, delay, lambda: self._outbound_answer(ch, app))
            elif behaviour == "reject" and delay < timeout:
                self._later(ch, delay, lambda: self.hangup(uid, "CALL_REJECTED",
                                                          disposition="recv_refuse"))
            else:
                self._later(ch, timeout, lambda: self.hangup(uid, "NO_ANSWER",
                                                            disposition="send_cancel"))

    def _outbound_leg(self, agent: Agent, uid: str, variables: dict[str, str]) -> Channel:
        now = self.clock.now_us()
        ext, dom = agent.ext, agent.domain
        cid_name = variables.get("origination_caller_id_name", "FreeSWITCH")
        cid_num = variables.get("origination_caller_id_number", "0000000000")
        name = (f"sofia/gateway/{agent.gateway}/{ext}" if agent.gateway
                else f"sofia/internal/{ext}@127.0.0.1:{agent.port}")
        ch = Channel(uuid=uid, direction="outbound", name=name, cid_name=cid_name,
                     cid_num=cid_num, dest=ext, ani=cid_num, context="default",
                     source="src/switch_ivr_originate.c", presence_id=f"{ext}@{dom}",
                     created_us=now, orig_cid_name=cid_name, orig_cid_num=cid_num,
                     hit_dialplan=False, profile_created_us=now, agent=agent)
        v = ch.variables
        v.update({"direction": "outbound", "is_outbound": "true", "uuid": uid,
                  "call_uuid": uid, "session_id": str(next(self._session_ids)),
                  "sip_profile_name": "internal", "video_media_flow": "disabled",
                  "text_media_flow": "disabled", "channel_name": name,
                  "sip_destination_url": f"sip:{ext}@127.0.0.1:{agent.port};transport=UDP"})
        v.update(variables)
        v.update({"dialed_user": ext, "dialed_domain": dom, "sip_invite_domain": dom,
                  "presence_id": f"{ext}@{dom}", "originate_early_media": "true",
                  "originate_endpoint": "user"})
        agent.legs.add(uid)
        self._new_channel(ch)
        if self.full:
            self._channel_event("CHANNEL_STATE", ch)
        self._channel_event("CHANNEL_CREATE", ch, state="CS_INIT", number=2)
        self._state(ch, "CS_ROUTING")
        self._state(ch, "CS_CONSUME_MEDIA")
        return ch

    def _ringing(self, ch: Channel) -> None:
        ch.progress_us = self.clock.now_us()
        self._channel_event("CHANNEL_PROGRESS", ch, number=7)
        self._callstate(ch, "RINGING")

    def _outbound_answer(self, ch: Channel, app: str) -> None:
        agent = ch.agent
        assert agent is not None
        ch.answered_us = self.clock.now_us()
        ch.answer_state = "answered"
        ch.media = True
        ch.callee_name = "Outbound Call"
        ch.callee_num = agent.ext
        v = ch.variables
        v.update({"audio_media_flow": "sendrecv", "sip_req_uri": f"{agent.ext}@127.0.0.1:"
                  f"{agent.port};transport=UDP", "sofia_profile_name": "internal",
                  "sip_to_user": agent.ext, "sip_from_user": ch.cid_num,
                  "sip_call_id": self.new_uuid(), "read_codec": "PCMU", "write_codec": "PCMU",
                  "endpoint_disposition": "ANSWER"})
        for key, value in self._user_pairs(agent):
            if key in ("record_stereo", "transfer_fallback_extension", "toll_allow",
                       "accountcode", "user_context", "effective_caller_id_name",
                       "effective_caller_id_number", "callgroup"):
                v[key] = value
        self._channel_event("CHANNEL_ANSWER", ch, state="CS_CONSUME_MEDIA", number=7)
        self._callstate(ch, "ACTIVE")
        # Caller-id flip after answer (CALL_UPDATE in FreeSWITCH).
        ch.callee_name, ch.callee_num = ch.cid_name, ch.cid_num
        ch.cid_name, ch.cid_num = "Outbound Call", agent.ext
        # The originate finishes (job result, then the &app) a moment after the answer; a
        # uuid_bridge inside that window races it (see uuid_bridge).
        ch.originating = True
        if self.answer_to_park > 0:
            self._later(ch, self.answer_to_park, lambda: self._originate_complete(ch, app))
        else:
            self._originate_complete(ch, app)

    def _originate_complete(self, ch: Channel, app: str) -> None:
        ch.originating = False
        if ch.job is not None:
            job, ch.job = ch.job, None
            job(f"+OK {ch.uuid}\n")
        if ch.bridged_to and (name_of(app) == "eavesdrop" or not app.startswith("&")):
            return  # uuid_bridge got here first: the leg is bridged, nothing else runs
        if app and not app.startswith("&"):
            # originate <url> <exten> [<dialplan>] [<context>]: the answered leg goes to the
            # dialplan (click-to-call: the tenant's outbound rules dial the customer).
            words = app.split()
            self._transfer(ch, words[0], words[1] if len(words) > 1 else "XML",
                           words[2] if len(words) > 2 else "default", how="bl_xfer")
            self._route(ch)
            return
        m = _APP.match(app) if app else None
        name = (m.group(1) or m.group(3)) if m else "park"
        data = (m.group(2) or "") if m else ""
        if name == "eavesdrop" and data:
            self._eavesdrop(ch, data.strip())
            return
        if name == "intercept" and data:
            target = self.channels.get(data.strip())
            if target is not None and not target.gone:
                self._bridge(target, ch)
                return
            self.hangup(ch.uuid, "NORMAL_CLEARING")
            return
        if name == "park" or not m:
            self._park(ch)
        else:
            ch.variables["current_application"] = name
            self._app_start(ch, name, data)

    # ------------------------------------------------------------------ dialplan: outbound

    def add_number(self, spec: NumberSpec) -> None:
        """How an outside number behaves when the carrier rings it (a click-to-call's
        customer); numbers not added answer after ``customer_answer_delay``."""
        with self.lock:
            self.numbers[spec.number] = spec

    def _transfer(self, ch: Channel, dest: str, dialplan: str, context: str, *,
                  how: str) -> None:
        """A new caller profile sends the leg to ``dest`` in ``context``
        (switch_ivr_session_transfer): Caller-Destination-Number, Caller-Context,
        Caller-Profile-Index and Caller-Transfer-Source change."""
        now = self.clock.now_us()
        ch.transfer_us = now
        ch.profile_index += 1
        ch.profile_created_us = now
        ch.transfer_source = (f"{now // 1_000_000}:{self.new_uuid()}:{how}:"
                              f"{dest}/{context}/{dialplan}")
        ch.dest, ch.context, ch.dialplan, ch.hit_dialplan = dest, context, dialplan, True
        ch.variables["transfer_source"] = ch.transfer_source
        self._state(ch, "CS_ROUTING")
        self._state(ch, "CS_EXECUTE")

    def _route(self, ch: Channel) -> None:
        """The dialplan for the leg's destination and context. The simulator knows the
        tenants' outbound contexts and tongdai_connect; anywhere else the leg parks (as
        after uuid_transfer)."""
        if ch.context == "tongdai_connect" and ch.dest == "connect":
            self._connect(ch)
            return
        m = _OUTBOUND_CONTEXT.match(ch.context)
        if m is None:
            ch.variables.update(self._dids.get(ch.dest, {}))
            self._park(ch)
            return
        self._outbound_dialplan(ch, m.group(1))

    def _connect(self, ch: Channel) -> None:
        """fs-conf's tongdai_connect (dialplan/01_shared.xml): the first answered leg of a
        call takes mod_hash's key `tongdai_connect_<call>` (insert_ifempty, atomic) and
        intercepts the caller (intercept_unbridged_only); any other hangs up LOSE_RACE. An
        intercept finding no caller, or a bridged one, falls through to hangup
        ORIGINATOR_CANCEL. The winner frees the key when it hangs up (api_hangup_hook)."""
        call_id = ch.variables.get("tongdai_call_id", "")
        key = f"tongdai_connect_{call_id}"
        if key in self.hash:
            self._hangup_app(ch, "LOSE_RACE")
            return
        self.hash[key] = ch.uuid
        ch.variables["api_hangup_hook"] = f"hash delete_ifmatch/tongdai_connect/{call_id}/{ch.uuid}"
        ch.variables["intercept_unbridged_only"] = "true"
        target = self.channels.get(call_id)
        if target is None or target is ch or target.gone or target.hangup_cause \
                or target.bridged_to:
            self._hangup_app(ch, "ORIGINATOR_CANCEL")
            return
        # switch_ivr_intercept_session: uuid_bridge(<this leg>, <caller>): this leg is A.
        self._bridge(ch, target)

    def _outbound_dialplan(self, ch: Channel, tenant: str) -> None:
        """fs-conf's ``tongdai_<tenant>_outbound``: setup, caller-ID guard, +84 forms, one
        extension per class of number (permission, recording), ``bridge`` to the carrier.

        The caller ID presented is ``tongdai_outbound_caller_id`` (the number the API chose)
        or the originate's ``effective_caller_id_number``; fs-conf's outbound_setup today
        forces the tenant's geographic number instead (see the simulator README)."""
        v = ch.variables
        # outbound_setup (continue="true")
        self._set(ch, "tongdai_tenant", tenant)
        self._set(ch, "tongdai_domain", v.get("tongdai_domain") or v.get("dialed_domain")
                  or self.domain)
        cid = (v.get("tongdai_outbound_caller_id")
               or ch.originate_vars.get("effective_caller_id_number")
               or v.get("effective_caller_id_number") or ch.cid_num)
        self._set(ch, "effective_caller_id_number", cid)
        self._set(ch, "effective_caller_id_name",
                  ch.originate_vars.get("effective_caller_id_name") or tenant.upper())
        self._set(ch, "hangup_after_bridge", "true")
        self._set(ch, "call_timeout", "60")
        # outbound_who (continue="true")
        if v.get("tongdai_direction") == "inbound":
            self._set(ch, "tongdai_outbound", "national,mobile")
        else:
            self._set(ch, "tongdai_direction", "outbound")
        # outbound_cid_guard
        if _SERVICE_CID.match(cid):
            self._app_start(ch, "log",
                            "ERR tongdai: refusing to present a 1800/1900 number as caller ID")
            self._app_done(ch)
            self._hangup_app(ch, "CALL_REJECTED")
            return
        # outbound_service_e164 / outbound_e164: +84 / 84 forms, back through the context.
        number = ch.dest
        national = (re.sub(r"^\+?84(1[89]00[0-9]{4,6})$", r"\1", number)
                    if re.match(r"^\+?84(1[89]00[0-9]{4,6})$", number)
                    else re.sub(r"^\+?84([1-9][0-9]{8,9})$", r"0\1", number))
        if national != number:
            self._app_start(ch, "transfer", f"{national} XML {ch.context}")
            self._app_done(ch)
            self._transfer(ch, national, "XML", ch.context, how="bl_xfer")
            self._outbound_dialplan(ch, tenant)
            return
        if re.match(r"^11[345]$", number):
            klass = "emergency"
        else:
            klass = next((name for name, rx in _OUTBOUND_CLASSES if rx.match(number)), "")
            if not klass:  # outbound_unknown
                self._hangup_app(ch, "UNALLOCATED_NUMBER")
                return
            # The directory's classes came with the phone's user variables.
            allowed = v.setdefault("tongdai_outbound", (ch.agent.spec.outbound if ch.agent
                                                        else None) or "national,mobile,service")
            if klass not in allowed.split(","):
                self._set(ch, "tongdai_barred", klass)
                self._hangup_app(ch, "OUTGOING_CALL_BARRED")
                return
        self._set(ch, "tongdai_dest_class", klass)
        if klass in _RECORDED_CLASSES:
            day = datetime.fromtimestamp(self.clock.now(), self.tz).strftime("%Y-%m-%d")
            path = f"{self.recordings_dir}/{tenant}/{day}/{ch.uuid}.wav"
            self._set(ch, "tongdai_recording", path)
            self._app_start(ch, "record_session", path)
            if ch.recording:
                self._record_stop(ch)
            ch.recording, ch.record_started_us = path, self.clock.now_us()
            self._channel_event("RECORD_START", ch, suffix=[("Record-File-Path", path)])
            self._app_done(ch)
        self._dial_out(ch, number)

    def _interrupt(self, ch: Channel, other: Channel | None) -> None:
        """Another command takes ``ch`` away from what its application was doing
        (uuid_bridge with ``other``, uuid_transfer): a running eavesdrop returns; a
        dialplan bridge still ringing its B leg is cancelled; a B leg still ringing for
        its A leg's bridge is lost to that bridge (which fails LOSE_RACE)."""
        monitor = self.monitors.get(ch.uuid)
        if monitor is not None and monitor.active:
            self._monitor_ended(monitor, "interrupted")
            self._app_done(ch)
        peer = self.channels.get(ch.dialing) if ch.dialing else None
        ch.dialing = None
        if peer is not None and not peer.hangup_cause:
            peer.job = None
            if peer is not other:
                self.hangup(peer.uuid, "ORIGINATOR_CANCEL", disposition="send_cancel")
        owner = self.channels.get(ch.variables.get("originator", ""))
        if owner is not None and owner.dialing == ch.uuid and owner is not other:
            owner.dialing, ch.job = None, None
            self._later(owner, 0.0, lambda: self._bridge_failed(owner, "-ERR LOSE_RACE\n"))

    def _hangup_app(self, ch: Channel, cause: str) -> None:
        """The dialplan's ``hangup <cause>``."""
        self._app_start(ch, "hangup", cause)
        self.hangup(ch.uuid, cause)

    def _dial_out(self, a: Channel, number: str) -> None:
        """``bridge sofia/gateway/<carrier>/<number>`` on leg ``a``: a new outbound leg
        rings the customer; answered, it is bridged to ``a`` (CHANNEL_BRIDGE on ``a``);
        failed, ``a`` hangs up with its cause (continue_on_fail is not set)."""
        spec = self.numbers.get(number) or replace(self.default_number, number=number)
        a.variables["current_application"] = "bridge"
        self._app_start(a, "bridge", f"sofia/gateway/{self.carrier}/{number}")
        b = self._carrier_leg(a, number)
        a.dialing = b.uuid
        b.job = lambda body: self._bridge_failed(a, body)
        timeout = float(a.variables.get("call_timeout") or 60)
        if spec.answer in ("busy", "invalid"):
            cause = "USER_BUSY" if spec.answer == "busy" else "UNALLOCATED_NUMBER"
            self._later(b, 0.05, lambda: self.hangup(b.uuid, cause, disposition="recv_refuse"))
            return
        self._later(b, 0.1, lambda: self._ringing(b))
        if spec.answer == "answer" and spec.answer_delay < timeout:
            self._later(b, spec.answer_delay, lambda: self._carrier_answer(a, b, spec))
        elif spec.answer == "reject" and spec.answer_delay < timeout:
            self._later(b, spec.answer_delay, lambda: self.hangup(
                b.uuid, "CALL_REJECTED", disposition="recv_refuse"))
        else:
            self._later(b, timeout, lambda: self.hangup(b.uuid, "NO_ANSWER",
                                                        disposition="send_cancel"))

    def _carrier_leg(self, a: Channel, number: str) -> Channel:
        """The customer's leg: outbound, through the carrier gateway, caller ID = the
        effective caller ID of ``a``; its events carry ``a`` as Other-Type originator."""
        now = self.clock.now_us()
        uid = self.new_uuid()
        cid_num = a.variables.get("effective_caller_id_number") or a.cid_num
        cid_name = a.variables.get("effective_caller_id_name") or a.cid_name
        name = f"sofia/gateway/{self.carrier}/{number}"
        b = Channel(uuid=uid, direction="outbound", name=name, cid_name=cid_name,
                    cid_num=cid_num, dest=number, ani=cid_num, context=a.context,
                    source="src/switch_ivr_originate.c", presence_id="", created_us=now,
                    dialplan=a.dialplan, orig_cid_name=cid_name, orig_cid_num=cid_num,
                    hit_dialplan=False, profile_created_us=now)
        v = b.variables
        v.update({"direction": "outbound", "is_outbound": "true", "uuid": uid,
                  "call_uuid": uid, "session_id": str(next(self._session_ids)),
                  "sip_profile_name": "external", "sip_gateway_name": self.carrier,
                  "video_media_flow": "disabled", "text_media_flow": "disabled",
                  "channel_name": name,
                  "sip_destination_url": f"sip:{number}@{self.carrier_proxy}",
                  "originator": a.uuid, "originating_leg_uuid": a.uuid,
                  "originate_early_media": "true", "originate_endpoint": "sofia"})
        # Only what the A leg exported (`export` / export_vars) reaches a B leg.
        for var in (x.strip() for x in a.variables.get("export_vars", "").split(",")):
            if var and var in a.variables:
                v[var] = a.variables[var]
        b.other, b.other_type = a, "originator"
        self._new_channel(b)
        if self.full:
            self._channel_event("CHANNEL_STATE", b)
        self._channel_event("CHANNEL_CREATE", b, state="CS_INIT", number=2)
        self._state(b, "CS_ROUTING")
        self._state(b, "CS_CONSUME_MEDIA")
        return b

    def _carrier_answer(self, a: Channel, b: Channel, spec: NumberSpec) -> None:
        if b.hangup_cause:
            return
        b.answered_us = self.clock.now_us()
        b.answer_state = "answered"
        b.media = True
        b.callee_name, b.callee_num = "Outbound Call", b.dest
        b.variables.update({"audio_media_flow": "sendrecv",
                            "sip_req_uri": f"{b.dest}@{self.carrier_proxy}",
                            "sofia_profile_name": "external", "sip_to_user": b.dest,
                            "sip_from_user": b.cid_num, "sip_call_id": self.new_uuid(),
                            "read_codec": "PCMU", "write_codec": "PCMU",
                            "endpoint_disposition": "ANSWER"})
        self._channel_event("CHANNEL_ANSWER", b, state="CS_CONSUME_MEDIA", number=7)
        self._callstate(b, "ACTIVE")
        if a.dialing == b.uuid and not a.hangup_cause:  # not taken away by another command
            a.dialing, b.job = None, None
            self._dialplan_bridge(a, b, spec)

    def _dialplan_bridge(self, a: Channel, b: Channel, spec: NumberSpec) -> None:
        """The bridge application's bridge (switch_ivr_multi_threaded_bridge): one
        CHANNEL_BRIDGE on the A leg; the B leg's Channel-Call-UUID becomes the A leg's."""
        now = self.clock.now_us()
        self._state(b, "CS_EXCHANGE_MEDIA")
        a.bridged_us = b.bridged_us = now
        a.bridged_to, b.bridged_to = b.uuid, a.uuid
        a.bridge_a, b.bridge_a = True, False
        a.other, a.other_type = b, "originatee"
        for leg, other in ((a, b), (b, a)):
            leg.variables.update({"bridge_channel": other.name, "bridge_uuid": other.uuid,
                                  "signal_bond": other.uuid})
        b.variables["call_uuid"] = a.uuid
        a.variables.update({"originate_disposition": "SUCCESS", "DIALSTATUS": "SUCCESS"})
        self._channel_event("CHANNEL_BRIDGE", a, prefix=[
            ("Bridge-A-Unique-ID", a.uuid), ("Bridge-B-Unique-ID", b.uuid)])
        if spec.talk is not None:
            who = b if spec.hangup_by == "customer" else a
            self._later(b, spec.talk, lambda: self.hangup(who.uuid, "NORMAL_CLEARING",
                                                          disposition="recv_bye"))

    def _bridge_failed(self, a: Channel, body: str) -> None:
        """The B leg failed: the bridge application returns, and without continue_on_fail
        switch_channel_handle_cause hangs the A leg up with the B leg's cause."""
        cause = body.strip().removeprefix("-ERR").strip() or "NORMAL_TEMPORARY_FAILURE"
        if a.gone or a.hangup_cause:
            return
        a.dialing = None
        a.variables.update({"originate_disposition": cause, "originate_failed_cause": cause})
        self._app_done(a)
        self.hangup(a.uuid, cause)

    # ------------------------------------------------------------------ eavesdrop & DTMF

    def monitor(self, key: str) -> Monitor | None:
        """The eavesdrop run by leg ``key`` or with ``tongdai_monitor_id`` ``key`` (latest)."""
        with self.lock:
            found = self.monitors.get(key)
            if found is None:
                found = next((m for m in reversed(list(self.monitors.values()))
                              if m.monitor_id == key), None)
            return found

    def _eavesdrop(self, ch: Channel, target_uuid: str) -> None:
        """``eavesdrop <uuid>`` on the answered leg ``ch`` (mod_dptools eavesdrop_function,
        switch_ivr_eavesdrop_session): CHANNEL_EXECUTE now, CHANNEL_EXECUTE_COMPLETE when
        it returns — at once when the target does not exist, else when the target hangs
        up, the eavesdropper presses ``*`` or hangs up. The originated leg has nothing
        else to run, so it then hangs up."""
        v = ch.variables
        v["current_application"] = "eavesdrop"
        self._state(ch, "CS_EXECUTE")
        self._app_start(ch, "eavesdrop", target_uuid, always=True)
        enable_dtmf = v.get("eavesdrop_enable_dtmf")
        monitor = Monitor(
            leg=ch.uuid, target=target_uuid, monitor_id=v.get("tongdai_monitor_id"),
            requested=v.get("tongdai_monitor_mode"),
            dtmf=True if enable_dtmf is None else switch_true(enable_dtmf),
            mux_read=switch_true(v.get("eavesdrop_whisper_aleg")),
            mux_write=switch_true(v.get("eavesdrop_whisper_bleg")),
            started_us=self.clock.now_us())
        self.monitors[ch.uuid] = monitor
        target = self.channels.get(target_uuid)
        if target is None or target is ch or target.hangup_cause:
            self._eavesdrop_done(ch, "no_such_channel")

    def _monitor_ended(self, monitor: Monitor, reason: str) -> None:
        monitor.active = False
        monitor.ended_us = self.clock.now_us()
        monitor.end_reason = reason

    def _target_gone(self, monitor: Monitor) -> None:
        # The eavesdrop loop notices the target is down on its next frame (20 ms).
        ch = self.channels.get(monitor.leg)
        if ch is not None:
            self._later(ch, 0.02, lambda: self._eavesdrop_done(ch, "target_hangup"))

    def _eavesdrop_done(self, ch: Channel, reason: str) -> None:
        monitor = self.monitors.get(ch.uuid)
        if monitor is None or not monitor.active or ch.hangup_cause:
            return
        self._monitor_ended(monitor, reason)
        self._app_done(ch)
        self.hangup(ch.uuid, "NORMAL_CLEARING")

    def uuid_recv_dtmf(self, uid: str, digits: str) -> str:
        """DTMF as if received from the leg's phone (switch_channel_queue_dtmf_string).
        mod_commands writes nothing on success, so ``api`` answers ``-ERR no reply`` and a
        ``bgapi`` job has an empty body; an unknown uuid: ``-ERR Cannot locate session!``."""
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None or ch.gone:
                return "-ERR Cannot locate session!\n"
            queued = parse_dtmf(digits)
            if queued:
                ch.dtmf_queue.extend(queued)
                self._later(ch, 0.02, lambda: self._read_dtmf(ch))
            return ""

    def _read_dtmf(self, ch: Channel) -> None:
        """The leg's application reads one queued digit per frame (20 ms): the DTMF event
        fires as it is read (switch_channel_dequeue_dtmf). Nothing reads a ringing leg, nor
        an eavesdropper without eavesdrop_enable_dtmf: there the digits stay queued."""
        if not ch.dtmf_queue or ch.hangup_cause:
            return
        monitor = self.monitors.get(ch.uuid)
        eavesdropping = monitor is not None and monitor.active
        if not ch.answered_us or (monitor is not None and eavesdropping and not monitor.dtmf):
            return
        digit, samples = ch.dtmf_queue.pop(0)
        self._channel_event("DTMF", ch, suffix=[
            ("DTMF-Digit", digit), ("DTMF-Duration", str(samples)), ("DTMF-Source", "APP")])
        if monitor is not None and eavesdropping and self._eavesdrop_key(ch, monitor, digit):
            return
        if ch.dtmf_queue:
            self._later(ch, 0.02, lambda: self._read_dtmf(ch))

    def _eavesdrop_key(self, ch: Channel, monitor: Monitor, digit: str) -> bool:
        """eavesdrop's keys (switch_ivr_eavesdrop_session): 1 = talk to the target's
        partner, 2 = talk to the target, 3 = both (three-way), 0 = listen only, * = stop
        eavesdropping; 4-6 only change the video layout. True when eavesdrop ended."""
        paths = {"1": (True, False), "2": (False, True), "3": (True, True),
                 "0": (False, False)}
        if digit in paths:
            monitor.mux_read, monitor.mux_write = paths[digit]
        monitor.history.append((self.clock.now_us(), digit, monitor.mode))
        if digit == "*":
            self._eavesdrop_done(ch, "dtmf")
            return True
        return False

    # ------------------------------------------------------------------ bridge & co

    def _bridge(self, a: Channel, b: Channel) -> None:
        now = self.clock.now_us()
        self._interrupt(a, b)
        self._interrupt(b, a)
        for leg, other in ((a, b), (b, a)):
            if leg.bridged_to and leg.bridged_to != other.uuid:
                previous = self.channels.get(leg.bridged_to)
                if previous is not None:
                    x, y = (leg, previous) if leg.bridge_a else (previous, leg)
                    self._unbridge(x, y)
            self._unpark(leg)
            if leg.answered_us:
                # Patience and old talk timers end here; a ringing leg keeps its ring timers.
                leg.cancel_timers()
        self._state(a, "CS_SOFT_EXECUTE")
        self._state(b, "CS_EXCHANGE_MEDIA")
        self._app_start(a, "uuid_bridge", b.uuid)
        self._app_start(b, "uuid_bridge", a.uuid)
        a.bridged_us = b.bridged_us = now
        a.bridged_to, b.bridged_to = b.uuid, a.uuid
        a.bridge_a, b.bridge_a = True, False
        a.callee_name, a.callee_num = b.orig_cid_name, b.orig_cid_num
        a.profile_index += 1
        a.profile_created_us = now
        a.transfer_source = f"{now // 1_000_000}:{self.new_uuid()}:uuid_br:{b.uuid}"
        a.other, a.other_type = b, "originatee"
        b.other, b.other_type = a, "originator"
        for leg, other in ((a, b), (b, a)):
            leg.variables.update({"bridge_channel": other.name, "bridge_uuid": other.uuid,
                                  "signal_bond": other.uuid})
        self._channel_event("CHANNEL_BRIDGE", a, prefix=[
            ("Bridge-A-Unique-ID", a.uuid), ("Bridge-B-Unique-ID", b.uuid)])
        inbound = a if a.caller is not None else (b if b.caller is not None else None)
        if inbound is not None and inbound.caller is not None and inbound.caller.talk is not None:
            spec = inbound.caller
            other = b if inbound is a else a
            who = inbound if spec.hangup_by == "caller" else other
            self._later(inbound, spec.talk, lambda: self.hangup(who.uuid, "NORMAL_CLEARING",
                                                              disposition="recv_bye"))
        else:
            agent_leg = a if a.agent is not None else (b if b.agent is not None else None)
            if agent_leg is not None and agent_leg.agent is not None \
                    and agent_leg.agent.spec.talk is not None:
                who_uuid = agent_leg.uuid
                self._later(agent_leg, agent_leg.agent.spec.talk,
                            lambda: self.hangup(who_uuid, "NORMAL_CLEARING",
                                                disposition="recv_bye"))

    def uuid_bridge(self, a_uuid: str, b_uuid: str) -> str:
        with self.lock:
            a, b = self.channels.get(a_uuid), self.channels.get(b_uuid)
            if a is None or b is None or a.hangup_cause or b.hangup_cause or a is b:
                return "-ERR No such channel!\n"
            if a.bridged_to == b.uuid:  # already bridged together: nothing happens
                return f"+OK {b.uuid}\n"
            raced = False
            for leg in (a, b):
                if leg.originating:
                    # Bridged on CHANNEL_ANSWER, before the originate finished: FreeSWITCH
                    # cancels the originate (the job ends ORIGINATOR_CANCEL), and now and then
                    # the bridge itself is lost: +OK, but no CHANNEL_BRIDGE ever comes.
                    raced = True
                    leg.originating = False
                    leg.cancel_timers()
                    if leg.job is not None:
                        job, leg.job = leg.job, None
                        job("-ERR ORIGINATOR_CANCEL\n")
            if raced and self.rng.random() < self.lost_bridge_rate:
                return f"+OK {b.uuid}\n"
            self._bridge(a, b)
            return f"+OK {b.uuid}\n"

    def uuid_transfer(self, uid: str, dest: str, dialplan: str = "XML",
                      context: str | None = None, leg: str = "") -> str:
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None or ch.hangup_cause:
                return "-ERR No such channel!\n"
            if leg == "-bleg" and ch.bridged_to:
                ch = self.channels[ch.bridged_to]
            self._interrupt(ch, None)
            partner = self.channels.get(ch.bridged_to) if ch.bridged_to else None
            if partner is not None:
                a, b = (ch, partner) if ch.bridge_a else (partner, ch)
                self._unbridge(a, b)
                ch.other = ch.other_type = None
                if leg != "-both":
                    self.hangup(partner.uuid, "NORMAL_CLEARING")
            now = self.clock.now_us()
            ch.transfer_us = now
            ch.profile_index += 1
            ch.profile_created_us = now
            ch.transfer_source = f"{now // 1_000_000}:{self.new_uuid()}:uuid_transfer:{dest}"
            ch.dest = dest
            ch.context = context or ch.context
            ch.variables.update({"transfer_source": ch.transfer_source,
                                 "max_forwards": ch.variables.get("max_forwards", "70")})
            ch.variables.update(self._dids.get(dest, {}))
            if not self._tenant_extension(ch):
                self._park(ch)
            return "+OK\n"

    def _tenant_extension(self, ch: Channel) -> bool:
        """The extensions of fs-conf's ``tongdai_<tenant>`` context the simulator runs
        rather than parking: ``queue_voicemail`` (``voicemail_<queue>``, where the router
        sends a caller after hours or on overflow) sets ``tongdai_voicemail``, answers and
        runs ``voicemail``, which never parks. Its CHANNEL_EXECUTE fires at every fidelity:
        it is the only sign of where the caller went. The caller leaves a message and hangs
        up after its ``patience``. True when the extension was run."""
        m = _VOICEMAIL_EXTENSION.match(ch.dest)
        if m is None or not ch.context.startswith("tongdai_"):
            return False
        self._set(ch, "tongdai_voicemail", m.group(1))
        domain = ch.variables.get("domain_name") or ch.variables.get("tongdai_domain") \
            or self.domain
        ch.variables["current_application"] = "voicemail"
        self._app_start(ch, "voicemail", f"default {domain} q_{m.group(1)}", always=True)
        spec = ch.caller
        if spec is not None and spec.patience is not None:
            self._later(ch, spec.patience, lambda: self.hangup(
                ch.uuid, "NORMAL_CLEARING", disposition="recv_bye"))
        return True

    def uuid_hold(self, uid: str, mode: str = "on") -> str:
        """Put a leg on hold (CHANNEL_HOLD) or take it off (CHANNEL_UNHOLD); hold time adds
        up in Caller-Channel-Hold-Accum and variable_hold_accum_* of the CDR."""
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None or ch.hangup_cause:
                return "-ERR No such channel!\n"
            hold = not ch.held if mode == "toggle" else mode == "on"
            if hold == ch.held:
                return "+OK Success\n"
            now = self.clock.now_us()
            if hold:
                ch.held, ch.last_hold_us = True, now
                self._callstate(ch, "HELD")
                self._channel_event("CHANNEL_HOLD", ch)
            else:
                ch.held = False
                ch.hold_accum_us += now - ch.last_hold_us
                self._callstate(ch, "ACTIVE")
                self._channel_event("CHANNEL_UNHOLD", ch)
            return "+OK Success\n"

    def uuid_record(self, uid: str, action: str, path: str) -> str:
        """Call recording: RECORD_START / RECORD_STOP with Record-File-Path."""
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None or ch.hangup_cause:
                return "-ERR No such channel!\n"
            if action == "start":
                if ch.recording:
                    self._record_stop(ch)
                ch.recording, ch.record_started_us = path, self.clock.now_us()
                self._channel_event("RECORD_START", ch, suffix=[("Record-File-Path", path)])
            elif action == "stop":
                if not ch.recording or (path != "all" and path != ch.recording):
                    return "-ERR Cannot stop record session!\n"
                self._record_stop(ch)
            return "+OK Success\n"

    def _record_stop(self, ch: Channel) -> None:
        path, ch.recording = ch.recording or "", None
        ms = (self.clock.now_us() - ch.record_started_us) // 1000
        ch.variables.update({"record_seconds": str(ms // 1000), "record_ms": str(ms),
                             "record_samples": str(ms * 8)})
        self._channel_event("RECORD_STOP", ch, suffix=[("Record-File-Path", path)])

    def uuid_setvar(self, uid: str, name: str, value: str | None) -> str:
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None:
                return "-ERR No such channel!\n"
            if value is None:
                ch.variables.pop(name, None)
            else:
                ch.variables[name] = value
            return "+OK\n"

    def uuid_getvar(self, uid: str, name: str) -> str:
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None:
                return "-ERR No such channel!\n"
            return ch.variables.get(name, "_undef_")

    def uuid_dump(self, uid: str, fmt: str = "") -> str:
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None:
                return "-ERR No such channel!\n"
            pairs = self._core("CHANNEL_DATA") + self.channel_pairs(ch)
            if fmt == "json":
                return orjson.dumps(dict(pairs)).decode()
            return "".join(f"{k}: {url_encode(v)}\n" for k, v in pairs) + "\n"

    def show_channels_json(self) -> str:
        with self.lock:
            if not self.channels:
                return '{"row_count": 0}\n'
            rows = [self._channel_row(ch) for ch in self.channels.values()]
            return orjson.dumps({"row_count": len(rows), "rows": rows}).decode()

    def show_calls_json(self) -> str:
        with self.lock:
            rows = []
            for a in self.channels.values():
                if not a.bridge_a or not a.bridged_to or a.bridged_to not in self.channels:
                    continue
                b = self.channels[a.bridged_to]
                ra, rb = self._channel_row(a), self._channel_row(b)
                keys = ("uuid", "direction", "created", "created_epoch", "name", "state",
                        "cid_name", "cid_num", "ip_addr", "dest", "presence_id",
                        "presence_data", "accountcode", "callstate", "callee_name",
                        "callee_num", "callee_direction", "call_uuid", "hostname",
                        "sent_callee_name", "sent_callee_num")
                row = {k: ra[k] for k in keys}
                row.update({f"b_{k}": rb[k] for k in keys
                            if k not in ("call_uuid", "hostname")})
                row["call_created_epoch"] = str(a.bridged_us // 1_000_000)
                rows.append(row)
            if not rows:
                return '{"row_count": 0}\n'
            return orjson.dumps({"row_count": len(rows), "rows": rows}).decode()

    def show_registrations_json(self) -> str:
        with self.lock:
            rows = [{"reg_user": a.ext, "realm": a.domain, "token": a.call_id,
                     "url": f"sofia/internal/sip:{a.ext}@127.0.0.1:{a.port};transport=UDP",
                     "expires": str(int(self.clock.now()) + 3600), "network_ip": "127.0.0.1",
                     "network_port": str(a.port), "network_proto": "udp",
                     "hostname": self.hostname, "metadata": ""}
                    for a in self.agents.values() if a.registered]
            if not rows:
                return '{"row_count": 0}\n'
            return orjson.dumps({"row_count": len(rows), "rows": rows}).decode()

    def _channel_row(self, ch: Channel) -> dict[str, str]:
        inbound = ch.direction == "inbound"
        return {
            "uuid": ch.uuid, "direction": ch.direction,
            "created": stamp_text(ch.created_us, self.tz),
            "created_epoch": str(ch.created_us // 1_000_000), "name": ch.name,
            "state": ch.state, "cid_name": ch.cid_name, "cid_num": ch.cid_num,
            "ip_addr": ch.network_addr if inbound else "", "dest": ch.dest,
            "application": ch.application, "application_data": ch.application_data,
            "dialplan": ch.dialplan, "context": ch.context, "read_codec": "PCMU",
            "read_rate": "8000", "read_bit_rate": "64000", "write_codec": "PCMU",
            "write_rate": "8000", "write_bit_rate": "64000", "secure": "",
            "hostname": self.hostname, "presence_id": ch.presence_id, "presence_data": "",
            "accountcode": ch.variables.get("accountcode", ""), "callstate": ch.callstate,
            "callee_name": ch.callee_name or "", "callee_num": ch.callee_num or "",
            "callee_direction": "SEND" if ch.callee_name else "",
            "call_uuid": ch.variables.get("call_uuid", "") if ch.bridged_to else "",
            "sent_callee_name": ch.callee_name or "", "sent_callee_num": ch.callee_num or "",
            "initial_cid_name": ch.orig_cid_name, "initial_cid_num": ch.orig_cid_num,
            "initial_ip_addr": ch.network_addr if inbound else "", "initial_dest": ch.dest,
            "initial_dialplan": ch.dialplan, "initial_context": ch.context,
        }

    # ------------------------------------------------------------------ api dispatch

    def api_event(self, command: str, arg: str) -> None:
        with self.lock:
            pairs = self._core("API")
            pairs.append(("API-Command", command))
            if arg:
                pairs.append(("API-Command-Argument", arg))
            self.emit(pairs)

    def execute(self, command: str, arg: str, done: Done) -> None:
        """Run an api command; ``done(body)`` is called once, maybe later (originate)."""
        with self.lock:
            self.api_event(command, arg)
            if command == "originate":
                self.originate(arg, done)
                return
            try:
                body = self._api(command, arg)
            except Exception as err:  # a command bug must not kill the client session
                log.exception("api %s %s failed", command, arg)
                self.errors.append(err)
                body = f"-ERR {type(err).__name__}: {err}\n"
            done(body)

    def _api(self, command: str, arg: str) -> str:
        args = arg.split()
        if command == "status":
            return self.status_text()
        if command == "version":
            return f"FreeSWITCH Version {VERSION} (tongdai ESL simulator)\n"
        if command == "uptime":
            return str(self._uptime()[1] // 1000)
        if command == "global_getvar":
            # Real FreeSWITCH answers core_uuid (and other globals) with the bare value.
            return self.core_uuid if args == ["core_uuid"] else ""
        if command == "show":
            what = " ".join(args)
            if what == "channels as json":
                return self.show_channels_json()
            if what == "calls as json":
                return self.show_calls_json()
            if what == "registrations as json":
                return self.show_registrations_json()
            if what == "channels":
                n = len(self.channels)
                if not n:
                    return "\n0 total.\n"
                rows = [",".join(self._channel_row(c).values()) for c in self.channels.values()]
                head = ",".join(self._channel_row(next(iter(self.channels.values()))).keys())
                return head + "\n" + "\n".join(rows) + f"\n\n{n} total.\n"
            return "-ERR Cannot find the show command " + what + "\n"
        if command == "uuid_bridge":
            if len(args) < 2:
                return "-USAGE: <uuid> <other_uuid>\n"
            return self.uuid_bridge(args[0], args[1])
        if command == "uuid_kill":
            if not args:
                return "-USAGE: <uuid> [cause]\n"
            cause = args[1] if len(args) > 1 else "NORMAL_CLEARING"
            ch = self.channels.get(args[0])
            disposition = "send_cancel" if ch is not None and not ch.answered_us else "send_bye"
            return "+OK\n" if self.hangup(args[0], cause, disposition=disposition) \
                else "-ERR No such channel!\n"
        if command == "uuid_transfer":
            rest = list(args)
            leg = rest.pop(1) if len(rest) > 1 and rest[1] in ("-bleg", "-both") else ""
            if len(rest) < 2:
                return "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
            return self.uuid_transfer(rest[0], rest[1], rest[2] if len(rest) > 2 else "XML",
                                      rest[3] if len(rest) > 3 else None, leg)
        if command == "uuid_broadcast":
            if len(args) < 2:
                return "-USAGE: <uuid> <path> [aleg|bleg|both]\n"
            with self.lock:
                if args[0] not in self.channels:
                    return "-ERR No such channel!\n"
            return "+OK Message sent\n"
        if command == "uuid_setvar":
            if len(args) < 2:
                return "-USAGE: <uuid> <var> [value]\n"
            parts = arg.split(None, 2)
            return self.uuid_setvar(parts[0], parts[1], parts[2] if len(parts) > 2 else None)
        if command == "uuid_getvar":
            if len(args) < 2:
                return "-USAGE: <uuid> <var>\n"
            return self.uuid_getvar(args[0], args[1])
        if command == "uuid_hold":
            rest = list(args)
            mode = rest.pop(0) if rest and rest[0] in ("off", "toggle") else "on"
            if not rest:
                return "-USAGE: [off|toggle] <uuid> [<display>]\n"
            return self.uuid_hold(rest[0], mode)
        if command == "uuid_record":
            if len(args) < 3 or args[1] not in ("start", "stop", "mask", "unmask"):
                return "-USAGE: <uuid> [start|stop|mask|unmask] <path> [<limit>]\n"
            return self.uuid_record(args[0], args[1], args[2])
        if command == "uuid_recv_dtmf":
            parts = arg.split(None, 1)
            if len(parts) < 2:
                return "-USAGE: <uuid> <dtmf_data>\n"
            return self.uuid_recv_dtmf(parts[0], parts[1])
        if command == "uuid_exists":
            return "true" if args and args[0] in self.channels else "false"
        if command == "uuid_dump":
            if not args:
                return "-USAGE: <uuid> [format]\n"
            return self.uuid_dump(args[0], args[1] if len(args) > 1 else "")
        if command == "hupall":
            cause = args[0] if args else "MANAGER_REQUEST"
            for uid in list(self.channels):
                self.hangup(uid, cause)
            return f"+OK hangup all channels with cause {cause}\n"
        return f"-ERR {command} Command not found!\n"

    # ------------------------------------------------------------------ helpers for tests

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait (wall time) until no channel is left. True when idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.channels:
                    return True
            time.sleep(0.01)
        return False
