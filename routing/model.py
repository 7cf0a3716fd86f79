"""The contact-center domain model: configuration values (tenants, queues, agents, DIDs,
schedules) and the call as it enters a queue.

All values are frozen. Configuration reaches the router as ``ConfigChanged`` events, so a
replay of the log rebuilds the configuration that was in force when each decision was made.
Time is integer microseconds since the Unix epoch, UTC, everywhere.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Mapping

from routing.numbers import Region

__all__ = [
    "US",
    "VN_OFFSET_US",
    "Strategy",
    "STRATEGIES",
    "Cause",
    "CAUSES",
    "ActionKind",
    "Action",
    "Penalty",
    "DEFAULT_PENALTIES",
    "SkillReq",
    "RelaxStep",
    "Membership",
    "Schedule",
    "LocalTime",
    "local_time",
    "tet_holidays",
    "TET",
    "Tenant",
    "Queue",
    "Agent",
    "Did",
    "Call",
    "DidKind",
]

US = 1_000_000
"""Microseconds per second."""

VN_OFFSET_US = 7 * 3600 * US
"""Asia/Ho_Chi_Minh is UTC+7 all year (no DST since 1975), so a fixed offset is exact and
keeps routing free of the tz database (zoneinfo reads files)."""


class Strategy:
    """Names of the queue strategies (the same words as mod_callcenter where they exist)."""

    RING_ALL = "ring-all"
    LONGEST_IDLE = "longest-idle-agent"
    ROUND_ROBIN = "round-robin"
    TOP_DOWN = "top-down"
    LEAST_TALK_TIME = "agent-with-least-talk-time"
    FEWEST_CALLS = "agent-with-fewest-calls"
    RANDOM = "random"
    RING_PROGRESSIVELY = "ring-progressively"
    LEAST_OCCUPANCY = "least-occupancy"


STRATEGIES = frozenset(v for k, v in vars(Strategy).items() if k.isupper())


class Cause:
    """Why an offer to an agent failed; each has its own penalty (see :class:`Penalty`)."""

    NO_ANSWER = "no_answer"
    BUSY = "busy"
    REJECTED = "rejected"
    NOT_REGISTERED = "not_registered"
    # The offer never reached the agent's phone (its FreeSWITCH node was not connected, the
    # decision expired on the way, the node refused the command): withdrawn, no penalty.
    NOT_DELIVERED = "not_delivered"


CAUSES = (Cause.NO_ANSWER, Cause.BUSY, Cause.REJECTED, Cause.NOT_REGISTERED)  # penalized


class ActionKind:
    """What to do with a call the queue cannot serve."""

    VOICEMAIL = "voicemail"
    ANNOUNCEMENT = "announcement"
    QUEUE = "queue"  # transfer to another queue (target = queue id)
    FORWARD = "forward"  # forward to a number (target = E.164 or extension)
    HANGUP = "hangup"


_ACTION_KINDS = frozenset(v for k, v in vars(ActionKind).items() if k.isupper())


@dataclass(frozen=True, slots=True)
class Action:
    """An after-hours / overflow / no-agent action. ``target`` is the mailbox, announcement
    file, queue id or number, depending on ``kind``."""

    kind: str
    target: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _ACTION_KINDS:
            raise ValueError(f"Action.kind must be one of {sorted(_ACTION_KINDS)}, got {self.kind!r}")
        if self.kind in (ActionKind.QUEUE, ActionKind.FORWARD) and not self.target:
            raise ValueError(f"Action.target is required for kind {self.kind!r}")

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}" if self.target else self.kind


@dataclass(frozen=True, slots=True)
class Penalty:
    """Ring-no-answer handling for one cause: the agent is held out of routing for
    ``delay_s``; after ``max_count`` consecutive failures of this cause the agent is paused
    (reason ``"max_<cause>"``). ``max_count=0`` means never pause."""

    delay_s: int
    max_count: int

    def __post_init__(self) -> None:
        if self.delay_s < 0 or self.max_count < 0:
            raise ValueError(f"Penalty.delay_s and max_count must be ≥ 0, got {self.delay_s}, {self.max_count}")


# Close to mod_callcenter's sample agent (max-no-answer 3, reject-delay-time 10,
# busy-delay-time 60); not-registered is ours, mod_callcenter has no separate handling.
DEFAULT_PENALTIES: Mapping[str, Penalty] = {
    Cause.NO_ANSWER: Penalty(delay_s=10, max_count=3),
    Cause.BUSY: Penalty(delay_s=60, max_count=0),
    Cause.REJECTED: Penalty(delay_s=10, max_count=0),
    Cause.NOT_REGISTERED: Penalty(delay_s=30, max_count=3),
}


@dataclass(frozen=True, slots=True)
class SkillReq:
    """A skill a call needs, with the minimum proficiency (1–10) an agent must have."""

    skill: str
    min_level: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.min_level <= 10:
            raise ValueError(f"SkillReq.min_level must be 1–10, got {self.min_level} for {self.skill!r}")


@dataclass(frozen=True, slots=True)
class RelaxStep:
    """After a call has waited ``after_s`` seconds, accept agents whose proficiency is at
    least ``min_level`` (instead of what the call asked for)."""

    after_s: int
    min_level: int


@dataclass(frozen=True, slots=True)
class Membership:
    """An agent's place in a queue: ``level`` (tier; 1 is tried first) and ``position``
    (order within the level for top-down, round-robin and ring-progressively)."""

    level: int = 1
    position: int = 1

    def __post_init__(self) -> None:
        if self.level < 1:
            raise ValueError(f"Membership.level must be ≥ 1, got {self.level}")


# --------------------------------------------------------------------------------- time ---


@dataclass(frozen=True, slots=True)
class LocalTime:
    """A moment in Asia/Ho_Chi_Minh: ISO weekday 0=Monday, minute of day, ISO date."""

    weekday: int
    minute: int
    date: str


def local_time(now_us: int) -> LocalTime:
    """The Asia/Ho_Chi_Minh weekday, minute of day and date of a UTC microsecond instant."""
    local_s = (now_us + VN_OFFSET_US) // US
    days, sec = divmod(local_s, 86400)
    date = _dt.date(1970, 1, 1) + _dt.timedelta(days=days)
    # 1970-01-01 was a Thursday (weekday 3).
    return LocalTime(weekday=(days + 3) % 7, minute=sec // 60, date=date.isoformat())


# Lunar New Year's day (mùng 1 Tết) by Gregorian date.
TET: Mapping[int, str] = {
    2024: "2024-02-10",
    2025: "2025-01-29",
    2026: "2026-02-17",
    2027: "2027-02-06",
    2028: "2028-01-26",
    2029: "2029-02-13",
    2030: "2030-02-03",
}


def tet_holidays(year: int, days_before: int = 1, days_after: int = 4) -> frozenset[str]:
    """ISO dates of the Tết holiday of ``year``: New Year's Eve (``days_before``) through
    the ``days_after``-th day after mùng 1. Raises KeyError for years not in :data:`TET`."""
    first = _dt.date.fromisoformat(TET[year])
    return frozenset(
        (first + _dt.timedelta(days=d)).isoformat() for d in range(-days_before, days_after + 1)
    )


@dataclass(frozen=True, slots=True)
class Schedule:
    """Weekly opening hours in Asia/Ho_Chi_Minh plus closed dates.

    ``hours[weekday]`` (0 = Monday) is a tuple of ``(start_minute, end_minute)`` half-open
    intervals within the day; a missing weekday is closed all day. ``holidays`` are ISO dates
    (``"2026-02-17"``) closed all day. An agent shift is the same shape.
    """

    id: str = ""
    hours: Mapping[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    holidays: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for day, spans in self.hours.items():
            if not 0 <= day <= 6:
                raise ValueError(f"Schedule {self.id!r}: weekday must be 0 (Monday)–6, got {day}")
            for start, end in spans:
                if not 0 <= start < end <= 1440:
                    raise ValueError(f"Schedule {self.id!r}: interval ({start}, {end}) on day {day} "
                                     "must satisfy 0 ≤ start < end ≤ 1440 minutes")

    @staticmethod
    def always(id: str = "24x7") -> "Schedule":
        """Open all day, every day."""
        return Schedule(id=id, hours={d: ((0, 1440),) for d in range(7)})

    @staticmethod
    def weekly(
        start: str, end: str, days: tuple[int, ...] = (0, 1, 2, 3, 4), id: str = "",
        holidays: frozenset[str] = frozenset(),
    ) -> "Schedule":
        """Same hours (``"08:00"``–``"17:30"``) on each of ``days``."""
        def minute(hhmm: str) -> int:
            h, m = hhmm.split(":")
            return int(h) * 60 + int(m)

        return Schedule(id=id, hours={d: ((minute(start), minute(end)),) for d in days},
                        holidays=holidays)

    def is_open(self, t: LocalTime) -> bool:
        """True if ``t`` falls in the opening hours and not on a holiday."""
        if t.date in self.holidays:
            return False
        for start, end in self.hours.get(t.weekday, ()):
            if start <= t.minute < end:
                return True
        return False


# -------------------------------------------------------------------------------- config ---


@dataclass(frozen=True, slots=True)
class Tenant:
    """A customer of the platform. ``max_concurrent_calls`` is the plan limit on calls being
    offered to or talking with agents at once (0 = unlimited). ``region_prefixes`` maps
    national-form prefixes (e.g. a known mobile range ``"0912"``) to regions, consulted
    before the built-in area codes."""

    id: str
    max_concurrent_calls: int = 0
    region_prefixes: Mapping[str, Region] = field(default_factory=dict)


class DidKind:
    """Kinds of DIDs: 1800 toll-free and 1900 premium are inbound only."""

    TOLL_FREE = "toll_free"
    PREMIUM = "premium"
    GEOGRAPHIC = "geographic"
    MOBILE = "mobile"


@dataclass(frozen=True, slots=True)
class Did:
    """A number customers dial. ``region`` (``north``/``central``/``south``), when set, is the
    caller region assumed for calls to this number (e.g. a Hà Nội hotline)."""

    number: str
    tenant: str
    kind: str = DidKind.GEOGRAPHIC
    queue: str = ""
    region: str | None = None

    @property
    def id(self) -> str:
        return self.number

    @property
    def inbound_only(self) -> bool:
        """1800/1900 numbers cannot be used as outbound caller id."""
        return self.kind in (DidKind.TOLL_FREE, DidKind.PREMIUM)


@dataclass(frozen=True, slots=True)
class Queue:
    """An ACD queue and its routing policy.

    Timers are in seconds of the call's wait (time since it was enqueued). ``None`` disables
    a rule. See ``routing/MOD_CALLCENTER.md`` for the mapping to mod_callcenter parameters.
    """

    id: str
    tenant: str
    strategy: str = Strategy.LONGEST_IDLE
    seed: int = 0  # for the random strategy; part of the input, so replays agree
    schedule: Schedule | None = None  # None = always open
    after_hours: Action = Action(ActionKind.VOICEMAIL)
    # Skills
    skills: tuple[SkillReq, ...] = ()  # required of every call, in addition to the call's own
    relax: tuple[RelaxStep, ...] = ()
    any_agent_after_s: int | None = None  # then skills and language are ignored
    prefer_best_skill: bool = True
    # Tiers: level L is tried once the call waited (L - 1) * tier_wait_s.
    tier_wait_s: int | None = None
    # When no agent of the open tiers is ready, go straight to the next tier that has one.
    tier_no_agent_no_wait: bool = False
    # Geo: only same-region agents until the call waited this long.
    geo_widen_after_s: int | None = None
    # Priority
    vip_boost: int = 10
    aging_s: int | None = 60  # one priority level gained per aging_s of wait
    # Load: fewest-calls and least-talk-time count calls ended in this window (None = since
    # the agent logged in, as mod_callcenter does).
    load_window_s: int | None = None
    # Sticky agent
    sticky_wait_s: int = 0
    # Offers
    # Who bridges the caller when an agent's phone answers: "switch" (FreeSWITCH, at once,
    # first answer wins: no dead air for the agent) or "router" (the answered leg parks and
    # the router orders the bridge: one more round trip through Kafka).
    connect: str = "switch"
    offer_timeout_s: int = 20
    ring_progressive_step_s: int = 10
    wrapup_s: int = 10
    # Overflow
    max_wait_s: int | None = None
    max_wait_action: Action = Action(ActionKind.VOICEMAIL)
    max_queue_len: int | None = None
    max_len_action: Action = Action(ActionKind.ANNOUNCEMENT, "queue_full")
    no_agent_action: Action | None = None  # when no member is logged in
    forward_to_mobile: bool = False  # when no member's extension is online
    # Waiting callers hear their position and estimated wait (routing/announce.py): on
    # entry, then every announce_every_s (0: on entry only; None: never).
    announce_every_s: int | None = None
    # Callbacks that keep the caller's place (routing/callbacks.py): the key a waiting
    # caller presses (None: no callbacks) and how many times the customer is dialled.
    callback_key: str | None = None
    callback_attempts: int = 3

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"Queue {self.id!r}: strategy must be one of {sorted(STRATEGIES)}, "
                             f"got {self.strategy!r}")
        if self.connect not in ("switch", "router"):
            raise ValueError(f"Queue {self.id!r}: connect must be switch or router, "
                             f"got {self.connect!r}")
        for name in ("offer_timeout_s", "ring_progressive_step_s"):
            if getattr(self, name) < 1:
                raise ValueError(f"Queue {self.id!r}: {name} must be ≥ 1 s")
        for name in ("wrapup_s", "vip_boost", "sticky_wait_s", "tier_wait_s", "geo_widen_after_s",
                     "any_agent_after_s", "max_wait_s", "max_queue_len", "load_window_s",
                     "announce_every_s"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"Queue {self.id!r}: {name} must be ≥ 0, got {v}")
        if self.callback_key is not None and self.callback_key not in "0123456789*#":
            raise ValueError(f"Queue {self.id!r}: callback_key must be one key of 0-9, * or #, "
                             f"got {self.callback_key!r}")
        if self.callback_attempts < 1:
            raise ValueError(f"Queue {self.id!r}: callback_attempts must be ≥ 1")
        if self.aging_s is not None and self.aging_s < 1:
            raise ValueError(f"Queue {self.id!r}: aging_s must be ≥ 1 s or None")


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent's configuration. ``skills`` maps skill name to proficiency 1–10; ``queues``
    maps queue id to :class:`Membership`; ``region`` is ``north``/``central``/``south``."""

    id: str
    tenant: str
    extension: str = ""
    skills: Mapping[str, int] = field(default_factory=dict)
    languages: frozenset[str] = frozenset({"vi"})
    region: str | None = None
    site: str = ""
    mobile: str = ""
    shift: Schedule | None = None  # None = no shift restriction
    max_concurrent: int = 1
    queues: Mapping[str, Membership] = field(default_factory=dict)
    penalties: Mapping[str, Penalty] = field(default_factory=lambda: DEFAULT_PENALTIES)
    wrapup_s: int | None = None  # overrides the queue's
    offer_timeout_s: int | None = None  # overrides the queue's

    def __post_init__(self) -> None:
        for skill, level in self.skills.items():
            if not 1 <= level <= 10:
                raise ValueError(f"Agent {self.id!r}: proficiency of {skill!r} must be 1–10, got {level}")
        if self.max_concurrent < 1:
            raise ValueError(f"Agent {self.id!r}: max_concurrent must be ≥ 1, got {self.max_concurrent}")
        if self.offer_timeout_s is not None and self.offer_timeout_s < 1:
            raise ValueError(f"Agent {self.id!r}: offer_timeout_s must be ≥ 1 s")


@dataclass(frozen=True, slots=True)
class Call:
    """A call as it enters a queue (the payload of ``CallEnqueued``).

    ``region`` is the caller's region when known from an IVR choice; otherwise the router
    takes it from the DID, then from the caller number's area code.
    """

    id: str
    tenant: str
    queue: str
    caller: str = ""
    did: str = ""
    priority: int = 0
    vip: bool = False
    skills: tuple[SkillReq, ...] = ()
    language: str | None = None
    region: str | None = None
