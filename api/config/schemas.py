"""Request (load) and response (dump) schemas of the admin configuration.

A loaded request is exactly the `data` of the `config_changed` record the API writes, in
the shape the routing worker reads (streams/config.py): tenant, queue, agent, did. The other
kinds (extension, ivr, blocklist, user, token, customer/contact/lead) are read by the API
itself (FreeSWITCH directory/dialplan, auth, caller lookup).
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from routing import dialing
from routing import model as m

from ..auth import MAX_TTL_S, ROLES
from ..fields import ENTITY_ID, EXTENSION, Phone, dump_schema
from ..rest import Strict

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
REGIONS = ("north", "central", "south")
ACTION_KINDS = ("voicemail", "announcement", "queue", "forward", "hangup")
DID_KINDS = (m.DidKind.TOLL_FREE, m.DidKind.PREMIUM, m.DidKind.GEOGRAPHIC, m.DidKind.MOBILE)
_SPAN = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$")
_NAME = validate.Length(max=200)
_LEVEL = validate.Range(min=1, max=10)
_NONNEG = validate.Range(min=0, max=86400 * 7)


def _span_minutes(span: str) -> tuple[int, int]:
    match = _SPAN.match(span)
    if not match:
        raise ValidationError(f"{span!r} is not HH:MM-HH:MM")
    a = int(match[1]) * 60 + int(match[2])
    b = int(match[3]) * 60 + int(match[4])
    if not (0 <= a < b <= 1440):
        raise ValidationError(f"{span!r} must end after it starts, within 00:00-24:00")
    return a, b


def _holiday(text: str) -> None:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{text!r} is not a date (YYYY-MM-DD)") from None


class ScheduleLoad(Strict):
    """Opening hours (Asia/Ho_Chi_Minh) and closed days: a queue's schedule, an agent's shift."""

    hours = fields.Dict(keys=fields.String(validate=validate.OneOf(WEEKDAYS)),
                        values=fields.List(fields.String(validate=_span_minutes),
                                           validate=validate.Length(max=8)),
                        load_default=dict,
                        metadata={"example": {"mon": ["08:00-12:00", "13:30-17:30"]}})
    holidays = fields.List(fields.String(validate=_holiday), validate=validate.Length(max=400))
    tet_years = fields.List(fields.Integer(validate=validate.OneOf(sorted(m.TET))),
                            metadata={"description": "close the Tết holiday of these years"})


class ActionLoad(Strict):
    """What happens to a call the queue cannot serve."""

    kind = fields.String(required=True, validate=validate.OneOf(ACTION_KINDS))
    target = fields.String(validate=validate.Length(max=200))

    @validates_schema
    def _target(self, data: dict, **_: Any) -> None:
        if data.get("kind") in ("queue", "forward") and not data.get("target"):
            raise ValidationError("required when kind is queue or forward", "target")
        if data.get("kind") == "queue":
            ENTITY_ID(data["target"])


class RelaxLoad(Strict):
    after_s = fields.Integer(required=True, validate=_NONNEG)
    min_level = fields.Integer(required=True, validate=_LEVEL)


class QueueLoad(Strict):
    """A queue (hàng đợi) and its routing policy; see routing/model.py `Queue`."""

    name = fields.String(validate=_NAME)
    strategy = fields.String(load_default=m.Strategy.LONGEST_IDLE,
                             validate=validate.OneOf(sorted(m.STRATEGIES)))
    seed = fields.Integer(validate=validate.Range(min=0, max=2**31))
    schedule = fields.Nested(ScheduleLoad, allow_none=True)
    after_hours = fields.Nested(ActionLoad, allow_none=True)
    max_wait_action = fields.Nested(ActionLoad, allow_none=True)
    max_len_action = fields.Nested(ActionLoad, allow_none=True)
    no_agent_action = fields.Nested(ActionLoad, allow_none=True)
    skills = fields.Dict(keys=fields.String(validate=ENTITY_ID),
                         values=fields.Integer(validate=_LEVEL))
    relax = fields.List(fields.Nested(RelaxLoad), validate=validate.Length(max=20))
    connect = fields.String(validate=validate.OneOf(["switch", "router"]), metadata={
        "description": "who bridges the caller when an agent's phone answers: switch (at "
                       "once, first answer wins; default) or router (after the agent leg "
                       "parks: one more round trip)"})
    offer_timeout_s = fields.Integer(validate=validate.Range(min=1, max=600))
    ring_progressive_step_s = fields.Integer(validate=validate.Range(min=1, max=600))
    wrapup_s = fields.Integer(validate=validate.Range(min=0, max=3600))
    vip_boost = fields.Integer(validate=validate.Range(min=0, max=1000))
    sticky_wait_s = fields.Integer(validate=_NONNEG)
    aging_s = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=86400))
    for _name in ("any_agent_after_s", "tier_wait_s", "geo_widen_after_s", "load_window_s",
                  "max_wait_s", "max_queue_len"):
        locals()[_name] = fields.Integer(allow_none=True, validate=_NONNEG)
    del _name
    prefer_best_skill = fields.Boolean()
    tier_no_agent_no_wait = fields.Boolean()
    forward_to_mobile = fields.Boolean()
    short_abandon_s = fields.Integer(validate=validate.Range(min=0, max=600))
    sl_threshold_s = fields.Integer(validate=validate.Range(min=1, max=3600),
                                    metadata={"description": "service-level threshold T"})
    vip = fields.Boolean(metadata={"description": "recordings only for the tenant's "
                                                  "vip_recording_roles"})
    music_on_hold = fields.String(validate=validate.Length(max=300))
    callback_key = fields.String(allow_none=True, validate=validate.Regexp(
        r"^[0-9*#]$", error="must be one key: 0-9, * or #"), metadata={"description": (
        "the key a waiting caller presses to be called back keeping their place (null: no "
        "callbacks)")})
    callback_attempts = fields.Integer(validate=validate.Range(min=1, max=10), metadata={
        "description": "times the customer is dialled before the callback fails (3)"})
    announce_every_s = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=3600),
                                      metadata={"description": (
        "waiting callers hear their position and estimated wait (Vietnamese, then English) "
        "2 s after entering, then every this many seconds; 0: on entry only; null: never")})


class MembershipLoad(Strict):
    level = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100))
    position = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))


class PenaltyLoad(Strict):
    delay_s = fields.Integer(required=True, validate=_NONNEG)
    max_count = fields.Integer(required=True, validate=validate.Range(min=0, max=1000))


class AgentLoad(Strict):
    """An agent (điện thoại viên): extension, skills, queues, shift."""

    name = fields.String(validate=_NAME)
    extension = fields.String(required=True, validate=EXTENSION)
    skills = fields.Dict(keys=fields.String(validate=ENTITY_ID),
                         values=fields.Integer(validate=_LEVEL))
    languages = fields.List(fields.String(validate=validate.Regexp(r"^[a-z]{2,3}$",
                                                                   error="ISO 639 code")),
                            validate=validate.Length(min=1, max=10))
    region = fields.String(allow_none=True, validate=validate.OneOf(REGIONS))
    site = fields.String(validate=validate.Length(max=100))
    mobile = Phone(allow_service=False, allow_extension=False)
    caller_id = Phone(allow_service=False, metadata={
        "description": "outbound caller id of this agent's click-to-call (never 1800/1900)"})
    shift = fields.Nested(ScheduleLoad, allow_none=True)
    max_concurrent = fields.Integer(validate=validate.Range(min=1, max=10))
    queues = fields.Dict(keys=fields.String(validate=ENTITY_ID),
                         values=fields.Nested(MembershipLoad), load_default=dict)
    wrapup_s = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=3600))
    offer_timeout_s = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=600))
    penalties = fields.Dict(keys=fields.String(validate=validate.OneOf(m.CAUSES)),
                            values=fields.Nested(PenaltyLoad))


class RegionLoad(Strict):
    province = fields.String(required=True, validate=validate.Length(min=1, max=100))
    region = fields.String(required=True, validate=validate.OneOf(REGIONS))


class RecordingPolicyLoad(Strict):
    """Which calls the switch records, and for how long the files are kept."""

    calls = fields.String(validate=validate.OneOf(["all", "inbound", "none"]),
                          load_default="all", metadata={
        "description": "all (default), inbound (calls to the tenant's numbers) or none"})
    retention_days = fields.Integer(validate=validate.Range(min=0, max=3650), load_default=0,
                                    metadata={"description": "files older than this many "
                                              "days are deleted (`tongdai api purge-"
                                              "recordings`); 0 keeps them"})


class WebhookLoad(Strict):
    """A subscription: signed with its own secret (generated, shown once, kept across
    PUTs of the same id unless rotated)."""

    id = fields.String(validate=ENTITY_ID, metadata={
        "description": "the subscription's id (default: derived from the url)"})
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False)
    events = fields.List(fields.String(validate=validate.OneOf(["call_offered"])),
                         load_default=lambda: ["call_offered"])
    rotate_secret = fields.Boolean(load_default=False)


class TenantLoad(Strict):
    """The tenant's own settings: SIP domain, plan limits, regions, recording policy."""

    name = fields.String(validate=_NAME)
    domain = fields.String(validate=validate.Regexp(
        r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$",
        error="must be a lower-case DNS name"))
    max_concurrent_calls = fields.Integer(validate=validate.Range(min=0, max=100000),
                                          metadata={"description": "0 = unlimited"})
    region_prefixes = fields.Dict(keys=fields.String(validate=validate.Regexp(
        r"^0[0-9]{1,5}$", error="a national prefix like 0912")), values=fields.Nested(RegionLoad))
    outbound_caller_id = Phone(allow_service=False, allow_extension=False)
    vip_recording_roles = fields.List(fields.String(validate=validate.OneOf(ROLES)),
                                      load_default=lambda: ["admin"])
    recording = fields.Nested(RecordingPolicyLoad, metadata={
        "description": "recording policy (default: every call, kept for ever)"})
    webhooks = fields.List(fields.Nested(WebhookLoad), validate=validate.Length(max=10))
    outbound_classes = fields.List(
        fields.String(validate=validate.OneOf(dialing.CLASSES)),
        metadata={"description": "what click-to-call may dial (the dialplan's "
                                 "tongdai_outbound classes); default national, mobile. "
                                 "Emergency and premium numbers abroad: never"})


class DidLoad(Strict):
    """A number customers dial (đầu số): to a queue directly or to an IVR menu."""

    name = fields.String(validate=_NAME)
    kind = fields.String(validate=validate.OneOf(DID_KINDS))
    queue = fields.String(validate=ENTITY_ID)
    ivr = fields.String(validate=ENTITY_ID)
    region = fields.String(allow_none=True, validate=validate.OneOf(REGIONS))

    @validates_schema
    def _target(self, data: dict, **_: Any) -> None:
        if bool(data.get("queue")) == bool(data.get("ivr")):
            raise ValidationError("give exactly one of queue or ivr", "queue")


class ExtensionLoad(Strict):
    """A SIP account (máy nhánh). The password is generated by the API and returned once."""

    display_name = fields.String(validate=validate.Length(max=100))
    agent_id = fields.String(validate=ENTITY_ID)
    can_monitor = fields.Boolean(metadata={
        "description": "may listen/whisper/barge: dial *33/*34/*35<agent ext>, or be the "
                       "extension of POST /api/v1/monitor (supervisors' phones)"})
    rotate_password = fields.Boolean(load_default=False,
                                     metadata={"description": "generate a new SIP password"})


class IvrOptionLoad(Strict):
    queue = fields.String(validate=ENTITY_ID)
    ivr = fields.String(validate=ENTITY_ID)
    hangup = fields.Boolean()

    @validates_schema
    def _one(self, data: dict, **_: Any) -> None:
        if sum(1 for k in ("queue", "ivr", "hangup") if data.get(k)) != 1:
            raise ValidationError("give exactly one of queue, ivr or hangup", "queue")


class IvrLoad(Strict):
    """An IVR menu ("nhấn phím 1 để gặp CSKH")."""

    name = fields.String(validate=_NAME)
    greeting = fields.String(required=True, validate=validate.Length(min=1, max=300))
    invalid_sound = fields.String(validate=validate.Length(max=300))
    timeout_s = fields.Integer(load_default=5, validate=validate.Range(min=1, max=60))
    max_failures = fields.Integer(load_default=3, validate=validate.Range(min=1, max=10))
    options = fields.Dict(keys=fields.String(validate=validate.Regexp(
        r"^[0-9*#]{1,3}$", error="digits, * or #")), values=fields.Nested(IvrOptionLoad),
        required=True, validate=validate.Length(min=1, max=12))
    default_queue = fields.String(validate=ENTITY_ID,
                                  metadata={"description": "after max_failures"})


class BlocklistLoad(Strict):
    reason = fields.String(load_default="", validate=validate.Length(max=200))


class UserLoad(Strict):
    name = fields.String(validate=_NAME)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    agent_id = fields.String(validate=ENTITY_ID)
    extension = fields.String(validate=EXTENSION, metadata={
        "description": "the user's own phone (a supervisor's default for live monitoring)"})
    disabled = fields.Boolean(load_default=False)


class CrmLoad(Strict):
    """A customer, contact or lead for caller lookup (screen pop)."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    phones = fields.List(Phone(allow_extension=False), required=True,
                         validate=validate.Length(min=1, max=10))
    company = fields.String(validate=_NAME)
    email = fields.Email()
    external_id = fields.String(validate=validate.Length(max=100))
    url = fields.Url(require_tld=False)


class TokenCreate(Strict):
    user = fields.String(required=True, validate=ENTITY_ID)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    ttl_s = fields.Integer(strict=True, validate=validate.Range(min=60, max=MAX_TTL_S),
                           metadata={"description": "lifetime in seconds (default: the "
                                                    "server's, 12 h; at most 30 days)"})


_META = {"id": fields.String(required=True),
         "changed_at_us": fields.Integer(required=True,
                                         metadata={"description": "when it was last written"})}

WebhookOut = dump_schema("WebhookOut", WebhookLoad, {"id": fields.String()},
                         exclude=("rotate_secret",))
TenantOut = dump_schema("TenantOut", TenantLoad, {
    **_META, "webhooks": fields.List(fields.Nested(WebhookOut)),
    "webhook_secrets": fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "only in the answer that created or rotated them: webhook id -> "
                       "signing secret (HMAC-SHA256, see api/webhooks)"})})
QueueOut = dump_schema("QueueOut", QueueLoad, dict(_META))
AgentOut = dump_schema("AgentOut", AgentLoad, dict(_META))
DidOut = dump_schema("DidOut", DidLoad, dict(_META))
IvrOut = dump_schema("IvrOut", IvrLoad, dict(_META))
BlocklistOut = dump_schema("BlocklistOut", BlocklistLoad, dict(_META))
UserOut = dump_schema("UserOut", UserLoad, dict(_META))
CrmOut = dump_schema("CrmOut", CrmLoad, {**_META, "kind": fields.String()})
ExtensionOut = dump_schema("ExtensionOut", ExtensionLoad, {
    **_META, "domain": fields.String(),
    "sip_password": fields.String(metadata={
        "description": "only in the answer that created or rotated it; never stored"})},
    exclude=("rotate_password",))


class TokenOut(Strict):
    token = fields.String(required=True, metadata={"description": "shown once"})
    token_id = fields.String(required=True)
    tenant = fields.String(required=True)
    user = fields.String(required=True)
    role = fields.String(required=True)
    expires_at = fields.Integer(required=True, metadata={"description": "epoch seconds"})


_PAGES: dict[type, type] = {}


def page_of(item_schema: type) -> type:
    """A list answer: items of one kind plus paging numbers (one class per item schema)."""
    if item_schema not in _PAGES:
        _PAGES[item_schema] = _page(item_schema)
    return _PAGES[item_schema]


def _page(item_schema: type) -> type:
    return type(f"{item_schema.__name__}Page", (Strict,), {
        "items": fields.List(fields.Nested(item_schema), required=True),
        "total": fields.Integer(required=True),
        "limit": fields.Integer(required=True),
        "offset": fields.Integer(required=True),
        "next_offset": fields.Integer(allow_none=True, required=True)})
