"""The soak's referee: what the simulated switch lived, and the ACD invariants checked
against it (a module name starting with `_` is not a benchmark).

Nothing here asks the product what it believes. `Ledger` listens to the simulator's own
events (under the node's lock, as they fire) and reads its channel table; `CallLog`
reads the call table the sink writes in ClickHouse. Invariants (all must stay 0):

- stranded agent leg: a leg on an agent's phone that is answered (or parked) with no
  caller bridged to it for longer than `stranded_after_s`;
- caller waiting past max wait: parked for a queue, neither bridged nor transferred nor
  gone after the queue's max wait + `max_wait_slack_s`;
- caller never offered: parked for a queue and left (hung up or transferred) without any
  originate towards an agent, while an agent of that queue was truly available: phone
  registered, no leg, and past the wrap-up or ring-failure delay its configuration gives
  it, for at least `grace_s`, at a moment when the caller had waited `grace_s`;
- what could not be routed because routing was down (a chaos run's bridge or worker
  killed, Kafka frozen, and `RECOVERY_S` after: see _soak_chaos) is counted apart, as
  "in faults", and is no violation: a caller whose only free agent came while routing was
  down, or whose max wait fell due then;
- call cut while talking: a caller bridged to an agent whose call the switch ended (both
  legs' disposition send_*: neither phone hung up), i.e. a command killed a talking call;
- caller cut off: hung up by the switch (on a command: no caller hung up) while waiting,
  neither bridged nor sent to the queue's overflow (no max-wait action here hangs up);
- call-log rows missing (no row), duplicated (rows not collapsing to one) or not final,
  `final_within_s` after the caller hung up.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from routing.contract.edge import now_us

# Ring failures and how long the product's default penalties hold an agent out of
# routing (routing.model.DEFAULT_PENALTIES: busy 60 s, no answer / reject 10 s). An agent
# is not counted available before these have passed: configuration, not belief.
FAILURE_DELAY_S = {"USER_BUSY": 60.0, "CALL_REJECTED": 10.0}
OTHER_FAILURE_DELAY_S = 10.0


@dataclass
class Leg:
    """A leg on an agent's phone (an offer's originate, or any other)."""

    uuid: str
    ext: str
    offer_id: str
    call_id: str
    created: float
    answered: float = 0.0
    hungup: float = 0.0
    cause: str = ""
    bridged_to: str = ""
    was_bridged: bool = False
    disposition: str = ""  # recv_bye: its phone hung up; send_*: the switch ended it
    alone_since: float = 0.0  # answered with no caller since then (0: not now)
    alone_max: float = 0.0  # the longest closed span alone
    reported: bool = False

    def alone_for(self, now: float) -> float:
        """Longest span answered without a caller, the open one up to `now`."""
        open_span = (now - self.alone_since) if self.alone_since else 0.0
        return max(self.alone_max, open_span)


@dataclass
class Caller:
    """A caller the soak placed, and what the switch did with them."""

    uuid: str
    queue: str
    patience: float
    placed: float
    parked: float = 0.0
    bridged: float = 0.0
    transferred: float = 0.0
    hungup: float = 0.0
    agent_leg: str = ""
    hangup_cause: str = ""
    disposition: str = ""  # recv_bye: the caller hung up; send_*: the switch cut them off
    offers: list[str] = field(default_factory=list)
    available_seen: tuple[float, str] | None = None  # (when, ext) an agent was free
    available_in_fault: tuple[float, str] | None = None  # the same, routing down then
    reported_wait: bool = False

    @property
    def left(self) -> float:
        """When the caller's wait in the queue ended (bridge, transfer or hangup; 0: not)."""
        ends = [t for t in (self.bridged, self.transferred, self.hungup) if t]
        return min(ends) if ends else 0.0


@dataclass
class Offer:
    at: float
    call_id: str
    offer_id: str
    ext: str
    behaviour: str
    result: str = ""


@dataclass
class Rules:
    """What the configuration promises, and the checker's thresholds."""

    members: dict[str, set[str]]  # queue -> agent extensions
    max_wait_s: dict[str, float]
    wrapup_s: float
    stranded_after_s: float = 60.0
    max_wait_slack_s: float = 15.0
    grace_s: float = 5.0
    # Whether routing was down (or just back) at some moment of [lo, hi]: a chaos run's
    # faults. What could not be routed then is counted apart, never as a violation.
    disturbed: Callable[..., bool] = lambda lo, hi=None: False


class Ledger:
    """The simulator's truth, recorded from its events as they fire (listener of
    `Node.listeners`, so it runs under the node's lock and never blocks)."""

    def __init__(self, node: Any, rules: Rules, report: Callable[[str], None] = print,
                 on_transfer: Callable[[str], None] | None = None) -> None:
        self.node = node
        self.rules = rules
        self.report = report
        self.on_transfer = on_transfer
        self.lock = threading.Lock()
        self.legs: dict[str, Leg] = {}
        self.callers: dict[str, Caller] = {}
        self.offers: list[Offer] = []
        self.agent_exts = set().union(*rules.members.values()) if rules.members else set()
        self.free_from: dict[str, float] = {}  # ext -> when its last leg's delay ends
        self._idle: dict[str, float] = {}  # ext -> when the phone was first sampled free
        self.examples: dict[str, list[str]] = {}
        node.listeners.append(self._on_event)

    # -- recording
    def expect_caller(self, uuid: str, queue: str, patience: float) -> None:
        with self.lock:
            self.callers[uuid] = Caller(uuid, queue, patience, time.time())

    def offer(self, call_id: str, offer_id: str, ext: str, behaviour: str) -> Offer:
        o = Offer(time.time(), call_id, offer_id, ext, behaviour)
        with self.lock:
            self.offers.append(o)
            c = self.callers.get(call_id)
            if c is not None:
                c.offers.append(offer_id)
        return o

    def _on_event(self, event: Any) -> None:
        name = event.name
        if name not in ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_PARK", "CHANNEL_BRIDGE",
                        "CHANNEL_UNBRIDGE", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE",
                        "CHANNEL_EXECUTE"):
            return
        h = event.headers
        uid = h.get("Unique-ID", "")
        t = int(h.get("Event-Date-Timestamp") or now_us()) / 1e6
        with self.lock:
            if name == "CHANNEL_CREATE":
                ext = h.get("variable_dialed_user", "")
                if h.get("Call-Direction") == "outbound" and ext in self.agent_exts:
                    self.legs[uid] = Leg(uid, ext, h.get("variable_tongdai_offer_id", ""),
                                         h.get("variable_tongdai_call_id", ""), t)
            elif name == "CHANNEL_ANSWER":
                leg = self.legs.get(uid)
                if leg is not None and not leg.answered:
                    leg.answered = t
                    if not leg.bridged_to:
                        leg.alone_since = t
            elif name == "CHANNEL_PARK":
                c = self.callers.get(uid)
                if c is not None:
                    if not c.parked:
                        c.parked = t
                    elif h.get("variable_transfer_source") and not c.transferred:
                        c.transferred = t
                        if self.on_transfer is not None:
                            self.on_transfer(uid)
            elif name == "CHANNEL_EXECUTE":
                # Sent to voicemail_<queue>: the simulator runs fs-conf's voicemail there
                # (no park), as FreeSWITCH does.
                c = self.callers.get(uid)
                if c is not None and h.get("Application") == "voicemail" \
                        and not c.transferred:
                    c.transferred = t
                    if self.on_transfer is not None:
                        self.on_transfer(uid)
            elif name == "CHANNEL_BRIDGE":
                a, b = h.get("Bridge-A-Unique-ID", ""), h.get("Bridge-B-Unique-ID", "")
                for me, other in ((a, b), (b, a)):
                    leg = self.legs.get(me)
                    if leg is not None:
                        self._close_alone(leg, t)
                        leg.bridged_to, leg.was_bridged = other, True
                    c = self.callers.get(me)
                    if c is not None and other in self.legs:
                        c.bridged = c.bridged or t
                        c.agent_leg = c.agent_leg or other
            elif name == "CHANNEL_UNBRIDGE":
                for me in (h.get("Bridge-A-Unique-ID", ""), h.get("Bridge-B-Unique-ID", "")):
                    leg = self.legs.get(me)
                    if leg is not None:
                        leg.bridged_to = ""
                        if leg.answered and not leg.hungup:
                            leg.alone_since = t
            elif name == "CHANNEL_HANGUP":
                leg = self.legs.get(uid)
                if leg is not None and not leg.hungup:
                    self._close_alone(leg, t)
                    leg.hungup, leg.cause = t, h.get("Hangup-Cause", "")
                    self.free_from[leg.ext] = max(self.free_from.get(leg.ext, 0.0),
                                                  t + self._delay(leg))
                c = self.callers.get(uid)
                if c is not None and not c.hungup:
                    c.hungup, c.hangup_cause = t, h.get("Hangup-Cause", "")
            elif name == "CHANNEL_HANGUP_COMPLETE":
                c = self.callers.get(uid)
                if c is not None:
                    c.disposition = h.get("variable_sip_hangup_disposition", "")
                leg = self.legs.get(uid)
                if leg is not None:
                    leg.disposition = h.get("variable_sip_hangup_disposition", "")

    @staticmethod
    def _close_alone(leg: Leg, t: float) -> None:
        if leg.alone_since:
            leg.alone_max = max(leg.alone_max, t - leg.alone_since)
            leg.alone_since = 0.0

    def _delay(self, leg: Leg) -> float:
        """How long the configuration may keep this agent out of routing after the leg."""
        if leg.was_bridged:
            return self.rules.wrapup_s
        if leg.answered:  # answered, then killed (the caller was gone): at worst a penalty
            return max(self.rules.wrapup_s, OTHER_FAILURE_DELAY_S)
        return FAILURE_DELAY_S.get(leg.cause, OTHER_FAILURE_DELAY_S)

    def example(self, kind: str, text: str, keep: int = 5) -> None:
        """Log a violation as it is seen (the first `keep` of each kind)."""
        seen = self.examples.setdefault(kind, [])
        seen.append(text)
        if len(seen) <= keep:
            self.report(f"VIOLATION {kind}: {text}")

    # -- sampling the switch
    def sample(self, now: float | None = None) -> dict[str, int]:
        """Look at what exists on the switch now: stranded legs, long waits, free agents
        while callers wait. Returns live counts for the progress line."""
        now = time.time() if now is None else now
        r = self.rules
        with self.node.lock:
            phones = {a.ext: (a.registered, bool(a.legs)) for a in self.node.agents.values()
                      if a.ext in self.agent_exts}
            up = set(self.node.channels)
        with self.lock:
            free_now = {ext for ext, (registered, busy) in phones.items()
                        if registered and not busy}
            available = {ext for ext in free_now
                         if now - max(self.free_from.get(ext, 0.0), self._idle_since(ext, now))
                         >= r.grace_s}
            alone = waiting = 0
            for leg in self.legs.values():
                if leg.hungup or leg.uuid not in up:
                    continue
                if leg.alone_since:
                    alone += 1
                if not leg.reported and leg.alone_for(now) > r.stranded_after_s:
                    leg.reported = True
                    self.example("stranded_agent_leg",
                                 f"leg {leg.uuid} on phone {leg.ext} (offer {leg.offer_id or '-'}"
                                 f", call {leg.call_id or '-'}) answered with no caller for "
                                 f"{leg.alone_for(now):.0f} s")
            for c in self.callers.values():
                if not c.parked or c.left:
                    continue
                waiting += 1
                waited = now - c.parked
                limit = r.max_wait_s.get(c.queue)
                if limit is not None and waited > limit + r.max_wait_slack_s \
                        and not c.reported_wait:
                    c.reported_wait = True
                    self.example("caller_waiting_past_max_wait",
                                 f"caller {c.uuid} in {c.queue} waiting {waited:.0f} s "
                                 f"(max wait {limit:.0f} s), {len(c.offers)} offers")
                if not c.offers and c.available_seen is None and waited >= r.grace_s:
                    free = sorted(available & r.members.get(c.queue, set()))
                    if free and not r.disturbed(now - r.grace_s, now):
                        c.available_seen = (now, free[0])
                    elif free and c.available_in_fault is None:
                        c.available_in_fault = (now, free[0])
            self._idle_marks(free_now, now)
        return {"waiting": waiting, "agent_legs_alone": alone, "agents_free": len(free_now),
                "agents_available": len(available)}

    def _idle_since(self, ext: str, now: float) -> float:
        return self._idle.get(ext, now)

    def _idle_marks(self, free_now: set[str], now: float) -> None:
        """When each phone was last seen becoming free (sampled)."""
        for ext in list(self._idle):
            if ext not in free_now:
                del self._idle[ext]
        for ext in free_now:
            self._idle.setdefault(ext, now)

    # -- verdicts
    def verdicts(self, now: float | None = None) -> dict[str, list[str]]:
        """Every violation, by kind, with the ids concerned (for the log)."""
        now = time.time() if now is None else now
        r = self.rules
        out: dict[str, list[str]] = {"stranded_agent_legs": [], "callers_waiting_past_max": [],
                                     "callers_never_offered": [], "callers_cut_off": [],
                                     "calls_cut_while_talking": [],
                                     # not violations: routing was down when it was due
                                     "callers_past_max_wait_in_faults": [],
                                     "callers_not_offered_in_faults": []}
        with self.lock:
            for leg in self.legs.values():
                if leg.alone_for(now) > r.stranded_after_s:
                    out["stranded_agent_legs"].append(
                        f"{leg.uuid} (phone {leg.ext}, call {leg.call_id or '-'}, "
                        f"{leg.alone_for(now):.0f} s alone{', still up' if not leg.hungup else ''})")
            for c in self.callers.values():
                if not c.parked:
                    continue
                end = c.left or now
                limit = r.max_wait_s.get(c.queue)
                if limit is not None and end - c.parked > limit + r.max_wait_slack_s:
                    due = c.parked + limit
                    kind = "callers_past_max_wait_in_faults" if r.disturbed(
                        due, due + r.max_wait_slack_s) else "callers_waiting_past_max"
                    out[kind].append(f"{c.uuid} ({c.queue}, waited {end - c.parked:.0f} s, "
                                     f"{len(c.offers)} offers)")
                if c.hungup and not c.bridged and not c.transferred \
                        and c.disposition.startswith("send_"):
                    out["callers_cut_off"].append(
                        f"{c.uuid} ({c.queue}, hung up by the switch after "
                        f"{c.hungup - c.parked:.1f} s of {c.patience:.0f} s patience, "
                        f"{c.hangup_cause}, {len(c.offers)} offers)")
                agent = self.legs.get(c.agent_leg) if c.bridged else None
                if agent is not None and c.hungup and agent.hungup and \
                        c.disposition.startswith("send_") and agent.disposition.startswith("send_"):
                    out["calls_cut_while_talking"].append(
                        f"{c.uuid} ({c.queue}, talking to phone {agent.ext} since "
                        f"+{c.bridged - c.parked:.1f} s, ended by the switch after "
                        f"{c.hungup - c.bridged:.1f} s: neither the caller nor the agent "
                        f"hung up; agent leg {agent.uuid} {agent.cause})")
                if c.left and not c.bridged and not c.offers and (
                        c.available_seen or c.available_in_fault):
                    kind = "callers_never_offered" if c.available_seen \
                        else "callers_not_offered_in_faults"
                    at, ext = c.available_seen or c.available_in_fault  # type: ignore[misc]
                    out[kind].append(
                        f"{c.uuid} ({c.queue}, waited {c.left - c.parked:.0f} s; phone {ext} "
                        f"free at +{at - c.parked:.0f} s)")
        return out

    def totals(self) -> dict[str, int]:
        with self.lock:
            callers = list(self.callers.values())
            offers = list(self.offers)
            legs_of: dict[str, list[Leg]] = {}
            for leg in self.legs.values():
                legs_of.setdefault(leg.call_id, []).append(leg)

        def rang_when_gone(c: Caller) -> bool:
            """Some phone was ringing for the caller when they hung up."""
            return any(leg.created <= c.hungup and (not leg.hungup or leg.hungup >= c.hungup)
                       and (not leg.answered or leg.answered >= c.hungup)
                       for leg in legs_of.get(c.uuid, ()))

        return {
            "placed": len(callers),
            "parked": sum(1 for c in callers if c.parked),
            "answered": sum(1 for c in callers if c.bridged),
            "abandoned": sum(1 for c in callers if c.hungup and not c.bridged
                             and not c.transferred),
            "abandoned_while_ringing": sum(
                1 for c in callers if c.hungup and not c.bridged and not c.transferred
                and rang_when_gone(c)),
            "transferred": sum(1 for c in callers if c.transferred and not c.bridged),
            "still_up": sum(1 for c in callers if not c.hungup),
            "offers": len(offers),
            "offers_user_busy": sum(1 for o in offers if "USER_BUSY" in o.result),
            # USER_BUSY from a phone told to answer: it was off-hook (a leg still up)
            "offers_user_busy_unplanned": sum(1 for o in offers if "USER_BUSY" in o.result
                                              and o.behaviour != "busy"),
        }


# ---------------------------------------------------------------- the call log


def call_log_rows(client: Any, database: str, tenant: str) -> dict[str, tuple[int, int, str]]:
    """Per call id of the tenant: (rows after collapsing = sum of signs, final of the live
    row, its disposition). One live row per call is right; 0 is missing, 2+ duplicated."""
    rows = client.execute(
        f"SELECT call_id, sum(sign), sum(sign * final), argMaxIf(disposition, version, "
        f"sign > 0) FROM {database}.calls WHERE tenant = %(tenant)s GROUP BY call_id",
        {"tenant": tenant})
    return {r[0]: (int(r[1]), int(r[2]), r[3]) for r in rows}
