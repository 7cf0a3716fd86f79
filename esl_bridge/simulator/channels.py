"""A call leg's life on the node: hangup (with its partner and what it was ringing), the
CDR a hangup reports, bridging two legs and unbridging them, recording."""

from __future__ import annotations

from .core import NodeCore
from .headers import hangup_variables
from .state import Channel


class Channels(NodeCore):
    """Hangup and bridge of legs; part of ``Node``."""

    def hangup(self, uid: str, cause: str = "NORMAL_CLEARING", *,
               disposition: str = "send_bye") -> bool:
        """Hang up a leg (and the leg bridged to it). False when there is no such channel."""
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None or ch.gone or ch.hangup_cause:
                return False
            partner = self.channels.get(ch.bridged_to) if ch.bridged_to else None
            dialing = self.channels.get(ch.dialing) if ch.dialing else None
            self._mark_hangup(ch, cause, disposition)
            if dialing is not None and not dialing.hangup_cause:
                # The caller of a dialplan bridge hung up while the other leg rang: the
                # originate is cancelled (the other leg never reports back to it).
                ch.dialing, dialing.job = None, None
                self.hangup(dialing.uuid, "ORIGINATOR_CANCEL", disposition="send_cancel")
            if partner is not None and not partner.hangup_cause:
                # The switch ends the bridged partner itself, whoever ended this leg (its
                # phone's BYE or a uuid_kill): the partner's disposition is send_bye (real
                # capture: tests/fixtures/esl/plain_inbound_park_bridge, a uuid_kill).
                self._mark_hangup(partner, "NORMAL_CLEARING", "send_bye")
            if partner is not None:
                a, b = (ch, partner) if ch.bridge_a else (partner, ch)
                for leg in (a, b):  # the hangup told bridge_to; the completion does not
                    leg.variables.pop("bridge_to", None)
                self._complete(b)
                self._unbridge(a, b)
                self._destroy(b)
                self._complete(a)
                self._destroy(a)
            else:
                self._complete(ch)
                self._destroy(ch)
            return True

    def _mark_hangup(self, ch: Channel, cause: str, disposition: str) -> None:
        ch.cancel_timers()
        for item in ch.broadcasts:  # the hangup stops the broadcast; nothing queued runs
            if item.end is not None:
                item.end.cancel()
        ch.broadcasts.clear()
        now = self.clock.now_us()
        if ch.held:
            ch.held = False
            ch.hold_accum_us += now - ch.last_hold_us
        if ch.recording:
            self._record_stop(ch)
        ch.hangup_cause = cause
        ch.hangup_us = now
        ch.answer_state = "hangup"
        ch.disposition = disposition
        ch.dtmf_queue.clear()
        self._channel_event("CHANNEL_HANGUP", ch, number=10)
        monitor = self.monitors.get(ch.uuid)
        if monitor is not None and monitor.active:
            # The eavesdropper hung up: its eavesdrop application returns now.
            self._monitor_ended(monitor, "hangup")
            self._app_done(ch)
        for other in list(self.monitors.values()):
            if other.active and other.target == ch.uuid:
                self._target_gone(other)
        self._state(ch, "CS_HANGUP")
        self._callstate(ch, "HANGUP")

    @staticmethod
    def _bridged_vars(a: Channel, b: Channel) -> None:
        """What switch_ivr_bridge sets on both legs once bridged (after CHANNEL_BRIDGE:
        the real event does not carry them; uuid_dump and the hangup do); bridge_to is
        cleared when they part. A snapshot tells a bridged leg by bridge_to."""
        for leg, other in ((a, b), (b, a)):
            leg.variables.update({"bridge_to": other.uuid, "last_bridge_to": other.uuid})

    def _unbridge(self, a: Channel, b: Channel) -> None:
        for leg, other, role in ((a, b, "originator"), (b, a, "originatee")):
            leg.variables.update({"last_bridge_to": other.uuid,
                                  "last_sent_callee_id_name": other.cid_name,
                                  "last_sent_callee_id_number": other.cid_num,
                                  "last_bridge_role": role})
        a.variables["bridge_hangup_cause"] = b.hangup_cause or "NORMAL_CLEARING"
        b.variables["last_bridge_hangup_cause"] = b.hangup_cause or "NORMAL_CLEARING"
        # A B leg's Channel-Call-UUID is its A leg's while bridged, its own again after.
        b.variables["call_uuid"] = b.uuid
        self._channel_event("CHANNEL_UNBRIDGE", a, state="CS_SOFT_EXECUTE", number=10, prefix=[
            ("Bridge-A-Unique-ID", a.uuid), ("Bridge-B-Unique-ID", b.uuid)])
        a.bridged_to = b.bridged_to = None
        a.variables.pop("bridge_to", None)
        b.variables.pop("bridge_to", None)

    def _complete(self, ch: Channel) -> None:
        self._state(ch, "CS_REPORTING")
        ch.variables.update(hangup_variables(ch, self.tz))
        self._channel_event("CHANNEL_HANGUP_COMPLETE", ch, state="CS_REPORTING", number=11,
                            prefix=[("Hangup-Cause", ch.variables["hangup_cause"])])

    def _destroy(self, ch: Channel) -> None:
        hook = ch.variables.get("api_hangup_hook", "")
        if hook.startswith("hash delete_ifmatch/"):
            realm, key, value = hook.split("/", 1)[1].split("/")
            if self.hash.get(f"{realm}_{key}") == value:
                del self.hash[f"{realm}_{key}"]
        self._channel_event("CHANNEL_DESTROY", ch, state="CS_REPORTING", number=12)
        self._state(ch, "CS_DESTROY")
        ch.gone = True
        self.channels.pop(ch.uuid, None)
        if ch.agent is not None:
            ch.agent.legs.discard(ch.uuid)
        if ch.job is not None:
            job, ch.job = ch.job, None
            job(f"-ERR {ch.hangup_cause or 'NORMAL_CLEARING'}\n")

    def _bridge(self, a: Channel, b: Channel) -> None:
        now = self.clock.now_us()
        self._interrupt(a, b)
        self._interrupt(b, a)
        for leg, other in ((a, b), (b, a)):
            if leg.bridged_to and leg.bridged_to != other.uuid:
                previous = self.channels.get(leg.bridged_to)
                if previous is not None:
                    x, y = (leg, previous) if leg.bridge_a else (previous, leg)
                    self._unbridge(x, y)
            self._unpark(leg)
            if leg.answered_us:
                # Patience and old talk timers end here; a ringing leg keeps its ring timers.
                leg.cancel_timers()
            # switch_ivr_uuid_bridge stops what a broadcast plays on either leg; what was
            # queued after it (a broadcast's hangup) still runs, in the bridge.
            self._stop_broadcast(leg)  # type: ignore[attr-defined]
        self._state(a, "CS_SOFT_EXECUTE")
        self._state(b, "CS_EXCHANGE_MEDIA")
        self._app_start(a, "uuid_bridge", b.uuid)
        self._app_start(b, "uuid_bridge", a.uuid)
        a.bridged_us = b.bridged_us = now
        a.bridged_to, b.bridged_to = b.uuid, a.uuid
        a.bridge_a, b.bridge_a = True, False
        a.callee_name, a.callee_num = b.orig_cid_name, b.orig_cid_num
        a.profile_index += 1
        a.profile_created_us = now
        a.transfer_source = f"{now // 1_000_000}:{self.new_uuid()}:uuid_br:{b.uuid}"
        a.other, a.other_type = b, "originatee"
        b.other, b.other_type = a, "originator"
        for leg, other in ((a, b), (b, a)):
            leg.variables.update({"bridge_channel": other.name, "bridge_uuid": other.uuid,
                                  "signal_bond": other.uuid})
        self._channel_event("CHANNEL_BRIDGE", a, prefix=[
            ("Bridge-A-Unique-ID", a.uuid), ("Bridge-B-Unique-ID", b.uuid)])
        self._bridged_vars(a, b)
        inbound = a if a.caller is not None else (b if b.caller is not None else None)
        if inbound is not None and inbound.caller is not None and inbound.caller.talk is not None:
            spec = inbound.caller
            other = b if inbound is a else a
            who = inbound if spec.hangup_by == "caller" else other
            self._later(inbound, spec.talk, lambda: self.hangup(who.uuid, "NORMAL_CLEARING",
                                                              disposition="recv_bye"))
        else:
            agent_leg = a if a.agent is not None else (b if b.agent is not None else None)
            if agent_leg is not None and agent_leg.agent is not None \
                    and agent_leg.agent.spec.talk is not None:
                who_uuid = agent_leg.uuid
                self._later(agent_leg, agent_leg.agent.spec.talk,
                            lambda: self.hangup(who_uuid, "NORMAL_CLEARING",
                                                disposition="recv_bye"))

    def _record_start(self, ch: Channel, path: str) -> None:
        """RECORD_START into ``path``; a recording already running stops first (the node
        models one recording per leg)."""
        if ch.recording:
            self._record_stop(ch)
        ch.recording, ch.record_started_us = path, self.clock.now_us()
        self._channel_event("RECORD_START", ch, suffix=[("Record-File-Path", path)])

    def _record_stop(self, ch: Channel) -> None:
        path, ch.recording = ch.recording or "", None
        ms = (self.clock.now_us() - ch.record_started_us) // 1000
        ch.variables.update({"record_seconds": str(ms // 1000), "record_ms": str(ms),
                             "record_samples": str(ms * 8)})
        self._channel_event("RECORD_STOP", ch, suffix=[("Record-File-Path", path)])
