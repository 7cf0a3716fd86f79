"""What FreeSWITCH writes into events and command replies, as pure functions of a leg: the
channel data every channel event carries, the CDR variables of a hangup, the rows of
``show channels``. Modelled on the real captures in ``tests/fixtures/esl`` (same names, same
order, same Event-Calling-* triples)."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from .state import Agent, Channel, Pairs

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


def gmt_text(epoch: float) -> str:
    """Event-Date-GMT: ``Tue, 02 Sep 2025 08:00:00 GMT``."""
    t = datetime.fromtimestamp(epoch, timezone.utc)
    return (f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year} "
            f"{t:%H:%M:%S} GMT")


def stamp_text(us: int, tz: ZoneInfo | timezone) -> str:
    """Event-Date-Local and the CDR's ``*_stamp``: local time to the second."""
    return datetime.fromtimestamp(us / 1_000_000, tz).strftime("%Y-%m-%d %H:%M:%S")


def uptime_text(us: int) -> str:
    """An uptime as FreeSWITCH's ``status`` and HEARTBEAT's Up-Time print it."""
    ms, usec = divmod(max(0, us), 1000)
    sec, msec = divmod(ms, 1000)
    mins, s = divmod(sec, 60)
    hours, m = divmod(mins, 60)
    days, h = divmod(hours, 24)
    years, d = divmod(days, 365)
    return (f"{years} years, {d} days, {h} hours, {m} minutes, {s} seconds, "
            f"{msec} milliseconds, {usec} microseconds")


def profile_pairs(prefix: str, ch: Channel, *, other: bool = False) -> Pairs:
    """A caller profile (``Caller-`` or, for the leg's partner, ``Other-Leg-``)."""
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


def channel_pairs(ch: Channel, state: str | None = None, number: int | None = None, *,
                  variables: bool = True) -> Pairs:
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
    p += profile_pairs("Caller-", ch)
    if ch.other is not None and ch.other_type:
        p.append(("Other-Type", ch.other_type))
        p += profile_pairs("Other-Leg-", ch.other, other=True)
    if variables:
        p += [(f"variable_{k}", v) for k, v in ch.variables.items()]
    return p


def user_pairs(agent: Agent) -> Pairs:
    """The directory's variables of a phone's user, as sofia::register carries them."""
    ext, dom = agent.ext, agent.domain
    name = agent.spec.name or f"Extension {ext}"
    return [("sip_number_alias", ext), ("sip_auth_username", ext), ("sip_auth_realm", dom),
            ("number_alias", ext), ("user_name", ext), ("domain_name", dom),
            ("record_stereo", "true"), ("transfer_fallback_extension", "operator"),
            ("toll_allow", "local"), ("accountcode", ext), ("user_context", "default"),
            ("effective_caller_id_name", name), ("effective_caller_id_number", ext),
            ("callgroup", "agents")]



def inbound_variables(ch: Channel, session_id: str, call_id: str) -> dict[str, str]:
    """The variables mod_sofia sets on an inbound leg from its INVITE (a caller at
    127.0.0.1:5080 dialling the leg's destination)."""
    uid, num, name, cid_name, now = ch.uuid, ch.cid_num, ch.name, ch.cid_name, ch.created_us
    did, host = ch.dest, "127.0.0.1"
    return {
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
        "sip_full_to": f"<sip:{did}@127.0.0.1>",
        "sip_allow": "INVITE, ACK, BYE, CANCEL, OPTIONS",
        "sip_req_user": did, "sip_req_port": "5060",
        "sip_req_uri": f"{did}@127.0.0.1:5060", "sip_req_host": "127.0.0.1",
        "sip_to_user": did, "sip_to_uri": f"{did}@127.0.0.1",
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
    }


def hangup_variables(ch: Channel, tz: ZoneInfo | timezone) -> dict[str, str]:
    """The CDR variables FreeSWITCH sets on a leg as it reports its hangup (the
    ``variable_*`` of CHANNEL_HANGUP_COMPLETE): stamps, epochs and durations."""
    v: dict[str, str] = {}
    cause = ch.hangup_cause or "NORMAL_CLEARING"
    v["hangup_cause"] = cause
    v["hangup_cause_q850"] = str(Q850.get(cause, 16))
    v["digits_dialed"] = "none"

    def stamp(us: int) -> str:
        return stamp_text(us, tz) if us else ""

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
    return v


def channel_row(ch: Channel, hostname: str, tz: ZoneInfo | timezone) -> dict[str, str]:
    """A row of ``show channels`` (as json or text)."""
    inbound = ch.direction == "inbound"
    return {
        "uuid": ch.uuid, "direction": ch.direction,
        "created": stamp_text(ch.created_us, tz),
        "created_epoch": str(ch.created_us // 1_000_000), "name": ch.name,
        "state": ch.state, "cid_name": ch.cid_name, "cid_num": ch.cid_num,
        "ip_addr": ch.network_addr if inbound else "", "dest": ch.dest,
        "application": ch.application, "application_data": ch.application_data,
        "dialplan": ch.dialplan, "context": ch.context, "read_codec": "PCMU",
        "read_rate": "8000", "read_bit_rate": "64000", "write_codec": "PCMU",
        "write_rate": "8000", "write_bit_rate": "64000", "secure": "",
        "hostname": hostname, "presence_id": ch.presence_id, "presence_data": "",
        "accountcode": ch.variables.get("accountcode", ""), "callstate": ch.callstate,
        "callee_name": ch.callee_name or "", "callee_num": ch.callee_num or "",
        "callee_direction": "SEND" if ch.callee_name else "",
        "call_uuid": ch.variables.get("call_uuid", "") if ch.bridged_to else "",
        "sent_callee_name": ch.callee_name or "", "sent_callee_num": ch.callee_num or "",
        "initial_cid_name": ch.orig_cid_name, "initial_cid_num": ch.orig_cid_num,
        "initial_ip_addr": ch.network_addr if inbound else "", "initial_dest": ch.dest,
        "initial_dialplan": ch.dialplan, "initial_context": ch.context,
    }
