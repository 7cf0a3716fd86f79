"""`tongdai whatif`: a past period replayed through the router with another configuration.

    tongdai whatif --tenant demo --from 2026-11-23T08:00+07:00 --to 2026-11-23T12:00+07:00 \\
        --config other.yaml [--json]

What it reads: the tenant's log on Kafka — the router's facts (`tongdai.cc.events.v1`:
callers entering queues, answered, abandoned, ended; agents' states) and its commands
(`tongdai.cc.commands.v1`: the configuration as it was applied).

What it replays: every caller of the period arrives when it did, in the queue it entered,
with its priority, VIP flag and skills; every agent logs in, out, pauses and resumes when
they did. The routing decisions come from the router's own pure policy (`routing.step`),
once with the configuration that was in force (a check of the replay itself) and once
with `--config` (a `config apply` file: its queues, agents and tenant settings replace
those of the log; what it does not name stays as it was).

What it cannot know, and assumes (printed with the results as caveats):
- a caller who hung up waited exactly as long as it would wait again; a caller who was
  answered would have waited for ever (their patience was never tested);
- a call talks as long as it did; a call never answered talks its queue's mean;
- a phone rings as long as its agent's median ring before answering, and is always answered;
- pauses the router imposed (max ring-no-answer) are not replayed; an agent the other
  configuration adds, with no history, is logged in and ready the whole period;
- configuration changes made during the period count from its start.
"""
from __future__ import annotations

import argparse
import datetime as dt
import heapq
import itertools
import json
import statistics
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import routing
from routing import decisions as d
from routing import events as e
from routing import model as m
from routing.state import CallStatus, State

US = 1_000_000
TICK_US = US
DRAIN_US = 3600 * US  # callers still in queue at the end are followed this much longer
DEFAULT_RING_US = 3 * US
DEFAULT_TALK_US = 180 * US
ROUTER_KINDS = ("tenant", "queue", "agent", "did")

CAVEATS = (
    "callers who hung up are replayed with the patience they showed; answered callers "
    "never give up (their patience was never tested)",
    "calls talk as long as they did; calls never answered talk their queue's mean",
    "phones ring for their agent's median ring time and are always answered",
    "agents log in, out, pause and resume as they did (router-imposed pauses excepted); "
    "agents only the other configuration has are ready the whole period",
    "configuration changes made during the period count from its start",
)


# ---------------------------------------------------------------------------- the log ---

@dataclass
class Caller:
    call_id: str
    at_us: int
    queue: str
    caller: str = ""
    did: str = ""
    priority: int = 0
    vip: bool = False
    skills: Mapping[str, int] = field(default_factory=dict)
    language: str | None = None
    region: str | None = None
    # What happened
    answered: bool = False
    abandoned: bool = False
    overflowed: bool = False
    wait_ms: int | None = None
    talk_us: int | None = None


@dataclass
class History:
    tenant: str
    start_us: int
    end_us: int
    config: dict[tuple[str, str], dict[str, Any]]  # in force (last record up to the end)
    callers: list[Caller]
    agent_events: list[tuple[int, str, str, str]]  # (at, agent, kind, reason)
    logged_at_start: dict[str, str]  # agent -> its state when the period began
    ring_us: dict[str, int]  # agent -> median ring before answering


def history(records: Iterable[Any], tenant: str, start_us: int, end_us: int) -> History:
    """What the log says of [start, end): the configuration, the callers and what became of
    them, the agents' logins and pauses. ``records`` are envelopes of either topic, any
    order within a topic's time order."""
    config: dict[tuple[str, str], dict[str, Any]] = {}
    callers: dict[str, Caller] = {}
    states: dict[str, list[tuple[int, str, str]]] = {}
    rings: dict[str, list[int]] = {}
    seen: set[str] = set()
    for env in records:
        if env.tenant != tenant or env.event_id in seen:
            continue  # at-least-once: a record written twice is one fact
        seen.add(env.event_id)
        p, at = env.payload, env.occurred_at
        if env.type == "config_changed":
            if at < end_us:
                config[(p["kind"], p["entity_id"])] = p["data"]
            continue
        if env.type == "agent_state_changed":
            states.setdefault(p["agent_id"], []).append((at, p["state"], p.get("reason") or ""))
            continue
        if not (start_us <= at < end_us + DRAIN_US) or not env.call_id:
            continue
        c = callers.get(env.call_id)
        if env.type == "call_enqueued":
            if c is None and at < end_us:
                callers[env.call_id] = Caller(
                    env.call_id, at, p["queue"], p.get("caller") or "", p.get("did") or "",
                    int(p.get("priority") or 0), bool(p.get("vip")), dict(p.get("skills") or {}),
                    p.get("language"), p.get("region"))
        elif c is None:
            continue
        elif env.type == "call_answered":
            c.answered, c.wait_ms = True, int(p["wait_ms"])
            rings.setdefault(p["agent_id"], []).append(int(p["ring_ms"]) * 1000)
        elif env.type == "call_abandoned" and not c.answered:
            c.abandoned, c.wait_ms = True, int(p["wait_ms"])
        elif env.type == "call_overflowed" and not c.answered:
            c.overflowed = True
        elif env.type == "call_ended" and c.answered:
            c.talk_us = int(p["talk_ms"]) * 1000
    events: list[tuple[int, str, str, str]] = []
    at_start: dict[str, str] = {}
    for agent, seq in states.items():
        seq.sort(key=lambda x: x[0])  # stable: same-instant changes keep their log order
        prev = "logged_out"
        for at, state, reason in seq:
            if at < start_us:
                prev = state
                continue
            if at >= end_us:
                break
            events += _transitions(at, agent, prev, state, reason)
            prev = state
        at_start[agent] = next((s for a, s, _ in reversed(seq) if a < start_us), "logged_out")
    all_rings = [r for rs in rings.values() for r in rs]
    default_ring = int(statistics.median(all_rings)) if all_rings else DEFAULT_RING_US
    ring_us = {a: int(statistics.median(rs)) for a, rs in rings.items()}
    ring_us["*"] = default_ring
    return History(tenant, start_us, end_us, config,
                   sorted(callers.values(), key=lambda c: (c.at_us, c.call_id)),
                   sorted(events), at_start, ring_us)


def _transitions(at: int, agent: str, prev: str, state: str,
                 reason: str) -> list[tuple[int, str, str, str]]:
    """The agent's own actions in a state change (the rest is routing's doing)."""
    out = []
    if state == "logged_out" and prev != "logged_out":
        return [(at, agent, "logout", "")]
    if prev == "logged_out" and state != "logged_out":
        out.append((at, agent, "login", ""))
    if state == "paused" and prev != "paused" and not reason.startswith("max_"):
        out.append((at, agent, "pause", reason or "break"))
    elif prev == "paused" and state not in ("paused", "logged_out"):
        out.append((at, agent, "resume", ""))
    return out


# --------------------------------------------------------------------------- replay ---

@dataclass
class Outcome:
    call_id: str
    queue: str
    answered: bool = False
    abandoned: bool = False
    overflowed: bool = False
    wait_ms: int | None = None


def entities(tenant: str, config: Mapping[tuple[str, str], Mapping[str, Any] | None]) -> list:
    """The routing model's values of the configuration records the router uses."""
    from streams.config import entity

    out = []
    for (kind, entity_id), data in sorted(config.items(), key=lambda kv: (
            ROUTER_KINDS.index(kv[0][0]) if kv[0][0] in ROUTER_KINDS else 99, kv[0][1])):
        if kind in ROUTER_KINDS and data is not None:
            value = entity(kind, tenant, entity_id, data)
            if value is not None:
                out.append(value)
    return out


def replay(h: History, config: Mapping[tuple[str, str], Mapping[str, Any] | None]) -> dict[str, Outcome]:
    """Route the period's callers again with ``config``: the router's pure policy decides,
    the history (and the caveats' assumptions) plays everyone else. Deterministic."""
    values = entities(h.tenant, config)
    agents_now = {v.id for v in values if isinstance(v, m.Agent)}
    queue_talk: dict[str, list[int]] = {}
    for c in h.callers:
        if c.talk_us is not None:
            queue_talk.setdefault(c.queue, []).append(c.talk_us)
    mean_talk = {q: sum(v) // len(v) for q, v in queue_talk.items()}
    seq = itertools.count()
    heap: list[tuple[int, int, str, Any]] = []

    def at(t: int, kind: str, data: Any) -> None:
        heapq.heappush(heap, (t, next(seq), kind, data))

    t0 = h.start_us - 1
    state = State()
    for v in values:
        state = routing.apply(state, e.ConfigChanged(at_us=t0, entity=v))
    with_history = set(h.logged_at_start) | {a for _, a, _, _ in h.agent_events}
    for agent in sorted(agents_now):
        was = h.logged_at_start.get(agent, "logged_out")
        if was != "logged_out" or agent not in with_history:
            state = routing.apply(state, e.AgentLoggedIn(at_us=t0, agent_id=agent))
            state = routing.apply(state, e.AgentRegistered(at_us=t0, agent_id=agent))
            if was == "paused":
                state = routing.apply(state, e.AgentPaused(at_us=t0, agent_id=agent,
                                                           reason="break"))
    for ev in h.agent_events:
        at(ev[0], "agent", ev)
    talk: dict[str, int] = {}
    out: dict[str, Outcome] = {}
    for c in h.callers:
        at(c.at_us, "call", c)
        out[c.call_id] = Outcome(c.call_id, c.queue)
        talk[c.call_id] = c.talk_us if c.talk_us is not None else mean_talk.get(
            c.queue, DEFAULT_TALK_US)
        if c.abandoned and c.wait_ms is not None:
            at(c.at_us + c.wait_ms * 1000, "abandon", c.call_id)
    enqueued: dict[str, int] = {}
    t = h.start_us
    end = h.end_us + DRAIN_US
    while t <= end:
        at(t, "tick", None)
        t += TICK_US

    def feed(event: e.Event) -> None:
        nonlocal state
        before = state
        state, decisions = routing.step(state, event)
        for dec in decisions:
            _decided(dec, before, event.at_us)

    def _decided(dec: d.Decision, before: State, now: int) -> None:
        if isinstance(dec, (d.OfferCall, d.ForwardToMobile)):
            ring = h.ring_us.get(dec.agent_id, h.ring_us["*"])
            at(now + ring, "answer", dec)
        elif isinstance(dec, (d.OverflowCall, d.RunAfterHoursAction)):
            if dec.call_id not in state.calls and dec.call_id in out:
                out[dec.call_id].overflowed = True

    while heap:
        now, _, kind, data = heapq.heappop(heap)
        if kind == "tick":
            if now > h.end_us and not state.calls:
                break
            feed(e.Tick(at_us=now))
        elif kind == "call":
            c = data
            call = m.Call(id=c.call_id, tenant=h.tenant, queue=c.queue, caller=c.caller,
                          did=c.did, priority=c.priority, vip=c.vip,
                          skills=tuple(m.SkillReq(k, v) for k, v in sorted(c.skills.items())),
                          language=c.language, region=c.region)
            enqueued[c.call_id] = now
            feed(e.CallEnqueued(at_us=now, call=call))
        elif kind == "abandon":
            cs = state.calls.get(data)
            if cs is not None and cs.status in (CallStatus.WAITING, CallStatus.RINGING):
                o = out[data]
                o.abandoned, o.wait_ms = True, (now - enqueued[data]) // 1000
                feed(e.CallAbandoned(at_us=now, call_id=data))
        elif kind == "answer":
            dec = data
            cs = state.calls.get(dec.call_id)
            if cs is None or cs.status not in (CallStatus.WAITING, CallStatus.RINGING,
                                               CallStatus.CONNECTING):
                continue
            if isinstance(dec, d.OfferCall):
                if dec.offer_id not in state.offers:
                    continue
                feed(e.OfferBridged(at_us=now, offer_id=dec.offer_id))
            else:
                feed(e.CallConnected(at_us=now, call_id=dec.call_id))
            cs = state.calls.get(dec.call_id)
            if cs is not None and cs.status == CallStatus.CONNECTED:
                o = out[dec.call_id]
                o.answered, o.wait_ms = True, (now - enqueued[dec.call_id]) // 1000
                at(now + talk[dec.call_id], "end", dec.call_id)
        elif kind == "end":
            feed(e.CallEnded(at_us=now, call_id=data))
        elif kind == "agent":
            _, agent, what, reason = data
            if agent not in agents_now:
                continue
            if what == "login":
                feed(e.AgentLoggedIn(at_us=now, agent_id=agent))
                feed(e.AgentRegistered(at_us=now, agent_id=agent))
            elif what == "logout":
                feed(e.AgentLoggedOut(at_us=now, agent_id=agent))
            elif what == "pause":
                feed(e.AgentPaused(at_us=now, agent_id=agent, reason=reason))
            elif what == "resume":
                feed(e.AgentResumed(at_us=now, agent_id=agent))
    return out


# ----------------------------------------------------------------------------- KPIs ---

def kpis(outcomes: Iterable[Outcome], sl_s: Mapping[str, int], short_s: Mapping[str, int]
         ) -> dict[str, dict[str, Any]]:
    """Per queue and in total, the DESIGN's KPIs: offered, answered, abandoned, short
    abandons, overflowed, service level, ASA, abandonment rate."""
    acc: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        for key in (o.queue, "*"):
            a = acc.setdefault(key, {"offered": 0, "answered": 0, "abandoned": 0,
                                     "short_abandoned": 0, "overflowed": 0, "within": 0,
                                     "wait_ms": 0})
            a["offered"] += 1
            sl = sl_s.get(o.queue, 20)
            if o.answered:
                a["answered"] += 1
                a["wait_ms"] += o.wait_ms or 0
                a["within"] += (o.wait_ms or 0) <= sl * 1000
            elif o.abandoned:
                a["abandoned"] += 1
                a["short_abandoned"] += (o.wait_ms or 0) < short_s.get(o.queue, 5) * 1000
            elif o.overflowed:
                a["overflowed"] += 1
    out = {}
    for key, a in acc.items():
        base = a["offered"] - a["short_abandoned"]
        out[key] = {
            "offered": a["offered"], "answered": a["answered"], "abandoned": a["abandoned"],
            "short_abandoned": a["short_abandoned"], "overflowed": a["overflowed"],
            "service_level": round(a["within"] / base, 3) if base else None,
            "asa_s": round(a["wait_ms"] / a["answered"] / 1000, 1) if a["answered"] else None,
            "abandonment_rate": round((a["abandoned"] - a["short_abandoned"]) / base, 3)
            if base else None}
    return out


def happened(h: History) -> list[Outcome]:
    return [Outcome(c.call_id, c.queue, c.answered, c.abandoned, c.overflowed, c.wait_ms)
            for c in h.callers]


def compare(h: History, other: Mapping[tuple[str, str], Mapping[str, Any] | None]) -> dict:
    """The three columns: what happened, the replay as configured, the replay with ``other``
    (merged over the configuration in force)."""
    merged = {**h.config, **other}
    sl = {eid: int((data or {}).get("sl_threshold_s") or 20)
          for (kind, eid), data in merged.items() if kind == "queue"}
    short = {eid: int((data or {}).get("short_abandon_s") or 5)
             for (kind, eid), data in merged.items() if kind == "queue"}
    return {"happened": kpis(happened(h), sl, short),
            "replayed": kpis(replay(h, h.config).values(), sl, short),
            "what_if": kpis(replay(h, merged).values(), sl, short),
            "callers": len(h.callers), "caveats": list(CAVEATS)}


# ------------------------------------------------------------------------------ CLI ---

def read_log(bootstrap: str, tenant: str, partitions: int) -> list[Any]:
    """Every record of the tenant's partition of the facts and commands topics, up to now."""
    from kafka import KafkaConsumer, TopicPartition

    from routing.contract import DecodeError, decode, topics
    from streams.app import _partition_of

    part = _partition_of(tenant, partitions)
    tps = [TopicPartition(t, part) for t in (topics.CC_COMMANDS, topics.CC_EVENTS)]
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=10_000)
    rows: list[Any] = []
    try:
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, batch in consumer.poll(timeout_ms=500).items():
                for r in batch:
                    if r.offset >= ends[tp]:
                        continue
                    try:
                        env = decode(r.value)
                    except DecodeError:
                        continue
                    if env.tenant == tenant and env.type != "tick":
                        rows.append(env)
    finally:
        consumer.close()
    return rows


def _instant(text: str, name: str) -> int:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"tongdai whatif: --{name} {text!r}: not an ISO time "
                         "(e.g. 2026-11-23T08:00+07:00)") from None
    if moment.tzinfo is None:
        raise SystemExit(f"tongdai whatif: --{name} {text!r}: give the UTC offset (+07:00)")
    return int(moment.timestamp() * US)


def load_config(path: str, tenant: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The router's entities of a `config apply` file, checked as the worker reads them."""
    import yaml

    from api.config.apply import FileError, parse
    from streams.config import ConfigError, entity

    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
        file_tenant, items = parse(doc)
    except (OSError, yaml.YAMLError, FileError) as exc:
        raise SystemExit(f"tongdai whatif: --config {path}: {exc}") from None
    if file_tenant != tenant:
        raise SystemExit(f"tongdai whatif: --config {path}: its tenant is {file_tenant!r}, "
                         f"not {tenant!r}")
    out = {}
    for kind, entity_id, data in items:
        if kind in ROUTER_KINDS:
            try:
                entity(kind, tenant, entity_id, data)
            except ConfigError as exc:
                raise SystemExit(f"tongdai whatif: --config {path}: {exc}") from None
            out[(kind, entity_id)] = data
    return out


def table(result: dict) -> str:
    rows = [("offered", "offered"), ("answered", "answered"), ("abandoned", "abandoned"),
            ("short_abandoned", "short abandons"), ("overflowed", "overflowed"),
            ("service_level", "service level"), ("asa_s", "ASA (s)"),
            ("abandonment_rate", "abandonment rate")]
    lines = [f"{'queue':<12}{'KPI':<18}{'happened':>10}{'replayed':>10}{'what-if':>10}"]
    queues = sorted(set(result["happened"]) | set(result["what_if"]), key=lambda q: (q == "*", q))
    if len(queues) == 2:
        queues = queues[:1]  # one queue: its rows are the totals

    def cell(v: Any) -> str:
        return "–" if v is None else (f"{v:.1%}" if isinstance(v, float) and v <= 1 and
                                      not isinstance(v, int) else str(v))

    for q in queues:
        for i, (key, label) in enumerate(rows):
            vals = [result[col].get(q, {}).get(key) for col in ("happened", "replayed", "what_if")]
            if key == "asa_s":
                shown = ["–" if v is None else f"{v:.1f}" for v in vals]
            else:
                shown = [cell(v) for v in vals]
            name = ("all" if q == "*" else q) if i == 0 else ""
            lines.append(f"{name:<12}{label:<18}" + "".join(f"{s:>10}" for s in shown))
    lines.append("")
    lines.append("happened: the log's facts; replayed: the same callers and agents through the "
                 "router's policy with the configuration in force (how far the replay itself "
                 "is from what happened); what-if: with --config.")
    lines.append("Caveats (agent and caller behaviour replayed from history):")
    lines += [f"- {c}" for c in result["caveats"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tongdai whatif", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--from", dest="start", required=True, help="ISO time with offset")
    parser.add_argument("--to", dest="end", required=True, help="ISO time with offset")
    parser.add_argument("--config", required=True, help="a `config apply` file")
    parser.add_argument("--json", action="store_true", help="the figures as one JSON object")
    args = parser.parse_args(argv)
    start, end = _instant(args.start, "from"), _instant(args.end, "to")
    if end <= start:
        raise SystemExit("tongdai whatif: --to must be after --from")
    other = load_config(args.config, args.tenant)
    import os

    from streams.settings import load as worker_settings

    settings = worker_settings(os.environ if environ is None else environ)
    records = read_log(settings.kafka_bootstrap, args.tenant, settings.topic_partitions)
    h = history(records, args.tenant, start, end)
    if not h.callers:
        print(f"tongdai whatif: no caller entered a queue of {args.tenant} in that period",
              file=sys.stderr)
        return 1
    result = compare(h, other)
    print(json.dumps(result) if args.json else table(result))
    return 0
