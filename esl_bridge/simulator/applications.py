"""Applications that outlive a command: ``eavesdrop`` (a supervisor's leg listening to,
whispering to or barging into another), what ``uuid_broadcast`` queues on a leg (a prompt,
then maybe a hangup), DTMF read by a leg's application, and what happens to a running
application when a command takes its leg away."""

from __future__ import annotations

from .core import NodeCore
from .state import Broadcast, Channel, Monitor
from .syntax import parse_broadcast, playback_seconds, switch_true


class Applications(NodeCore):
    """Eavesdrop, broadcasts, DTMF and interrupted applications; part of ``Node``."""

    def _interrupt(self, ch: Channel, other: Channel | None) -> None:
        """Another command takes ``ch`` away from what its application was doing
        (uuid_bridge with ``other``, uuid_transfer): a running eavesdrop returns; a
        dialplan bridge still ringing its B leg is cancelled; a B leg still ringing for
        its A leg's bridge is lost to that bridge (which fails LOSE_RACE)."""
        monitor = self.monitors.get(ch.uuid)
        if monitor is not None and monitor.active:
            self._monitor_ended(monitor, "interrupted")
            self._app_done(ch)
        peer = self.channels.get(ch.dialing) if ch.dialing else None
        ch.dialing = None
        if peer is not None and not peer.hangup_cause:
            peer.job = None
            if peer is not other:
                self.hangup(peer.uuid, "ORIGINATOR_CANCEL", disposition="send_cancel")
        owner = self.channels.get(ch.variables.get("originator", ""))
        if owner is not None and owner.dialing == ch.uuid and owner is not other:
            owner.dialing, ch.job = None, None
            self._later(owner, 0.0, lambda: self._bridge_failed(owner, "-ERR LOSE_RACE\n"))

    def monitor(self, key: str) -> Monitor | None:
        """The eavesdrop run by leg ``key`` or with ``tongdai_monitor_id`` ``key`` (latest)."""
        with self.lock:
            found = self.monitors.get(key)
            if found is None:
                found = next((m for m in reversed(list(self.monitors.values()))
                              if m.monitor_id == key), None)
            return found

    def _eavesdrop(self, ch: Channel, target_uuid: str) -> None:
        """``eavesdrop <uuid>`` on the answered leg ``ch`` (mod_dptools eavesdrop_function,
        switch_ivr_eavesdrop_session): CHANNEL_EXECUTE now, CHANNEL_EXECUTE_COMPLETE when
        it returns — at once when the target does not exist, else when the target hangs
        up, the eavesdropper presses ``*`` or hangs up. The originated leg has nothing
        else to run, so it then hangs up."""
        v = ch.variables
        v["current_application"] = "eavesdrop"
        self._state(ch, "CS_EXECUTE")
        self._app_start(ch, "eavesdrop", target_uuid, always=True)
        enable_dtmf = v.get("eavesdrop_enable_dtmf")
        monitor = Monitor(
            leg=ch.uuid, target=target_uuid, monitor_id=v.get("tongdai_monitor_id"),
            requested=v.get("tongdai_monitor_mode"),
            dtmf=True if enable_dtmf is None else switch_true(enable_dtmf),
            mux_read=switch_true(v.get("eavesdrop_whisper_aleg")),
            mux_write=switch_true(v.get("eavesdrop_whisper_bleg")),
            started_us=self.clock.now_us())
        self.monitors[ch.uuid] = monitor
        target = self.channels.get(target_uuid)
        if target is None or target is ch or target.hangup_cause:
            self._eavesdrop_done(ch, "no_such_channel")

    def _monitor_ended(self, monitor: Monitor, reason: str) -> None:
        monitor.active = False
        monitor.ended_us = self.clock.now_us()
        monitor.end_reason = reason

    def _target_gone(self, monitor: Monitor) -> None:
        # The eavesdrop loop notices the target is down on its next frame (20 ms).
        ch = self.channels.get(monitor.leg)
        if ch is not None:
            self._later(ch, 0.02, lambda: self._eavesdrop_done(ch, "target_hangup"))

    def _eavesdrop_done(self, ch: Channel, reason: str) -> None:
        monitor = self.monitors.get(ch.uuid)
        if monitor is None or not monitor.active or ch.hangup_cause:
            return
        self._monitor_ended(monitor, reason)
        self._app_done(ch)
        self.hangup(ch.uuid, "NORMAL_CLEARING")

    # ------------------------------------------------------------------ uuid_broadcast

    def broadcast(self, uid: str, path: str, legs: str = "") -> bool:
        """``uuid_broadcast <uid> <path> [aleg|bleg|holdb|both]`` (switch_ivr_broadcast):
        the application of ``path`` is queued on the leg (``aleg``, ``both``, or no flag)
        and on its bridged partner (``bleg``, ``both``); ``app!<cause>::…`` then queues
        ``hangup <cause>`` on the leg itself, so the switch hangs it up once the prompt has
        played (or was stopped). A leg runs what was queued on it one after another. False
        when the leg does not exist."""
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None or ch.gone or ch.hangup_cause:
                return False
            app, arg, cause = parse_broadcast(path)
            flags = legs.lower()
            partner = self.channels.get(ch.bridged_to) if ch.bridged_to else None
            if partner is not None and ("both" in flags or "bleg" in flags) \
                    and "holdb" not in flags:
                self._queue_broadcast(partner, Broadcast(app, arg))
            if not flags or "aleg" in flags or "both" in flags:
                self._queue_broadcast(ch, Broadcast(app, arg))
            if cause is not None:
                self._queue_broadcast(ch, Broadcast("hangup", cause))
            return True

    def break_broadcast(self, uid: str, everything: bool = False) -> bool:
        """``uuid_break <uid> [all]``: what the leg's broadcast plays stops (a frame later);
        ``all`` also drops what was queued after it — a queued hangup included. Without
        ``all`` the next queued application runs. False when the leg does not exist."""
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None or ch.gone:
                return False
            running = ch.broadcasts[:1] if ch.broadcasts and ch.broadcasts[0].started else []
            if everything:
                ch.broadcasts[:] = running
            self._stop_broadcast(ch)
            return True

    def _queue_broadcast(self, ch: Channel, item: Broadcast) -> None:
        ch.broadcasts.append(item)
        if len(ch.broadcasts) == 1:
            self._next_broadcast(ch)

    def _next_broadcast(self, ch: Channel) -> None:
        """Run the first queued application: a hangup now; a playback for as long as
        what it plays lasts (a stream that never ends, such as the waiting music, until a
        uuid_break or a bridge stops it)."""
        if not ch.broadcasts or ch.broadcasts[0].started or ch.gone or ch.hangup_cause:
            return
        item = ch.broadcasts[0]
        item.started = True
        if item.app == "hangup":
            ch.broadcasts.clear()
            self._hangup_app(ch, item.arg.upper())  # type: ignore[attr-defined]
            return
        if self.full:
            item.app_uuid = self.new_uuid()
            self._channel_event("CHANNEL_EXECUTE", ch, suffix=[
                ("Application", item.app), ("Application-Data", item.arg),
                ("Application-UUID", item.app_uuid)])
        seconds = playback_seconds(item.arg, self.prompt_file_s, ch.variables) \
            if item.app == "playback" else 0.0
        if seconds is not None:
            item.end = self.scheduler.call_later(seconds, lambda: self._broadcast_done(ch, item))

    def _stop_broadcast(self, ch: Channel) -> None:
        """switch_channel_stop_broadcast: the running broadcast returns at the next frame."""
        if ch.broadcasts and ch.broadcasts[0].started:
            item = ch.broadcasts[0]
            if item.end is not None:
                item.end.cancel()
            item.end = self.scheduler.call_later(0.02, lambda: self._broadcast_done(ch, item))

    def _broadcast_done(self, ch: Channel, item: Broadcast) -> None:
        if ch.gone or ch.hangup_cause or not ch.broadcasts or ch.broadcasts[0] is not item:
            return
        ch.broadcasts.pop(0)
        if item.app_uuid:
            self._channel_event("CHANNEL_EXECUTE_COMPLETE", ch, suffix=[
                ("Application", item.app), ("Application-Data", item.arg),
                ("Application-Response", "FILE PLAYED"), ("Application-UUID", item.app_uuid)])
        self._next_broadcast(ch)

    def _read_dtmf(self, ch: Channel) -> None:
        """The leg's application reads one queued digit per frame (20 ms): the DTMF event
        fires as it is read (switch_channel_dequeue_dtmf). Nothing reads a ringing leg, nor
        an eavesdropper without eavesdrop_enable_dtmf: there the digits stay queued."""
        if not ch.dtmf_queue or ch.hangup_cause:
            return
        monitor = self.monitors.get(ch.uuid)
        eavesdropping = monitor is not None and monitor.active
        if not ch.answered_us or (monitor is not None and eavesdropping and not monitor.dtmf):
            return
        digit, samples = ch.dtmf_queue.pop(0)
        self._channel_event("DTMF", ch, suffix=[
            ("DTMF-Digit", digit), ("DTMF-Duration", str(samples)), ("DTMF-Source", "APP")])
        if monitor is not None and eavesdropping and self._eavesdrop_key(ch, monitor, digit):
            return
        if ch.dtmf_queue:
            self._later(ch, 0.02, lambda: self._read_dtmf(ch))

    def _eavesdrop_key(self, ch: Channel, monitor: Monitor, digit: str) -> bool:
        """eavesdrop's keys (switch_ivr_eavesdrop_session): 1 = talk to the target's
        partner, 2 = talk to the target, 3 = both (three-way), 0 = listen only, * = stop
        eavesdropping; 4-6 only change the video layout. True when eavesdrop ended."""
        paths = {"1": (True, False), "2": (False, True), "3": (True, True),
                 "0": (False, False)}
        if digit in paths:
            monitor.mux_read, monitor.mux_write = paths[digit]
        monitor.history.append((self.clock.now_us(), digit, monitor.mode))
        if digit == "*":
            self._eavesdrop_done(ch, "dtmf")
            return True
        return False
