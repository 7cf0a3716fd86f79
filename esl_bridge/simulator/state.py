"""What a simulated node keeps of its phones (``Agent``), call legs (``Channel``) and
eavesdrops (``Monitor``): plain records that the node's concerns read and change under
``Node.lock``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .clock import Timer
from .model import AgentSpec, CallerSpec

#: An event's headers in wire order.
Pairs = list[tuple[str, str]]
#: Gets a command's (or a job's) reply body, once.
Done = Callable[[str], None]


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
class Broadcast:
    """An application uuid_broadcast queued on a leg: ``playback <file>``, or the
    ``hangup <cause>`` a ``playback!<cause>`` queues after it."""

    app: str
    arg: str
    started: bool = False
    app_uuid: str = ""
    end: Timer | None = None  # when it ends by itself (None: never, or not started)


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
    #: Applications uuid_broadcast queued on the leg (its session's private events), in
    #: order; the first runs once ``started``.
    broadcasts: list[Broadcast] = field(default_factory=list, repr=False)

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

