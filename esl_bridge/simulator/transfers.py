"""A phone's blind transfer of the party bridged to it (SIP REFER), as the real switch
carries it out; part of ``Node``.

sofia_handle_sip_i_refer marks the REFERring leg `endpoint_disposition=BLIND_TRANSFER` and
runs switch_ivr_session_transfer on its partner, in the partner's
`force_transfer_context` (the product's DID extension sets the tenant's context). The
REFERring leg's bridge ends (CHANNEL_UNBRIDGE on the bridge's A leg) and its dialplan goes
on: after fs-conf's tongdai_connect that is `connect_done`, a hangup NORMAL_CLEARING
(send_bye) that still carries BLIND_TRANSFER. The partner runs its new destination: one of
the node's phones (`bridge user/<ext>@<domain>`: the phone rings, and once it answers the
partner is the bridge's A leg) or a number (its dialplan: a queue's park).

The switch reports the two legs from their own threads, in either order (real captures,
tests/fixtures/esl): the partner's new park before the REFERring leg's unbridge and hangup
(plain_refer_to_queue), or the unbridge first and the hangup while the new phone rings
(plain_refer_to_extension). `caller_first` picks the order; by default the node's seeded
random draw does.
"""
from __future__ import annotations

from .core import NodeCore
from .state import Channel

#: how long after the partner's new destination the REFERring leg's hangup comes (captures:
#: 13 ms after the unbridge, 24 ms after the partner's park)
REFER_HANGUP_S = 0.015


class Transfers(NodeCore):
    def refer(self, uid: str, dest: str, *, caller_first: bool | None = None) -> bool:
        """The phone of leg `uid` transfers the leg bridged to it to `dest`. False when `uid`
        is not bridged (FreeSWITCH: "Cannot Blind Transfer 1 Legged calls", a NOTIFY 403)."""
        with self.lock:
            ch = self.channels.get(uid)
            other = self.channels.get(ch.bridged_to) if ch is not None and ch.bridged_to \
                else None
            if ch is None or other is None or ch.hangup_cause or other.hangup_cause:
                return False
            ch.variables["endpoint_disposition"] = "BLIND_TRANSFER"
            ch.variables["transfer_fallback_extension"] = ch.cid_num
            first = (self.rng.random() < 0.5) if caller_first is None else caller_first
            a, b = (ch, other) if ch.bridge_a else (other, ch)
            # The bridge is over for both legs now; its events follow in the switch's order.
            ch.bridged_to = other.bridged_to = None
            if not first:
                self._refer_unbridge(ch, a, b)
            self._refer_partner(other, dest)
            if first:
                self._refer_unbridge(ch, a, b)
            self._later(ch, REFER_HANGUP_S, lambda: self.hangup(ch.uuid, "NORMAL_CLEARING",
                                                                disposition="send_bye"))
            return True

    def _refer_unbridge(self, ch: Channel, a: Channel, b: Channel) -> None:
        self._unbridge(a, b)  # type: ignore[attr-defined]
        if ch.context == "tongdai_connect":  # intercept returned: fs-conf's connect_done
            self._app_start(ch, "transfer", "connect_done XML tongdai_connect")
            self._transfer(ch, "connect_done", "XML", "tongdai_connect",  # type: ignore[attr-defined]
                           how="bl_xfer")
            self._app_start(ch, "hangup", "NORMAL_CLEARING")

    def _refer_partner(self, other: Channel, dest: str) -> None:
        """switch_ivr_session_transfer of the partner: its new destination, in its
        force_transfer_context."""
        context = other.variables.get("force_transfer_context") or other.context
        other.variables["hangup_after_bridge"] = "false"
        self._transfer(other, dest, "XML", context, how="bl_xfer")  # type: ignore[attr-defined]
        domain = other.variables.get("tongdai_domain") or self.domain
        phone = self.agents.get(f"{dest}@{domain}")
        if phone is None:
            self._route(other)  # type: ignore[attr-defined]
            return
        self._app_start(other, "bridge", f"user/{dest}@{domain}")
        # The phone rings with the partner's number, in its call (Channel-Call-UUID) and with
        # the tenant the context exported; answered, the partner is the bridge's A leg.
        exported = {"tongdai_tenant": other.variables["tongdai_tenant"]} \
            if other.variables.get("tongdai_tenant") else {}
        variables = {"origination_caller_id_number": other.cid_num,
                     "origination_caller_id_name": other.cid_name, "call_uuid": other.uuid,
                     **exported}
        self.originate(  # type: ignore[attr-defined]
            "{" + ",".join(f"{k}={v}" for k, v in variables.items()) + "}"
            f"user/{dest}@{domain} &intercept({other.uuid})", lambda _result: None)
