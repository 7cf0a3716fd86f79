"""FreeSWITCH XML rendered from the configuration view (mod_xml_curl).

- directory: the extensions of the tenant whose SIP domain is asked for, with `a1-hash`
  (the password itself is never stored) and the tenant/agent variables;
- dialplan, context `public` (the carriers'): a DID -> blocklist check -> concurrent-call
  limit -> IVR menu or queue: variables `tongdai_tenant`, `tongdai_did`, `tongdai_queue`,
  `tongdai_region`, then answer, record (the tenant's `recording` policy: file
  `<recordings>/<tenant>/<date>/<call id>.wav`) and park (the router takes it from
  CHANNEL_PARK);
- dialplan, context `tongdai` or `tongdai_<tenant>` (phones): the live-monitoring feature
  codes *33/*34/*35<agent ext> (api/monitor/services.py); context `tongdai_<tenant>`: the
  router's voicemail (`voicemail_<queue>`) into the queue's box `q_<queue>`, which the
  directory lists beside the extensions;
- a dialplan answer only for the context FreeSWITCH hunts in (`Hunt-Context`, else
  `Caller-Context`), "not found" otherwise: a document without the hunted context ends the
  call (NO_ROUTE_DESTINATION) while "not found" lets FreeSWITCH use its static files, e.g.
  for a phone (context `tongdai_<tenant>`) dialing its tenant's own hotline number. A
  request naming no context (FreeSWITCH always sends `Hunt-Context`) is answered;
- configuration `ivr.conf`: the tenants' IVR menus (`tongdai_<tenant>_<ivr>`); a queue
  option is `menu-exec-app` `transfer ivr_<ivr>_<digits> XML public`, answered here (context
  `public`, the channel's `tongdai_tenant`) with an extension that sets `tongdai_ivr_choice`,
  `tongdai_ivr_path` (the digits from the DID's root menu, joined by `>`) and `tongdai_queue`,
  fires the `tongdai::ivr` event and parks. Only a transfer leaves a mod_ivr menu: an app
  run by `menu-exec-app` returns to the menu, which plays its greeting again;
- `ivr_<ivr>_failed` (the menu's `exec-on-max-failures`/`-timeouts`): its `default_queue`.
Adding an extension or an agent therefore needs no FreeSWITCH reload.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from xml.sax.saxutils import quoteattr

from routing import dialing, numbers

from ..config.view import ConfigView
from ..monitor.services import MODES, CallsInProgress, eavesdrop_actions

_MONITOR = re.compile(r"^\*3([345])([0-9]{2,6})$")
#: the destination an IVR choice transfers to (context `public`): ivr_<ivr id>_<digits>
_IVR_CHOICE = re.compile(r"^ivr_(.+)_([0-9*#]{1,3}|failed)$")
#: (tenant, extension, call id, mode, agent id) -> None: writes the audit entry
Audit = Callable[[str, str, str, str, str], None]

NOT_FOUND = ('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
             '<document type="freeswitch/xml"><section name="result">'
             '<result status="not found"/></section></document>')


def _doc(section: str, body: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
            f'<document type="freeswitch/xml"><section name="{section}">{body}'
            '</section></document>')


def _param(name: str, value: object) -> str:
    return f"<param name={quoteattr(name)} value={quoteattr(str(value))}/>"


def _var(name: str, value: object) -> str:
    return f"<variable name={quoteattr(name)} value={quoteattr(str(value))}/>"


def _action(app: str, data: object = "") -> str:
    return f"<action application={quoteattr(app)} data={quoteattr(str(data))}/>"


#: (tenant, extension) -> the a1-hash of its live browser softphone session, or None
SoftphoneA1 = Callable[[str, str], "str | None"]


def directory(view: ConfigView, form: Mapping[str, str],
              softphone_a1: SoftphoneA1 | None = None) -> str:
    domain = form.get("domain") or form.get("key_value") or ""
    tenant = view.tenant_of_domain(domain)
    if tenant is None:
        return NOT_FOUND
    user = form.get("user")
    agents_by_ext = {e.data.get("extension"): agent_id
                     for agent_id, e in view.items(tenant, "agent")}
    users = []
    for ext, entry in view.items(tenant, "extension"):
        if user and ext != user:
            continue
        agent_id = entry.data.get("agent_id") or agents_by_ext.get(ext, "")
        name = entry.data.get("display_name") or ext
        a1 = entry.data["a1_hash"]
        if (form.get("sip_via_protocol") or "").lower() in ("ws", "wss"):
            # Over WebSocket only the browser softphone's live session (api/softphone);
            # without one, a hash of a password nobody knows.
            live = softphone_a1(tenant, ext) if softphone_a1 is not None else None
            a1 = live or hashlib.md5(secrets.token_bytes(16)).hexdigest()
        users.append(
            f"<user id={quoteattr(ext)}><params>{_param('a1-hash', a1)}"
            f"</params><variables>{_var('user_context', 'tongdai')}"
            f"{_var('tongdai_tenant', tenant)}{_var('tongdai_agent_id', agent_id)}"
            f"{_var('effective_caller_id_name', name)}"
            f"{_var('effective_caller_id_number', ext)}</variables></user>")
    for queue_id, _entry in view.items(tenant, "queue"):
        box = f"q_{queue_id}"
        if user and box != user:
            continue
        users.append(_voicemail_box(box, domain, queue_id))
    if user and not users:
        return NOT_FOUND
    dial = ("{^^:sip_invite_domain=${dialed_domain}:presence_id=${dialed_user}@"
            "${dialed_domain}}${sofia_contact(*/${dialed_user}@${dialed_domain})}")
    return _doc("directory",
                f"<domain name={quoteattr(domain)}><params>{_param('dial-string', dial)}"
                f"</params><groups><group name=\"default\"><users>{''.join(users)}"
                f"</users></group></groups></domain>")


def _voicemail_box(box: str, domain: str, queue_id: str) -> str:
    """A queue's mailbox (`q_<queue>`): the router's voicemail action leaves messages in
    it (mod_voicemail needs the box in the directory). It cannot register (its `a1-hash`
    is of a password nobody knows) and has no mailbox password (voicemail.conf refuses an
    empty one): it is read through the switch (`vm_list`), not from a phone."""
    unusable = hashlib.md5(secrets.token_bytes(16)).hexdigest()
    return (f"<user id={quoteattr(box)}><params>{_param('a1-hash', unusable)}"
            f"{_param('vm-enabled', 'true')}</params>"
            f"<variables>{_var('user_context', 'tongdai_reject')}"
            f"{_var('effective_caller_id_name', 'Voicemail ' + queue_id)}"
            f"{_var('effective_caller_id_number', box)}</variables></user>")


def tenant_context(view: ConfigView, form: Mapping[str, str]) -> str:
    """A call in a context of its tenant that the static files hold only for their own
    tenants, answered for a tenant of the API (one extension for the asked destination):

    `tongdai_<tenant>` (its phones' calls, through the static `tongdai` context, and the
    router's transfers): the router's voicemail `voicemail_<queue>` into the queue's box
    `q_<queue>`; `*8` group pickup (the tenant's extensions are one call group) and
    `**<ext>` directed pickup; `*97` the caller's own mailbox; an extension of the tenant
    (internal call: recorded by policy, in-call keys *1 blind / *4 attended transfer, no
    answer in 30 s: the callee's voicemail); any other number: `tongdai_<tenant>_outbound`.

    `tongdai_<tenant>_outbound` (phones, the router's forwards, click-to-call): the
    outbound rule of routing/dialing.py with the tenant's `outbound_classes` (a caller's
    leg the router forwards: national and mobile), caller ID the number the product chose
    (`tongdai_outbound_caller_id`), else the tenant's `outbound_caller_id`, else its first
    geographic number, never a 1800/1900 one; recorded by policy; the carrier gateway.
    Anything else: not found (the static files, if any)."""
    dest = form.get("Caller-Destination-Number") or ""
    context = hunt_context(form)
    tenant = form.get("variable_tongdai_tenant") or ""
    outbound = context.endswith("_outbound")
    if not tenant:  # a phone's first lookup may come before the directory's variables
        tenant = context[len("tongdai_"):-len("_outbound") if outbound else None]
    if context != f"tongdai_{tenant}" + ("_outbound" if outbound else ""):
        return NOT_FOUND
    if view.get(tenant, "tenant", tenant) is None:
        return NOT_FOUND
    actions = (_outbound_actions(view, tenant, form, dest) if outbound
               else _internal_actions(view, tenant, form, dest))
    return _context(context, dest, actions) if actions else NOT_FOUND


def _internal_actions(view: ConfigView, tenant: str, form: Mapping[str, str],
                      dest: str) -> list[str]:
    domain = view.domain(tenant)
    tdata = view.get(tenant, "tenant", tenant).data
    match = re.fullmatch(r"voicemail_(.+)", dest)
    if match:
        if view.get(tenant, "queue", match[1]) is None:
            return []
        return [_action("set", f"tongdai_voicemail={match[1]}"),
                # The queue's box has no owner to announce: no "the person at extension
                # q_<queue> is not available" (which spells the box id), the instructions
                # and the tone only.
                _action("set", "skip_greeting=true"),
                _action("answer"),
                _action("voicemail", f"default {domain} q_{match[1]}"),
                _action("hangup")]
    if dest == "*8":
        return [_action("answer"),
                _action("intercept", f"${{hash(select/{domain}-last_dial/{tenant})}}")]
    match = re.fullmatch(r"\*\*([0-9]{2,6})", dest)
    if match:
        return [_action("answer"),
                _action("intercept", f"${{hash(select/{domain}-last_dial_ext/{match[1]})}}")]
    if dest == "*97":
        return [_action("answer"), _action("voicemail", f"check default {domain} ${{user_name}}")]
    if view.get(tenant, "extension", dest) is not None:
        # A caller an agent transferred here (a REFER: the caller's force_transfer_context)
        # stays what it was, an inbound call, recorded once from its answer.
        transferred = bool(form.get("variable_tongdai_direction"))
        return [*([] if transferred else [_action("set", "tongdai_direction=internal")]),
                _action("export", f"tongdai_tenant={tenant}"),
                _action("set", f"dialed_extension={dest}"),
                _action("hash", f"insert/{domain}-last_dial_ext/{dest}/${{uuid}}"),
                _action("hash", f"insert/{domain}-last_dial/{tenant}/${{uuid}}"),
                _action("bind_meta_app", "1 b s execute_extension::dx XML tongdai_features"),
                _action("bind_meta_app", "4 b s execute_extension::att_xfer XML tongdai_features"),
                _action("set", f"force_transfer_context=tongdai_{tenant}"),
                _action("set", "transfer_ringback=${hold_music}"),
                _action("set", "call_timeout=30"),
                _action("set", "hangup_after_bridge=true"),
                _action("set", "continue_on_fail=true"),
                *recording_actions(tenant, tdata, "internal", form),
                _action("bridge", f"user/{dest}@{domain}"),
                _action("answer"),
                _action("voicemail", f"default {domain} {dest}"),
                _action("hangup")]
    if _own_did(view, tenant, dest):
        return [_action("transfer", f"{dest} XML public")]
    if re.fullmatch(r"\+?[0-9]{3,16}", dest):
        return [_action("transfer", f"{dest} XML tongdai_{tenant}_outbound")]
    return []


def _own_did(view: ConfigView, tenant: str, dest: str) -> bool:
    """A phone dialing its own tenant's number gets the callers' path (the DID's menu or
    queue) rather than the carrier."""
    try:
        return view.get(tenant, "did", numbers.to_e164(dest)) is not None
    except ValueError:
        return False


def outbound_caller_id(view: ConfigView, tenant: str, chosen: str = "") -> str:
    """The number an outbound call of `tenant` shows, national form: the one the product
    chose (click-to-call), else the tenant's `outbound_caller_id`, else its first
    geographic number; never a 1800/1900 one ("" if it has none)."""
    tdata = view.get(tenant, "tenant", tenant).data
    candidates = [chosen, tdata.get("outbound_caller_id") or ""]
    candidates += sorted(n for n, e in view.items(tenant, "did")
                         if e.data.get("kind") in ("geographic", "mobile"))
    for number in candidates:
        national = dialing.dialled_form(number) if number else ""
        if re.fullmatch(r"0[2-9][0-9]{8,9}", national):
            return national
    return ""


def _outbound_actions(view: ConfigView, tenant: str, form: Mapping[str, str],
                      dest: str) -> list[str]:
    tdata = view.get(tenant, "tenant", tenant).data
    if _own_did(view, tenant, dest):
        return [_action("transfer", f"{dest} XML public")]
    inbound = form.get("variable_tongdai_direction") == "inbound"
    if form.get("variable_tongdai_forwarded_by"):
        allowed: tuple[str, ...] = (dialing.MOBILE,)
    elif inbound:
        allowed = dialing.DEFAULT_CLASSES
    else:
        allowed = tuple(tdata.get("outbound_classes") or dialing.DEFAULT_CLASSES)
    verdict = dialing.check_outbound(dest, allowed)
    cid = outbound_caller_id(view, tenant, form.get("variable_tongdai_outbound_caller_id") or "")
    head = [_action("export", f"tongdai_tenant={tenant}"),
            _action("set", f"tongdai_domain={view.domain(tenant)}")]
    if not inbound:
        head.append(_action("set", "tongdai_direction=outbound"))
    if verdict.dest_class == dialing.EMERGENCY:  # a phone may always reach them
        return [*head, _action("set", "tongdai_dest_class=emergency"),
                _action("bridge", f"sofia/gateway/carrier/{verdict.destination}")]
    if not verdict.allowed:
        return [*head, _action("set", f"tongdai_barred={verdict.dest_class}"),
                _action("log", f"INFO tongdai: {verdict.reason}"),
                _action("hangup", "OUTGOING_CALL_BARRED")]
    if not cid:
        return [*head, _action("log", "WARNING tongdai: no caller ID to present (the tenant "
                                      "has no geographic number or outbound_caller_id)"),
                _action("hangup", "CALL_REJECTED")]
    return [*head, _action("set", f"effective_caller_id_number={cid}"),
            _action("set", f"effective_caller_id_name={tdata.get('name') or tenant}"),
            _action("set", f"tongdai_dest_class={verdict.dest_class}"),
            _action("set", "hangup_after_bridge=true"),
            _action("set", "call_timeout=60"),
            *recording_actions(tenant, tdata, "outbound", form),
            _action("bridge", f"sofia/gateway/carrier/{verdict.destination}")]


def hunt_context(form: Mapping[str, str]) -> str:
    """The context FreeSWITCH looks the call up in ("" when the request names none)."""
    return form.get("Hunt-Context") or form.get("Caller-Context") or ""


def monitor(view: ConfigView, form: Mapping[str, str], calls: CallsInProgress | None,
            audit: Audit | None) -> str:
    """A supervisor phone dialled *33/*34/*35<agent ext>: eavesdrop on that agent's call."""
    dest = form.get("Caller-Destination-Number") or ""
    match = _MONITOR.match(dest)
    domain = form.get("variable_domain_name") or form.get("variable_dialed_domain") or ""
    tenant = form.get("variable_tongdai_tenant") or view.tenant_of_domain(domain)
    caller = form.get("variable_user_name") or form.get("Caller-Caller-ID-Number") or ""
    if match is None or tenant is None or calls is None:
        return NOT_FOUND
    context = hunt_context(form) or "tongdai"
    if context not in ("tongdai", f"tongdai_{tenant}"):
        return NOT_FOUND
    ext = view.get(tenant, "extension", caller)
    if ext is None or not ext.data.get("can_monitor"):
        return _context(context, dest, [_action("hangup", "CALL_REJECTED")])
    mode, agent_ext = MODES[match[1]], match[2]
    agent_id = next((a for a, e in view.items(tenant, "agent")
                     if e.data.get("extension") == agent_ext), None)
    current = calls.of_agent(tenant, agent_id) if agent_id else None
    if current is None:
        return _context(context, dest, [_action("answer"),
                                        _action("playback", "tone_stream://%(500,0,480)"),
                                        _action("hangup", "NO_ROUTE_DESTINATION")])
    call_id, leg = current
    if audit is not None:
        audit(tenant, caller, call_id, mode, agent_id)
    return _context(context, dest, [_action(a, d) for a, d in eavesdrop_actions(mode, leg)])


def _context(context: str, dest: str, actions: list[str]) -> str:
    return _doc("dialplan",
                f"<context name={quoteattr(context)}><extension name={quoteattr('tongdai_' + dest)}>"
                f"<condition field=\"destination_number\" expression={quoteattr('^.*$')}>"
                f"{''.join(actions)}</condition></extension></context>")


def dialplan(view: ConfigView, form: Mapping[str, str], calls: CallsInProgress | None = None,
             audit: Audit | None = None) -> str:
    dest = form.get("Caller-Destination-Number") or form.get("destination_number") or ""
    if _MONITOR.match(dest):
        return monitor(view, form, calls, audit)
    if hunt_context(form).startswith("tongdai_"):
        return tenant_context(view, form)
    if hunt_context(form) not in ("", "public"):
        return NOT_FOUND  # only the carriers' context is rendered for DIDs
    if _IVR_CHOICE.match(dest):
        return ivr_choice(view, form, dest)
    try:
        number = numbers.to_e164(dest)
    except ValueError:
        return NOT_FOUND
    tenant = view.tenant_of_did(number)
    if tenant is None:
        return NOT_FOUND
    did = view.get(tenant, "did", number)
    t = view.get(tenant, "tenant", tenant)
    tdata = t.data if t else {}
    caller = form.get("Caller-Caller-ID-Number") or ""
    actions = [_action("set", f"tongdai_tenant={tenant}"), _action("set", f"tongdai_did={number}"),
               _action("set", f"tongdai_domain={tdata.get('domain') or tenant}"),
               _action("set", "tongdai_direction=inbound"),
               # where an agent's phone transfers the caller (REFER): the tenant's context,
               # its extensions and its numbers
               _action("set", f"force_transfer_context=tongdai_{tenant}")]
    try:
        caller_e164 = numbers.to_e164(caller) if caller else ""
    except ValueError:
        caller_e164 = ""
    if caller_e164 and view.get(tenant, "blocklist", caller_e164) is not None:
        actions.append(_action("hangup", "CALL_REJECTED"))
        return _extension(number, actions)
    limit = int(tdata.get("max_concurrent_calls") or 0)
    if limit:
        actions.append(_action("limit", f"hash tongdai {tenant} {limit} !USER_BUSY"))
    if did.data.get("region"):
        actions.append(_action("set", f"tongdai_region={did.data['region']}"))
    actions.append(_action("answer"))
    actions += recording_actions(tenant, tdata, "inbound", form)
    if did.data.get("ivr"):
        actions.append(_action("ivr", f"tongdai_{tenant}_{did.data['ivr']}"))
        actions.append(_action("hangup"))
    else:
        queue = did.data["queue"]
        actions.append(_action("set", f"tongdai_queue={queue}"))
        actions += hold_music(view.get(tenant, "queue", queue))
        actions.append(_action("park"))
    return _extension(number, actions)


#: what a caller waiting in a queue hears when the queue names no music of its own
#: (fs-conf: the `hold_music` global, local_stream.conf's `moh` folder)
DEFAULT_MOH = "local_stream://moh"
#: what the scheduled music plays once the caller has left the queue
_NO_MUSIC = "silence_stream://1"
#: mod_commands' JSON `execute` of the waiting music on the caller's own leg, for
#: `sched_api`: it queues a plain `playback` for the channel. `sched_broadcast` (and
#: `uuid_broadcast`) queue it with `lead-frames: 5`, and switch_ivr_parse_event then reads
#: 5 voiced frames, or 9 frames of a silent caller, before it plays, deaf to anything else:
#: an agent who answered in those 100-180 ms waited that long for the caller.
_PLAY_MUSIC = ('json {"command":"execute","data":{"uuid":"${uuid}","app":"playback",'
               '"arg":"\\${tongdai_waiting_music}"}}')


def hold_music(queue: object | None) -> list[str]:
    """The queue's music (`music_on_hold`, else DEFAULT_MOH) for a caller about to park.

    `hold_music` is what the switch plays when the caller is held later on. The waiting
    music itself is a playback scheduled a second ahead (`_PLAY_MUSIC`): one queued
    before `park` would run first, and the call would never park for the router. A
    scheduled task is not cancelled when the caller leaves the park, and a playback
    that arrives in a bridge unbridges the caller and plays on (local_stream never ends:
    the caller would hear music instead of the agent who answered within that second);
    one that arrives in voicemail plays inside it. So the playback names the variable
    `tongdai_waiting_music` (`\\$`: expanded when it plays, not when it is scheduled), and
    whatever takes the caller out of the park, a bridge (uuid_bridge, intercept) or a
    transfer (uuid_transfer, a REFER), first turns it into a millisecond of silence."""
    data = getattr(queue, "data", None) or {}
    music = data.get("music_on_hold") or DEFAULT_MOH
    silence = f"set tongdai_waiting_music={_NO_MUSIC}"
    return [_action("set", f"hold_music={music}"),
            _action("set", f"tongdai_waiting_music={music}"),
            _action("set", f"execute_on_pre_bridge_tongdai_moh={silence}"),
            _action("set", f"execute_on_blind_transfer_tongdai_moh={silence}"),
            _action("set", f"tongdai_music_task=${{sched_api(+1 tongdai_music {_PLAY_MUSIC})}}")]


#: the tenant's recordings: <recordings>/<tenant>/<date in Vietnam>/<call id>.wav, where
#: <recordings> is the switch's `tongdai_recordings_dir` global (fs-conf/vars.xml; a channel
#: variable lookup falls back to the globals) and the call id the caller's leg
RECORDING_PATH = ("${tongdai_recordings_dir}/%s/${strftime_tz(Asia/Ho_Chi_Minh %%Y-%%m-%%d)}/"
                  "${uuid}.wav")


def records(tdata: Mapping[str, object], direction: str) -> bool:
    """Whether the tenant's policy records a call of `direction` (inbound, outbound,
    internal). Default: every call (what the static dialplan always did)."""
    policy = tdata.get("recording") or {}
    calls = policy.get("calls", "all") if isinstance(policy, Mapping) else "all"
    return calls == "all" or calls == direction


def recording_actions(tenant: str, tdata: Mapping[str, object], direction: str,
                      form: Mapping[str, str] | None = None) -> list[str]:
    """Record the caller's leg from its answer to its end, both parties (stereo: caller
    left, the other side right), unless the tenant's policy says not to, or the leg records
    already (`form`, the lookup's channel variables: a caller transferred to an extension or
    back to a number; a second record_session would write the same file). The bridge turns
    the switch's RECORD_START into `recording_started` (the call log's `recording`)."""
    if not records(tdata, direction) or (form or {}).get("variable_tongdai_recording"):
        return []
    return [_action("set", "RECORD_STEREO=true"),
            _action("set", "tongdai_recording=" + RECORDING_PATH % tenant),
            _action("record_session", "${tongdai_recording}")]


def _extension(number: str, actions: list[str]) -> str:
    return _doc("dialplan",
                f'<context name="public"><extension name={quoteattr("tongdai_" + number)}>'
                f'<condition field="destination_number" expression='
                f'{quoteattr("^.*$")}>{"".join(actions)}</condition></extension></context>')


def ivr_path(view: ConfigView, tenant: str, root: str | None, menu: str, digits: str) -> str:
    """The keys pressed from `root` to this choice, joined by `>` (`2>1`): the shortest way
    through the menus (they may loop back); just `digits` when `root` does not lead here."""
    paths: dict[str, list[str]] = {root: []} if root else {}
    todo = [root] if root else []
    while todo:
        current = todo.pop(0)
        entry = view.get(tenant, "ivr", current)
        for digit, opt in sorted((entry.data.get("options") or {}).items()) if entry else ():
            if opt.get("ivr") and opt["ivr"] not in paths:
                paths[opt["ivr"]] = [*paths[current], digit]
                todo.append(opt["ivr"])
    return ">".join([*paths[menu], digits]) if menu in paths else digits


def ivr_choice(view: ConfigView, form: Mapping[str, str], dest: str) -> str:
    """A caller's choice in a menu (`transfer ivr_<ivr>_<digits> XML public` from ivr.conf):
    the choice's variables, then park for the router. Only a call that already went through
    one of the tenant's DIDs (`tongdai_tenant` set by this dialplan) gets it."""
    match = _IVR_CHOICE.match(dest)
    tenant = form.get("variable_tongdai_tenant") or ""
    entry = view.get(tenant, "ivr", match[1]) if match and tenant else None
    if entry is None:
        return NOT_FOUND
    menu, digits = match[1], match[2]
    if digits == "failed":
        queue = entry.data.get("default_queue")
    else:
        queue = ((entry.data.get("options") or {}).get(digits) or {}).get("queue")
    if not queue:
        return NOT_FOUND
    did = form.get("variable_tongdai_did") or ""
    did_entry = view.get(tenant, "did", did) if did else None
    path = ivr_path(view, tenant, did_entry.data.get("ivr") if did_entry else None, menu, digits)
    actions = [_action("set", f"tongdai_ivr_choice={digits}"),
               _action("set", f"tongdai_ivr_path={path}"),
               _action("set", f"tongdai_queue={queue}")]
    actions += hold_music(view.get(tenant, "queue", queue))
    actions.append(_action("event", f"Event-Subclass=tongdai::ivr,Event-Name=CUSTOM,"
                                    f"IVR-Menu={menu},IVR-Choice={digits},IVR-Path={path}"))
    actions.append(_action("park"))
    return _doc("dialplan",
                f'<context name="public"><extension name={quoteattr(dest)}>'
                f'<condition field="destination_number" expression='
                f'{quoteattr("^" + re.escape(dest) + "$")}>{"".join(actions)}</condition>'
                f'</extension></context>')


def _reachable_menus(view: ConfigView, wanted: str) -> set[str]:
    """`wanted` (tongdai_<tenant>_<ivr>) and every menu its options lead to."""
    found: set[str] = set()
    for tenant in view.tenants():
        prefix = f"tongdai_{tenant}_"
        if not wanted.startswith(prefix) or view.get(tenant, "ivr", wanted[len(prefix):]) is None:
            continue
        todo = [wanted[len(prefix):]]
        while todo:
            ivr_id = todo.pop()
            entry = view.get(tenant, "ivr", ivr_id)
            if entry is None or prefix + ivr_id in found:
                continue
            found.add(prefix + ivr_id)
            todo += [o["ivr"] for o in (entry.data.get("options") or {}).values() if o.get("ivr")]
    return found


def ivr_menus(view: ConfigView, form: Mapping[str, str]) -> str:
    if form.get("key_value") != "ivr.conf":
        return NOT_FOUND
    wanted = form.get("Menu-Name") or ""
    # The `ivr` app builds the asked menu's sub-menus (menu-sub) from the same document:
    # an answer with the asked menu alone ends a caller's sub-menu key in "Invalid Menu!".
    include = _reachable_menus(view, wanted) if wanted else None
    menus = []
    for tenant in view.tenants():
        for ivr_id, entry in view.items(tenant, "ivr"):
            name = f"tongdai_{tenant}_{ivr_id}"
            if include is not None and name not in include:
                continue
            d = entry.data
            opts = []
            for digit, opt in sorted(d["options"].items()):
                if opt.get("hangup"):
                    opts.append(f'<entry action="menu-exit" digits={quoteattr(digit)}/>')
                elif opt.get("ivr"):
                    opts.append(f'<entry action="menu-sub" digits={quoteattr(digit)} '
                                f'param={quoteattr("tongdai_" + tenant + "_" + opt["ivr"])}/>')
                else:
                    # Only a transfer leaves the menu; the choice's extension parks the call.
                    opts.append(f'<entry action="menu-exec-app" digits={quoteattr(digit)} '
                                f'param={quoteattr(f"transfer ivr_{ivr_id}_{digit} XML public")}/>')
            failed = ""
            if d.get("default_queue"):
                app = quoteattr(f"transfer ivr_{ivr_id}_failed XML public")
                failed = f"exec-on-max-failures={app} exec-on-max-timeouts={app} "
            digit_len = max((len(k) for k in d["options"]), default=1)
            menus.append(
                f"<menu name={quoteattr(name)} greet-long={quoteattr(d['greeting'])} "
                f"greet-short={quoteattr(d['greeting'])} "
                f"invalid-sound={quoteattr(d.get('invalid_sound') or 'ivr/ivr-that_was_an_invalid_entry.wav')} "
                f"exit-sound=\"voicemail/vm-goodbye.wav\" "
                f"timeout=\"{int(d.get('timeout_s', 5)) * 1000}\" "
                f"max-failures=\"{int(d.get('max_failures', 3))}\" max-timeouts="
                f"\"{int(d.get('max_failures', 3))}\" {failed}"
                f"digit-len=\"{digit_len}\">{''.join(opts)}</menu>")
    if wanted and not menus:
        return NOT_FOUND
    return _doc("configuration",
                f'<configuration name="ivr.conf" description="tongdai IVR menus">'
                f'<menus>{"".join(menus)}</menus></configuration>')


def render(view: ConfigView, form: Mapping[str, str], calls: CallsInProgress | None = None,
           audit: Audit | None = None, softphone_a1: SoftphoneA1 | None = None) -> str:
    section = form.get("section")
    if section == "directory":
        return directory(view, form, softphone_a1)
    if section == "dialplan":
        return dialplan(view, form, calls, audit)
    if section == "configuration":
        return ivr_menus(view, form)
    return NOT_FOUND
