"""tongdai routing: the pure contact-center domain model and routing policy.

No I/O, no clock, no randomness beyond seeds in the input. Time is an input in integer
microseconds since the Unix epoch (UTC).

    state = replay(events)              # or apply(state, event) one at a time
    decisions = decide(state, now_us)   # what to do now, each with candidates and reason
    state, decisions = step(state, event)   # apply + decide + record, the router loop body
"""

from routing.decisions import (
    Candidate,
    CancelOffer,
    ConnectCall,
    Decision,
    ForwardToMobile,
    OfferCall,
    OverflowCall,
    RunAfterHoursAction,
    make_id,
)
from routing.events import (
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentReleased,
    AgentRegistered,
    AgentResumed,
    AgentUnregistered,
    CallAbandoned,
    CallConnected,
    CallEnded,
    CallEnqueued,
    CallTransferred,
    ConfigChanged,
    ConfigRemoved,
    DecisionMade,
    Event,
    ExtensionBusy,
    ExtensionIdle,
    OfferAnswered,
    OfferBridged,
    OfferTakenLate,
    OfferRejected,
    Tick,
    WrapUpEnded,
)
from routing.model import (
    CAUSES,
    DEFAULT_PENALTIES,
    STRATEGIES,
    TET,
    US,
    Action,
    ActionKind,
    Agent,
    Call,
    Cause,
    Did,
    DidKind,
    LocalTime,
    Membership,
    Penalty,
    Queue,
    RelaxStep,
    Schedule,
    SkillReq,
    Strategy,
    Tenant,
    local_time,
    tet_holidays,
)
from routing.numbers import Region, region_of, to_e164
from routing.policy import decide, effective_priority, explain, run, step
from routing.state import (
    AgentState,
    CallState,
    CallStatus,
    Offer,
    State,
    Status,
    apply,
    is_ready,
    replay,
    sticky_agent,
)

__all__ = [
    # model
    "US", "Strategy", "STRATEGIES", "Cause", "CAUSES", "Action", "ActionKind", "Penalty",
    "DEFAULT_PENALTIES", "SkillReq", "RelaxStep", "Membership", "Schedule", "LocalTime",
    "local_time", "tet_holidays", "TET", "Tenant", "Queue", "Agent", "Did", "DidKind", "Call",
    "Region", "region_of", "to_e164",
    # state
    "State", "AgentState", "CallState", "CallStatus", "Offer", "Status", "is_ready", "sticky_agent",
    "apply", "replay",
    # events
    "Event", "ConfigChanged", "ConfigRemoved", "AgentLoggedIn", "AgentLoggedOut",
    "AgentRegistered", "AgentUnregistered", "AgentPaused", "AgentReleased", "AgentResumed",
    "CallEnqueued",
    "OfferAnswered", "OfferBridged", "OfferTakenLate", "OfferRejected", "CallAbandoned", "CallConnected", "CallEnded",
    "CallTransferred", "WrapUpEnded", "ExtensionBusy", "ExtensionIdle", "Tick", "DecisionMade",
    # policy and decisions
    "decide", "step", "run", "explain", "effective_priority", "Decision", "Candidate", "OfferCall",
    "CancelOffer", "ConnectCall", "RunAfterHoursAction", "OverflowCall", "ForwardToMobile",
    "make_id",
]
