"""The node's api commands (``api`` and ``bgapi`` over ESL): parsing a command line into a
call, and the commands that act on legs (uuid_*), report (show, status) or hang up all.
Usage errors and unknown uuids answer as mod_commands does."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import ClassVar

import orjson

from esl_bridge.protocol import url_encode

from .core import NodeCore
from .headers import VERSION, channel_pairs, channel_row
from .state import Channel, Done
from .syntax import parse_dtmf

log = logging.getLogger(__name__)


class Commands(NodeCore):
    """What ``api <command> <arg>`` does; part of ``Node``."""

    def api_event(self, command: str, arg: str) -> None:
        with self.lock:
            pairs = self.core_pairs("API")
            pairs.append(("API-Command", command))
            if arg:
                pairs.append(("API-Command-Argument", arg))
            self.emit(pairs)

    def execute(self, command: str, arg: str, done: Done) -> None:
        """Run an api command; ``done(body)`` is called once, maybe later (originate)."""
        with self.lock:
            self.api_event(command, arg)
            if command == "originate":
                self.originate(arg, done)
                return
            try:
                body = self._api(command, arg)
            except Exception as err:  # a command bug must not kill the client session
                log.exception("api %s %s failed", command, arg)
                self.errors.append(err)
                body = f"-ERR {type(err).__name__}: {err}\n"
            done(body)

    def _api(self, command: str, arg: str) -> str:
        run = self._API.get(command)
        if run is None:
            return f"-ERR {command} Command not found!\n"
        return run(self, arg.split(), arg)

    # ------------------------------------------------------------------ command lines
    # Each takes the argument split on white space and as given; returns the reply body.

    def _status(self, args: list[str], arg: str) -> str:
        return self.status_text()

    def _version(self, args: list[str], arg: str) -> str:
        return f"FreeSWITCH Version {VERSION} (tongdai ESL simulator)\n"

    def _uptime_seconds(self, args: list[str], arg: str) -> str:
        return str(self._uptime()[1] // 1000)

    def _global_getvar(self, args: list[str], arg: str) -> str:
        # Real FreeSWITCH answers core_uuid (and other globals) with the bare value.
        return self.core_uuid if args == ["core_uuid"] else ""

    def _show(self, args: list[str], arg: str) -> str:
        what = " ".join(args)
        if what == "channels as json":
            return self.show_channels_json()
        if what == "calls as json":
            return self.show_calls_json()
        if what == "registrations as json":
            return self.show_registrations_json()
        if what == "channels":
            n = len(self.channels)
            if not n:
                return "\n0 total.\n"
            rows = [",".join(self._row(c).values()) for c in self.channels.values()]
            head = ",".join(self._row(next(iter(self.channels.values()))).keys())
            return head + "\n" + "\n".join(rows) + f"\n\n{n} total.\n"
        return "-ERR Cannot find the show command " + what + "\n"

    def _uuid_bridge(self, args: list[str], arg: str) -> str:
        if len(args) < 2:
            return "-USAGE: <uuid> <other_uuid>\n"
        return self.uuid_bridge(args[0], args[1])

    def _uuid_kill(self, args: list[str], arg: str) -> str:
        if not args:
            return "-USAGE: <uuid> [cause]\n"
        cause = args[1] if len(args) > 1 else "NORMAL_CLEARING"
        ch = self.channels.get(args[0])
        disposition = "send_cancel" if ch is not None and not ch.answered_us else "send_bye"
        return "+OK\n" if self.hangup(args[0], cause, disposition=disposition) \
            else "-ERR No such channel!\n"

    def _uuid_transfer(self, args: list[str], arg: str) -> str:
        rest = list(args)
        leg = rest.pop(1) if len(rest) > 1 and rest[1] in ("-bleg", "-both") else ""
        if len(rest) < 2:
            return "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
        return self.uuid_transfer(rest[0], rest[1], rest[2] if len(rest) > 2 else "XML",
                                  rest[3] if len(rest) > 3 else None, leg)

    def _uuid_broadcast(self, args: list[str], arg: str) -> str:
        # mod_commands' uuid_broadcast_function: the same usage and replies.
        if len(args) < 2:
            return "-USAGE: <uuid> <path> [aleg|bleg|holdb|both]\n"
        legs = args[2] if len(args) > 2 else ""
        if not self.broadcast(args[0], args[1], legs):  # type: ignore[attr-defined]
            return "-ERR invalid uuid\n"
        return "+OK Message sent\n"

    def _uuid_break(self, args: list[str], arg: str) -> str:
        # mod_commands' break_function: the same usage and replies.
        if not args:
            return "-USAGE: <uuid> [all]\n"
        everything = len(args) > 1 and "all" in args[1]
        if not self.break_broadcast(args[0], everything):  # type: ignore[attr-defined]
            return "-ERR No such channel!\n"
        return "+OK\n"

    def _uuid_setvar(self, args: list[str], arg: str) -> str:
        if len(args) < 2:
            return "-USAGE: <uuid> <var> [value]\n"
        parts = arg.split(None, 2)
        return self.uuid_setvar(parts[0], parts[1], parts[2] if len(parts) > 2 else None)

    def _uuid_getvar(self, args: list[str], arg: str) -> str:
        if len(args) < 2:
            return "-USAGE: <uuid> <var>\n"
        return self.uuid_getvar(args[0], args[1])

    def _uuid_hold(self, args: list[str], arg: str) -> str:
        rest = list(args)
        mode = rest.pop(0) if rest and rest[0] in ("off", "toggle") else "on"
        if not rest:
            return "-USAGE: [off|toggle] <uuid> [<display>]\n"
        return self.uuid_hold(rest[0], mode)

    def _uuid_record(self, args: list[str], arg: str) -> str:
        if len(args) < 3 or args[1] not in ("start", "stop", "mask", "unmask"):
            return "-USAGE: <uuid> [start|stop|mask|unmask] <path> [<limit>]\n"
        return self.uuid_record(args[0], args[1], args[2])

    def _uuid_recv_dtmf(self, args: list[str], arg: str) -> str:
        parts = arg.split(None, 1)
        if len(parts) < 2:
            return "-USAGE: <uuid> <dtmf_data>\n"
        return self.uuid_recv_dtmf(parts[0], parts[1])

    def _uuid_exists(self, args: list[str], arg: str) -> str:
        return "true" if args and args[0] in self.channels else "false"

    def _uuid_dump(self, args: list[str], arg: str) -> str:
        if not args:
            return "-USAGE: <uuid> [format]\n"
        return self.uuid_dump(args[0], args[1] if len(args) > 1 else "")

    def _hupall(self, args: list[str], arg: str) -> str:
        cause = args[0] if args else "MANAGER_REQUEST"
        for uid in list(self.channels):
            self.hangup(uid, cause)
        return f"+OK hangup all channels with cause {cause}\n"

    _API: ClassVar[dict[str, Callable[[Commands, list[str], str], str]]] = {
        "status": _status, "version": _version, "uptime": _uptime_seconds,
        "global_getvar": _global_getvar, "show": _show, "uuid_bridge": _uuid_bridge,
        "uuid_kill": _uuid_kill, "uuid_transfer": _uuid_transfer,
        "uuid_broadcast": _uuid_broadcast, "uuid_break": _uuid_break,
        "uuid_setvar": _uuid_setvar,
        "uuid_getvar": _uuid_getvar, "uuid_hold": _uuid_hold, "uuid_record": _uuid_record,
        "uuid_recv_dtmf": _uuid_recv_dtmf, "uuid_exists": _uuid_exists,
        "uuid_dump": _uuid_dump, "hupall": _hupall,
    }

    # ------------------------------------------------------------------ commands on legs

    def uuid_bridge(self, a_uuid: str, b_uuid: str) -> str:
        with self.lock:
            a, b = self.channels.get(a_uuid), self.channels.get(b_uuid)
            if a is None or b is None or a.hangup_cause or b.hangup_cause or a is b:
                return "-ERR No such channel!\n"
            if a.bridged_to == b.uuid:  # already bridged together: nothing happens
                return f"+OK {b.uuid}\n"
            raced = False
            for leg in (a, b):
                if leg.originating:
                    # Bridged on CHANNEL_ANSWER, before the originate finished: FreeSWITCH
                    # cancels the originate (the job ends ORIGINATOR_CANCEL), and now and then
                    # the bridge itself is lost: +OK, but no CHANNEL_BRIDGE ever comes.
                    raced = True
                    leg.originating = False
                    leg.cancel_timers()
                    if leg.job is not None:
                        job, leg.job = leg.job, None
                        job("-ERR ORIGINATOR_CANCEL\n")
            if raced and self.rng.random() < self.lost_bridge_rate:
                return f"+OK {b.uuid}\n"
            self._bridge(a, b)
            return f"+OK {b.uuid}\n"

    def uuid_transfer(self, uid: str, dest: str, dialplan: str = "XML",
                      context: str | None = None, leg: str = "") -> str:
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None or ch.hangup_cause:
                return "-ERR No such channel!\n"
            if leg == "-bleg" and ch.bridged_to:
                ch = self.channels[ch.bridged_to]
            self._interrupt(ch, None)
            partner = self.channels.get(ch.bridged_to) if ch.bridged_to else None
            if partner is not None:
                a, b = (ch, partner) if ch.bridge_a else (partner, ch)
                self._unbridge(a, b)
                ch.other = ch.other_type = None
                if leg != "-both":
                    self.hangup(partner.uuid, "NORMAL_CLEARING")
            now = self.clock.now_us()
            ch.transfer_us = now
            ch.profile_index += 1
            ch.profile_created_us = now
            ch.transfer_source = f"{now // 1_000_000}:{self.new_uuid()}:uuid_transfer:{dest}"
            ch.dest = dest
            ch.context = context or ch.context
            ch.variables.update({"transfer_source": ch.transfer_source,
                                 "max_forwards": ch.variables.get("max_forwards", "70")})
            ch.variables.update(self.dids.get(dest, {}))
            if self._tenant_extension(ch):
                return "+OK\n"
            if context is not None and context.startswith("tongdai_") and \
                    context.endswith("_outbound"):
                # The tenant's outbound dialplan runs for the new destination, as on the
                # real switch (a callback's agent leg dials its customer this way).
                self._route(ch)  # type: ignore[attr-defined]
            else:
                self._park(ch)
            return "+OK\n"

    def uuid_hold(self, uid: str, mode: str = "on") -> str:
        """Put a leg on hold (CHANNEL_HOLD) or take it off (CHANNEL_UNHOLD); hold time adds
        up in Caller-Channel-Hold-Accum and variable_hold_accum_* of the CDR."""
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None or ch.hangup_cause:
                return "-ERR No such channel!\n"
            hold = not ch.held if mode == "toggle" else mode == "on"
            if hold == ch.held:
                return "+OK Success\n"
            now = self.clock.now_us()
            if hold:
                ch.held, ch.last_hold_us = True, now
                self._callstate(ch, "HELD")
                self._channel_event("CHANNEL_HOLD", ch)
            else:
                ch.held = False
                ch.hold_accum_us += now - ch.last_hold_us
                self._callstate(ch, "ACTIVE")
                self._channel_event("CHANNEL_UNHOLD", ch)
            return "+OK Success\n"

    def uuid_record(self, uid: str, action: str, path: str) -> str:
        """Call recording: RECORD_START / RECORD_STOP with Record-File-Path."""
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None or ch.hangup_cause:
                return "-ERR No such channel!\n"
            if action == "start":
                self._record_start(ch, path)
            elif action == "stop":
                if not ch.recording or (path != "all" and path != ch.recording):
                    return "-ERR Cannot stop record session!\n"
                self._record_stop(ch)
            return "+OK Success\n"

    def uuid_setvar(self, uid: str, name: str, value: str | None) -> str:
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None:
                return "-ERR No such channel!\n"
            if value is None:
                ch.variables.pop(name, None)
            else:
                ch.variables[name] = value
            return "+OK\n"

    def uuid_getvar(self, uid: str, name: str) -> str:
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None:
                return "-ERR No such channel!\n"
            return ch.variables.get(name, "_undef_")

    def uuid_dump(self, uid: str, fmt: str = "") -> str:
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None:
                return "-ERR No such channel!\n"
            pairs = self.core_pairs("CHANNEL_DATA") + channel_pairs(ch)
            if fmt == "json":
                return orjson.dumps(dict(pairs)).decode()
            return "".join(f"{k}: {url_encode(v)}\n" for k, v in pairs) + "\n"

    def uuid_recv_dtmf(self, uid: str, digits: str) -> str:
        """DTMF as if received from the leg's phone (switch_channel_queue_dtmf_string).
        mod_commands writes nothing on success, so ``api`` answers ``-ERR no reply`` and a
        ``bgapi`` job has an empty body; an unknown uuid: ``-ERR Cannot locate session!``."""
        with self.lock:
            ch = self.channels.get(uid)
            if ch is None or ch.gone:
                return "-ERR Cannot locate session!\n"
            queued = parse_dtmf(digits)
            if queued:
                ch.dtmf_queue.extend(queued)
                self._later(ch, 0.02, lambda: self._read_dtmf(ch))
            return ""

    def show_channels_json(self) -> str:
        with self.lock:
            if not self.channels:
                return '{"row_count": 0}\n'
            rows = [self._row(ch) for ch in self.channels.values()]
            return orjson.dumps({"row_count": len(rows), "rows": rows}).decode()

    def show_calls_json(self) -> str:
        with self.lock:
            rows = []
            for a in self.channels.values():
                if not a.bridge_a or not a.bridged_to or a.bridged_to not in self.channels:
                    continue
                b = self.channels[a.bridged_to]
                ra, rb = self._row(a), self._row(b)
                keys = ("uuid", "direction", "created", "created_epoch", "name", "state",
                        "cid_name", "cid_num", "ip_addr", "dest", "presence_id",
                        "presence_data", "accountcode", "callstate", "callee_name",
                        "callee_num", "callee_direction", "call_uuid", "hostname",
                        "sent_callee_name", "sent_callee_num")
                row = {k: ra[k] for k in keys}
                row.update({f"b_{k}": rb[k] for k in keys
                            if k not in ("call_uuid", "hostname")})
                row["call_created_epoch"] = str(a.bridged_us // 1_000_000)
                rows.append(row)
            if not rows:
                return '{"row_count": 0}\n'
            return orjson.dumps({"row_count": len(rows), "rows": rows}).decode()

    def show_registrations_json(self) -> str:
        with self.lock:
            rows = [{"reg_user": a.ext, "realm": a.domain, "token": a.call_id,
                     "url": f"sofia/internal/sip:{a.ext}@127.0.0.1:{a.port};transport=UDP",
                     "expires": str(int(self.clock.now()) + 3600), "network_ip": "127.0.0.1",
                     "network_port": str(a.port), "network_proto": "udp",
                     "hostname": self.hostname, "metadata": ""}
                    for a in self.agents.values() if a.registered]
            if not rows:
                return '{"row_count": 0}\n'
            return orjson.dumps({"row_count": len(rows), "rows": rows}).decode()

    def _row(self, ch: Channel) -> dict[str, str]:
        return channel_row(ch, self.hostname, self.tz)

    def status_text(self) -> str:
        uptime, _ = self._uptime()
        n = len(self.channels)
        return (f"UP {uptime}\n"
                f"FreeSWITCH (Version 1.11.3-dev git cc93a68 2026-08-21 14:10:14Z 64bit) is ready\n"
                f"{self._sessions_since_start} session(s) since startup\n"
                f"{n} session(s) - peak {self._peak}, last 5min {self._peak} \n"
                f"0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n"
                f"{self.max_sessions} session(s) max\n"
                f"min idle cpu 0.00/99.00\n"
                f"Current Stack Size/Max 240K/8192K\n")
