"""FreeSWITCH events -> envelopes of the contract (`tongdai.fs.events.v1`).

Pure: an `esl_bridge.protocol.Event` in, an `Envelope` (or a reason to skip it) out.
Works for calls that carry the product's channel variables (set by fs-conf's dialplan and
by the actuator's originate) and for calls of a plain FreeSWITCH dialplan that carry none:
then the tenant falls back to the SIP domain, or the configured default for IP "domains".
"""
from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Any

from routing import numbers
from routing.contract import Envelope, deterministic_id
from routing.contract.edge import SYSTEM_TENANT

from .protocol import Event

# FreeSWITCH event name (or CUSTOM subclass) -> contract type.
CHANNEL_TYPES = {
    "CHANNEL_CREATE": "channel_created",
    "CHANNEL_ANSWER": "channel_answered",
    "CHANNEL_PARK": "channel_parked",
    "CHANNEL_BRIDGE": "channel_bridged",
    "CHANNEL_UNBRIDGE": "channel_unbridged",
    "CHANNEL_HOLD": "channel_held",
    "CHANNEL_UNHOLD": "channel_unheld",
    "CHANNEL_HANGUP": "channel_hungup",
    "CHANNEL_HANGUP_COMPLETE": "channel_hangup_completed",
    "CHANNEL_DESTROY": "channel_destroyed",
    "DTMF": "dtmf_received",
    "RECORD_START": "recording_started",
    "RECORD_STOP": "recording_stopped",
    "CUSTOM tongdai::ivr": "ivr_choice_made",
}
REGISTRATION_TYPES = {
    "CUSTOM sofia::register": "sip_registered",
    "CUSTOM sofia::unregister": "sip_unregistered",
    "CUSTOM sofia::expire": "sip_registration_expired",
}
# What the bridge subscribes to (`event plain|json ...`): exactly what it publishes.
SUBSCRIBED_EVENTS = tuple(n for n in (*CHANNEL_TYPES, "BACKGROUND_JOB", "HEARTBEAT")
                          if not n.startswith("CUSTOM "))
SUBSCRIBED_SUBCLASSES = ("sofia::register", "sofia::unregister", "sofia::expire",
                         "tongdai::ivr", "callcenter::info")
# mod_callcenter's queue facts (`CUSTOM callcenter::info`): the call log builds queue visits
# and offers from them for tenants whose queues FreeSWITCH runs itself.
CALLCENTER_TYPE = "callcenter_event_received"
# Per-agent and per-queue counters carry no call: they are not published.
_CALLCENTER_CALL_ACTIONS = frozenset({
    "member-queue-start", "member-queue-resume", "member-queue-end", "agent-offering",
    "bridge-agent-start", "bridge-agent-end", "bridge-agent-fail"})

# The product's own channel variables (set by fs-conf's dialplan and the actuator).
PRODUCT_VARIABLES = tuple(f"variable_tongdai_{n}" for n in (
    "tenant", "domain", "direction", "did", "queue", "ivr_path", "ivr_choice", "priority",
    "vip", "skills", "language", "region", "call_id", "offer_id", "command_id", "agent_id",
    "customer_id", "recording", "click_to_call", "monitor_id", "monitor_mode",
    "outbound_caller_id", "dest_class", "barred"))
# Raw headers kept for the analytics and for rebuilding projections (names as FreeSWITCH
# sends them), the product's variables included.
KEPT_HEADERS = (
    "Event-Name", "Event-Subclass", "Channel-Name", "Channel-State", "Channel-Call-State",
    "Answer-State", "Call-Direction", "Channel-Call-UUID", "Caller-Caller-ID-Name",
    "Caller-Caller-ID-Number", "Caller-Destination-Number", "Caller-Context",
    "Caller-Network-Addr", "Caller-Channel-Created-Time", "Caller-Channel-Answered-Time",
    "Caller-Channel-Progress-Time", "Caller-Channel-Bridged-Time",
    "Caller-Channel-Hangup-Time", "Caller-Channel-Transfer-Time", "Caller-Channel-Hold-Accum",
    "Caller-Channel-Last-Hold", "Other-Leg-Unique-ID", "Other-Leg-Caller-ID-Number",
    "Other-Leg-Destination-Number", "Bridge-A-Unique-ID", "Bridge-B-Unique-ID",
    "Hangup-Cause", "DTMF-Digit", "DTMF-Duration", "Record-File-Path",
    "variable_duration", "variable_billsec", "variable_answersec", "variable_waitsec",
    "variable_progresssec", "variable_progress_mediasec", "variable_hold_accum_seconds",
    "variable_sip_hangup_disposition", "variable_sip_term_status", "variable_sip_call_id",
    "variable_sip_user_agent", "variable_hangup_cause_q850", "variable_origination_uuid",
    "variable_last_bridge_to", "variable_bridge_uuid", "variable_record_path",
    "variable_current_application", "variable_endpoint_disposition",
    # What joins legs into calls and dates them exactly (the call log reads these).
    "Other-Type", "Channel-Presence-ID", "Caller-Channel-Progress-Media-Time",
    "variable_call_uuid", "variable_signal_bond", "variable_last_bridge_role",
    "variable_bridge_hangup_cause", "variable_last_bridge_hangup_cause",
    "variable_originate_disposition", "variable_originating_leg_uuid",
    "variable_dialed_user", "variable_dialed_domain", "variable_user_name",
    "variable_start_uepoch", "variable_answer_uepoch", "variable_bridge_uepoch",
    "variable_progress_uepoch", "variable_end_uepoch", "variable_last_app",
    "variable_sip_term_cause", "variable_voicemail_message_len",
    "variable_cc_side", "variable_cc_queue", "variable_cc_agent", "variable_cc_agent_type",
    "variable_cc_member_uuid", "variable_cc_member_session_uuid", "variable_cc_caller_uuid",
    "variable_cc_agent_uuid", "variable_cc_cause", "variable_cc_cancel_reason",
    "variable_cc_agent_bridged", "variable_cc_queue_joined_epoch",
    "variable_cc_queue_answered_epoch", "variable_cc_queue_terminated_epoch",
    "variable_cc_queue_canceled_epoch",
)


@dataclass(frozen=True, slots=True)
class NormalizerConfig:
    default_tenant: str = "default"
    country: str = "84"
    # SIP domain -> tenant id, where they differ (a tenant's id is its domain otherwise).
    domains: tuple[tuple[str, str], ...] = ()


class Skipped(Exception):
    """An event the bridge does not publish (not subscribed, or not about the product)."""


def _var(h: dict[str, str], name: str) -> str | None:
    value = h.get(f"variable_{name}")
    return value if value else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _domain(h: dict[str, str]) -> str | None:
    for name in ("variable_tongdai_domain", "variable_domain_name", "variable_dialed_domain",
                 "variable_sip_req_host", "variable_sip_to_host"):
        if h.get(name):
            return h[name]
    presence = h.get("Channel-Presence-ID", "")
    return presence.rpartition("@")[2] or None


def _extension(h: dict[str, str]) -> str | None:
    """The extension whose phone the leg is: FreeSWITCH sets the presence id of a leg to a
    registered user (`user/1000@dom`) and of a call a phone placed to `<user>@<domain>`."""
    # (`user_name` is the user a phone's call authenticated as, `dialed_user` the user a
    # `user/` dial string rang.)
    for user in (h.get("Channel-Presence-ID", "").partition("@")[0],
                 h.get("variable_dialed_user", ""), h.get("variable_user_name", "")):
        if user and numbers.is_extension(user):
            return user
    return None


def tenant_of_domain(domain: str | None, config: NormalizerConfig) -> str:
    """A SIP domain names its tenant; an IP address or nothing falls back to the default."""
    if not domain:
        return config.default_tenant
    for known, tenant in config.domains:
        if known == domain.lower():
            return tenant
    try:
        ipaddress.ip_address(domain.split(":")[0].strip("[]"))
    except ValueError:
        return domain.lower()
    return config.default_tenant


def phone(value: str | None, config: NormalizerConfig) -> str | None:
    """E.164 for phone numbers; extensions and service numbers as they are; junk kept raw."""
    if not value:
        return None
    return _phone(value, config.country)


@functools.lru_cache(maxsize=1 << 16)
def _phone(value: str, country: str) -> str:
    # The same numbers recur in every event of a call: normalize each once.
    try:
        return numbers.to_e164(value, country)
    except ValueError:
        return value


def _skills(raw: str | None) -> dict[str, int] | None:
    """`billing:5,english:3` -> {"billing": 5, "english": 3}; a bare name means level 1."""
    if not raw:
        return None
    skills: dict[str, int] = {}
    for part in raw.split(","):
        name, _, level = part.strip().partition(":")
        if name:
            skills[name] = _int(level) or 1
    return skills


def _direction(h: dict[str, str], caller: str | None, callee: str | None) -> str:
    declared = _var(h, "tongdai_direction")
    if declared in ("inbound", "outbound", "internal"):
        return declared
    caller_internal = bool(caller) and numbers.is_extension(caller)
    callee_internal = bool(callee) and numbers.is_extension(callee)
    if caller_internal and callee_internal:
        return "internal"
    if caller_internal and callee and not numbers.is_service_number(callee):
        return "outbound"
    return "inbound"


def _envelope(event: Event, type_: str, tenant: str, call_id: str | None,
              payload: dict[str, Any]) -> Envelope:
    h = event.headers
    core = h.get("Core-UUID")
    seq = _int(h.get("Event-Sequence"))
    stamp = _int(h.get("Event-Date-Timestamp"))
    if not core or seq is None or stamp is None:
        raise ValueError("event lacks Core-UUID, Event-Sequence or Event-Date-Timestamp")
    return Envelope(event_id=deterministic_id(core, seq), type=type_, version=1,
                    occurred_at=stamp, tenant=tenant, source=core, seq=seq,
                    call_id=call_id, payload=payload)


def normalize(event: Event, config: NormalizerConfig = NormalizerConfig()) -> Envelope:
    """The envelope for one FreeSWITCH event; raises Skipped for events not published and
    ValueError for events that lack what every FreeSWITCH event carries (dead-letter them)."""
    name = event.name
    h = event.headers
    if name in CHANNEL_TYPES:
        return _channel(event, CHANNEL_TYPES[name], config)
    if name == "CUSTOM callcenter::info":
        return _callcenter(event, config)
    if name in REGISTRATION_TYPES:
        domain = h.get("realm") or h.get("to-host") or h.get("from-host") or ""
        extension = h.get("username") or h.get("from-user") or h.get("to-user") or ""
        if not extension:
            raise ValueError(f"{name} without username/from-user")
        payload = {"fs_event": h.get("Event-Subclass", name), "extension": extension,
                   "domain": domain,
                   "contact": h.get("contact"), "user_agent": h.get("user-agent"),
                   "network_ip": h.get("network-ip"), "expires_s": _int(h.get("expires"))}
        return _envelope(event, REGISTRATION_TYPES[name], tenant_of_domain(domain, config),
                         None, payload)
    if name == "BACKGROUND_JOB":
        body = event.body or ""
        arg = h.get("Job-Command-Arg", "")
        tenant = _inline_var(arg, "tongdai_tenant") or SYSTEM_TENANT
        payload = {"job_uuid": h.get("Job-UUID", ""), "command": h.get("Job-Command", ""),
                   "ok": body.startswith("+OK"), "result": body.strip()}
        return _envelope(event, "background_job_completed", tenant,
                         _inline_var(arg, "tongdai_call_id"), payload)
    if name == "HEARTBEAT":
        payload = {"hostname": h.get("FreeSWITCH-Hostname", ""),
                   "sessions_active": _int(h.get("Session-Count")) or 0,
                   "uptime_ms": _int(h.get("Uptime-msec")) or 0}
        return _envelope(event, "heartbeat_received", SYSTEM_TENANT, None, payload)
    raise Skipped(name or "(no Event-Name)")


def _inline_var(originate_arg: str, name: str) -> str | None:
    """A `{name=value,...}` channel variable from an originate command line."""
    if not originate_arg.startswith("{"):
        return None
    inner = originate_arg[1:originate_arg.find("}")]
    for part in inner.split(","):
        key, _, value = part.partition("=")
        if key.strip() == name:
            return value.strip().strip("'")
    return None


def call_of_leg(h: dict[str, str], leg_id: str) -> str:
    """The call a leg belongs to, from what FreeSWITCH says about the leg.

    The product's `tongdai_call_id` first; a mod_callcenter agent leg names its member's
    session (`cc_member_session_uuid`, set on the agent leg from its originate on) and a
    member leg is its own call; an ESL router's `cc_caller_uuid`; a leg a bridge originated
    belongs to its originator; then Channel-Call-UUID (which FreeSWITCH moves to the
    originator once a leg is bridged). Legs that none of these tie to a caller before a
    bridge are joined to their call by the call log when the bridge names them."""
    declared = _var(h, "tongdai_call_id")
    if declared:
        return declared
    side = h.get("variable_cc_side")
    if side == "agent" and _var(h, "cc_member_session_uuid"):
        return h["variable_cc_member_session_uuid"]
    if side == "member":
        return leg_id
    caller = _var(h, "cc_caller_uuid")
    if caller:
        return caller
    if h.get("Call-Direction") == "inbound":
        # A leg that called in is its own call, whoever bridged it later: after an
        # `intercept` (the switch connecting an agent, a pickup) the intercepting leg is the
        # bridge's originator, and Other-Type and Channel-Call-UUID point the caller at it.
        return leg_id
    if h.get("Other-Type") == "originator" and h.get("Other-Leg-Unique-ID"):
        return h["Other-Leg-Unique-ID"]
    return h.get("Channel-Call-UUID") or leg_id


def _callcenter(event: Event, config: NormalizerConfig) -> Envelope:
    """A mod_callcenter queue fact: its action, the member's call, the agent, the times."""
    h = event.headers
    action = h.get("CC-Action") or ""
    if action not in _CALLCENTER_CALL_ACTIONS:
        raise Skipped(f"callcenter::info {action or '(no CC-Action)'}")
    leg_id = h.get("Unique-ID") or None
    call_id = h.get("CC-Member-Session-UUID") or (call_of_leg(h, leg_id) if leg_id else None)
    if not call_id:
        raise ValueError(f"callcenter::info {action} without CC-Member-Session-UUID")
    queue = h.get("CC-Queue") or ""
    # A queue is named `name@domain`; the member's channel says its domain when it is there.
    domain = _domain(h) if leg_id else None
    tenant = _var(h, "tongdai_tenant") or tenant_of_domain(
        domain or queue.partition("@")[2] or None, config)
    payload: dict[str, Any] = {
        "fs_event": "callcenter::info", "action": action, "queue": queue,
        "agent": h.get("CC-Agent") or None, "agent_leg_id": h.get("CC-Agent-UUID") or None,
        "member_uuid": h.get("CC-Member-UUID") or None,
        "leg_id": leg_id, "cause": h.get("CC-Cause") or None,
        "cancel_reason": h.get("CC-Cancel-Reason") or None,
        "hangup_cause": h.get("CC-Hangup-Cause") or None,
        "caller": phone(h.get("CC-Member-CID-Number"), config),
        "caller_name": h.get("CC-Member-CID-Name") or None,
        "headers": {k: h[k] for k in h if k.startswith("CC-") or k in _KEPT_SET},
    }
    return _envelope(event, CALLCENTER_TYPE, tenant, call_id, payload)


def _channel(event: Event, type_: str, config: NormalizerConfig) -> Envelope:
    h = event.headers
    leg_id = h.get("Unique-ID")
    if not leg_id:
        raise ValueError(f"{event.name} without Unique-ID")
    # The caller's leg is the call. Agent legs we originate say which call they serve;
    # for others the best FreeSWITCH offers is Channel-Call-UUID.
    # A leg a dialplan `bridge` originated (the customer's leg of a click-to-call or of a
    # forward) belongs to the leg that originated it, from its first event on.
    call_id = call_of_leg(h, leg_id)
    caller_raw = h.get("Caller-Caller-ID-Number")
    callee_raw = h.get("Caller-Destination-Number")
    caller = phone(caller_raw, config)
    callee = phone(callee_raw, config)
    tenant = _var(h, "tongdai_tenant") or tenant_of_domain(_domain(h), config)
    vip = _var(h, "tongdai_vip")
    payload: dict[str, Any] = {
        "fs_event": h.get("Event-Subclass") if event.name.startswith("CUSTOM ") else event.name,
        "leg_id": leg_id,
        "leg": "a" if call_id == leg_id else "b",
        "direction": _direction(h, caller_raw, callee_raw),
        "caller": caller,
        "caller_name": h.get("Caller-Caller-ID-Name") or None,
        "callee": callee,
        "domain": _domain(h),
        "did": phone(_var(h, "tongdai_did"), config),
        "queue": _var(h, "tongdai_queue"),
        # fs-conf's `tongdai::ivr` event names the menu path walked so far (IVR-Path) and
        # the digit (IVR-Choice) as its own headers; a dialplan may set the variables too.
        "ivr_path": _var(h, "tongdai_ivr_path") or h.get("IVR-Path") or None,
        "priority": _int(_var(h, "tongdai_priority")),
        "vip": None if vip is None else vip.lower() in ("1", "true", "yes"),
        "skills": _skills(_var(h, "tongdai_skills")),
        "language": _var(h, "tongdai_language"),
        "region": _var(h, "tongdai_region"),
        "offer_id": _var(h, "tongdai_offer_id"),
        "extension": _extension(h),
        "other_leg_id": h.get("Other-Leg-Unique-ID") or h.get("Bridge-B-Unique-ID"),
        "channel_state": h.get("Channel-State"),
        "answer_state": h.get("Answer-State"),
        "hangup_cause": h.get("Hangup-Cause"),
        "dtmf_digit": h.get("DTMF-Digit"),
        "recording_path": h.get("Record-File-Path"),
        "ivr_choice": (h.get("IVR-Choice") or h.get("tongdai_ivr_choice")
                       or _var(h, "tongdai_ivr_choice")),
        "headers": {k: h[k] for k in _KEPT if k in h},
    }
    return _envelope(event, type_, tenant, call_id, payload)


_KEPT = KEPT_HEADERS + PRODUCT_VARIABLES
_KEPT_SET = frozenset(_KEPT) | {"Unique-ID", "Caller-Caller-ID-Number",
                                "Caller-Destination-Number"}
