"""Legs the node dials: ``originate`` (a phone rings; answered, the job ends and the leg runs
its ``&app`` or an extension) and the dialplan's ``bridge`` to the carrier (a customer's
phone rings; answered, it is bridged to the leg that dialled it)."""

from __future__ import annotations

import re
from dataclasses import replace

from .core import NodeCore
from .headers import user_pairs
from .model import AgentSpec, NumberSpec
from .state import Agent, Channel, Done
from .syntax import APP, name_of, parse_originate

_ORIGINATE_TARGET = re.compile(r"^user/([^@\s]+)(?:@(\S+))?$")
_GATEWAY_TARGET = re.compile(r"^sofia/gateway/([^/\s]+)/([^@\s]+)$")


class Originate(NodeCore):
    """Outbound legs and what they run once answered; part of ``Node``."""

    def originate(self, arg: str, done: Done) -> None:
        """``originate {vars}user/<ext>@<domain> &park()``; ``done`` gets the job result."""
        with self.lock:
            try:
                variables, target, app = parse_originate(arg)
            except ValueError:
                done("-ERR INVALID_GATEWAY\n")
                return
            # The switch refuses a {...} variable whose value holds ${...}: "[CRIT] Invalid
            # data (${name} contains a variable)", and the leg goes on without it.
            variables = {k: v for k, v in variables.items() if "${" not in v}
            m = _ORIGINATE_TARGET.match(target)
            g = _GATEWAY_TARGET.match(target)
            if g:
                gateway, number = g.group(1), g.group(2)
                agent = self.agents.get(f"{number}@gateway:{gateway}") or self.add_agent(
                    AgentSpec(ext=number, gateway=gateway, busy_when_in_call=False,
                              answer_delay=self.external_answer_delay))
            elif m:
                agent = self.agents.get(f"{m.group(1)}@{m.group(2) or self.domain}")
            else:
                done("-ERR DESTINATION_OUT_OF_ORDER\n")
                return
            if agent is None:
                done("-ERR SUBSCRIBER_ABSENT\n")
                return
            if not agent.registered:
                done(f"-ERR {self.unregistered_cause}\n")
                return
            uid = variables.get("origination_uuid") or self.new_uuid()
            if uid in self.channels:
                done("-ERR DESTINATION_OUT_OF_ORDER\n")
                return
            ch = self._outbound_leg(agent, uid, variables)
            ch.originate_vars = dict(variables)
            ch.job = done
            behaviour = agent.spec.answer
            if behaviour == "answer" and agent.spec.busy_when_in_call and agent.legs - {uid}:
                behaviour = "busy"
            timeout = float(variables.get("originate_timeout")
                            or variables.get("leg_timeout")
                            or variables.get("call_timeout") or self.originate_timeout)
            if behaviour == "busy":
                self._later(ch, 0.02, lambda: self.hangup(uid, "USER_BUSY",
                                                         disposition="recv_refuse"))
                return
            self._later(ch, 0.02, lambda: self._ringing(ch))
            delay = agent.spec.answer_delay
            if behaviour == "answer" and delay < timeout:
                self._later(ch, delay, lambda: self._outbound_answer(ch, app))
            elif behaviour == "reject" and delay < timeout:
                self._later(ch, delay, lambda: self.hangup(uid, "CALL_REJECTED",
                                                          disposition="recv_refuse"))
            else:
                self._later(ch, timeout, lambda: self.hangup(uid, "NO_ANSWER",
                                                            disposition="send_cancel"))

    def _outbound_leg(self, agent: Agent, uid: str, variables: dict[str, str]) -> Channel:
        now = self.clock.now_us()
        ext, dom = agent.ext, agent.domain
        cid_name = variables.get("origination_caller_id_name", "FreeSWITCH")
        cid_num = variables.get("origination_caller_id_number", "0000000000")
        name = (f"sofia/gateway/{agent.gateway}/{ext}" if agent.gateway
                else f"sofia/internal/{ext}@127.0.0.1:{agent.port}")
        ch = Channel(uuid=uid, direction="outbound", name=name, cid_name=cid_name,
                     cid_num=cid_num, dest=ext, ani=cid_num, context="default",
                     source="src/switch_ivr_originate.c", presence_id=f"{ext}@{dom}",
                     created_us=now, orig_cid_name=cid_name, orig_cid_num=cid_num,
                     hit_dialplan=False, profile_created_us=now, agent=agent)
        v = ch.variables
        v.update({"direction": "outbound", "is_outbound": "true", "uuid": uid,
                  "call_uuid": uid, "session_id": str(next(self._session_ids)),
                  "sip_profile_name": "internal", "video_media_flow": "disabled",
                  "text_media_flow": "disabled", "channel_name": name,
                  "sip_destination_url": f"sip:{ext}@127.0.0.1:{agent.port};transport=UDP"})
        v.update(variables)
        v.update({"dialed_user": ext, "dialed_domain": dom, "sip_invite_domain": dom,
                  "presence_id": f"{ext}@{dom}", "originate_early_media": "true",
                  "originate_endpoint": "user"})
        agent.legs.add(uid)
        self._created(ch, "CS_ROUTING", "CS_CONSUME_MEDIA")
        return ch

    def _ringing(self, ch: Channel) -> None:
        ch.progress_us = self.clock.now_us()
        self._channel_event("CHANNEL_PROGRESS", ch, number=7)
        self._callstate(ch, "RINGING")

    def _outbound_answer(self, ch: Channel, app: str) -> None:
        agent = ch.agent
        assert agent is not None
        ch.answered_us = self.clock.now_us()
        ch.answer_state = "answered"
        ch.media = True
        ch.callee_name = "Outbound Call"
        ch.callee_num = agent.ext
        v = ch.variables
        v.update({"audio_media_flow": "sendrecv", "sip_req_uri": f"{agent.ext}@127.0.0.1:"
                  f"{agent.port};transport=UDP", "sofia_profile_name": "internal",
                  "sip_to_user": agent.ext, "sip_from_user": ch.cid_num,
                  "sip_call_id": self.new_uuid(), "read_codec": "PCMU", "write_codec": "PCMU",
                  "endpoint_disposition": "ANSWER"})
        for key, value in user_pairs(agent):
            if key in ("record_stereo", "transfer_fallback_extension", "toll_allow",
                       "accountcode", "user_context", "effective_caller_id_name",
                       "effective_caller_id_number", "callgroup"):
                v[key] = value
        self._channel_event("CHANNEL_ANSWER", ch, state="CS_CONSUME_MEDIA", number=7)
        self._callstate(ch, "ACTIVE")
        # Caller-id flip after answer (CALL_UPDATE in FreeSWITCH).
        ch.callee_name, ch.callee_num = ch.cid_name, ch.cid_num
        ch.cid_name, ch.cid_num = "Outbound Call", agent.ext
        # The originate finishes (job result, then the &app) a moment after the answer; a
        # uuid_bridge inside that window races it (see uuid_bridge).
        ch.originating = True
        if self.answer_to_park > 0:
            self._later(ch, self.answer_to_park, lambda: self._originate_complete(ch, app))
        else:
            self._originate_complete(ch, app)

    def _originate_complete(self, ch: Channel, app: str) -> None:
        ch.originating = False
        if ch.job is not None:
            job, ch.job = ch.job, None
            job(f"+OK {ch.uuid}\n")
        if ch.bridged_to and (name_of(app) == "eavesdrop" or not app.startswith("&")):
            return  # uuid_bridge got here first: the leg is bridged, nothing else runs
        if app.endswith(" inline"):
            self._inline(ch, app[:-len(" inline")])
            return
        if app and not app.startswith("&"):
            # originate <url> <exten> [<dialplan>] [<context>]: the answered leg goes to the
            # dialplan (click-to-call: the tenant's outbound rules dial the customer).
            words = app.split()
            self._transfer(ch, words[0], words[1] if len(words) > 1 else "XML",
                           words[2] if len(words) > 2 else "default", how="bl_xfer")
            self._route(ch)
            return
        m = APP.match(app) if app else None
        name = (m.group(1) or m.group(3)) if m else "park"
        data = (m.group(2) or "") if m else ""
        if name == "eavesdrop" and data:
            self._eavesdrop(ch, data.strip())
            return
        if name == "intercept" and data:
            target = self.channels.get(data.strip())
            if target is not None and not target.gone:
                self._bridge(target, ch)
                return
            self.hangup(ch.uuid, "NORMAL_CLEARING")
            return
        if name == "park" or not m:
            self._park(ch)
        else:
            ch.variables["current_application"] = name
            self._app_start(ch, name, data)

    def _inline(self, ch: Channel, apps: str) -> None:
        """``originate <url> '<app>:<data>,...' inline``: switch_ivr_session_transfer to the
        inline dialplan (Caller-Dialplan inline, Caller-Context default), which gives the
        leg its destination back (the rdnis). The actuator's connect (esl_bridge.actuator.
        CONNECT_INLINE) runs as fs-conf's tongdai_connect does; anything else parks."""
        apps = apps.strip("'")
        before = ch.dest
        self._transfer(ch, apps, "inline", "default", how="bl_xfer")
        ch.dest = before
        if "insert_ifempty/tongdai_connect/" in apps:
            self._connect(ch)
        else:
            self._park(ch)

    def add_number(self, spec: NumberSpec) -> None:
        """How an outside number behaves when the carrier rings it (a click-to-call's
        customer); numbers not added answer after ``customer_answer_delay``."""
        with self.lock:
            self.numbers[spec.number] = spec

    def _dial_out(self, a: Channel, number: str) -> None:
        """``bridge sofia/gateway/<carrier>/<number>`` on leg ``a``: a new outbound leg
        rings the customer; answered, it is bridged to ``a`` (CHANNEL_BRIDGE on ``a``);
        failed, ``a`` hangs up with its cause (continue_on_fail is not set)."""
        spec = self.numbers.get(number) or replace(self.default_number, number=number)
        a.variables["current_application"] = "bridge"
        self._app_start(a, "bridge", f"sofia/gateway/{self.carrier}/{number}")
        b = self._carrier_leg(a, number)
        a.dialing = b.uuid
        b.job = lambda body: self._bridge_failed(a, body)
        timeout = float(a.variables.get("call_timeout") or 60)
        if spec.answer in ("busy", "invalid"):
            cause = "USER_BUSY" if spec.answer == "busy" else "UNALLOCATED_NUMBER"
            self._later(b, 0.05, lambda: self.hangup(b.uuid, cause, disposition="recv_refuse"))
            return
        self._later(b, 0.1, lambda: self._ringing(b))
        if spec.answer == "answer" and spec.answer_delay < timeout:
            self._later(b, spec.answer_delay, lambda: self._carrier_answer(a, b, spec))
        elif spec.answer == "reject" and spec.answer_delay < timeout:
            self._later(b, spec.answer_delay, lambda: self.hangup(
                b.uuid, "CALL_REJECTED", disposition="recv_refuse"))
        else:
            self._later(b, timeout, lambda: self.hangup(b.uuid, "NO_ANSWER",
                                                        disposition="send_cancel"))

    def _carrier_leg(self, a: Channel, number: str) -> Channel:
        """The customer's leg: outbound, through the carrier gateway, caller ID = the
        effective caller ID of ``a``; its events carry ``a`` as Other-Type originator."""
        now = self.clock.now_us()
        uid = self.new_uuid()
        cid_num = a.variables.get("effective_caller_id_number") or a.cid_num
        cid_name = a.variables.get("effective_caller_id_name") or a.cid_name
        name = f"sofia/gateway/{self.carrier}/{number}"
        b = Channel(uuid=uid, direction="outbound", name=name, cid_name=cid_name,
                    cid_num=cid_num, dest=number, ani=cid_num, context=a.context,
                    source="src/switch_ivr_originate.c", presence_id="", created_us=now,
                    dialplan=a.dialplan, orig_cid_name=cid_name, orig_cid_num=cid_num,
                    hit_dialplan=False, profile_created_us=now)
        v = b.variables
        v.update({"direction": "outbound", "is_outbound": "true", "uuid": uid,
                  "call_uuid": uid, "session_id": str(next(self._session_ids)),
                  "sip_profile_name": "external", "sip_gateway_name": self.carrier,
                  "video_media_flow": "disabled", "text_media_flow": "disabled",
                  "channel_name": name,
                  "sip_destination_url": f"sip:{number}@{self.carrier_proxy}",
                  "originator": a.uuid, "originating_leg_uuid": a.uuid,
                  "originate_early_media": "true", "originate_endpoint": "sofia"})
        # Only what the A leg exported (`export` / export_vars) reaches a B leg.
        for var in (x.strip() for x in a.variables.get("export_vars", "").split(",")):
            if var and var in a.variables:
                v[var] = a.variables[var]
        b.other, b.other_type = a, "originator"
        self._created(b, "CS_ROUTING", "CS_CONSUME_MEDIA")
        return b

    def _carrier_answer(self, a: Channel, b: Channel, spec: NumberSpec) -> None:
        if b.hangup_cause:
            return
        b.answered_us = self.clock.now_us()
        b.answer_state = "answered"
        b.media = True
        b.callee_name, b.callee_num = "Outbound Call", b.dest
        b.variables.update({"audio_media_flow": "sendrecv",
                            "sip_req_uri": f"{b.dest}@{self.carrier_proxy}",
                            "sofia_profile_name": "external", "sip_to_user": b.dest,
                            "sip_from_user": b.cid_num, "sip_call_id": self.new_uuid(),
                            "read_codec": "PCMU", "write_codec": "PCMU",
                            "endpoint_disposition": "ANSWER"})
        self._channel_event("CHANNEL_ANSWER", b, state="CS_CONSUME_MEDIA", number=7)
        self._callstate(b, "ACTIVE")
        if a.dialing == b.uuid and not a.hangup_cause:  # not taken away by another command
            a.dialing, b.job = None, None
            self._dialplan_bridge(a, b, spec)

    def _dialplan_bridge(self, a: Channel, b: Channel, spec: NumberSpec) -> None:
        """The bridge application's bridge (switch_ivr_multi_threaded_bridge): one
        CHANNEL_BRIDGE on the A leg; the B leg's Channel-Call-UUID becomes the A leg's."""
        now = self.clock.now_us()
        self._state(b, "CS_EXCHANGE_MEDIA")
        a.bridged_us = b.bridged_us = now
        a.bridged_to, b.bridged_to = b.uuid, a.uuid
        a.bridge_a, b.bridge_a = True, False
        a.other, a.other_type = b, "originatee"
        for leg, other in ((a, b), (b, a)):
            leg.variables.update({"bridge_channel": other.name, "bridge_uuid": other.uuid,
                                  "signal_bond": other.uuid})
        b.variables["call_uuid"] = a.uuid
        a.variables.update({"originate_disposition": "SUCCESS", "DIALSTATUS": "SUCCESS"})
        self._channel_event("CHANNEL_BRIDGE", a, prefix=[
            ("Bridge-A-Unique-ID", a.uuid), ("Bridge-B-Unique-ID", b.uuid)])
        self._bridged_vars(a, b)
        if spec.talk is not None:
            who = b if spec.hangup_by == "customer" else a
            self._later(b, spec.talk, lambda: self.hangup(who.uuid, "NORMAL_CLEARING",
                                                          disposition="recv_bye"))

    def _bridge_failed(self, a: Channel, body: str) -> None:
        """The B leg failed: the bridge application returns, and without continue_on_fail
        switch_channel_handle_cause hangs the A leg up with the B leg's cause."""
        cause = body.strip().removeprefix("-ERR").strip() or "NORMAL_TEMPORARY_FAILURE"
        if a.gone or a.hangup_cause:
            return
        a.dialing = None
        a.variables.update({"originate_disposition": cause, "originate_failed_cause": cause})
        self._app_done(a)
        self.hangup(a.uuid, cause)

