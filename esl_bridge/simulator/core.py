"""The state of a simulated FreeSWITCH node and how it fires events: the core headers every
event starts with, a leg's channel events, and the state, callstate and application events
only a full-fidelity node fires. The node's concerns (``channels``, ``dialplan``,
``applications``, ``commands``) build on ``NodeCore``; ``node.Node`` puts them together.

Everything runs under ``NodeCore.lock``: scheduled callbacks (on the scheduler thread) and
commands (on client threads) never interleave.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import uuid as uuid_mod
from collections.abc import Callable
from datetime import timezone
from zoneinfo import ZoneInfo

from esl_bridge.protocol import Event

from .clock import Scheduler, SimClock, Timer
from .headers import (
    CALLING,
    CALLSTATE_NUMBER,
    VERSION,
    channel_pairs,
    gmt_text,
    stamp_text,
    uptime_text,
)
from .model import NumberSpec
from .state import Agent, Channel, Monitor, Pairs

log = logging.getLogger(__name__)


class NodeCore:
    """A node's options and state, its clock and scheduler, and event firing. Listeners get
    every event fired (an ``Event`` with decoded values); they run under the node lock and
    must not block."""

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
                 record_inbound: bool = False, prompt_file_s: float = 2.0) -> None:
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
        #: How long one prompt file plays (the node has no audio): a uuid_broadcast of
        #: ``file_string://a!b`` lasts two of these before what it queued after it runs.
        self.prompt_file_s = prompt_file_s
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
        #: The variables the dialplan sets for a DID (``set_did``), by DID.
        self.dids: dict[str, dict[str, str]] = {}

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
            self.dids[did] = dict(variables)

    # ------------------------------------------------------------------ timers and legs

    def _at(self, due: float, fn: Callable[[], None]) -> Timer:
        return self.scheduler.call_at(due, fn)

    def _later(self, ch: Channel, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` in ``delay`` simulated seconds unless the leg is gone by then; the
        leg's hangup cancels it."""
        def run() -> None:
            if not ch.gone:
                fn()
        ch.timers.append(self.scheduler.call_later(delay, run))

    def _new_channel(self, ch: Channel) -> Channel:
        self.channels[ch.uuid] = ch
        self._sessions_since_start += 1
        self._peak = max(self._peak, len(self.channels))
        return ch

    # ------------------------------------------------------------------ events

    def core_pairs(self, name: str, calling_key: str | None = None,
                   subclass: str | None = None) -> Pairs:
        """The headers every event starts with (Event-Name ... Event-Sequence)."""
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

    def _channel_event(self, name: str, ch: Channel, *, state: str | None = None,
                       number: int | None = None, prefix: Pairs | None = None,
                       subclass: str | None = None, suffix: Pairs | None = None) -> Event:
        pairs = self.core_pairs(name, subclass=subclass)
        pairs += prefix or []
        # FreeSWITCH fires state changes with the channel's basic data only, no variables.
        pairs += channel_pairs(ch, state, number, variables=name not in (
            "CHANNEL_STATE", "CHANNEL_CALLSTATE"))
        pairs += suffix or []
        return self.emit(pairs)

    def _created(self, ch: Channel, *states: str) -> None:
        """A new leg: CHANNEL_CREATE (after its CHANNEL_STATE at full fidelity), then the
        states it goes through before anything else happens to it."""
        self._new_channel(ch)
        if self.full:
            self._channel_event("CHANNEL_STATE", ch)
        self._channel_event("CHANNEL_CREATE", ch, state="CS_INIT", number=2)
        for state in states:
            self._state(ch, state)

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

    def _export(self, ch: Channel, name: str, value: str) -> None:
        """The dialplan's ``export``: set on the leg and named in ``export_vars``, so that
        the legs its ``bridge`` originates get it too."""
        self._app_start(ch, "export", f"{name}={value}")
        ch.variables[name] = value
        names = [n for n in ch.variables.get("export_vars", "").split(",") if n]
        if name not in names:
            ch.variables["export_vars"] = ",".join([*names, name])
        self._app_done(ch)

    # ------------------------------------------------------------------ heartbeat

    def _uptime(self) -> tuple[str, int]:
        us = max(0, self.clock.now_us() - self._started_us)
        return uptime_text(us), us // 1000

    def heartbeat_event(self) -> Event:
        with self.lock:
            uptime, uptime_ms = self._uptime()
            pairs = self.core_pairs("HEARTBEAT")
            pairs += [
                ("Event-Info", "System Ready"), ("Up-Time", uptime),
                ("FreeSWITCH-Version", VERSION), ("Uptime-msec", str(uptime_ms)),
                ("Session-Count", str(len(self.channels))),
                ("Max-Sessions", str(self.max_sessions)),
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
