"""Marshmallow schemas of the envelope and of every payload type, per version.

The registry `PAYLOADS[(type, version)]` is the contract: a producer validates against
it in tests, a consumer upcasts to the current version (see `upcasters.py`) and then
may rely on the fields named here. Unknown fields are rejected so a misspelt field is
caught at the producer, not discovered in a report.
"""
from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from . import topics


class _Strict(Schema):
    class Meta:
        unknown = RAISE


_NON_EMPTY = validate.Length(min=1)
_SNAKE = validate.Regexp(r"^[a-z][a-z0-9_]*$", error="must be snake_case")


class EnvelopeSchema(_Strict):
    """The envelope (deploy/docs/DESIGN.md, "The envelope"): the same fields on every topic."""

    event_id = fields.String(required=True, validate=_NON_EMPTY)
    type = fields.String(required=True, validate=_SNAKE)
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    occurred_at = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    tenant = fields.String(required=True, validate=_NON_EMPTY)
    source = fields.String(required=True, validate=_NON_EMPTY)
    seq = fields.Integer(required=True, allow_none=True, strict=True)
    call_id = fields.String(required=True, allow_none=True)
    payload = fields.Dict(keys=fields.String(), required=True)


# ---- tongdai.fs.events.v1: what FreeSWITCH said, normalized -------------------------

class ChannelEventV1(_Strict):
    """A channel's lifecycle fact. `leg_id` is this leg; the envelope's call_id is the a-leg."""

    fs_event = fields.String(required=True)  # FreeSWITCH Event-Name (or CUSTOM subclass)
    leg_id = fields.String(required=True)
    leg = fields.String(required=True, validate=validate.OneOf(["a", "b"]))
    direction = fields.String(required=True,
                              validate=validate.OneOf(["inbound", "outbound", "internal"]))
    caller = fields.String(load_default=None, allow_none=True)  # E.164 or extension
    caller_name = fields.String(load_default=None, allow_none=True)
    callee = fields.String(load_default=None, allow_none=True)
    domain = fields.String(load_default=None, allow_none=True)
    did = fields.String(load_default=None, allow_none=True)
    queue = fields.String(load_default=None, allow_none=True)
    ivr_path = fields.String(load_default=None, allow_none=True)
    priority = fields.Integer(load_default=None, allow_none=True)
    vip = fields.Boolean(load_default=None, allow_none=True)
    skills = fields.Dict(keys=fields.String(), values=fields.Integer(), load_default=None,
                         allow_none=True)  # skill -> minimum proficiency
    language = fields.String(load_default=None, allow_none=True)
    region = fields.String(load_default=None, allow_none=True)
    offer_id = fields.String(load_default=None, allow_none=True)  # set on agent legs we originated
    # The tenant's extension whose phone this leg is (Channel-Presence-ID), if any.
    extension = fields.String(load_default=None, allow_none=True)
    other_leg_id = fields.String(load_default=None, allow_none=True)
    channel_state = fields.String(load_default=None, allow_none=True)
    answer_state = fields.String(load_default=None, allow_none=True)
    hangup_cause = fields.String(load_default=None, allow_none=True)
    dtmf_digit = fields.String(load_default=None, allow_none=True)
    recording_path = fields.String(load_default=None, allow_none=True)
    ivr_choice = fields.String(load_default=None, allow_none=True)
    # Raw FreeSWITCH headers the analytics and replays need (name -> decoded value).
    headers = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)


class ChannelVanishedV1(_Strict):
    """A leg the bridge knew was up is no longer on the switch and its hangup was never
    heard (it ended while no bridge was connected). The envelope's occurred_at is when the
    node was last heard from: the earliest the leg can have ended; `noticed_us` the latest."""

    leg_id = fields.String(required=True, validate=_NON_EMPTY)
    leg = fields.String(required=True, validate=validate.OneOf(["a", "b"]))
    offer_id = fields.String(load_default=None, allow_none=True)
    extension = fields.String(load_default=None, allow_none=True)
    last_heard_us = fields.Integer(required=True, strict=True)
    noticed_us = fields.Integer(required=True, strict=True)


class CallcenterEventV1(_Strict):
    """A mod_callcenter queue fact (`CUSTOM callcenter::info`) about a member's call: the
    envelope's call_id is the member's session (CC-Member-Session-UUID)."""

    fs_event = fields.String(required=True)
    action = fields.String(required=True)  # CC-Action: member-queue-start, agent-offering, ...
    queue = fields.String(required=True)  # CC-Queue (name@domain)
    agent = fields.String(load_default=None, allow_none=True)  # CC-Agent
    agent_leg_id = fields.String(load_default=None, allow_none=True)  # CC-Agent-UUID
    member_uuid = fields.String(load_default=None, allow_none=True)
    leg_id = fields.String(load_default=None, allow_none=True)  # the channel the data is of
    cause = fields.String(load_default=None, allow_none=True)  # CC-Cause
    cancel_reason = fields.String(load_default=None, allow_none=True)
    hangup_cause = fields.String(load_default=None, allow_none=True)  # CC-Hangup-Cause
    caller = fields.String(load_default=None, allow_none=True)
    caller_name = fields.String(load_default=None, allow_none=True)
    headers = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)


class RegistrationV1(_Strict):
    """A SIP registration change of an extension (sofia::register/unregister/expire)."""

    fs_event = fields.String(required=True)
    extension = fields.String(required=True)
    domain = fields.String(required=True)
    contact = fields.String(load_default=None, allow_none=True)
    user_agent = fields.String(load_default=None, allow_none=True)
    network_ip = fields.String(load_default=None, allow_none=True)
    expires_s = fields.Integer(load_default=None, allow_none=True)


class BackgroundJobV1(_Strict):
    """The end of a `bgapi` job, as FreeSWITCH reported it."""

    job_uuid = fields.String(required=True)
    command = fields.String(required=True)
    ok = fields.Boolean(required=True)
    result = fields.String(required=True)


class HeartbeatV1(_Strict):
    """A node's periodic HEARTBEAT: proof of life and its load."""

    hostname = fields.String(required=True)
    sessions_active = fields.Integer(required=True)
    uptime_ms = fields.Integer(required=True)


class NodeSnapshotV1(_Strict):
    """What really exists on a node after the bridge (re)connected: consumers reconcile."""

    node = fields.String(required=True)
    reason = fields.String(required=True,
                           validate=validate.OneOf(["connected", "reconnected", "requested",
                                                     "node_restarted"]))
    channels = fields.List(fields.Dict(keys=fields.String()), required=True)
    registrations = fields.List(fields.Dict(keys=fields.String()), required=True)


class NodeSnapshotV2(_Strict):
    """What really exists on a node: at every (re)connect and every few seconds
    (`periodic`). A channel row may carry `tongdai`: what the bridge knows of that leg
    (tenant, call_id, offer_id, queue, caller..., and `parked_us` for a caller parked for a
    queue), read from its events or, for a leg it never saw, from `uuid_dump`."""

    node = fields.String(required=True)
    reason = fields.String(required=True,
                           validate=validate.OneOf(["connected", "reconnected", "requested",
                                                     "node_restarted", "periodic"]))
    channels = fields.List(fields.Dict(keys=fields.String()), required=True)
    registrations = fields.List(fields.Dict(keys=fields.String()), required=True)


class NodeStatusV1(_Strict):
    """The bridge's view of a node's connection (up, down, silent: missing heartbeats)."""

    node = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["up", "down", "silent"]))
    detail = fields.String(load_default="")


class CommandOutcomeV1(_Strict):
    """What became of a routing command the actuator executed."""

    command_id = fields.String(required=True)
    command = fields.String(required=True)
    ok = fields.Boolean(required=True)
    result = fields.String(required=True)
    job_uuid = fields.String(load_default=None, allow_none=True)


# ---- tongdai.cc.events.v1: facts the router decided ---------------------------------

class CallEnqueuedV1(_Strict):
    queue = fields.String(required=True)
    caller = fields.String(required=True)
    did = fields.String(load_default=None, allow_none=True)
    priority = fields.Integer(load_default=0)
    vip = fields.Boolean(load_default=False)
    skills = fields.Dict(keys=fields.String(), values=fields.Integer(), load_default=dict)
    language = fields.String(load_default=None, allow_none=True)
    region = fields.String(load_default=None, allow_none=True)


class CallbackRequestedV1(_Strict):
    """The waiting caller confirmed a callback: the call keeps its place in the queue."""

    queue = fields.String(required=True)
    number = fields.String(required=True)  # E.164, what will be dialled
    position = fields.Integer(load_default=None, allow_none=True)
    ewt_s = fields.Integer(load_default=None, allow_none=True)


class CallbackAttemptedV1(_Strict):
    """An agent's leg dialled the customer, who did not answer: back to its place."""

    queue = fields.String(required=True)
    number = fields.String(required=True)
    attempt = fields.Integer(required=True)
    agent_id = fields.String(load_default=None, allow_none=True)
    result = fields.String(required=True)  # the leg's hangup cause


class CallbackCompletedV1(_Strict):
    queue = fields.String(required=True)
    number = fields.String(required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(
        ["connected", "failed", "cancelled"]))
    attempts = fields.Integer(required=True)
    agent_id = fields.String(load_default=None, allow_none=True)


class CallOfferedV1(_Strict):
    queue = fields.String(required=True)
    agent_id = fields.String(required=True)
    extension = fields.String(required=True)
    offer_id = fields.String(required=True)
    attempt = fields.Integer(required=True)


class CallAnsweredV1(_Strict):
    queue = fields.String(required=True)
    agent_id = fields.String(required=True)
    offer_id = fields.String(required=True)
    wait_ms = fields.Integer(required=True)
    ring_ms = fields.Integer(required=True)


class CallAbandonedV1(_Strict):
    queue = fields.String(required=True)
    wait_ms = fields.Integer(required=True)
    short = fields.Boolean(required=True)  # under the queue's short-abandon threshold


class CallOverflowedV1(_Strict):
    queue = fields.String(required=True)
    action = fields.String(required=True)
    target = fields.String(load_default=None, allow_none=True)
    reason = fields.String(required=True)
    # The queue was closed (its after-hours action ran): the call is neither offered nor
    # abandoned for the service level. Absent in records of older routers.
    after_hours = fields.Boolean(load_default=False)


class CallEndedV1(_Strict):
    queue = fields.String(load_default=None, allow_none=True)
    agent_id = fields.String(load_default=None, allow_none=True)
    hangup_cause = fields.String(required=True)
    talk_ms = fields.Integer(required=True)


class AgentStateChangedV1(_Strict):
    agent_id = fields.String(required=True)
    extension = fields.String(required=True)
    state = fields.String(required=True)
    previous_state = fields.String(load_default=None, allow_none=True)
    reason = fields.String(load_default="")


class CandidateV1(_Strict):
    agent_id = fields.String(required=True)
    score = fields.Float(required=True)
    note = fields.String(load_default="")


class StateCorrectedV1(_Strict):
    """The router's belief differed from what a node's snapshot showed, and was corrected
    (the switch is the truth of what exists now)."""

    node = fields.String(required=True)
    what = fields.String(required=True, validate=validate.OneOf([
        "caller_unknown", "agent_leg_orphaned", "offer_gone", "call_gone",
        "extension_leg_gone", "agent_busy_without_channel", "offer_bridged_unseen"]))
    action = fields.String(required=True, validate=validate.OneOf([
        "enqueued", "hung_up", "freed", "ended", "connected"]))
    agent_id = fields.String(load_default=None, allow_none=True)
    leg_id = fields.String(load_default=None, allow_none=True)
    detail = fields.String(load_default="")


class DecisionMadeV1(_Strict):
    decision_id = fields.String(required=True)
    action = fields.String(required=True)
    queue = fields.String(load_default=None, allow_none=True)
    candidates = fields.List(fields.Nested(CandidateV1), required=True)
    chosen = fields.List(fields.String(), required=True)
    reason = fields.String(required=True)


# ---- tongdai.cc.commands.v1: intents from the API ------------------------------------

class AgentCommandV1(_Strict):
    agent_id = fields.String(required=True)
    reason = fields.String(load_default="")


class TickV1(_Strict):
    """Time passed (a worker's timer, per tenant): drives timeouts deterministically."""


class ClickToCallRequestedV1(_Strict):
    agent_id = fields.String(required=True)
    number = fields.String(required=True)
    request_id = fields.String(required=True)
    # The number presented to the customer (the API chose it; never a 1800/1900 number).
    caller_id = fields.String(load_default=None, allow_none=True)


_MONITOR_MODES = validate.OneOf(["listen", "whisper", "barge"])


class MonitorRequestedV1(_Strict):
    """A supervisor asks to listen to / whisper to / barge into an agent's current call:
    the supervisor's extension is called and joined to the agent's leg (`eavesdrop`)."""

    monitor_id = fields.String(required=True)  # becomes the supervisor leg's uuid
    agent_id = fields.String(required=True)  # whose call
    extension = fields.String(required=True)  # the supervisor's phone
    mode = fields.String(required=True, validate=_MONITOR_MODES)
    requested_by = fields.String(load_default="")


class MonitorModeRequestedV1(_Strict):
    """Switch a running monitoring to another mode."""

    monitor_id = fields.String(required=True)
    mode = fields.String(required=True, validate=_MONITOR_MODES)


class CommandRefusedV1(_Strict):
    """The router will not carry out an API command (agent not registered, busy, no call)."""

    request_id = fields.String(required=True)
    command = fields.String(required=True)
    agent_id = fields.String(load_default=None, allow_none=True)
    reason = fields.String(required=True)


# ---- tongdai.routing.decisions.v1: commands for FreeSWITCH ---------------------------

class _Command(_Strict):
    command_id = fields.String(required=True)  # idempotency key for the actuator
    node = fields.String(required=True)


class OfferCallV1(_Command):
    offer_id = fields.String(required=True)  # becomes origination_uuid of the agent leg
    extension = fields.String(required=True)
    domain = fields.String(required=True)
    caller_id_number = fields.String(required=True)
    caller_id_name = fields.String(load_default="")
    timeout_s = fields.Integer(required=True, validate=validate.Range(min=1))


class OfferCallV2(OfferCallV1):
    """v2: `connect` says who bridges the caller when the phone answers: `switch` (the
    agent's leg runs fs-conf's tongdai_connect: the first phone to answer the call is
    bridged at once, by FreeSWITCH; any other answer for it hangs up) or `router` (the
    leg parks, the router orders uuid_bridge). v1 offers were all `router`."""

    connect = fields.String(required=True, validate=validate.OneOf(["switch", "router"]))


class OfferCallV3(OfferCallV2):
    """v3: `callback` is an offer of a callback (routing/callbacks.py): its caller hung up
    on purpose and the agent's leg will dial them, so the actuator must not refuse it for
    a caller gone. v1 and v2 offers were never callbacks."""

    callback = fields.Boolean(load_default=False)


class OriginateCallV1(_Command):
    """Click-to-call: ring the agent's extension; when it answers, send the agent's leg to
    `destination` in the dialplan `context` (the tenant's outbound rules dial the customer)."""

    leg_id = fields.String(required=True)  # origination_uuid of the agent's leg
    request_id = fields.String(required=True)
    agent_id = fields.String(required=True)
    extension = fields.String(required=True)
    domain = fields.String(required=True)
    destination = fields.String(required=True)  # the customer's number, national form
    context = fields.String(required=True)
    caller_id_number = fields.String(required=True)  # shown on the agent's phone
    outbound_caller_id = fields.String(required=True)  # presented to the customer
    timeout_s = fields.Integer(required=True, validate=validate.Range(min=1))


class MonitorCallV1(_Command):
    """Ring the supervisor's extension and, when it answers, `eavesdrop` on `target_leg`."""

    leg_id = fields.String(required=True)  # origination_uuid of the supervisor's leg
    extension = fields.String(required=True)
    domain = fields.String(required=True)
    target_leg = fields.String(required=True)  # the agent's leg of the call
    mode = fields.String(required=True, validate=_MONITOR_MODES)
    timeout_s = fields.Integer(required=True, validate=validate.Range(min=1))


class SendDtmfV1(_Command):
    """DTMF as if the leg's phone had sent it (`uuid_recv_dtmf`): switches eavesdrop modes."""

    leg_id = fields.String(required=True)
    digits = fields.String(required=True, validate=validate.Regexp(r"^[0-9*#]{1,20}$"))


class RequestSnapshotV1(_Command):
    """Ask the bridge of `node` to publish what really exists (a worker restarted)."""

    reason = fields.String(load_default="")


class ConnectCallV1(_Command):
    offer_id = fields.String(required=True)  # the answered agent leg to bridge to call_id


class HangupLegV1(_Command):
    leg_id = fields.String(required=True)
    cause = fields.String(load_default="NORMAL_CLEARING")


class TransferLegV1(_Command):
    leg_id = fields.String(required=True)
    destination = fields.String(required=True)
    context = fields.String(load_default="default")


class PlayAnnouncementV1(_Command):
    leg_id = fields.String(required=True)
    path = fields.String(required=True)


class PlayAnnouncementV2(PlayAnnouncementV1):
    # After the prompt, the caller's waiting music again (the dialplan's
    # tongdai_waiting_music): a prompt breaks into the music and must give it back.
    then_music = fields.Boolean(load_default=False)


class BreakPlaybackV1(_Command):
    """Stop what the leg is playing (uuid_break): the waiting music holds the channel's
    event lock, and a broadcast queued behind it would wait for ever, or play over the
    agent once the caller is bridged."""

    leg_id = fields.String(required=True)


class SetVariableV1(_Command):
    leg_id = fields.String(required=True)
    name = fields.String(required=True)
    value = fields.String(required=True)


# ---- tongdai.live.v1: what a supervisor sees now, per tenant (compacted) -----------
# The one declaration of the live view. The router builds it (streams.router.live_view,
# held to these schemas by tests/unit/streams/test_live_view_contract.py); the API serves
# and documents it from these classes (api/live/schemas.py subclasses them, adding only
# what the API computes). A new field is declared here and filled by the router: no other
# edit. Descriptions go in `metadata`: they are the API's documentation.

class LiveEwtV1(_Strict):
    """What a queue's estimated wait was computed from (routing/ewt.py)."""

    position = fields.Integer(required=True, metadata={
        "description": "a caller entering now: waiting ahead + 1"})
    agents_serving = fields.Integer(required=True, metadata={
        "description": "logged in, registered, not paused"})
    agents_free = fields.Integer(required=True)
    agents_shared = fields.Integer(required=True, metadata={
        "description": "also serving other waiting queues"})
    talk_s = fields.Integer(required=True)
    wrapup_s = fields.Integer(required=True)
    ring_s = fields.Integer(required=True)
    samples = fields.Integer(required=True, metadata={
        "description": "recent calls behind talk_s (0: a default)"})
    reason = fields.String(required=True)


class LiveQueueV1(_Strict):
    queue = fields.String(required=True)
    waiting = fields.Integer(required=True, metadata={
        "description": "callers in queue, ringing ones included"})
    ringing = fields.Integer(required=True)
    longest_wait_ms = fields.Integer(required=True)
    agents_logged_in = fields.Integer(required=True)
    agents_available = fields.Integer(required=True)
    # Added fields, optional so older records still read.
    ewt_s = fields.Integer(load_default=None, allow_none=True, metadata={
        "description": "estimated wait of a caller entering now, seconds (null: no agent "
                       "serves)"})
    ewt = fields.Nested(LiveEwtV1, load_default=None, allow_none=True, metadata={
        "description": "what the estimate was computed from"})


class LiveAgentV1(_Strict):
    agent_id = fields.String(required=True)
    extension = fields.String(required=True)
    state = fields.String(required=True)
    since_us = fields.Integer(required=True, metadata={"description": "in this state since"})
    pause_reason = fields.String(load_default=None, allow_none=True)
    call_id = fields.String(load_default=None, allow_none=True)


class LiveCallV1(_Strict):
    call_id = fields.String(required=True)
    queue = fields.String(required=True)
    caller = fields.String(required=True)
    status = fields.String(required=True, metadata={
        "description": "waiting | ringing | connecting | connected"})
    enqueued_us = fields.Integer(required=True)
    agent_id = fields.String(load_default=None, allow_none=True)
    connected_us = fields.Integer(load_default=None, allow_none=True)
    vip = fields.Boolean(load_default=False)
    position = fields.Integer(load_default=None, allow_none=True, metadata={
        "description": "place in line: 1 = next, 0 = a phone rings for it; null when not in "
                       "queue"})
    ewt_s = fields.Integer(load_default=None, allow_none=True, metadata={
        "description": "estimated wait left, seconds"})
    callback = fields.String(load_default=None, allow_none=True, metadata={
        "description": "a callback that keeps the caller's place: the number to call back "
                       "(E.164)"})


class LiveDecisionV1(_Strict):
    at_us = fields.Integer(required=True)
    call_id = fields.String(required=True)
    action = fields.String(required=True)
    queue = fields.String(load_default=None, allow_none=True)
    reason = fields.String(required=True)


class LiveStateV1(_Strict):
    """The tenant's live view, published by the router on ticks when it changed."""

    as_of_us = fields.Integer(required=True)
    recent = fields.List(fields.Nested(LiveDecisionV1), load_default=list, metadata={
        "description": "the router's latest decisions with their reasons, newest first"})
    queues = fields.List(fields.Nested(LiveQueueV1), required=True)
    agents = fields.List(fields.Nested(LiveAgentV1), required=True)
    calls = fields.List(fields.Nested(LiveCallV1), required=True)


# ---- tongdai.config.v1 --------------------------------------------------------------

class ConfigChangedV1(_Strict):
    kind = fields.String(required=True, validate=_SNAKE)
    entity_id = fields.String(required=True, validate=_NON_EMPTY)
    data = fields.Dict(keys=fields.String(), allow_none=True, required=True)  # None = deleted


# ---- dead letters -------------------------------------------------------------------

class DeadLetteredV1(_Strict):
    topic = fields.String(required=True)  # where it was read from or meant to go
    reason = fields.String(required=True)
    raw = fields.String(required=True)  # the original bytes, decoded as latin-1 (lossless)


_CHANNEL_TYPES = ("channel_created", "channel_answered", "channel_parked", "channel_bridged",
                  "channel_unbridged", "channel_held", "channel_unheld", "channel_hungup",
                  "channel_hangup_completed", "channel_destroyed", "dtmf_received",
                  "recording_started", "recording_stopped", "ivr_choice_made")

# (type, version) -> (topic, payload schema class)
PAYLOADS: dict[tuple[str, int], tuple[str, type[Schema]]] = {
    **{(t, 1): (topics.FS_EVENTS, ChannelEventV1) for t in _CHANNEL_TYPES},
    ("channel_vanished", 1): (topics.FS_EVENTS, ChannelVanishedV1),
    ("callcenter_event_received", 1): (topics.FS_EVENTS, CallcenterEventV1),
    ("sip_registered", 1): (topics.FS_EVENTS, RegistrationV1),
    ("sip_unregistered", 1): (topics.FS_EVENTS, RegistrationV1),
    ("sip_registration_expired", 1): (topics.FS_EVENTS, RegistrationV1),
    ("background_job_completed", 1): (topics.FS_EVENTS, BackgroundJobV1),
    ("heartbeat_received", 1): (topics.FS_EVENTS, HeartbeatV1),
    ("node_snapshot_taken", 1): (topics.FS_EVENTS, NodeSnapshotV1),
    ("node_snapshot_taken", 2): (topics.FS_EVENTS, NodeSnapshotV2),
    ("node_status_changed", 1): (topics.FS_EVENTS, NodeStatusV1),
    ("command_executed", 1): (topics.FS_EVENTS, CommandOutcomeV1),
    ("call_enqueued", 1): (topics.CC_EVENTS, CallEnqueuedV1),
    ("call_offered", 1): (topics.CC_EVENTS, CallOfferedV1),
    ("callback_requested", 1): (topics.CC_EVENTS, CallbackRequestedV1),
    ("callback_attempted", 1): (topics.CC_EVENTS, CallbackAttemptedV1),
    ("callback_completed", 1): (topics.CC_EVENTS, CallbackCompletedV1),
    ("call_answered", 1): (topics.CC_EVENTS, CallAnsweredV1),
    ("call_abandoned", 1): (topics.CC_EVENTS, CallAbandonedV1),
    ("call_overflowed", 1): (topics.CC_EVENTS, CallOverflowedV1),
    ("call_ended", 1): (topics.CC_EVENTS, CallEndedV1),
    ("state_corrected", 1): (topics.CC_EVENTS, StateCorrectedV1),
    ("agent_state_changed", 1): (topics.CC_EVENTS, AgentStateChangedV1),
    ("decision_made", 1): (topics.CC_EVENTS, DecisionMadeV1),
    ("agent_login_requested", 1): (topics.CC_COMMANDS, AgentCommandV1),
    ("agent_logout_requested", 1): (topics.CC_COMMANDS, AgentCommandV1),
    ("agent_pause_requested", 1): (topics.CC_COMMANDS, AgentCommandV1),
    ("agent_resume_requested", 1): (topics.CC_COMMANDS, AgentCommandV1),
    ("agent_ready_requested", 1): (topics.CC_COMMANDS, AgentCommandV1),
    ("click_to_call_requested", 1): (topics.CC_COMMANDS, ClickToCallRequestedV1),
    ("monitor_requested", 1): (topics.CC_COMMANDS, MonitorRequestedV1),
    ("monitor_mode_requested", 1): (topics.CC_COMMANDS, MonitorModeRequestedV1),
    ("command_refused", 1): (topics.CC_EVENTS, CommandRefusedV1),
    ("tick", 1): (topics.CC_COMMANDS, TickV1),
    ("originate_call", 1): (topics.ROUTING_DECISIONS, OriginateCallV1),
    ("monitor_call", 1): (topics.ROUTING_DECISIONS, MonitorCallV1),
    ("send_dtmf", 1): (topics.ROUTING_DECISIONS, SendDtmfV1),
    ("offer_call", 1): (topics.ROUTING_DECISIONS, OfferCallV1),
    ("offer_call", 2): (topics.ROUTING_DECISIONS, OfferCallV2),
    ("offer_call", 3): (topics.ROUTING_DECISIONS, OfferCallV3),
    ("connect_call", 1): (topics.ROUTING_DECISIONS, ConnectCallV1),
    ("hangup_leg", 1): (topics.ROUTING_DECISIONS, HangupLegV1),
    ("transfer_leg", 1): (topics.ROUTING_DECISIONS, TransferLegV1),
    ("play_announcement", 1): (topics.ROUTING_DECISIONS, PlayAnnouncementV1),
    ("play_announcement", 2): (topics.ROUTING_DECISIONS, PlayAnnouncementV2),
    ("break_playback", 1): (topics.ROUTING_DECISIONS, BreakPlaybackV1),
    ("set_variable", 1): (topics.ROUTING_DECISIONS, SetVariableV1),
    ("request_snapshot", 1): (topics.ROUTING_DECISIONS, RequestSnapshotV1),
    ("config_changed", 1): (topics.CONFIG, ConfigChangedV1),
    ("live_state_published", 1): (topics.LIVE, LiveStateV1),
    ("dead_lettered", 1): (topics.DEAD_LETTERS, DeadLetteredV1),
}

CURRENT_VERSION: dict[str, int] = {}
for _type, _version in PAYLOADS:
    CURRENT_VERSION[_type] = max(_version, CURRENT_VERSION.get(_type, 0))


class RecordSchema(EnvelopeSchema):
    """An envelope whose payload is checked against the schema of its type and version."""

    @validates_schema
    def _payload_matches_type(self, data: dict, **_: object) -> None:
        key = (data.get("type"), data.get("version"))
        entry = PAYLOADS.get(key)  # type: ignore[arg-type]
        if entry is None:
            raise ValidationError(f"unknown type/version {key[0]!r} v{key[1]}", "type")
        errors = entry[1]().validate(data.get("payload") or {})
        if errors:
            raise ValidationError({"payload": errors})
