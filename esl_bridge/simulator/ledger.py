"""The simulator's truth ledger: what each simulated caller and phone lived.

A `Ledger` listens to a `Node` (`node.listeners`, so it runs under the node's lock as
each event fires) and reads the node's own bookkeeping of the channel concerned: whether
the leg is a simulated caller (`Channel.caller`), a phone (`Channel.agent`) or a
customer behind the carrier, and who ended it (`Channel.disposition`: `recv_*` = that
person hung up or refused, `send_*` = the switch ended it). Nothing here reads the
product's facts: the ledger is what the call log must equal (deploy/docs/DESIGN.md,
"Three truths").

`ledger.calls()` derives, per call (id = the caller's leg; for a click-to-call, the
agent's leg the switch originated first):

* the dialed number, the caller's number, the IVR path (the menu choices that took the
  caller on: the dialplan's `tongdai::ivr`), the queues entered (a park with
  `tongdai_queue`);
* whether and when the caller was bridged to a person (an agent's phone, a number behind
  the carrier), which phone (extension / number), the wait from entering the first queue
  to that bridge, the talk time (every bridged segment), how many people it was passed to;
* who hung up first (`caller`, `agent` — `callee` for the customer of a click-to-call —
  or `system`: the switch ended it, on a command or a timeout);
* the disposition a supervisor would name: `answered`, `abandoned` (in queue),
  `short_abandoned` (under `short_abandon_s`), `abandoned_ringing` (a phone was ringing
  for the caller when they hung up), `abandoned_ivr` (answered by the switch, never in a
  queue nor bridged), `closed` (entered a queue that was closed at the time, per the
  `closed` rule the test gives: configuration, not belief), `voicemail` (the dialplan
  ran `voicemail` for the caller), `failed` (a click-to-call whose customer was never
  reached);
* every offered phone: its leg, extension, when it rang (the leg's creation), answered,
  ended, and what it did: `answered` (bridged to the caller), `busy` / `declined` (the
  phone refused: 486 / 603), `no_answer` (rang until the switch gave up on it while the
  caller was still waiting), `caller_abandoned` (still ringing, or picked up but not yet
  bridged, when the caller left), `withdrawn` (the switch stopped it because the caller was
  served or sent elsewhere).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LegLife:
    """One leg as the simulator lived it (times in µs of the simulated clock, 0 = never)."""

    leg_id: str
    kind: str  # caller | phone | customer | other
    created_us: int
    number: str = ""  # caller: its number; phone: the extension; customer: the number dialed
    dialed: str = ""  # caller: the DID
    call_id: str = ""  # phone: the call it rang for (the originate's tongdai_call_id)
    originator: str = ""  # customer: the leg whose dialplan dialed it
    answered_us: int = 0
    ended_us: int = 0
    end_order: int = 0  # the order of the hangups, for hangups in the same µs
    cause: str = ""
    disposition: str = ""
    ivr_path: str = ""
    queues: list[tuple[str, int]] = field(default_factory=list)  # (queue, entered)
    voicemail_us: int = 0
    announcements: list[str] = field(default_factory=list)
    dialed_out: bool = False  # a phone leg whose dialplan dialed a customer: a call itself


@dataclass
class Segment:
    """A bridge between two legs."""

    a: str
    b: str
    start_us: int
    end_us: int = 0


@dataclass(frozen=True)
class OfferTruth:
    leg_id: str
    extension: str
    rang_us: int
    answered_us: int
    ended_us: int
    result: str
    cause: str


@dataclass(frozen=True)
class CallTruth:
    call_id: str
    direction: str  # inbound | outbound
    caller: str
    dialed: str
    ivr_path: str
    queues: tuple[str, ...]
    start_us: int
    enqueue_us: int
    answered: bool
    answer_us: int
    extension: str  # the first person bridged: phone extension or number
    wait_ms: int
    talk_ms: int
    end_us: int
    hangup_side: str
    disposition: str
    transfers: int
    offers: tuple[OfferTruth, ...]

    @property
    def ring_no_answer(self) -> int:
        return sum(1 for o in self.offers if o.result in ("no_answer", "busy", "declined"))


def _ms(us: int) -> int:
    return max(0, us // 1000)


class Ledger:
    """Attach to a node (before traffic) and read `calls()` when the calls are over.

    `short_abandon_s`: callers who gave up waiting in a queue sooner are short abandons
    (default 5 s: deploy/docs/DESIGN.md, "KPIs"). `closed(queue, us)`: whether the queue
    was closed (after hours) at that time, as its configuration says; calls to a closed
    queue are not waits."""

    def __init__(self, node: Any, *, short_abandon_s: float = 5.0,
                 closed: Callable[[str, int], bool] | None = None) -> None:
        self.node = node
        self.short_abandon_us = int(short_abandon_s * 1_000_000)
        self.closed = closed or (lambda queue, us: False)
        self.lock = threading.Lock()
        self.legs: dict[str, LegLife] = {}
        self.segments: list[Segment] = []
        self._hangups = 0
        node.listeners.append(self.on_event)

    # ---------------------------------------------------------------- recording

    def on_event(self, event: Any) -> None:
        """A node listener: runs under the node's lock as each event fires."""
        h = event.headers
        name = event.name
        handler = _RECORDERS.get(name)
        if handler is None:
            return
        t = int(h.get("Event-Date-Timestamp") or 0)
        with self.lock:
            handler(self, h, t)

    def _channel(self, uid: str) -> Any:
        return self.node.channels.get(uid)

    def _on_create(self, h: dict[str, str], t: int) -> None:
        uid = h.get("Unique-ID", "")
        ch = self._channel(uid)
        if ch is None or uid in self.legs:
            return
        if ch.caller is not None:
            leg = LegLife(uid, "caller", ch.created_us, number=ch.caller.number,
                          dialed=ch.caller.did)
        elif ch.agent is not None and not (ch.agent.gateway and
                                           ch.agent.gateway == self.node.carrier):
            leg = LegLife(uid, "phone", ch.created_us, number=ch.agent.ext,
                          call_id=ch.variables.get("tongdai_call_id", ""))
        elif ch.variables.get("originator"):
            # The customer of a dialplan bridge (click-to-call): the phone leg that dialed
            # it is a call of its own.
            leg = LegLife(uid, "customer", ch.created_us, number=ch.dest,
                          originator=ch.variables["originator"])
            owner = self.legs.get(leg.originator)
            if owner is not None:
                owner.dialed_out = True
        else:
            leg = LegLife(uid, "other", ch.created_us)
        self.legs[uid] = leg

    def _on_answer(self, h: dict[str, str], t: int) -> None:
        leg = self.legs.get(h.get("Unique-ID", ""))
        if leg is not None and not leg.answered_us:
            leg.answered_us = t

    def _on_park(self, h: dict[str, str], t: int) -> None:
        leg = self.legs.get(h.get("Unique-ID", ""))
        ch = self._channel(h.get("Unique-ID", ""))
        if leg is None or ch is None or leg.kind != "caller":
            return
        queue = ch.variables.get("tongdai_queue", "")
        if queue and (not leg.queues or leg.queues[-1][0] != queue or ch.transfer_source):
            leg.queues.append((queue, t))

    def _on_execute(self, h: dict[str, str], t: int) -> None:
        leg = self.legs.get(h.get("Unique-ID", ""))
        if leg is not None and leg.kind == "caller" and h.get("Application") == "voicemail":
            leg.voicemail_us = leg.voicemail_us or t

    def _on_bridge(self, h: dict[str, str], t: int) -> None:
        a, b = h.get("Bridge-A-Unique-ID", ""), h.get("Bridge-B-Unique-ID", "")
        if a and b:
            self.segments.append(Segment(a, b, t))

    def _on_unbridge(self, h: dict[str, str], t: int) -> None:
        a, b = h.get("Bridge-A-Unique-ID", ""), h.get("Bridge-B-Unique-ID", "")
        for s in reversed(self.segments):
            if {s.a, s.b} == {a, b} and not s.end_us:
                s.end_us = t
                break

    def _on_hangup(self, h: dict[str, str], t: int) -> None:
        uid = h.get("Unique-ID", "")
        leg, ch = self.legs.get(uid), self._channel(uid)
        if leg is None or leg.ended_us:
            return
        self._hangups += 1
        leg.ended_us, leg.end_order = t, self._hangups
        leg.cause = ch.hangup_cause if ch is not None else h.get("Hangup-Cause", "")
        leg.disposition = ch.disposition if ch is not None else ""

    def _on_ivr(self, h: dict[str, str], t: int) -> None:
        leg = self.legs.get(h.get("Unique-ID", ""))
        if leg is not None:
            leg.ivr_path = h.get("IVR-Path") or leg.ivr_path

    def _on_api(self, h: dict[str, str], t: int) -> None:
        if h.get("API-Command") != "uuid_broadcast":
            return
        args = (h.get("API-Command-Argument") or "").split()
        leg = self.legs.get(args[0]) if args else None
        if leg is not None and len(args) > 1 and not leg.ended_us:
            leg.announcements.append(args[1])

    # ---------------------------------------------------------------- the truth

    def calls(self) -> dict[str, CallTruth]:
        """Every call so far, by call id (calls still up are derived as they stand)."""
        with self.lock:
            out: dict[str, CallTruth] = {}
            for leg in self.legs.values():
                if leg.kind == "caller":
                    out[leg.leg_id] = self._inbound(leg)
                elif leg.kind == "phone" and leg.dialed_out:
                    out[leg.leg_id] = self._outbound(leg)
            return out

    def _bridges_of(self, uid: str) -> list[tuple[Segment, LegLife]]:
        """The bridges of leg `uid` to a person, in time order, with that person's leg."""
        found = []
        for s in self.segments:
            if uid in (s.a, s.b):
                other = self.legs.get(s.b if s.a == uid else s.a)
                if other is not None and other.kind in ("phone", "customer"):
                    found.append((s, other))
        return sorted(found, key=lambda x: x[0].start_us)

    @staticmethod
    def _talk_us(bridges: list[tuple[Segment, LegLife]], root: LegLife) -> int:
        total = 0
        for i, (s, _) in enumerate(bridges):
            stop = s.end_us or root.ended_us
            if i + 1 < len(bridges):
                nxt = bridges[i + 1][0].start_us
                stop = min(stop or nxt, nxt)
            if stop:
                total += max(0, stop - s.start_us)
        return total

    @staticmethod
    def _side(root: LegLife, other: LegLife | None, root_name: str, other_name: str) -> str:
        """Who hung up first: that person (recv_*) or the switch (send_*)."""
        if not root.ended_us:
            return ""
        first = root
        if other is not None and other.ended_us and \
                (other.ended_us, other.end_order) < (root.ended_us, root.end_order):
            first = other
        if not first.disposition.startswith("recv_"):
            return "system"
        return root_name if first is root else other_name

    def _inbound(self, c: LegLife) -> CallTruth:
        bridges = self._bridges_of(c.leg_id)
        persons: list[LegLife] = []
        for _, p in bridges:
            if p not in persons:
                persons.append(p)
        answer_us = bridges[0][0].start_us if bridges else 0
        first_queue = c.queues[0] if c.queues else None
        closed = first_queue is not None and self.closed(first_queue[0], first_queue[1])
        offers = self._offers(c, bridges)
        wait_us = 0
        if first_queue is not None and not closed:
            left = answer_us or c.voicemail_us or c.ended_us
            wait_us = max(0, left - first_queue[1]) if left else 0
        if bridges:
            disposition = "answered"
        elif c.voicemail_us:
            disposition = "voicemail"
        elif closed:
            disposition = "closed"
        elif first_queue is not None:
            if not c.ended_us:
                disposition = "in_progress"
            elif wait_us < self.short_abandon_us:
                disposition = "short_abandoned"
            elif any(o.result == "caller_abandoned" for o in offers):
                disposition = "abandoned_ringing"
            else:
                disposition = "abandoned"
        elif not c.ended_us:
            disposition = "in_progress"
        else:
            disposition = "abandoned_ivr"
        last = persons[-1] if persons else None
        return CallTruth(
            call_id=c.leg_id, direction="inbound", caller=c.number, dialed=c.dialed,
            ivr_path=c.ivr_path, queues=tuple(q for q, _ in c.queues), start_us=c.created_us,
            enqueue_us=first_queue[1] if first_queue else 0, answered=bool(bridges),
            answer_us=answer_us, extension=persons[0].number if persons else "",
            wait_ms=_ms(wait_us), talk_ms=_ms(self._talk_us(bridges, c)), end_us=c.ended_us,
            hangup_side=self._side(c, last, "caller", "agent"), disposition=disposition,
            transfers=max(0, len(persons) - 1), offers=offers)

    def _offers(self, c: LegLife, bridges: list[tuple[Segment, LegLife]]) -> tuple[
            OfferTruth, ...]:
        bridged = {p.leg_id for _, p in bridges}
        # When the caller stopped needing a phone while still there: bridged to someone,
        # or sent to voicemail.
        served = min([s.start_us for s, _ in bridges]
                     + ([c.voicemail_us] if c.voicemail_us else []), default=0)
        gone = c.ended_us
        phones = sorted((leg for leg in self.legs.values() if leg.kind == "phone"
                         and (leg.call_id == c.leg_id or leg.leg_id in bridged)),
                        key=lambda leg: (leg.created_us, leg.leg_id))
        out = []
        for p in phones:
            end = p.ended_us
            refused = p.disposition.startswith("recv_") and not p.answered_us
            if p.leg_id in bridged:
                result = "answered"
            elif refused and p.cause == "USER_BUSY":
                result = "busy"
            elif refused and p.cause == "CALL_REJECTED":
                result = "declined"
            elif served and (not end or served <= end):
                result = "withdrawn"  # still ringing when the caller was served elsewhere
            elif gone and (not end or gone <= end):
                result = "caller_abandoned"  # ringing (or not yet bridged) as they left
            elif not end:
                result = "ringing"
            elif p.answered_us:
                result = "withdrawn"  # picked up, then let go while the caller waited on
            else:
                result = "no_answer"  # rang until the switch gave up on it
            out.append(OfferTruth(p.leg_id, p.number, p.created_us, p.answered_us, end,
                                  result, p.cause))
        return tuple(out)

    def _outbound(self, a: LegLife) -> CallTruth:
        bridges = self._bridges_of(a.leg_id)
        customer = next((leg for leg in self.legs.values() if leg.kind == "customer"
                         and leg.originator == a.leg_id), None)
        answer_us = bridges[0][0].start_us if bridges else 0
        last = bridges[-1][1] if bridges else None
        if bridges:
            disposition = "answered"
        elif not a.ended_us:
            disposition = "in_progress"
        else:
            disposition = "failed"
        return CallTruth(
            call_id=a.leg_id, direction="outbound", caller=a.number,
            dialed=customer.number if customer else "", ivr_path="", queues=(),
            start_us=a.created_us, enqueue_us=0, answered=bool(bridges), answer_us=answer_us,
            extension=a.number, wait_ms=0, talk_ms=_ms(self._talk_us(bridges, a)),
            end_us=a.ended_us, hangup_side=self._side(a, last, "agent", "callee"),
            disposition=disposition, transfers=max(0, len({p.leg_id for _, p in bridges}) - 1),
            offers=())


_RECORDERS: dict[str, Callable[[Ledger, dict[str, str], int], None]] = {
    "CHANNEL_CREATE": Ledger._on_create,
    "CHANNEL_ANSWER": Ledger._on_answer,
    "CHANNEL_PARK": Ledger._on_park,
    "CHANNEL_EXECUTE": Ledger._on_execute,
    "CHANNEL_BRIDGE": Ledger._on_bridge,
    "CHANNEL_UNBRIDGE": Ledger._on_unbridge,
    "CHANNEL_HANGUP": Ledger._on_hangup,
    "CUSTOM tongdai::ivr": Ledger._on_ivr,
    "API": Ledger._on_api,
}
