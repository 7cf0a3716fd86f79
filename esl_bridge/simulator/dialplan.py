"""The dialplan the simulator runs, modelled on fs-conf's: a caller's DID call (answer,
recording, IVR menu, park), a transfer into a context, ``tongdai_connect`` (the first phone to
answer gets the caller), a tenant's outbound context (click-to-call) and its
``voicemail_<queue>`` extension."""

from __future__ import annotations

import logging
import re
from datetime import datetime

from . import dptools
from .core import NodeCore
from .headers import inbound_variables
from .model import CallerSpec
from .state import Channel

log = logging.getLogger(__name__)

#: fs-conf's queue_voicemail extension of a tenant's context (voicemail_<queue>).
_VOICEMAIL_EXTENSION = re.compile(r"^voicemail_(.+)$")
#: The tenant's outbound context of fs-conf (tongdai_<tenant>_outbound).
_OUTBOUND_CONTEXT = re.compile(r"^tongdai_(.+)_outbound$")
#: outbound_cid_guard: never present a 1800/1900 (service) number as the caller ID.
_SERVICE_CID = re.compile(r"^(?:\+?84|0)?1[89]00")
#: The outbound classes of fs-conf's tongdai_<tenant>_outbound, in the dialplan's order.
_OUTBOUND_CLASSES = (
    ("mobile", re.compile(r"^0[35789][0-9]{8}$")),
    ("national", re.compile(r"^02[0-9]{9}$")),
    ("service", re.compile(r"^1[89]00[0-9]{4,6}$")),
    ("international", re.compile(r"^(?:00|\+)[1-9][0-9]{6,15}$")),
)
#: Classes whose calls the outbound dialplan records (record_session before the bridge).
_RECORDED_CLASSES = ("mobile", "national", "international")


def national_form(number: str) -> str:
    """outbound_service_e164 / outbound_e164: a +84 / 84 number in its national form (a
    1800/1900 number without the country code, any other with a leading 0)."""
    if re.match(r"^\+?84(1[89]00[0-9]{4,6})$", number):
        return re.sub(r"^\+?84(1[89]00[0-9]{4,6})$", r"\1", number)
    return re.sub(r"^\+?84([1-9][0-9]{8,9})$", r"0\1", number)


class Dialplan(NodeCore):
    """Extensions and contexts the node runs for a leg; part of ``Node``."""

    def place_call(self, spec: CallerSpec) -> str:
        """A customer dials ``spec.did``; returns the new channel's uuid."""
        with self.lock:
            now = self.clock.now_us()
            uid = spec.uuid or self.new_uuid()
            num = spec.number
            host = "127.0.0.1"
            name = f"sofia/internal/{num}@{host}"
            cid_name = spec.name or num
            session_id = str(next(self._session_ids))
            call_id = f"{self.rng.randrange(1, 1 << 30)}-{session_id}@{host}"
            ch = Channel(uuid=uid, direction="inbound", name=name, cid_name=cid_name, cid_num=num,
                         dest=spec.did, ani=num, context=self.context, source="mod_sofia",
                         presence_id=f"{num}@{host}", created_us=now, username=num,
                         dialplan="XML", orig_cid_name=cid_name, orig_cid_num=num,
                         profile_created_us=now, media=True, caller=spec)
            ch.variables.update(inbound_variables(ch, session_id, call_id))
            self._created(ch)
            self._callstate(ch, "RINGING")
            self._state(ch, "CS_ROUTING")
            self._state(ch, "CS_EXECUTE")
            # The dialplan: set what it knows from the DID, answer, maybe IVR, park.
            ch.variables["call_uuid"] = uid
            for key, value in spec.variables.items():
                if not (spec.ivr and key in spec.ivr.variables):
                    self._set(ch, key, value)
            self._later(ch, spec.answer_delay, lambda: self._inbound_answer(ch))
            return uid

    def _inbound_answer(self, ch: Channel) -> None:
        now = self.clock.now_us()
        self._app_start(ch, "answer")
        ch.answered_us = now
        ch.answer_state = "answered"
        ch.variables.update({
            "rtp_local_sdp_str": ("v=0\r\no=FreeSWITCH 1 2 IN IP4 127.0.0.1\r\ns=FreeSWITCH\r\n"
                                  "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 16434 RTP/AVP 0 101\r\n"
                                  "a=rtpmap:0 PCMU/8000\r\n"),
            "local_media_ip": "127.0.0.1", "local_media_port": "16434",
            "advertised_media_ip": "127.0.0.1", "rtp_use_timer_name": "soft",
            "rtp_use_pt": "0", "remote_media_ip": "127.0.0.1", "remote_media_port": "6100",
            "endpoint_disposition": "ANSWER",
        })
        self._channel_event("CHANNEL_ANSWER", ch, state="CS_EXECUTE", number=4)
        self._callstate(ch, "ACTIVE")
        self._app_done(ch)
        if self.record_inbound:
            self._record_from_answer(ch)
        spec = ch.caller
        if spec is not None and spec.ivr is not None:
            self._later(ch, spec.ivr.after, lambda: self._ivr_choice(ch))
        else:
            self._park(ch)

    def _record_from_answer(self, ch: Channel) -> None:
        path = self._recording_path(ch, ch.variables.get("tongdai_tenant") or "unknown")
        self._set(ch, "RECORD_STEREO", "true")
        self._set(ch, "tongdai_recording", path)
        self._app_start(ch, "record_session", path)
        ch.recording, ch.record_started_us = path, self.clock.now_us()
        self._channel_event("RECORD_START", ch, suffix=[("Record-File-Path", path)])
        self._app_done(ch)

    def _ivr_choice(self, ch: Channel) -> None:
        spec = ch.caller
        assert spec is not None and spec.ivr is not None
        ivr = spec.ivr
        if ivr.entry is not None and not self._menu_entry(ch, *ivr.entry):
            return
        path = ivr.path or f"{ivr.menu}>{ivr.choice}"
        self._channel_event("CUSTOM", ch, subclass="tongdai::ivr", prefix=[
            ("IVR-Menu", ivr.menu), ("IVR-Choice", ivr.choice), ("IVR-Path", path)])
        for key, value in ivr.variables.items():
            self._set(ch, key, value)
        self._park(ch)

    def _menu_entry(self, ch: Channel, action: str, param: str) -> bool:
        """Run the caller's menu entry as mod_ivr does; True when it transfers the caller
        out of the menu (to the choice's extension). Otherwise the caller stays in the menu,
        hearing the greeting again, and hangs up after its patience (as a real caller of
        the old `multiset ...:park` rendering did); a `hangup` entry hangs up."""
        outcome = dptools.menu_entry(action, param)
        if outcome.ran:
            self._app_start(ch, outcome.ran, param.partition(" ")[2])
        for name, value in outcome.variables:
            if value is None:
                ch.variables.pop(name, None)
            else:
                ch.variables[name] = value
        if outcome.ran:
            self._app_done(ch)
        if outcome.hangup is not None:
            self.hangup(ch.uuid, outcome.hangup)
            return False
        if outcome.transfer is not None:
            return True
        log.info("IVR entry %s %r keeps the caller in the menu (FreeSWITCH leaves a menu "
                 "only by a transfer)", action, param, extra={"call_id": ch.uuid})
        spec = ch.caller
        if spec is not None and spec.patience is not None:
            self._later(ch, spec.patience, lambda: self._abandon(ch))
        return False

    def _park(self, ch: Channel) -> None:
        if ch.bridged_to:  # bridged (uuid_bridge before the dialplan got here): no park
            return
        self._state(ch, "CS_EXECUTE")
        ch.variables["current_application"] = "park"
        self._app_start(ch, "park")
        ch.parked = True
        self._channel_event("CHANNEL_PARK", ch, state="CS_EXECUTE", number=4)
        spec = ch.caller
        if spec is not None and spec.patience is not None and ch.direction == "inbound":
            self._later(ch, spec.patience, lambda: self._abandon(ch))

    def _abandon(self, ch: Channel) -> None:
        if ch.bridged_to is None:
            self.hangup(ch.uuid, "NORMAL_CLEARING", disposition="recv_bye")

    def _unpark(self, ch: Channel) -> None:
        if ch.parked:
            ch.parked = False
            self._channel_event("CHANNEL_UNPARK", ch)
            self._app_done(ch)

    def _transfer(self, ch: Channel, dest: str, dialplan: str, context: str, *,
                  how: str) -> None:
        """A new caller profile sends the leg to ``dest`` in ``context``
        (switch_ivr_session_transfer): Caller-Destination-Number, Caller-Context,
        Caller-Profile-Index and Caller-Transfer-Source change."""
        now = self.clock.now_us()
        ch.transfer_us = now
        ch.profile_index += 1
        ch.profile_created_us = now
        ch.transfer_source = (f"{now // 1_000_000}:{self.new_uuid()}:{how}:"
                              f"{dest}/{context}/{dialplan}")
        ch.dest, ch.context, ch.dialplan, ch.hit_dialplan = dest, context, dialplan, True
        ch.variables["transfer_source"] = ch.transfer_source
        self._state(ch, "CS_ROUTING")
        self._state(ch, "CS_EXECUTE")

    def _route(self, ch: Channel) -> None:
        """The dialplan for the leg's destination and context. The simulator knows the
        tenants' outbound contexts and tongdai_connect; anywhere else the leg parks (as
        after uuid_transfer)."""
        if ch.context == "tongdai_connect" and ch.dest == "connect":
            self._connect(ch)
            return
        m = _OUTBOUND_CONTEXT.match(ch.context)
        if m is None:
            ch.variables.update(self.dids.get(ch.dest, {}))
            self._park(ch)
            return
        self._outbound_dialplan(ch, m.group(1))

    def _connect(self, ch: Channel) -> None:
        """The switch connecting the first phone to answer a call. The first answered leg
        of a call takes mod_hash's key `tongdai_connect_<call>` (insert_ifempty, atomic);
        any other hangs up LOSE_RACE, a winner finding no caller, or a bridged one, hangs
        up ORIGINATOR_CANCEL. The winner frees the key when it hangs up (api_hangup_hook).

        - fs-conf's tongdai_connect (dialplan/01_shared.xml): the winner intercepts the
          caller (intercept_unbridged_only): uuid_bridge(<this leg>, <caller>), this leg
          is A, and its dialplan goes on when the bridge ends (`connect_done`).
        - the actuator's CONNECT_INLINE: every application runs, in order, whatever the
          fence said; the winner has the caller bridged to it with the caller as the
          bridge's originator (A), and runs nothing after: the switch ends it NORMAL_CLEARING
          when the bridge ends. Its failsafe (`sched_hangup +3`, cancelled as the bridge
          starts) never fires here: the simulator's bridge is instant."""
        call_id = ch.variables.get("tongdai_call_id", "")
        key = f"tongdai_connect_{call_id}"
        hook = f"hash delete_ifmatch/tongdai_connect/{call_id}/{ch.uuid}"
        won = key not in self.hash
        if won:
            self.hash[key] = ch.uuid
        target = self.channels.get(call_id)
        free = target is not None and target is not ch and not target.gone \
            and not target.hangup_cause and not target.bridged_to
        if ch.dialplan == "inline":
            ch.variables["tongdai_won"] = "won" if won else ""
            ch.variables["api_hangup_hook"] = hook
            self._app_start(ch, "set", f"tongdai_won={ch.variables['tongdai_won']}")
            self._app_start(ch, "set", f"api_hangup_hook={hook}")
            self._app_start(ch, "set", f"tongdai_caller={call_id if won and free else ''}")
            self._app_start(ch, "sched_hangup", "+3 ORIGINATOR_CANCEL")
            self._app_start(ch, "set", f"api_before_bridge=sched_del {ch.uuid}")
            self._app_start(ch, "set", "tongdai_bridged=" + (
                "+OK" if won and free else "-ERR"))
            if not (won and free):
                self._hangup_app(ch, "ORIGINATOR_CANCEL" if won else "LOSE_RACE")
                return
            assert target is not None
            self._bridge(target, ch)
            return
        if not won:
            self._hangup_app(ch, "LOSE_RACE")
            return
        ch.variables["api_hangup_hook"] = hook
        ch.variables["intercept_unbridged_only"] = "true"
        if not free:
            self._hangup_app(ch, "ORIGINATOR_CANCEL")
            return
        assert target is not None
        # switch_ivr_intercept_session: uuid_bridge(<this leg>, <caller>): this leg is A.
        self._bridge(ch, target)

    def _outbound_dialplan(self, ch: Channel, tenant: str) -> None:
        """fs-conf's ``tongdai_<tenant>_outbound``: setup, caller-ID guard, +84 forms, one
        extension per class of number (permission, recording), ``bridge`` to the carrier.

        The caller ID presented is ``tongdai_outbound_caller_id`` (the number the API chose)
        or the originate's ``effective_caller_id_number``; fs-conf's outbound_setup today
        forces the tenant's geographic number instead (see the simulator README)."""
        cid = self._outbound_setup(ch, tenant)
        # outbound_cid_guard
        if _SERVICE_CID.match(cid):
            self._app_start(ch, "log",
                            "ERR tongdai: refusing to present a 1800/1900 number as caller ID")
            self._app_done(ch)
            self._hangup_app(ch, "CALL_REJECTED")
            return
        # outbound_service_e164 / outbound_e164: +84 / 84 forms, back through the context.
        number = ch.dest
        national = national_form(number)
        if national != number:
            self._app_start(ch, "transfer", f"{national} XML {ch.context}")
            self._app_done(ch)
            self._transfer(ch, national, "XML", ch.context, how="bl_xfer")
            self._outbound_dialplan(ch, tenant)
            return
        klass = self._outbound_class(ch, number)
        if klass is None:
            return
        self._set(ch, "tongdai_dest_class", klass)
        if klass in _RECORDED_CLASSES:
            path = self._recording_path(ch, tenant)
            self._set(ch, "tongdai_recording", path)
            self._app_start(ch, "record_session", path)
            self._record_start(ch, path)
            self._app_done(ch)
        self._dial_out(ch, number)

    def _outbound_setup(self, ch: Channel, tenant: str) -> str:
        """outbound_setup and outbound_who (both continue="true"); the caller ID chosen."""
        v = ch.variables
        # exported, as fs-conf does: the carrier leg the bridge creates is the tenant's too
        self._export(ch, "tongdai_tenant", tenant)
        self._set(ch, "tongdai_domain", v.get("tongdai_domain") or v.get("dialed_domain")
                  or self.domain)
        cid = (v.get("tongdai_outbound_caller_id")
               or ch.originate_vars.get("effective_caller_id_number")
               or v.get("effective_caller_id_number") or ch.cid_num)
        self._set(ch, "effective_caller_id_number", cid)
        self._set(ch, "effective_caller_id_name",
                  ch.originate_vars.get("effective_caller_id_name") or tenant.upper())
        self._set(ch, "hangup_after_bridge", "true")
        self._set(ch, "call_timeout", "60")
        if v.get("tongdai_direction") == "inbound":
            self._set(ch, "tongdai_outbound", "national,mobile")
        else:
            self._set(ch, "tongdai_direction", "outbound")
        return cid

    def _outbound_class(self, ch: Channel, number: str) -> str | None:
        """The extension that matches ``number`` (its class), or None when the leg was hung
        up instead: an unknown number (outbound_unknown) or a class the phone may not call."""
        if re.match(r"^11[345]$", number):
            return "emergency"
        klass = next((name for name, rx in _OUTBOUND_CLASSES if rx.match(number)), "")
        if not klass:  # outbound_unknown
            self._hangup_app(ch, "UNALLOCATED_NUMBER")
            return None
        # The directory's classes came with the phone's user variables.
        allowed = ch.variables.setdefault("tongdai_outbound", (
            ch.agent.spec.outbound if ch.agent else None) or "national,mobile,service")
        if klass not in allowed.split(","):
            self._set(ch, "tongdai_barred", klass)
            self._hangup_app(ch, "OUTGOING_CALL_BARRED")
            return None
        return klass

    def _recording_path(self, ch: Channel, tenant: str) -> str:
        """<recordings>/<tenant>/<local date>/<leg uuid>.wav, as fs-conf names them."""
        day = datetime.fromtimestamp(self.clock.now(), self.tz).strftime("%Y-%m-%d")
        return f"{self.recordings_dir}/{tenant}/{day}/{ch.uuid}.wav"

    def _tenant_extension(self, ch: Channel) -> bool:
        """The extensions of fs-conf's ``tongdai_<tenant>`` context the simulator runs
        rather than parking: ``queue_voicemail`` (``voicemail_<queue>``, where the router
        sends a caller after hours or on overflow) sets ``tongdai_voicemail``, answers and
        runs ``voicemail``, which never parks. Its CHANNEL_EXECUTE fires at every fidelity:
        it is the only sign of where the caller went. The caller leaves a message and hangs
        up after its ``patience``. True when the extension was run."""
        m = _VOICEMAIL_EXTENSION.match(ch.dest)
        if m is None or not ch.context.startswith("tongdai_"):
            return False
        self._set(ch, "tongdai_voicemail", m.group(1))
        domain = ch.variables.get("domain_name") or ch.variables.get("tongdai_domain") \
            or self.domain
        ch.variables["current_application"] = "voicemail"
        self._app_start(ch, "voicemail", f"default {domain} q_{m.group(1)}", always=True)
        spec = ch.caller
        if spec is not None and spec.patience is not None:
            self._later(ch, spec.patience, lambda: self.hangup(
                ch.uuid, "NORMAL_CLEARING", disposition="recv_bye"))
        return True
    def _hangup_app(self, ch: Channel, cause: str) -> None:
        """The dialplan's ``hangup <cause>``."""
        self._app_start(ch, "hangup", cause)
        self.hangup(ch.uuid, cause)

