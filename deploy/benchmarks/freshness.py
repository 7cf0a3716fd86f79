"""freshness: event-to-screen latency of the live wallboard in a real browser (goal p95 < 2 s).

The whole path runs for real: the ESL simulator (in this process) → `tongdai bridge` →
Kafka → `tongdai worker` (a fresh consumer group) → the live topic → `tongdai api`
(gunicorn, SSE) → api/web/static/wallboard.html in Debian's headless Chromium driven by
Playwright. A fresh tenant has a queue without agents, so callers wait, and six agents in
another queue, so their tiles change only when the benchmark changes them. Kinds of sample:

- `call_waiting`: a caller is parked in the queue (CHANNEL_PARK) → their row appears in the
  calls table. Every caller has a unique number, which the table shows.
- `call_gone`: the caller hangs up while waiting (CHANNEL_HANGUP) → their row disappears.
- `agent_registration`: an agent's phone registers or unregisters (sofia::register /
  sofia::unregister) → the agent's tile turns available / offline.
- `agent_pause`: a supervisor pauses or resumes an agent through the API → the tile turns
  paused / available. Not a FreeSWITCH event: it starts when the POST is sent.

The event's time is FreeSWITCH's `Event-Date-Timestamp` as the simulator stamps it (its
clock is the wall clock); the screen time is `Date.now()` in the page at the first
animation frame after a MutationObserver (installed before the page's own script) saw the
change in the DOM. Browser and simulator run on the same machine, so both are read from
the same system clock and compare directly. Where the time goes comes from the Kafka
record timestamps (CreateTime: the producer's clock, the same one): `ingest` event →
the bridge's (or API's) record, `route` → the worker's fact (call_enqueued, agent_state_
changed…), `publish` → the first live view that shows it (the worker republishes the view
on its tick), `deliver` → the DOM changed (API follower, SSE, parse, render), `paint` →
the next animation frame. Samples are spaced at random, so their phase against the
worker's tick is uniform.

Calls and agent changes are paced at random (calls every 0.3–0.9 s, waiting 2–4 s; an
agent change every 0.5–1.2 s, each agent changed again only once its last change is on
screen); a sample never shown within 8 s counts as missed (and as over the goal).
Needs the local stack (`tongdai stack up`) and /usr/bin/chromium. The worker and the API
read the shared topics, so other traffic on the stack is routed and followed by them too.
Any other worker on the stack (tests, `tongdai up`) also publishes its own view of this
tenant, and the API shows whichever view is newest, so samples are timed by our worker's
views only: the page notes which view (`as_of_us`) was on screen at each change and when
every view arrived over SSE (the SSE id is the view's `as_of_us`). When another worker's
view changed the DOM first, the sample is timed from the arrival of our first view that
shows it to the next frame (`*_timed_by_arrival_count`); if ours never reached the page
it is left out (`*_excluded_count`; `live_publishers_count` says how many published).
Callers such a worker hung up before their patience ran out are left out too
(`calls_cut_count`); the queues' configuration is re-sent every 3 s so that a worker
joining later knows them and does not.
Options: --seconds N (120; 20 with --quick), --live-s S (how often the worker publishes a
changed live view; default: its own, 0.25 s), --tick-s S (the worker's tick), --seed N.
"""
from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._common import cpu_s, end_offsets, free_port, pct, wait_log

GOAL_P95_MS = 2000.0
MISSED_AFTER_S = 8.0
KINDS = ("call_waiting", "call_gone", "agent_registration", "agent_pause")
STAGES = ("ingest", "route", "publish", "deliver", "paint")
SECRET = "bench-freshness-" + "f" * 32
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# Runs before the page's own script: stamps, per caller number and per agent tile state,
# when the DOM first showed it and the first animation frame after that (the screen).
OBSERVER_JS = r"""
(() => {
  // rows / gone: number -> [as_of_us of the view shown, DOM ms, frame ms];
  // agents: [agent, state, as_of_us, DOM ms, frame ms] per change of a tile.
  // arrivals: as_of_us of every live view the SSE stream brought -> [arrival ms, frame ms].
  const f = window.__fresh = {rows: {}, gone: {}, agents: [], last: {}, arrivals: {}};
  let pending = [], frameAsked = false;
  const stamp = (entry) => {
    pending.push(entry);
    if (!frameAsked) {
      frameAsked = true;
      requestAnimationFrame(() => {
        const t = Date.now();
        for (const e of pending) e.push(t);
        pending = []; frameAsked = false;
      });
    }
  };
  const scan = () => {
    const now = Date.now(), asOf = (document.body && document.body.dataset.asOf) || "";
    const calls = document.getElementById("calls");
    if (calls) {
      const present = new Set();
      for (const tr of calls.querySelectorAll("tr")) {
        const td = tr.querySelector("td");
        if (!td) continue;
        const key = td.textContent.replace(/\D/g, "").slice(-8);
        present.add(key);
        if (!(key in f.rows)) { f.rows[key] = [asOf, now]; stamp(f.rows[key]); }
      }
      for (const key in f.rows)
        if (!present.has(key) && !(key in f.gone)) {
          f.gone[key] = [asOf, now]; stamp(f.gone[key]);
        }
    }
    const agents = document.getElementById("agents");
    if (agents) for (const el of agents.querySelectorAll(".agent")) {
      const name = el.querySelector(".name");
      const cls = [...el.classList].find((c) => c.startsWith("st-"));
      if (!name || !cls) continue;
      const id = name.firstChild.textContent.trim(), st = cls.slice(3);
      if (f.last[id] !== st) {
        f.last[id] = st;
        const entry = [id, st, asOf, now];
        f.agents.push(entry); stamp(entry);
      }
    }
  };
  new MutationObserver(scan).observe(document, {childList: true, subtree: true,
                                                characterData: true});
  // Our listener is added before the page's: it runs first; the page renders in its own.
  const NativeEventSource = window.EventSource;
  window.EventSource = class extends NativeEventSource {
    constructor(url, options) {
      super(url, options);
      this.addEventListener("live", (ev) => {
        const entry = [Date.now()];  // the SSE id is the view's as_of_us
        f.arrivals[ev.lastEventId] = entry; stamp(entry);
      });
    }
  };
})();
"""


# ---------------------------------------------------------------- pure analysis (tested)

@dataclass
class Sample:
    """One change that must reach the screen."""

    kind: str
    event_us: int  # Event-Date-Timestamp (agent_pause: when the POST was sent)
    call_id: str | None = None
    number: str | None = None  # the caller's number (call kinds)
    agent_id: str | None = None
    extension: str | None = None
    state: str | None = None  # the tile's state after the change (agent kinds)


def shown(sample: Sample, page: dict[str, Any]) -> tuple[int | None, float, float] | None:
    """How the page showed the sample: (as_of_us of the live view on screen, epoch ms of
    the DOM change, epoch ms of the next animation frame), or None if it never did."""
    if sample.kind in ("call_waiting", "call_gone"):
        entry = (page["rows"] if sample.kind == "call_waiting" else page["gone"]).get(
            (sample.number or "")[-8:])
        if not entry:
            return None
        as_of, dom, *frame = entry
    else:
        after = sample.event_us / 1000 - 1  # Date.now() is whole ms
        for agent_id, state, as_of, dom, *frame in page["agents"]:
            if agent_id == sample.agent_id and state == sample.state and dom >= after:
                break
        else:
            return None
    return (int(as_of) if as_of else None, float(dom), float(frame[0] if frame else dom))


def _ingested(s: Sample, env: dict) -> bool:
    p, t = env.get("payload") or {}, env["type"]
    if s.kind == "call_waiting":
        return t == "channel_parked" and env.get("call_id") == s.call_id and not p.get("offer_id")
    if s.kind == "call_gone":
        return t == "channel_hungup" and env.get("call_id") == s.call_id
    if s.kind == "agent_registration":
        want = "sip_registered" if s.state == "available" else "sip_unregistered"
        return t == want and p.get("extension") == s.extension
    want = "agent_pause_requested" if s.state == "paused" else "agent_resume_requested"
    return t == want and p.get("agent_id") == s.agent_id


def _routed(s: Sample, env: dict) -> bool:
    p, t = env.get("payload") or {}, env["type"]
    if s.kind == "call_waiting":
        return t == "call_enqueued" and env.get("call_id") == s.call_id
    if s.kind == "call_gone":
        return t == "call_abandoned" and env.get("call_id") == s.call_id
    return t == "agent_state_changed" and p.get("agent_id") == s.agent_id and \
        p.get("state") == s.state


def _shown_in_view(s: Sample, view: dict) -> bool:
    if s.kind in ("call_waiting", "call_gone"):
        present = any(c.get("call_id") == s.call_id for c in view.get("calls") or ())
        return present if s.kind == "call_waiting" else not present
    return any(a.get("agent_id") == s.agent_id and a.get("state") == s.state
               for a in view.get("agents") or ())


def stage_marks(s: Sample, records: list[tuple[str, float, dict]],
                own: str | None = None) -> dict[str, float]:
    """Epoch-ms marks of the sample on its way: `ingested` (the bridge's or API's record),
    `routed` (a worker's fact), `published` (the first live view showing it; ours if
    `own` names our worker), and that view's `as_of_us`. `records` are (topic kind:
    "in" | "fact" | "live", Kafka timestamp ms, envelope) in log order."""
    after = s.event_us / 1000 - 1
    marks: dict[str, float] = {}
    for kind, ts, env in records:
        if ts < after or (kind == "live" and own is not None and env.get("source") != own):
            continue
        if kind == "in" and "ingested" not in marks and _ingested(s, env):
            marks["ingested"] = ts
        elif kind == "fact" and "routed" not in marks and _routed(s, env):
            marks["routed"] = ts
        elif kind == "live" and "published" not in marks and _shown_in_view(s, env["payload"]):
            marks["published"] = ts
            marks["as_of_us"] = env["payload"].get("as_of_us")
    return marks




def figures_of(samples: list[Sample], page: dict[str, Any],
               records: list[tuple[str, float, dict]],
               own: str | None = None) -> dict[str, float]:
    """Per kind: event-to-screen p50/p95/max, samples, missed, share under the goal, and
    the p50/p95 of each stage; overall p95 and the goal's verdict.

    With `own` (our worker's name), a sample is timed by our worker's views only: any
    other worker consuming the shared topics (tests on the same stack) publishes its own
    view of every tenant it sees, and the API shows whichever is newest. When another's
    view changed the DOM first, the sample is timed from the arrival of our first view
    showing it to the next frame (`timed_by_arrival`); if ours never reached the page
    (the API already held a newer one), it is excluded."""
    source_of = {env["payload"].get("as_of_us"): env.get("source")
                 for kind, _, env in records if kind == "live"}
    out: dict[str, float] = {}
    everything: list[float] = []
    missed_all = excluded_all = kinds_met = kinds_seen = 0
    for kind in KINDS:
        every = [s for s in samples if s.kind == kind]
        if not every:
            continue
        totals: list[float] = []
        stages: dict[str, list[float]] = {st: [] for st in STAGES}
        missed = excluded = traced = via_arrival = 0
        for s in every:
            event = s.event_us / 1000
            seen = shown(s, page)
            m = stage_marks(s, records, own)
            if own is not None and (seen is None or source_of.get(seen[0]) != own):
                # Another worker's view showed it first (or hid it): time ours, from the
                # arrival of our first view that shows it to the frame after it rendered.
                arrived = (page.get("arrivals") or {}).get(str(m.get("as_of_us")))
                if arrived:
                    seen = (m["as_of_us"], float(arrived[0]), float(arrived[-1]))
                    via_arrival += 1
                elif seen is not None:  # ours never reached the page (the API had newer)
                    excluded += 1
                    continue
            if seen is None or seen[2] - event > MISSED_AFTER_S * 1000:
                missed += 1
                continue
            _as_of, dom, frame = seen
            totals.append(frame - event)
            if {"ingested", "routed", "published"} <= m.keys():
                traced += 1
                chain = [event, m["ingested"], m["routed"], m["published"], dom, frame]
                for st, a, b in zip(STAGES, chain, chain[1:]):
                    stages[st].append(b - a)
        counted = len(every) - excluded
        everything += totals
        missed_all += missed
        excluded_all += excluded
        out[f"{kind}_samples_count"] = counted
        out[f"{kind}_excluded_count"] = excluded
        out[f"{kind}_timed_by_arrival_count"] = via_arrival
        if not counted:
            continue
        kinds_seen += 1
        under = sum(1 for t in totals if t < GOAL_P95_MS)
        out[f"{kind}_p50_ms"] = round(pct(totals, 0.50), 1)
        out[f"{kind}_p95_ms"] = round(pct(totals, 0.95), 1)
        out[f"{kind}_max_ms"] = round(max(totals, default=0.0), 1)
        out[f"{kind}_missed_count"] = missed
        out[f"{kind}_under_goal_pct"] = round(100.0 * under / counted, 1)
        out[f"{kind}_traced_count"] = traced  # shown samples found at every stage in Kafka
        for st in STAGES:
            out[f"{kind}_{st}_p50_ms"] = round(pct(stages[st], 0.50), 1)
            out[f"{kind}_{st}_p95_ms"] = round(pct(stages[st], 0.95), 1)
        # A missed sample counts as over the goal.
        kinds_met += pct(totals + [float("inf")] * missed, 0.95) < GOAL_P95_MS
    out["all_p50_ms"] = round(pct(everything, 0.50), 1)
    out["all_p95_ms"] = round(pct(everything, 0.95), 1)
    out["all_max_ms"] = round(max(everything, default=0.0), 1)
    out["all_samples_count"] = len(samples) - excluded_all
    out["all_excluded_count"] = excluded_all
    out["all_missed_count"] = missed_all
    out["goal_p95_ms"] = GOAL_P95_MS
    out["kinds_count"] = kinds_seen
    out["kinds_meeting_goal_count"] = kinds_met
    return out


# ---------------------------------------------------------------- the run

class Probe:
    """Event times as the simulated FreeSWITCH stamps them (Event-Date-Timestamp, µs)."""

    def __init__(self, node) -> None:
        self.lock = threading.Lock()
        self.parked: dict[str, int] = {}
        self.hungup: dict[str, int] = {}
        self.registrations: list[tuple[str, str, int]] = []  # (extension, subclass, µs)
        node.listeners.append(self._on_event)

    def _on_event(self, event) -> None:
        h = event.headers
        name = event.name  # "CUSTOM sofia::register" for custom events
        if name not in ("CHANNEL_PARK", "CHANNEL_HANGUP") and not name.startswith("CUSTOM"):
            return
        at = int(h.get("Event-Date-Timestamp") or 0)
        with self.lock:
            if name.startswith("CUSTOM"):
                sub = h.get("Event-Subclass", "")
                if sub in ("sofia::register", "sofia::unregister"):
                    ext = h.get("from-user") or h.get("username") or h.get("user") or ""
                    self.registrations.append((ext, sub, at))
            elif h.get("Call-Direction") == "inbound" and not h.get("variable_tongdai_offer_id"):
                target = self.parked if name == "CHANNEL_PARK" else self.hungup
                target.setdefault(h["Unique-ID"], at)

    def last_registration(self, ext: str) -> int | None:
        with self.lock:
            for e, _sub, at in reversed(self.registrations):
                if e == ext:
                    return at
        return None






def _http(port: int, method: str, path: str, token: str | None = None,
          body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()






def _read(bootstrap: str, start: dict, tenant: str) -> tuple[list[tuple[str, float, dict]],
                                                               set[str]]:
    """The tenant's records since `start`, as (in | fact | live, timestamp ms, envelope),
    sorted by timestamp; and who published its live views."""
    import orjson
    from kafka import KafkaConsumer

    from routing.contract import topics

    kind_of = {topics.FS_ROUTING: "in", topics.CC_COMMANDS: "in", topics.CC_EVENTS: "fact",
               topics.LIVE: "live"}
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False)
    consumer.assign(list(start))
    for tp, offset in start.items():
        consumer.seek(tp, offset)
    ends = consumer.end_offsets(list(start))
    out: list[tuple[str, float, dict]] = []
    publishers: set[str] = set()
    needle = tenant.encode()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in start):
        for tp, batch in consumer.poll(timeout_ms=500, max_records=20000).items():
            for r in batch:
                if r.key != needle and needle not in (r.value or b""):
                    continue
                env = orjson.loads(r.value)
                if env.get("tenant") != tenant:
                    continue
                kind = kind_of[tp.topic]
                if kind == "live":
                    publishers.add(str(env.get("source")))
                out.append((kind, float(r.timestamp), env))
    consumer.close()
    out.sort(key=lambda rec: rec[1])
    return out, publishers


class Agents:
    """The six agents whose tiles the benchmark changes, and what each should show next."""

    def __init__(self, registered: list[str], paused: list[str]) -> None:
        self.kind = {a: "agent_registration" for a in registered} | \
                    {a: "agent_pause" for a in paused}
        self.state = {a: "available" for a in self.kind}  # what it was last told to become
        self.changed_at = {a: 0.0 for a in self.kind}
        self.order = list(self.kind)
        self.next = 0

    def pick(self, shown: dict[str, str], now: float) -> str | None:
        """The next agent whose last change is on screen (or given up on)."""
        for i in range(len(self.order)):
            a = self.order[(self.next + i) % len(self.order)]
            if shown.get(a) == self.state[a] or now - self.changed_at[a] > MISSED_AFTER_S:
                self.next = (self.next + i + 1) % len(self.order)
                return a
        return None


def run(quick: bool = False, argv: list[str] | None = None) -> dict[str, float]:
    from kafka import KafkaProducer

    from api.auth import Tokens
    from deploy.local import settings as stack_settings
    from esl_bridge.simulator import Simulator
    from esl_bridge.simulator.model import AgentSpec, CallerSpec
    from routing.contract import Envelope, deterministic_id, encode, topics
    from routing.contract.edge import now_us

    parser = argparse.ArgumentParser(prog="tongdai bench freshness")
    parser.add_argument("--seconds", type=float, default=20.0 if quick else 120.0)
    parser.add_argument("--tick-s", type=float, default=None)
    parser.add_argument("--live-s", type=float, default=None)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args([a for a in argv or [] if a != "--"])
    if not Path(CHROMIUM).exists():
        raise RuntimeError("Debian's chromium is required (/usr/bin/chromium)")
    rng = random.Random(args.seed)
    stack = stack_settings.load()
    bootstrap = stack.kafka_bootstrap
    tenant = f"fresh-{uuid.uuid4().hex[:8]}.bench"
    tmp = tempfile.mkdtemp(prefix="tongdai-bench-freshness-")
    load_before = os.getloadavg()[0]

    # Call and node ids of their own (not from --seed): a simulator of another run with the
    # same ids would share the router's duplicate marks and the actuator's commands.
    sim = Simulator(port=0, password="bench", heartbeat=3600, domain=tenant,
                    seed=random.SystemRandom().randrange(1 << 62), core_uuid=str(uuid.uuid4()))
    sim.start()
    probe = Probe(sim.node)
    base = {**os.environ, "TONGDAI_KAFKA_BOOTSTRAP": bootstrap, "TONGDAI_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1"}
    logs = {name: f"{tmp}/{name}.log" for name in ("bridge", "worker", "api")}
    worker_env = {**base, "TONGDAI_APP_ID": f"bench-fresh-{uuid.uuid4().hex[:6]}",
                  "TONGDAI_WORKER_DATA_DIR": f"{tmp}/worker", "TONGDAI_START_FROM": "latest",
                  "TONGDAI_CONFIG_FROM": "latest"}
    if args.tick_s:
        worker_env["TONGDAI_TICK_INTERVAL_S"] = str(args.tick_s)
    if args.live_s:
        worker_env["TONGDAI_LIVE_INTERVAL_S"] = str(args.live_s)
    api_port = free_port()
    procs: dict[str, subprocess.Popen] = {}

    def spawn(name: str, kind: str, env: dict[str, str]) -> None:
        procs[name] = subprocess.Popen([sys.executable, "-m", "deploy.cli", kind], env=env,
                                       stdout=open(logs[name], "w"), stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    marks = end_offsets(bootstrap, [topics.FS_ROUTING, topics.CC_COMMANDS, topics.CC_EVENTS,
                                 topics.LIVE])
    samples: list[Sample] = []
    page_data: dict[str, Any] = {"rows": {}, "gone": {}, "agents": []}
    elapsed = 1.0
    cut = 0
    calls: dict[str, str] = {}  # call id -> the caller's number
    patience: dict[str, float] = {}
    cpu: dict[str, float] = {}
    registered = [f"r{i}" for i in range(1, 4)]
    pausing = [f"p{i}" for i in range(1, 4)]
    ext = {a: str(3000 + i) for i, a in enumerate(registered + pausing)}

    def send(topic: str, key: bytes, type_: str, payload: dict) -> None:
        now = now_us()
        env = Envelope(deterministic_id(type_, tenant, now, uuid.uuid4()), type_, 1, now,
                       tenant, "bench", None, None, payload)
        producer.send(topic, key=key, value=encode(env))

    try:
        spawn("bridge", "bridge", {
            **base, "TONGDAI_FREESWITCH": f"127.0.0.1:{sim.port}:bench",
            "TONGDAI_SPOOL_DIR": f"{tmp}/spool", "TONGDAI_ACTUATOR_STATE_DIR": f"{tmp}/act",
            "TONGDAI_BRIDGE_NAME": f"bench-{uuid.uuid4().hex[:6]}"})
        spawn("worker", "worker", worker_env)
        spawn("api", "api", {**base, "TONGDAI_API_TOKEN_SECRET": SECRET,
                             "TONGDAI_API_PORT": str(api_port),
                             **stack.clickhouse_environ()})
        wait_log(procs["worker"], logs["worker"], "Ready", timeout=120)
        wait_log(procs["bridge"], logs["bridge"], "subscribed", timeout=120)

        key = topics.tenant_key(tenant)
        for agent, number in ext.items():
            sim.add_agent(AgentSpec.parse({"ext": number, "domain": tenant,
                                           "register_at": None}))

        def configure_queues() -> None:
            """The tenant and its queues: one nobody serves (callers wait), one of the six
            agents. Also sent every few seconds during the run: another worker that
            joins the shared topics later would otherwise find the queue "not
            configured" and hang the callers up."""
            send(topics.CONFIG, topics.config_key(tenant, "tenant", tenant), "config_changed",
                 {"kind": "tenant", "entity_id": tenant, "data": {"domain": tenant}})
            for queue in ("support", "backoffice"):
                send(topics.CONFIG, topics.config_key(tenant, "queue", queue),
                     "config_changed", {"kind": "queue", "entity_id": queue,
                                        "data": {"strategy": "longest-idle-agent",
                                                 "wrapup_s": 1}})
            producer.flush()

        def configure() -> None:
            """Queues and agents, logged in. Sent again if the worker had not joined yet
            (idempotent)."""
            configure_queues()
            for agent, number in ext.items():
                send(topics.CONFIG, topics.config_key(tenant, "agent", agent),
                     "config_changed", {"kind": "agent", "entity_id": agent,
                                        "data": {"extension": number,
                                                 "queues": {"backoffice": {}}}})
                send(topics.CC_COMMANDS, key, "agent_login_requested", {"agent_id": agent})
            producer.flush()

        configure()
        for number in ext.values():
            sim.register(number, tenant)

        token = Tokens(SECRET, 3600).mint(tenant, "supervisor", "bench")[0]
        deadline = time.monotonic() + 120
        resend = time.monotonic() + 15
        import orjson

        while True:  # the API is up and its live view shows every agent available
            try:
                status, body = _http(api_port, "GET", "/api/v1/live", token)
                if status == 200:
                    view = orjson.loads(body)
                    if sorted(a["agent_id"] for a in view["agents"]
                              if a["state"] == "available") == sorted(ext):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or procs["api"].poll() is not None:
                raise RuntimeError(f"the API's live view never showed the agents; see {tmp}")
            if time.monotonic() > resend:
                configure()
                resend = time.monotonic() + 15
            time.sleep(0.3)

        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 950})
                page.add_init_script(OBSERVER_JS)
                page.goto(f"http://127.0.0.1:{api_port}/web/static/wallboard.html"
                          f"#token={token}")
                page.wait_for_function(
                    "Object.values(window.__fresh.last).filter(s => s === 'available')"
                    f".length === {len(ext)}", timeout=60_000)
                page.wait_for_timeout(1000)  # the SSE stream is open (the first view came by GET)

                agents = Agents(registered, pausing)
                first = 10_000_000 + rng.randrange(80_000_000)
                cpu0 = {n: cpu_s(procs[n].pid) for n in ("bridge", "worker")}
                started = time.monotonic()
                end = started + args.seconds
                next_call = started + rng.uniform(0.0, 0.5)
                next_agent = started + rng.uniform(0.0, 0.5)
                next_config = started + 3.0
                while time.monotonic() < end:
                    now = time.monotonic()
                    if now >= next_config:
                        configure_queues()
                        next_config = now + 3.0
                    if now >= next_call:
                        number = f"09{first + len(calls):08d}"
                        waits = round(rng.uniform(2.0, 4.0), 2)
                        call = sim.place_call(CallerSpec.parse({
                            "at": 0, "number": number, "did": "19001234", "patience": waits,
                            "variables": {"tongdai_tenant": tenant,
                                          "tongdai_queue": "support"}}))
                        calls[call] = number
                        patience[call] = waits
                        next_call = now + rng.uniform(0.3, 0.9)
                    if now >= next_agent:
                        shown = page.evaluate("window.__fresh.last")
                        agent = agents.pick(shown, now)
                        if agent is not None:
                            to = "available" if agents.state[agent] != "available" else (
                                "offline" if agents.kind[agent] == "agent_registration"
                                else "paused")
                            if agents.kind[agent] == "agent_registration":
                                if to == "available":
                                    sim.register(ext[agent], tenant)
                                else:
                                    sim.unregister(ext[agent], tenant)
                                at = probe.last_registration(ext[agent])
                            else:
                                at = now_us()
                                action = "pause" if to == "paused" else "resume"
                                status, _ = _http(api_port, "POST",
                                                  f"/api/v1/agents/{agent}/{action}", token,
                                                  b'{"reason": "bench"}')
                                if status != 202:
                                    raise RuntimeError(f"{action} {agent}: HTTP {status}")
                            if at:
                                samples.append(Sample(agents.kind[agent], at, agent_id=agent,
                                                      extension=ext[agent], state=to))
                            agents.state[agent] = to
                            agents.changed_at[agent] = now
                        next_agent = now + rng.uniform(0.5, 1.2)
                    time.sleep(max(0.0, min(next_call, next_agent, end) - time.monotonic()))
                elapsed = time.monotonic() - started
                cpu = {n: (cpu_s(procs[n].pid) - cpu0[n]) / elapsed * 100 for n in cpu0}

                # Let the last callers give up and every change reach the screen.
                deadline = time.monotonic() + 4.0 + MISSED_AFTER_S
                while time.monotonic() < deadline:
                    data = page.evaluate("window.__fresh")
                    if not sim.node.channels and len(data["gone"]) >= len(calls) and all(
                            data["last"].get(a) == s for a, s in agents.state.items()):
                        break
                    time.sleep(0.25)
                page.wait_for_timeout(200)  # the last animation frame
                page_data = page.evaluate("window.__fresh")
            finally:
                browser.close()
        for call, number in calls.items():
            parked, hungup = probe.parked.get(call), probe.hungup.get(call)
            if parked and hungup and hungup < parked + (patience[call] - 0.2) * 1e6:
                cut += 1  # hung up by a decision (another worker's), not by the caller
                continue
            if call in probe.parked:
                samples.append(Sample("call_waiting", probe.parked[call], call_id=call,
                                      number=number))
            if call in probe.hungup:
                samples.append(Sample("call_gone", probe.hungup[call], call_id=call,
                                      number=number))
    finally:
        producer.close()
        for name in ("worker", "bridge", "api"):
            proc = procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        sim.stop()

    records, publishers = _read(bootstrap, marks, tenant)
    figures = figures_of(samples, page_data, records, own=worker_env["TONGDAI_APP_ID"])
    with open(f"{tmp}/samples.json", "wb") as f:  # for a post-mortem of odd figures
        import orjson

        f.write(orjson.dumps({"samples": [vars(s) for s in samples], "page": page_data,
                              "records": records}))
    figures.update({
        "seconds_s": round(elapsed, 1),
        "worker_cpu_pct": round(cpu.get("worker", 0.0), 1),
        "bridge_cpu_pct": round(cpu.get("bridge", 0.0), 1),
        "live_publishers_count": len(publishers),
        "calls_cut_count": cut,
        "load_1m_before_cores": round(load_before, 2),
        "load_1m_after_cores": round(os.getloadavg()[0], 2),
    })
    verdict = "met" if figures["kinds_meeting_goal_count"] == figures["kinds_count"] \
        and figures["kinds_count"] else "MISSED"
    for kind in KINDS:
        if f"{kind}_p95_ms" in figures:
            stages = " + ".join(f"{st} {figures[f'{kind}_{st}_p50_ms']:.0f}" for st in STAGES)
            print(f"freshness: {kind:<18} p50 {figures[f'{kind}_p50_ms']:7.1f} ms  p95 "
                  f"{figures[f'{kind}_p95_ms']:7.1f} ms  max {figures[f'{kind}_max_ms']:7.1f} ms"
                  f"  n={figures[f'{kind}_samples_count']} missed="
                  f"{figures[f'{kind}_missed_count']} excluded={figures[f'{kind}_excluded_count']}"
                  f"  (p50 stages ms: {stages})",
                  file=sys.stderr)
    print(f"freshness: goal p95 < {GOAL_P95_MS:.0f} ms {verdict}; all p95 "
          f"{figures['all_p95_ms']} ms; live views of the tenant published by "
          f"{len(publishers)} worker(s); load {load_before:.2f} -> "
          f"{figures['load_1m_after_cores']:.2f}; logs in {tmp}", file=sys.stderr)
    if len(publishers) > 1:
        print(f"freshness: WARNING {len(publishers) - 1} other worker(s) consuming the same "
              "topics also published this tenant's live view (the API shows whichever is "
              f"newest): samples it showed first are timed by our views' arrival; "
              f"{figures['all_excluded_count']} left out, and {cut} callers it hung up",
              file=sys.stderr)
    return figures
