"""Domain events: the facts the router folds into its state.

Every event is a frozen value with ``at_us`` (when it happened, UTC microseconds; from
FreeSWITCH's ``Event-Date-Timestamp`` when it came from FreeSWITCH) and a ``type`` in
past-tense snake_case, the name used on the wire. ``DecisionMade`` records a decision the
router took, so that replaying the log reproduces the offers it made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Union

from routing.model import Agent, Call, Did, Queue, Tenant

if TYPE_CHECKING:
    from routing.decisions import Decision

__all__ = [
    "Event",
    "ConfigChanged",
    "ConfigRemoved",
    "AgentLoggedIn",
    "AgentLoggedOut",
    "AgentRegistered",
    "AgentUnregistered",
    "AgentPaused",
    "AgentResumed",
    "CallEnqueued",
    "OfferAnswered",
    "OfferBridged",
    "OfferRejected",
    "CallAbandoned",
    "CallConnected",
    "CallEnded",
    "CallTransferred",
    "WrapUpEnded",
    "ExtensionBusy",
    "ExtensionIdle",
    "AgentReleased",
    "Tick",
    "DecisionMade",
    "ConfigEntity",
]

ConfigEntity = Union[Tenant, Queue, Agent, Did]

_EV = dict(frozen=True, slots=True, kw_only=True)


@dataclass(**_EV)
class ConfigChanged:
    """A tenant, queue, agent or DID was created or changed (the whole new value)."""

    type: ClassVar[str] = "config_changed"
    at_us: int
    entity: ConfigEntity


@dataclass(**_EV)
class ConfigRemoved:
    """A configuration entity was deleted. ``kind`` is ``tenant``/``queue``/``agent``/``did``."""

    type: ClassVar[str] = "config_removed"
    at_us: int
    kind: str
    id: str


@dataclass(**_EV)
class AgentLoggedIn:
    """The agent logged in to the contact center (not the same as a registered phone)."""

    type: ClassVar[str] = "agent_logged_in"
    at_us: int
    agent_id: str


@dataclass(**_EV)
class AgentLoggedOut:
    type: ClassVar[str] = "agent_logged_out"
    at_us: int
    agent_id: str


@dataclass(**_EV)
class AgentRegistered:
    """The agent's extension registered (SIP REGISTER seen by FreeSWITCH)."""

    type: ClassVar[str] = "agent_registered"
    at_us: int
    agent_id: str


@dataclass(**_EV)
class AgentUnregistered:
    type: ClassVar[str] = "agent_unregistered"
    at_us: int
    agent_id: str


@dataclass(**_EV)
class AgentPaused:
    """The agent asked for a break; takes effect when the current call and wrap-up end."""

    type: ClassVar[str] = "agent_paused"
    at_us: int
    agent_id: str
    reason: str = "break"


@dataclass(**_EV)
class AgentResumed:
    type: ClassVar[str] = "agent_resumed"
    at_us: int
    agent_id: str


@dataclass(**_EV)
class CallEnqueued:
    """A caller was parked in a queue (CHANNEL_PARK with ``tongdai_queue``)."""

    type: ClassVar[str] = "call_enqueued"
    at_us: int
    call: Call
    # When the caller really parked, if earlier than ``at_us``: a caller adopted from a
    # node's snapshot (its park was lost in a gap) keeps the wait it already had.
    since_us: int | None = None


@dataclass(**_EV)
class OfferAnswered:
    """The agent leg of an offer answered and is parked, ready to bridge."""

    type: ClassVar[str] = "offer_answered"
    at_us: int
    offer_id: str


@dataclass(**_EV)
class OfferBridged:
    """The agent's phone answered and the switch bridged it to the caller at once (the
    queue connects at the switch): answered and connected in one fact."""

    type: ClassVar[str] = "offer_bridged"
    at_us: int
    offer_id: str


@dataclass(**_EV)
class OfferTakenLate:
    """The switch bridged an offer's leg to its caller after the router had given that
    offer up: the answer reached the router after the offer's ring time (the log was slow,
    e.g. a broker failing over; the phone was not). The caller is talking to that agent:
    the call is connected to it, its ring-no-answer is undone, the call's other offers are
    cancelled."""

    type: ClassVar[str] = "offer_taken_late"
    at_us: int
    offer_id: str
    call_id: str
    agent_id: str


@dataclass(**_EV)
class OfferRejected:
    """An offer failed: ``cause`` is one of :data:`routing.model.CAUSES`."""

    type: ClassVar[str] = "offer_rejected"
    at_us: int
    offer_id: str
    cause: str


@dataclass(**_EV)
class CallAbandoned:
    """The caller hung up while waiting or while an agent was being rung."""

    type: ClassVar[str] = "call_abandoned"
    at_us: int
    call_id: str


@dataclass(**_EV)
class CallConnected:
    """The caller and the agent are bridged (CHANNEL_BRIDGE seen, not just ``+OK``)."""

    type: ClassVar[str] = "call_connected"
    at_us: int
    call_id: str


@dataclass(**_EV)
class CallEnded:
    """The call hung up. A connected agent goes to wrap-up."""

    type: ClassVar[str] = "call_ended"
    at_us: int
    call_id: str


@dataclass(**_EV)
class CallTransferred:
    """The agent who had the call handed it on from its phone (a blind or attended transfer:
    the switch ended the agent's leg with the caller still up). The agent goes to wrap-up;
    the caller talks on with whom it was transferred to, or parks in a queue again (a new
    CallEnqueued of the same call), until its CallEnded."""

    type: ClassVar[str] = "call_transferred"
    at_us: int
    call_id: str


@dataclass(**_EV)
class WrapUpEnded:
    """The agent finished wrap-up early (pressed "ready")."""

    type: ClassVar[str] = "wrap_up_ended"
    at_us: int
    agent_id: str


@dataclass(**_EV)
class ExtensionBusy:
    """A leg on the agent's phone that no queue offered: a direct or internal call, a
    click-to-call, a call the agent placed. The agent is not offered queue calls meanwhile
    (presence from call activity: the phone is busy whatever the agent's ACD state)."""

    type: ClassVar[str] = "extension_busy"
    at_us: int
    agent_id: str
    leg_id: str


@dataclass(**_EV)
class ExtensionIdle:
    """That leg ended (or was never created: a click-to-call whose originate failed)."""

    type: ClassVar[str] = "extension_idle"
    at_us: int
    agent_id: str
    leg_id: str


@dataclass(**_EV)
class AgentReleased:
    """The switch has no channel for what the agent was believed busy with (a call that
    is gone, an offer that no longer exists): the agent is freed, without wrap-up or
    penalty. Emitted by reconciliation with a node's snapshot."""

    type: ClassVar[str] = "agent_released"
    at_us: int
    agent_id: str
    call_id: str | None = None
    offer_id: str | None = None


@dataclass(**_EV)
class Tick:
    """Time passed. Ends wrap-ups and ring-no-answer delays that are due."""

    type: ClassVar[str] = "tick"
    at_us: int


@dataclass(**_EV)
class DecisionMade:
    """The router took ``decision``; folding it marks offers ringing, calls overflowed…"""

    type: ClassVar[str] = "decision_made"
    at_us: int
    decision: "Decision"


Event = Union[
    ConfigChanged,
    ConfigRemoved,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentRegistered,
    AgentUnregistered,
    AgentPaused,
    AgentResumed,
    CallEnqueued,
    OfferAnswered,
    OfferBridged,
    OfferTakenLate,
    OfferRejected,
    CallAbandoned,
    CallConnected,
    CallEnded,
    CallTransferred,
    WrapUpEnded,
    ExtensionBusy,
    ExtensionIdle,
    AgentReleased,
    Tick,
    DecisionMade,
]
