"""What a bridge knows of the legs on its node, for snapshots and for the actuator.

`show channels` lists what exists but carries no channel variables, so a snapshot alone
cannot say which tenant, call or queue a channel belongs to. The book keeps, per live leg,
what its events said (tenant, call, offer, queue, whether it is bridged), and remembers
recently hung-up legs so that the actuator never rings an agent for a caller already gone.
A leg the bridge never saw (its events were lost while the bridge was down) is learnt from
`uuid_dump` (`from_dump`). Pure: no I/O.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from routing.contract import Envelope

from . import normalize, protocol
from .normalize import NormalizerConfig

LEGS_KEPT = 100_000
GONE_KEPT = 20_000

# What a snapshot row carries of a leg (the router's reconciliation reads these).
_QUEUE_FIELDS = ("queue", "caller", "did", "priority", "vip", "skills", "language", "region")
_ENDED = frozenset({"channel_hungup", "channel_hangup_completed", "channel_destroyed"})


class LegBook:
    def __init__(self) -> None:
        self._legs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._gone: OrderedDict[str, None] = OrderedDict()
        self.tenants_seen: set[str] = set()

    def __len__(self) -> int:
        return len(self._legs)

    def info(self, leg: str) -> dict[str, Any] | None:
        return self._legs.get(leg)

    def is_gone(self, leg: str) -> bool:
        """Did this leg hang up (recently enough to be remembered)?"""
        return leg in self._gone

    def observe(self, envelope: Envelope) -> None:
        """Fold one of the node's channel events into the book."""
        p = envelope.payload
        leg = p.get("leg_id")
        if not leg:
            return
        self.tenants_seen.add(envelope.tenant)
        kind = envelope.type
        if kind in _ENDED:
            self._legs.pop(leg, None)
            self._gone[leg] = None
            self._gone.move_to_end(leg)
            while len(self._gone) > GONE_KEPT:
                self._gone.popitem(last=False)
            return
        if leg in self._gone:
            return  # a late event of a leg already gone
        info = self._legs.get(leg)
        if info is None:
            info = self._legs[leg] = {}
            while len(self._legs) > LEGS_KEPT:
                self._legs.popitem(last=False)
        # The latest event knows best: a caller's first event may come before the
        # dialplan set its tenant (the SIP domain's tenant, or the default, until then).
        info.update(tenant=envelope.tenant, call_id=envelope.call_id or leg, leg=p.get("leg"),
                    seen_us=envelope.occurred_at)
        info.pop("restored", None)
        for name in ("offer_id", "extension"):
            if p.get(name):
                info[name] = p[name]
        if info.get("offer_id"):
            info.setdefault("bridged", False)
        if kind == "channel_parked" and p.get("leg") == "a" and p.get("queue") \
                and not p.get("offer_id") and not info.get("bridged"):
            info.update({k: p.get(k) for k in _QUEUE_FIELDS})
            info.setdefault("parked_us", envelope.occurred_at)
        elif kind == "channel_answered" and info.get("offer_id"):
            info["answered"] = True
        elif kind == "channel_bridged":
            self._bridged(leg, True)
            if p.get("other_leg_id"):
                self._bridged(p["other_leg_id"], True)
        elif kind == "channel_unbridged":
            self._bridged(leg, False)
            if p.get("other_leg_id"):
                self._bridged(p["other_leg_id"], False)

    def _bridged(self, leg: str, bridged: bool) -> None:
        info = self._legs.get(leg)
        if info is None:
            return
        info["bridged"] = bridged
        if bridged:
            info.pop("parked_us", None)  # talking: no longer a caller waiting in a queue

    def restore(self, legs: dict[str, dict[str, Any]]) -> None:
        """Legs a previous run of the bridge knew were up (its journal)."""
        for leg, info in legs.items():
            if leg not in self._gone and leg not in self._legs:
                self._legs[leg] = {**info, "restored": True}
                self.tenants_seen.add(info["tenant"])

    def vanished(self, present: set[str], before_us: int) -> list[tuple[str, dict[str, Any]]]:
        """Legs the book holds as up, last heard of before `before_us`, that the node no
        longer has (`present`: its channels at `before_us`): they ended unheard. They are
        marked gone. A leg first heard of after `before_us` is not judged (it may have
        been created after the listing)."""
        out = [(leg, info) for leg, info in self._legs.items()
               if leg not in present and info.get("seen_us", 0) < before_us]
        for leg, _ in out:
            self._legs.pop(leg, None)
            self._gone[leg] = None
        while len(self._gone) > GONE_KEPT:
            self._gone.popitem(last=False)
        return out

    def learn(self, leg: str, info: dict[str, Any]) -> None:
        """Remember what `from_dump` found for a leg the bridge never saw."""
        if leg not in self._gone:
            self._legs[leg] = info
            self.tenants_seen.add(info["tenant"])


def from_dump(dump: dict[str, str], config: NormalizerConfig) -> dict[str, Any] | None:
    """What a snapshot row says of a leg, from its `uuid_dump <uuid> json` (the channel's
    headers and variables, as in an event). A caller parked for a queue and not bridged
    gets `parked_us`: when the switch answered it (the park itself is not timestamped;
    for a call that went through an IVR first this counts the IVR time as wait too)."""
    if not dump.get("Unique-ID"):
        return None
    headers = {**dump, "Event-Name": "CHANNEL_PARK"}
    try:
        env = normalize.normalize(protocol.Event(headers, format="json"), config)
    except (normalize.Skipped, ValueError, KeyError):
        return None
    p = env.payload
    # After uuid_bridge the caller's leg still says current_application=park: a bridged
    # leg is told by bridge_to (real capture, tests/fixtures/esl/plain_inbound_park_bridge).
    bridged = bool(dump.get("variable_bridge_to"))
    info: dict[str, Any] = {"tenant": env.tenant, "call_id": env.call_id or p["leg_id"],
                            "leg": p.get("leg"), "from_dump": True}
    for name in ("offer_id", "extension"):
        if p.get(name):
            info[name] = p[name]
    if info.get("offer_id"):
        info["bridged"] = bridged
    if bridged:
        info["bridge_to"] = dump["variable_bridge_to"]
    parked = dump.get("variable_current_application") == "park"
    if parked and not bridged and p.get("leg") == "a" and p.get("queue") and not p.get("offer_id"):
        info.update({k: p.get(k) for k in _QUEUE_FIELDS})
        at = _int(dump.get("Caller-Channel-Answered-Time")) or \
            _int(dump.get("Caller-Channel-Created-Time")) or env.occurred_at
        info["parked_us"] = at
    return info


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0
