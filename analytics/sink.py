"""The ClickHouse sink (`tongdai sink`): event topics -> raw events, CDRs, queue visits,
agent state intervals.

Three layers, I/O at the edges:

* `CallLog.prepare(records)` turns a batch of consumed records into the rows to write. It
  keeps each open call's events and the row it wrote last; a call it does not hold (after a
  restart, a rebalance, an eviction) is reloaded from ClickHouse through a `Store`, so a
  late event still updates the right row and a re-delivered batch writes nothing twice.
  An updated call is written as "cancel the old row (sign -1), add the new one (sign +1,
  next version)" into VersionedCollapsingMergeTree tables.
* `ClickHouseStore` is that `Store` on a `Database` (reads for reloads, batched inserts).
* `Sink` is the Kafka loop: poll, buffer (size- and time-bounded), prepare, insert, and
  only then commit the offsets. ClickHouse down -> pause the partitions, keep the prepared
  batch, retry with backoff (polling keeps the group membership), resume when it is back.
  Nothing is dropped and nothing crashes the loop; records that cannot be decoded go to the
  dead-letter topic with the reason.

Delivery is at-least-once from Kafka; the reload-and-compare step makes the visible result
exactly-once per call.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson

from routing.contract import DecodeError, Envelope, UpcastError, decode, upcast
from routing.contract import topics
from routing.contract.edge import dead_letter

from .agents import INTERVAL_COLUMNS, AgentKey, AgentTracker, OpenState
from .cdr import CDR_COLUMNS, FOLDED_TYPES, OFFER_COLUMNS, VISIT_COLUMNS, CallFacts, fold_call
from .db import Database, DatabaseError

log = logging.getLogger("tongdai.sink")

EVENT_COLUMNS = ("event_id", "type", "version", "occurred_at", "tenant", "source", "seq",
                 "call_id", "payload", "topic", "partition", "offset")
CALL_ROW_COLUMNS = CDR_COLUMNS + ("version", "sign")
VISIT_ROW_COLUMNS = VISIT_COLUMNS + ("version", "sign")
OFFER_ROW_COLUMNS = OFFER_COLUMNS + ("version", "sign")

CallKey = tuple[str, str]  # (tenant, call_id)

# Which facts belong to a call's CDR (others are kept raw only).
_CALL_TYPES = FOLDED_TYPES - {"agent_state_changed"}
# Agent states that are about one call: a router that does not say which gets it from
# the agent's last answered call.
_HANDLING = ("on_call", "wrap_up")
_WEEK_US = 7 * 86400 * 1_000_000


@dataclass(frozen=True)
class Record:
    """A consumed record, decoded and upcast."""

    topic: str
    partition: int
    offset: int
    envelope: Envelope


@dataclass
class Batch:
    """The rows one flush writes, table by table (in this order)."""

    events: list[tuple] = field(default_factory=list)
    calls: list[tuple] = field(default_factory=list)
    visits: list[tuple] = field(default_factory=list)
    intervals: list[tuple] = field(default_factory=list)
    offers: list[tuple] = field(default_factory=list)

    TABLES = (("events", EVENT_COLUMNS), ("calls", CALL_ROW_COLUMNS),
              ("queue_visits", VISIT_ROW_COLUMNS), ("agent_state_intervals", INTERVAL_COLUMNS),
              ("offers", OFFER_ROW_COLUMNS))

    def parts(self) -> list[tuple[str, Sequence[str], list[tuple]]]:
        data = (self.events, self.calls, self.visits, self.intervals, self.offers)
        return [(t, c, rows) for (t, c), rows in zip(self.TABLES, data)]

    @property
    def rows(self) -> int:
        return (len(self.events) + len(self.calls) + len(self.visits) + len(self.intervals)
                + len(self.offers))


class Store(Protocol):
    """What the call log reads back from ClickHouse (only for calls/agents it lost)."""

    def call_events(self, keys: set[CallKey]) -> list[Envelope]: ...

    def call_rows(self, keys: set[CallKey], lo_us: int,
                  hi_us: int) -> tuple[list[dict], ...]: ...  # calls, visits[, offers]

    def agent_events(self, tenant: str, agent_ids: set[str], lo_us: int,
                     hi_us: int) -> list[Envelope]: ...

    def agent_written_up_to(self, tenant: str, agent_ids: set[str], lo_us: int) -> dict[str, int]: ...


@dataclass
class _Emitted:
    version: int
    cdr: dict[str, Any] | None  # None: the rows were cancelled (not a call of its own)
    visits: tuple[dict[str, Any], ...]
    offers: tuple[dict[str, Any], ...] = ()


@dataclass
class _Call:
    events: dict[str, Envelope] = field(default_factory=dict)
    emitted: _Emitted | None = None
    call_id: str = ""


def event_row(r: Record) -> tuple:
    e = r.envelope
    return (e.event_id, e.type, e.version, e.occurred_at, e.tenant, e.source,
            -1 if e.seq is None else e.seq, e.call_id or "",
            orjson.dumps(e.payload).decode("utf-8"), r.topic, r.partition, r.offset)


def envelope_of_row(row: Sequence[Any]) -> Envelope:
    """An envelope back from the first nine columns of an `events` row."""
    event_id, type_, version, occurred_at, tenant, source, seq, call_id, payload = row[:9]
    return Envelope(event_id, type_, int(version), int(occurred_at), tenant, source,
                    None if int(seq) < 0 else int(seq), call_id or None, orjson.loads(payload))


def live_rows(rows: Iterable[dict]) -> dict[CallKey, tuple[int, list[dict]]]:
    """Per call, the version whose rows are not cancelled, and those rows (sign +1)."""
    net: dict[tuple, int] = {}
    kept: dict[tuple, dict] = {}
    for row in rows:
        ident = (row["tenant"], row["call_id"], row.get("visit", row.get("offer", 0)),
                 row["version"])
        net[ident] = net.get(ident, 0) + int(row["sign"])
        if int(row["sign"]) > 0:
            kept[ident] = row
    out: dict[CallKey, tuple[int, list[dict]]] = {}
    for ident, n in net.items():
        if n <= 0:
            continue
        key = (ident[0], ident[1])
        version = ident[3]
        if key not in out or out[key][0] < version:
            out[key] = (version, [kept[ident]])
        elif out[key][0] == version:
            out[key][1].append(kept[ident])
    return out


class CallLog:
    """Open calls and agents: from consumed records to the rows that make ClickHouse current."""

    def __init__(self, store: Store, short_abandon_ms: Any = 5000,
                 max_open_calls: int = 50000, keep_final_calls: int = 5000):
        self.store = store
        self.short_abandon_ms = short_abandon_ms
        self.max_open_calls = max_open_calls
        self.keep_final_calls = keep_final_calls
        self._final: OrderedDict[CallKey, None] = OrderedDict()
        self.calls: OrderedDict[CallKey, _Call] = OrderedDict()
        self.fold_errors = 0
        self.agents = AgentTracker()
        # Agent facts found in ClickHouse when an agent was restored (written by a sink
        # that crashed before committing): skipped once when they come again.
        self._stored_agent_events: set[str] = set()
        # A leg first seen as a call of its own (an ESL router's agent leg, before the
        # bridge named its caller) -> the call it turned out to belong to.
        self.joined: dict[CallKey, CallKey] = {}
        # The call each agent last answered: where on_call / wrap_up facts that name no
        # call belong.
        self.agent_calls: dict[tuple[str, str], str] = {}

    def forget(self) -> None:
        """Drop everything held (partitions moved): it reloads from ClickHouse on demand."""
        self.calls.clear()
        self._final.clear()
        self.agents = AgentTracker()
        self._stored_agent_events = set()
        self.joined.clear()
        self.agent_calls.clear()

    # ---- the batch step
    def prepare(self, records: Sequence[Record]) -> Batch:
        """The rows that bring ClickHouse up to date with `records`.

        Reads from ClickHouse (reloads) may fail; then nothing held here has changed and
        the same records can be prepared again."""
        snapshot = (dict(self.agents.current), dict(self.agents.written_up_to))
        try:
            return self._prepare(records)
        except DatabaseError:
            self.agents.current, self.agents.written_up_to = snapshot
            raise

    def _with_call(self, r: Record) -> Record:
        """An agent's on_call / wrap_up fact that names no call gets the agent's call."""
        e = r.envelope
        if e.type == "call_answered" and e.call_id:
            self.agent_calls[(e.tenant, e.payload.get("agent_id") or "")] = e.call_id
        if e.type != "agent_state_changed" or e.call_id \
                or e.payload.get("state") not in _HANDLING:
            return r
        key = (e.tenant, e.payload.get("agent_id") or "")
        call_id = self.agent_calls.get(key)
        if call_id is None:
            finder = getattr(self.store, "agent_last_call", None)
            call_id = finder(e.tenant, key[1], e.occurred_at) if finder else None
            if call_id:
                self.agent_calls[key] = call_id
        if not call_id:
            return r
        return Record(r.topic, r.partition, r.offset, replace(e, call_id=call_id))

    def _key(self, e: Envelope) -> CallKey:
        key = (e.tenant, e.call_id or "")
        return self.joined.get(key, key)

    def _prepare(self, records: Sequence[Record]) -> Batch:
        batch = Batch()
        unique: list[Record] = []
        seen: set[str] = set()
        by_call: dict[CallKey, list[Envelope]] = {}
        agent_events: list[Envelope] = []
        joins: list[tuple[CallKey, CallKey]] = []
        for r in records:
            e = r.envelope
            if e.event_id in seen:
                continue
            seen.add(e.event_id)
            r = self._with_call(r)
            e = r.envelope
            unique.append(r)
            if e.type == "agent_state_changed":
                agent_events.append(e)
            if e.call_id and (e.type in _CALL_TYPES or e.type == "agent_state_changed"):
                by_call.setdefault(self._key(e), []).append(e)
            if e.type == "channel_bridged" and e.call_id:
                h = e.payload.get("headers") or {}
                for leg in {h.get("Bridge-A-Unique-ID"), h.get("Bridge-B-Unique-ID"),
                            e.payload.get("other_leg_id")} - {None, "", e.call_id}:
                    joins.append(((e.tenant, leg), self._key(e)))

        self._restore_agents(agent_events)
        for e in sorted(agent_events, key=lambda x: (x.occurred_at, x.event_id)):
            rows, wrap_call = self.agents.apply(e)
            batch.intervals.extend(tuple(row[c] for c in INTERVAL_COLUMNS) for row in rows)
            if wrap_call:
                by_call.setdefault(self._key(replace(e, call_id=wrap_call)), []).append(e)

        self._reload_calls({k for k in by_call if k not in self.calls}, by_call)
        for r in unique:
            e = r.envelope
            held = self.calls.get(self._key(e)) if e.call_id else None
            if held is not None and e.event_id in held.events:
                continue  # re-delivered: written before
            if e.event_id in self._stored_agent_events:
                self._stored_agent_events.discard(e.event_id)
                continue
            batch.events.append(event_row(r))
        changed: set[CallKey] = set()
        for key, events in by_call.items():
            call = self.calls[key]
            call.call_id = call.call_id or key[1]
            self.calls.move_to_end(key)
            before = len(call.events)
            for e in events:
                call.events.setdefault(e.event_id, e)
            if len(call.events) != before or call.emitted is None:
                changed.add(key)
        for leg_key, call_key in joins:
            if self._join(leg_key, call_key, batch):
                changed.add(call_key)
        for key in by_call.keys() | changed:
            call = self.calls.get(key)
            if call is None or key not in changed:
                continue
            if not any(e.type in _CALL_TYPES for e in call.events.values()):
                continue  # only agent facts so far: nothing to write about this call
            try:
                facts = fold_call(call.events.values(), self.short_abandon_ms,
                                  call_id=call.call_id or key[1])
            except Exception:  # a fact the fold cannot read must not stop the sink
                self.fold_errors += 1
                log.exception("cannot fold a call (%d events); its raw events are kept",
                              len(call.events), extra={"tenant": key[0], "call_id": key[1]})
                continue
            self._emit(call, facts, batch, key)
        self._evict()
        return batch

    def _join(self, leg_key: CallKey, call_key: CallKey, batch: Batch) -> bool:
        """A bridge named a leg held as a call of its own: it is part of `call_key`. Its
        rows are cancelled and its events fold into the call from now on."""
        if leg_key == call_key or self.joined.get(leg_key) == call_key:
            return False
        self.joined[leg_key] = call_key
        leg_call = self.calls.pop(leg_key, None)
        self._final.pop(leg_key, None)
        if leg_call is None:
            return False
        call = self.calls.setdefault(call_key, _Call(call_id=call_key[1]))
        for event_id, e in leg_call.events.items():
            call.events.setdefault(event_id, e)
        old = leg_call.emitted
        if old is not None and old.cdr is not None:
            self._cancel(old, batch)
        return True

    @staticmethod
    def _cancel(old: _Emitted, batch: Batch) -> None:
        if old.cdr is not None:
            batch.calls.append(tuple(old.cdr[c] for c in CDR_COLUMNS) + (old.version, -1))
        batch.visits.extend(tuple(v[c] for c in VISIT_COLUMNS) + (old.version, -1)
                            for v in old.visits)
        batch.offers.extend(tuple(o[c] for c in OFFER_COLUMNS) + (old.version, -1)
                            for o in old.offers)

    def _emit(self, call: _Call, facts: CallFacts, batch: Batch, key: CallKey) -> None:
        old = call.emitted
        if old is not None and old.cdr == facts.cdr and old.visits == facts.visits \
                and old.offers == facts.offers:
            return
        if old is None and facts.cdr is None:
            return  # not a call of its own, never written
        version = 1
        if old is not None:
            version = old.version + 1
            self._cancel(old, batch)
        if facts.cdr is None:
            call.emitted = _Emitted(version, None, (), ())
            self._final.pop(key, None)
            return
        batch.calls.append(tuple(facts.cdr[c] for c in CDR_COLUMNS) + (version, 1))
        batch.visits.extend(tuple(v[c] for c in VISIT_COLUMNS) + (version, 1)
                            for v in facts.visits)
        batch.offers.extend(tuple(o[c] for c in OFFER_COLUMNS) + (version, 1)
                            for o in facts.offers)
        call.emitted = _Emitted(version, facts.cdr, facts.visits, facts.offers)
        if facts.final:
            self._final[key] = None
            self._final.move_to_end(key)
        else:
            self._final.pop(key, None)

    def _evict(self) -> None:
        """Bound memory: few final calls are kept (late events for the others reload them
        from ClickHouse), and at most `max_open_calls` in all, oldest touched first."""
        while len(self._final) > self.keep_final_calls:
            key, _ = self._final.popitem(last=False)
            self.calls.pop(key, None)
        excess = len(self.calls) - self.max_open_calls
        while excess > 0 and self.calls:
            key, _ = self.calls.popitem(last=False)
            self._final.pop(key, None)
            excess -= 1
        if len(self.joined) > 4 * self.max_open_calls:
            self.joined.clear()  # bounded; a leg's later events carry its caller's id

    # ---- reloads (after restarts, rebalances, evictions)
    def _reload_calls(self, keys: set[CallKey], batch_events: dict[CallKey, list[Envelope]]) -> None:
        if not keys:
            return
        known = self.store.call_events(keys)
        prior: dict[CallKey, list[Envelope]] = {}
        for e in known:
            prior.setdefault((e.tenant, e.call_id or ""), []).append(e)
        # Legs a bridge joined to a call were written under their own id before it.
        legs: dict[CallKey, CallKey] = {}
        for key, events in list(prior.items()):
            for e in events:
                if e.type == "channel_bridged":
                    h = e.payload.get("headers") or {}
                    for leg in {h.get("Bridge-A-Unique-ID"), h.get("Bridge-B-Unique-ID"),
                                e.payload.get("other_leg_id")} - {None, "", key[1]}:
                        legs[(key[0], leg)] = key
        if legs:
            for e in self.store.call_events(set(legs) - keys):
                owner = legs.get((e.tenant, e.call_id or ""))
                if owner is not None:
                    prior[owner].append(e)
                    self.joined[(e.tenant, e.call_id or "")] = owner
        # A reloaded call's wrap-up ends with an agent fact that may carry no call id.
        for key, events in prior.items():
            handling = [e for e in events if e.type == "agent_state_changed"
                        and e.payload.get("state") in _HANDLING]
            for w in sorted(handling, key=lambda x: x.occurred_at)[-1:]:
                later = self.store.agent_events(key[0], {w.payload["agent_id"]}, w.occurred_at,
                                                w.occurred_at + _WEEK_US)
                nxt = next((x for x in sorted(later, key=lambda x: x.occurred_at)
                            if x.occurred_at > w.occurred_at), None)
                if nxt is not None:
                    events.append(nxt)
        rows: tuple[list[dict], ...] = ([], [], [])
        if prior:
            times = [e.occurred_at for evs in prior.values() for e in evs]
            times += [e.occurred_at for k in prior for e in batch_events.get(k, [])]
            rows = tuple(self.store.call_rows(set(prior), min(times), max(times)))
        live_cdr = live_rows(rows[0])
        live_visits = live_rows(rows[1])
        live_offers = live_rows(rows[2]) if len(rows) > 2 else {}
        for key in keys:
            call = _Call({e.event_id: e for e in prior.get(key, [])}, call_id=key[1])
            if key in live_cdr:
                version, (cdr_row,) = live_cdr[key][0], live_cdr[key][1][:1]
                visits = live_visits.get(key, (version, []))
                visit_rows = sorted(visits[1], key=lambda v: v["visit"]) \
                    if visits[0] == version else []
                offers = live_offers.get(key, (version, []))
                offer_rows = sorted(offers[1], key=lambda o: o["offer"]) \
                    if offers[0] == version else []
                call.emitted = _Emitted(
                    version, {c: cdr_row[c] for c in CDR_COLUMNS},
                    tuple({c: v[c] for c in VISIT_COLUMNS} for v in visit_rows),
                    tuple({c: o[c] for c in OFFER_COLUMNS} for o in offer_rows))
            self.calls[key] = call

    def _restore_agents(self, events: list[Envelope]) -> None:
        unknown: dict[str, dict[str, int]] = {}
        for e in events:
            key = (e.tenant, e.payload["agent_id"])
            if self.agents.known(key):
                continue
            first = unknown.setdefault(e.tenant, {})
            first[key[1]] = min(first.get(key[1], e.occurred_at), e.occurred_at)
        for tenant, firsts in unknown.items():
            lo = min(firsts.values())
            ids = set(firsts)
            written = self.store.agent_written_up_to(tenant, ids, lo - _WEEK_US)
            # Up to the end of time: what a crashed run already wrote is not written again.
            history = self.store.agent_events(tenant, ids, lo - _WEEK_US, 2 ** 62)
            self._stored_agent_events.update(h.event_id for h in history)
            for agent_id, first_us in firsts.items():
                before = [h for h in history if h.payload.get("agent_id") == agent_id
                          and h.occurred_at < first_us]
                state = OpenState.of(max(before, key=lambda h: (h.occurred_at, h.event_id))) \
                    if before else None
                self.agents.restore((tenant, agent_id), state, written.get(agent_id, -1))


class ClickHouseStore:
    """`Store` on a database, plus the batched writer."""

    def __init__(self, db: Database):
        self.db = db
        self.d = db.database

    def call_events(self, keys: set[CallKey]) -> list[Envelope]:
        if not keys:
            return []
        rows = self.db.query(
            f"SELECT {', '.join(EVENT_COLUMNS[:9])} FROM {self.d}.events "
            f"WHERE tenant IN %(tenants)s AND call_id IN %(ids)s",
            {"tenants": {k[0] for k in keys}, "ids": {k[1] for k in keys}})
        return [envelope_of_row(r) for r in rows if (r[4], r[7]) in keys]

    def call_rows(self, keys: set[CallKey], lo_us: int, hi_us: int) -> tuple[list[dict], list[dict]]:
        params = {"tenants": {k[0] for k in keys}, "ids": {k[1] for k in keys},
                  "lo": lo_us // 1_000_000 - 1, "hi": hi_us // 1_000_000 + 1}
        calls = self.db.query(
            f"SELECT {', '.join(CALL_ROW_COLUMNS)} FROM {self.d}.calls WHERE tenant IN "
            f"%(tenants)s AND call_id IN %(ids)s AND start_time >= toDateTime(%(lo)s) "
            f"AND start_time <= toDateTime(%(hi)s)", params)
        visits = self.db.query(
            f"SELECT {', '.join(VISIT_ROW_COLUMNS)} FROM {self.d}.queue_visits WHERE tenant IN "
            f"%(tenants)s AND call_id IN %(ids)s AND enqueue_time >= toDateTime(%(lo)s) "
            f"AND enqueue_time <= toDateTime(%(hi)s)", params)
        offers = self.db.query(
            f"SELECT {', '.join(OFFER_ROW_COLUMNS)} FROM {self.d}.offers WHERE tenant IN "
            f"%(tenants)s AND call_id IN %(ids)s AND offered_time >= toDateTime(%(lo)s) - 86400 "
            f"AND offered_time <= toDateTime(%(hi)s)", params)
        as_dicts = lambda cols, rows: [dict(zip(cols, r)) for r in rows]  # noqa: E731
        return (as_dicts(CALL_ROW_COLUMNS, [r for r in calls if (r[0], r[1]) in keys]),
                as_dicts(VISIT_ROW_COLUMNS, [r for r in visits if (r[0], r[1]) in keys]),
                as_dicts(OFFER_ROW_COLUMNS, [r for r in offers if (r[0], r[1]) in keys]))

    def agent_last_call(self, tenant: str, agent_id: str, before_us: int) -> str | None:
        """The call the agent last answered before `before_us` (a day back at most)."""
        rows = self.db.query(
            f"SELECT call_id FROM {self.d}.events WHERE tenant = %(tenant)s "
            f"AND type = 'call_answered' AND ts >= toDateTime(%(lo)s) "
            f"AND occurred_at <= %(hi)s "
            f"AND visitParamExtractString(payload, 'agent_id') = %(agent)s "
            f"ORDER BY occurred_at DESC LIMIT 1",
            {"tenant": tenant, "agent": agent_id, "hi": before_us,
             "lo": max(0, before_us // 1_000_000 - 86400)})
        return rows[0][0] if rows else None

    def agent_events(self, tenant: str, agent_ids: set[str], lo_us: int,
                     hi_us: int) -> list[Envelope]:
        rows = self.db.query(
            f"SELECT {', '.join(EVENT_COLUMNS[:9])} FROM {self.d}.events "
            f"WHERE tenant = %(tenant)s AND type = 'agent_state_changed' "
            f"AND ts >= toDateTime(%(lo)s) AND ts <= toDateTime(%(hi)s) "
            f"AND visitParamExtractString(payload, 'agent_id') IN %(ids)s",
            {"tenant": tenant, "ids": set(agent_ids), "lo": max(0, lo_us // 1_000_000 - 1),
             "hi": min(hi_us // 1_000_000 + 1, 2 ** 32 - 1)})
        return [e for e in map(envelope_of_row, rows)
                if lo_us <= e.occurred_at <= hi_us and e.payload.get("agent_id") in agent_ids]

    def agent_written_up_to(self, tenant: str, agent_ids: set[str], lo_us: int) -> dict[str, int]:
        rows = self.db.query(
            f"SELECT agent_id, max(start_us) FROM {self.d}.agent_state_intervals "
            f"WHERE tenant = %(tenant)s AND agent_id IN %(ids)s "
            f"AND start_time >= toDateTime(%(lo)s) GROUP BY agent_id",
            {"tenant": tenant, "ids": set(agent_ids), "lo": max(0, lo_us // 1_000_000)})
        return {r[0]: int(r[1]) for r in rows}

    def write(self, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
        self.db.insert(f"{self.d}.{table}", columns, rows)

    # Columns that identify a written row, per table (for retries after an unclear failure).
    _IDENTITY = {"calls": ("call_id", "version", "sign"),
                 "queue_visits": ("call_id", "visit", "version", "sign"),
                 "offers": ("call_id", "offer", "version", "sign"),
                 "agent_state_intervals": ("agent_id", "start_us")}

    def already_written(self, table: str, columns: Sequence[str], rows: list[tuple]) -> bool:
        """Did an insert that failed on our side reach ClickHouse anyway (a block is
        written whole or not at all)? Raw events need no check: they are deduplicated."""
        ident = self._IDENTITY.get(table)
        if ident is None or not rows:
            return False
        pos = [list(columns).index(c) for c in ident]
        keys = {tuple(row[i] for i in pos) for row in rows}
        tenants = {row[list(columns).index("tenant")] for row in rows}
        (n,) = self.db.query(
            f"SELECT count() FROM {self.d}.{table} WHERE tenant IN %(tenants)s "
            f"AND ({', '.join(ident)}) IN %(keys)s", {"tenants": tenants, "keys": keys})[0]
        return int(n) >= len(keys)


# ---- the Kafka loop ------------------------------------------------------------------

_CHECKED = frozenset({"call_enqueued", "call_offered", "call_answered", "call_abandoned",
                      "call_overflowed", "call_ended", "agent_state_changed"})


def check_payload(envelope: Envelope) -> None:
    """Router facts are checked against the contract before they reach the fold (the
    fold reads their required fields); channel facts are read defensively instead (they
    are most of the volume)."""
    if envelope.type in _CHECKED:
        from routing.contract.schemas import PAYLOADS

        errors = PAYLOADS[(envelope.type, envelope.version)][1]().validate(envelope.payload)
        if errors:
            raise ValueError(f"{envelope.type} payload: {errors}")


@dataclass
class SinkStats:
    records: int = 0
    batches: int = 0
    rows_written: int = 0
    dead_letters: int = 0
    insert_failures: int = 0
    paused_s: float = 0.0


class Sink:
    """Consume the event topics into ClickHouse; offsets committed after each insert."""

    def __init__(self, settings, db: Database, consumer: Any = None,
                 dead_letters: Callable[[Envelope], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.settings = settings
        self.db = db
        self.store = ClickHouseStore(db)
        self.log = CallLog(self.store, settings.short_abandon_ms, settings.sink_max_open_calls,
                           settings.sink_keep_final_calls)
        self._consumer = consumer
        self._dead_letters = dead_letters
        self._producer = None
        self._sleep = sleep
        self.stats = SinkStats()
        self.stop_event = threading.Event()
        self._buffer: list[Record] = []
        self._offsets: dict[Any, int] = {}
        self._first_at: float | None = None
        self._revoked = False
        self._polled_at = time.monotonic()  # when a poll last returned records (or started)
        self.reopened = 0

    # -- Kafka plumbing (created lazily so tests may pass their own)
    def consumer(self):
        if self._consumer is None:
            self._consumer = self._make_consumer()
        return self._consumer

    def _make_consumer(self):
        """A subscribed kafka-python consumer (the settings' group and topics)."""
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        sink = self

        class _Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                # Runs on the client's I/O thread, where nothing may block: the loop
                # flushes what it holds and drops its state at its next turn.
                if revoked:
                    sink._revoked = True

            def on_partitions_assigned(self, assigned):
                pass

        s = self.settings
        consumer = KafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap, group_id=s.consumer_group,
            client_id=f"{s.consumer_group}-{id(self):x}", enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=max(500, s.sink_batch_rows),
            session_timeout_ms=10000, heartbeat_interval_ms=1000,
            max_poll_interval_ms=600000,
            # A topic without metadata at the first join gets no partitions until the
            # next refresh (5 min by default): refresh often so the sink starts promptly.
            metadata_max_age_ms=5000)
        self._await_metadata(consumer, list(s.sink_topics))
        consumer.subscribe(list(s.sink_topics), listener=_Listener())
        return consumer

    @staticmethod
    def _await_metadata(consumer: Any, names: list[str], wait_s: float = 10.0) -> None:
        """Know the topics' partitions before joining the group. A group leader that
        assigns while its metadata lacks a topic (just created) gives nobody its
        partitions, and kafka-python does not always rejoin when the metadata comes: the
        sink would then sit with no partitions (90 s, where measured) while records wait.
        A topic still unknown after `wait_s` is joined anyway (and logged): it may be
        created later."""
        from kafka.errors import KafkaError

        deadline = time.monotonic() + wait_s
        missing = list(names)
        while missing:
            try:
                missing = [n for n in missing if not consumer.partitions_for_topic(n)]
            except KafkaError as exc:
                # A broker just thawed or restarted may answer with no brokers at all
                # (MetadataEmptyBrokerList): not a reason to exit, ask again.
                log.info("topic metadata not available yet (%s); asking again", exc)
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if missing:
            log.warning("topics %s have no partitions yet; joining without them", missing)

    def _dead_letter(self, envelope: Envelope) -> None:
        self.stats.dead_letters += 1
        if self._dead_letters is not None:
            self._dead_letters(envelope)
            return
        if self._producer is None:
            from kafka import KafkaProducer

            self._producer = KafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap,
                                           acks="all")
        from routing.contract import encode

        self._producer.send(topics.DEAD_LETTERS, encode(envelope),
                            key=envelope.payload["topic"].encode()).get(timeout=30)

    # -- the loop
    def run(self, until: Callable[[], bool] | None = None) -> SinkStats:
        """Consume until `stop()` (or until `until()` is true); flush before returning."""
        s = self.settings
        self._polled_at = time.monotonic()
        while not self.stop_event.is_set() and not (until and until()):
            consumer = self.consumer()
            room = max(1, s.sink_batch_rows - len(self._buffer))
            polled = consumer.poll(timeout_ms=100, max_records=room)
            for tp, messages in polled.items():
                for m in messages:
                    self._accept(tp, m)
            if polled:
                self._polled_at = time.monotonic()
            elif time.monotonic() - self._polled_at >= s.sink_stall_s:
                self._polled_at = time.monotonic()
                stuck = self._stuck_partitions(consumer)
                if stuck:
                    log.warning("records wait in %s but no poll returned any for %.0f s; "
                                "reopening the consumer", sorted(map(str, stuck)), s.sink_stall_s)
                    self._flush()
                    self.log.forget()  # as after a rebalance: reloaded when needed
                    self.close_consumer()
                    self.reopened += 1
                    continue
            if self._revoked:
                # Partitions moved: write what we hold (the commit may be refused; the new
                # owner then re-reads and deduplicates) and forget every open call.
                self._revoked = False
                self._flush()
                self.log.forget()
                continue
            if self._buffer and (len(self._buffer) >= s.sink_batch_rows or
                                 time.monotonic() - (self._first_at or 0) >= s.sink_batch_s):
                self._flush()
            elif not self._buffer and self._offsets:
                self._flush()  # only dead letters: still move the offsets on
        self._flush()
        return self.stats

    def stop(self) -> None:
        self.stop_event.set()

    @staticmethod
    def _stuck_partitions(consumer: Any) -> list:
        """Assigned, unpaused partitions whose log end is past the consumer's position."""
        try:
            assigned = set(consumer.assignment()) - set(consumer.paused())
            if not assigned:
                return []
            ends = consumer.end_offsets(sorted(assigned))
            return [tp for tp in assigned if ends.get(tp, 0) > consumer.position(tp)]
        except Exception as exc:  # a broker hiccup: look again next time
            log.debug("stall check failed: %s", exc)
            return []

    def close_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                consumer.close(autocommit=False)
            except TypeError:
                consumer.close()
            except Exception as exc:
                log.warning("closing the consumer failed: %s", exc)

    def _accept(self, tp: Any, message: Any) -> None:
        self.stats.records += 1
        self._offsets[tp] = message.offset + 1
        try:
            envelope = upcast(decode(message.value))
            check_payload(envelope)
        except (DecodeError, UpcastError, TypeError, ValueError) as exc:
            self._dead_letter(dead_letter(tp.topic, str(exc), bytes(message.value or b""),
                                          source="analytics-sink",
                                          position=(tp.partition, message.offset)))
            return
        if not self._buffer:
            self._first_at = time.monotonic()
        self._buffer.append(Record(tp.topic, tp.partition, message.offset, envelope))

    def _flush(self) -> None:
        if not self._buffer and not self._offsets:
            return
        batch = self._prepare_until_done() if self._buffer else Batch()
        self.write_until_done(batch)
        self._commit(dict(self._offsets))
        self.stats.batches += 1
        self._buffer, self._offsets, self._first_at = [], {}, None

    def _prepare_until_done(self) -> Batch:
        """Prepare the buffered records; reloads that fail (ClickHouse down) are retried."""
        delay = self.settings.sink_retry_min_s
        paused_at = None
        while True:
            try:
                batch = self.log.prepare(self._buffer)
                break
            except DatabaseError as exc:
                self.stats.insert_failures += 1
                if paused_at is None:
                    paused_at = time.monotonic()
                    self._pause()
                log.warning("reading back from ClickHouse failed (%s); paused, retrying in "
                            "%.1f s", str(exc).splitlines()[0][:200], delay)
                self._wait(delay)
                delay = min(delay * 2, self.settings.sink_retry_max_s)
        if paused_at is not None:
            self.stats.paused_s += time.monotonic() - paused_at
            self._resume()
        return batch

    def write_until_done(self, batch: Batch) -> None:
        """Insert every part of the batch; while ClickHouse fails, pause and retry."""
        pending = [p for p in batch.parts() if p[2]]
        delay = self.settings.sink_retry_min_s
        paused_at = None
        failed_before = False
        while pending:
            table, columns, rows = pending[0]
            try:
                if not (failed_before and self.store.already_written(table, columns, rows)):
                    self.store.write(table, columns, rows)
            except DatabaseError as exc:
                failed_before = True
                self.stats.insert_failures += 1
                if paused_at is None:
                    paused_at = time.monotonic()
                    self._pause()
                log.warning("insert into %s failed (%s); paused, retrying in %.1f s",
                            table, str(exc).splitlines()[0][:200], delay)
                self._wait(delay)
                delay = min(delay * 2, self.settings.sink_retry_max_s)
                continue
            self.stats.rows_written += len(rows)
            pending.pop(0)  # parts already written are never written again
            failed_before = False
        if paused_at is not None:
            self.stats.paused_s += time.monotonic() - paused_at
            self._resume()
            log.info("ClickHouse is back; resumed after %.1f s", time.monotonic() - paused_at)

    def _wait(self, seconds: float) -> None:
        consumer = self._consumer
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if consumer is not None and hasattr(consumer, "assignment"):
                try:  # paused: returns nothing, but keeps this member in the group
                    consumer.poll(timeout_ms=100, max_records=1, update_offsets=False)
                except TypeError:
                    consumer.poll(timeout_ms=100)
                except Exception as exc:
                    log.debug("poll while paused: %s", exc)
                    self._sleep(0.1)
            else:
                self._sleep(min(0.1, seconds))

    def _pause(self) -> None:
        consumer = self._consumer
        if consumer is not None and hasattr(consumer, "pause"):
            consumer.pause(*consumer.assignment())

    def _resume(self) -> None:
        consumer = self._consumer
        if consumer is not None and hasattr(consumer, "resume"):
            consumer.resume(*consumer.paused())

    def _commit(self, offsets: dict[Any, int]) -> None:
        if not offsets or self._consumer is None:
            return
        from kafka import OffsetAndMetadata, TopicPartition

        try:
            self._consumer.commit({TopicPartition(tp.topic, tp.partition):
                                   OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()})
        except Exception as exc:  # e.g. a rebalance took the partitions: they are re-read
            log.warning("offset commit failed (%s); the records will be read again and "
                        "deduplicated", exc)

    def close(self) -> None:
        self.close_consumer()
        if self._producer is not None:
            self._producer.close()


def replay(db: Database, envelopes: Sequence[Envelope], batch_size: int = 1000,
           short_abandon_ms: int = 5000, call_log: CallLog | None = None) -> CallLog:
    """Write `envelopes` through the sink's fold and writer, batch by batch, in the order
    given (no Kafka): for tests, backfills and the benchmark. Returns the call log."""
    store = ClickHouseStore(db)
    call_log = call_log or CallLog(store, short_abandon_ms)
    for i in range(0, len(envelopes), batch_size):
        chunk = [Record("replay", 0, i + j, e) for j, e in enumerate(envelopes[i:i + batch_size])]
        for table, columns, rows in call_log.prepare(chunk).parts():
            if rows:
                store.write(table, columns, rows)
    return call_log
