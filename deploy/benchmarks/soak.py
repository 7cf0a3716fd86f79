"""soak: the ACD's invariants over a long run (stranded agents, lost callers, call log), with
optional chaos. Every count must be 0 except corrections.

The whole product runs for real: the ESL simulator (in this process), `tongdai bridge`,
`tongdai worker` and `tongdai sink --migrate`, each its own process, restarted by a
supervisor when it exits, on a Kafka broker and a ClickHouse server started for the run
(`--stack private`, the default: topic names are fixed and every worker routes every tenant
it sees, so another deployment on a shared broker would route our calls too) or on the
running local stack (`--stack shared`; other workers' ticks for our tenant are counted in
`other_workers_routing_count`). The run has a tenant, a worker consumer group, a sink
deployment (consumer group pinned to the end of the topics) and a ClickHouse database of
its own (dropped at the end unless --keep). It configures two queues with a max wait
(overflow to voicemail) and its agents, logs them in, then places callers at --cps
(Poisson) for --minutes with a realistic mix: impatient callers (abandon while waiting or
while an agent's phone rings), patient ones (reach the max wait), agents whose phones
answer after 0.5-7 s, do not answer, reject or are busy (drawn per offer), agent-first
hangups; a caller sent to voicemail leaves a message and hangs up. `--overload` has fewer
agents than the calls need. `--chaos` SIGKILLs the bridge, the worker and the sink and
SIGSTOPs the Kafka broker and ClickHouse for 20-40 s, each at least once (per 10 minutes)
at seeded random moments (deploy/benchmarks/_soak_chaos.py).

The referee (deploy/benchmarks/_soak_truth.py) believes only the switch and the call log:
the simulator's own events and channel table, sampled every --sample-s, and the sink's
`calls` table. Counted (and logged with example ids): stranded agent legs (answered with
no caller for > --stranded-after-s), callers waiting past their queue's max wait + 15 s,
callers who left never offered while an agent of their queue was truly free, callers
cut off (hung up by the switch while waiting, no overflow hangs up here), call-log
rows missing / duplicated / not final --final-within-s after the hang-up; and the
product's corrections (`state_corrected` facts on tongdai.cc.events.v1).
Needs the local stack (started if it is not running).
Options (after --): --minutes N (30; 2 with --quick), --seconds N (instead of minutes),
--cps N (2), --agents N (40; 10 with --overload), --overload, --chaos, --seed N,
--max-wait-s N (support 30 s; sales 1.5x), --stranded-after-s N (60), --final-within-s N
(300), --drain-s N (drain bound after the traffic; default from the mix), --sample-s N (2),
--keep (keep the database), --stack private|shared.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import secrets
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ._common import end_offsets, free_port
from ._soak_chaos import Chaos, Child, Supervisor, plan
from ._soak_truth import Ledger, Rules, call_log_rows

DID = "19001234"
FIRST_EXT = 2000
QUEUES = ("support", "sales")
WRAPUP_S = 3
OFFER_TIMEOUT_S = 12
TALK_S = (5.0, 25.0)
MESSAGE_S = (3.0, 10.0)  # a caller sent to voicemail leaves a message this long
_USER = re.compile(r"^user/([^@\s]+)(?:@(\S+))?$")


def say(text: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Mix:
    """The traffic's randomness (seeded): callers and, per offer, how the phone reacts."""

    def __init__(self, seed: int, max_wait: dict[str, float]) -> None:
        self.callers_rng = random.Random(seed)
        self.rng = random.Random(seed + 10)  # phones: drawn on the simulator's thread
        self.max_wait = max_wait
        self.last: dict[str, str] = {}  # ext -> behaviour of its last offer
        self.lock = threading.Lock()

    def caller(self) -> dict[str, Any]:
        r = self.callers_rng
        queue = "support" if r.random() < 0.6 else "sales"
        kind = r.random()
        if kind < 0.15:  # impatient: gives up while waiting or while a phone rings
            patience = r.uniform(2.0, 8.0)
        elif kind < 0.25:  # patient: still there at the max wait
            patience = self.max_wait[queue] + r.uniform(25.0, 45.0)
        else:
            patience = r.uniform(10.0, 60.0)
        return {"queue": queue, "patience": round(patience, 1),
                "talk": round(r.uniform(*TALK_S), 1),
                "hangup_by": "agent" if r.random() < 0.3 else "caller",
                "number": "09" + "".join(str(r.randrange(10)) for _ in range(8))}

    def phone(self, ext: str) -> tuple[str, float]:
        """answer after 0.5-7 s (78 %), no answer (8 %, never twice in a row: three in a
        row would pause the agent by the default penalties), reject (7 %), busy (7 %)."""
        with self.lock:
            x = self.rng.random()
            if x < 0.08 and self.last.get(ext) != "no_answer":
                choice = ("no_answer", 3600.0)
            elif 0.08 <= x < 0.15:
                choice = ("reject", self.rng.uniform(0.5, 3.0))
            elif 0.15 <= x < 0.22:
                choice = ("busy", 0.0)
            else:
                choice = ("answer", self.rng.uniform(0.5, 7.0))
            self.last[ext] = choice[0]
            return choice


class CcWatch(threading.Thread):
    """Reads the tenant's domain facts (tongdai.cc.events.v1) from `marks` on: agents'
    states (to know when they are logged in) and the count of each type; and the sources of
    the tenant's ticks (tongdai.cc.commands.v1): every worker that routes the tenant ticks
    it, so a source other than ours is another deployment routing our calls too."""

    def __init__(self, bootstrap: str, marks: dict, tenant: str) -> None:
        super().__init__(name="soak-cc-watch", daemon=True)
        self.bootstrap, self.marks, self.tenant = bootstrap, marks, tenant
        self.types: dict[str, int] = {}
        self.states: dict[str, str] = {}
        # Each agent's last states (µs, state, reason), for the report: an agent the
        # referee found free while the router did not offer it says why here.
        self.history: dict[str, list[tuple[int, str, str]]] = {}
        self.tick_sources: set[str] = set()
        self.corrections: list[dict] = []  # the first state_corrected payloads, for the report
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        from kafka import KafkaConsumer

        from routing.contract import decode

        try:
            consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                     enable_auto_commit=False)
            consumer.assign(list(self.marks))
            for tp, offset in self.marks.items():
                consumer.seek(tp, offset)
            while not self.stopping.is_set():
                for _tp, batch in consumer.poll(timeout_ms=300).items():
                    for r in batch:
                        try:
                            env = decode(r.value)
                        except Exception:  # not ours to judge: the product dead-letters it
                            continue
                        if env.tenant != self.tenant:
                            continue
                        if env.type == "tick":
                            self.tick_sources.add(env.source)
                            continue
                        self.types[env.type] = self.types.get(env.type, 0) + 1
                        if env.type == "state_corrected" and len(self.corrections) < 50:
                            self.corrections.append({"call_id": env.call_id, **env.payload})
                        if env.type == "agent_state_changed":
                            agent = env.payload.get("agent_id", "")
                            self.states[agent] = env.payload.get("state", "")
                            seen = self.history.setdefault(agent, [])
                            seen.append((env.occurred_at, self.states[agent],
                                         env.payload.get("reason") or ""))
                            del seen[:-12]
            consumer.close()
        except BaseException as exc:  # reported by the run
            self.error = exc


def pin_group_at_end(bootstrap: str, group: str, names: list[str]) -> None:
    """Commit the topics' end offsets for a new consumer group, so a sink of its own
    starts now instead of at the beginning of the shared topics."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        parts = [TopicPartition(n, p) for n in names
                 for p in sorted(consumer.partitions_for_topic(n) or ())]
        ends = consumer.end_offsets(parts)
        consumer.assign(parts)
        consumer.commit({tp: OffsetAndMetadata(ends[tp], "", -1) for tp in parts})
    finally:
        consumer.close()


class CallLogJudge:
    """Judges each ended call once its --final-within-s has passed: a live row that is
    single and final, or missing / duplicated / not final (ClickHouse read as it is)."""

    def __init__(self, port: int, database: str, tenant: str, within_s: float,
                 password: str = "") -> None:
        self.port, self.database, self.tenant, self.within_s = port, database, tenant, within_s
        self.password = password
        self.verdict: dict[str, str] = {}  # call id -> ok | missing | duplicated | not_final
        self.rows: dict[str, tuple[int, int, str]] = {}
        self._client = None
        self.errors = 0
        self.logged: dict[str, int] = {}

    def read(self) -> bool:
        from clickhouse_driver import Client

        try:
            if self._client is None:
                self._client = Client("127.0.0.1", port=self.port, password=self.password,
                                      connect_timeout=5, send_receive_timeout=20)
            self.rows = call_log_rows(self._client, self.database, self.tenant)
            return True
        except Exception as exc:  # ClickHouse frozen or not there yet: judge later
            self.errors += 1
            if self.errors <= 3:
                say(f"call log not readable now ({type(exc).__name__}: {exc}); later")
            self._client = None
            return False

    @staticmethod
    def state(row: tuple[int, int, str] | None) -> str:
        n, final, _ = row or (0, 0, "")
        return "missing" if n <= 0 else "duplicated" if n > 1 else \
            "ok" if final == 1 else "not_final"

    def judge(self, ended: dict[str, float], now: float, everything: bool = False) -> int:
        """Judge the calls whose deadline passed (all of them with `everything`); returns
        how many are still unjudged."""
        left = 0
        for call_id, hungup in ended.items():
            if call_id in self.verdict:
                continue
            if everything or now >= hungup + self.within_s:
                self.verdict[call_id] = self.state(self.rows.get(call_id))
                kind = self.verdict[call_id]
                if kind != "ok":
                    self.logged[kind] = self.logged.get(kind, 0) + 1
                    if self.logged[kind] <= 5:
                        say(f"VIOLATION call_log_{kind}: call {call_id}, {now - hungup:.0f} s "
                            f"after its hang-up")
            else:
                left += 1
        return left

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()


def _send(producer, topic: str, key: bytes, tenant: str, type_: str, payload: dict) -> None:
    from routing.contract import Envelope, deterministic_id, encode
    from routing.contract.edge import now_us

    now = now_us()
    env = Envelope(deterministic_id(type_, tenant, now, uuid.uuid4()), type_, 1, now, tenant,
                   "soak", None, None, payload)
    producer.send(topic, key=key, value=encode(env))


def run(quick: bool = False, argv: list[str] | None = None) -> dict[str, float]:
    from deploy.local import settings as stack_settings
    from deploy.local import stack

    parser = argparse.ArgumentParser(prog="tongdai bench soak")
    parser.add_argument("--minutes", type=float, default=2.0 if quick else 30.0)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--cps", type=float, default=2.0)
    parser.add_argument("--agents", type=int, default=None)
    parser.add_argument("--overload", action="store_true")
    parser.add_argument("--chaos", action="store_true")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-wait-s", type=float, default=30.0)
    parser.add_argument("--stranded-after-s", type=float, default=60.0)
    parser.add_argument("--final-within-s", type=float, default=300.0)
    parser.add_argument("--drain-s", type=float, default=None)
    parser.add_argument("--sample-s", type=float, default=2.0)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--stack", choices=("private", "shared"), default="private")
    args = parser.parse_args([a for a in argv or [] if a != "--"])
    seconds = args.seconds if args.seconds is not None else args.minutes * 60.0
    agents_n = args.agents or (10 if args.overload else 40)
    seed = args.seed if args.seed is not None else secrets.randbelow(2 ** 31)
    max_wait = {"support": float(int(args.max_wait_s)),
                "sales": float(int(args.max_wait_s * 1.5))}
    drain_s = args.drain_s if args.drain_s is not None else \
        max(max_wait.values()) + 15 + TALK_S[1] + MESSAGE_S[1] + 30

    run_id = uuid.uuid4().hex[:8]
    tenant = f"soak-{run_id}.bench"
    database = f"soak_{run_id}"
    tmp = Path(tempfile.mkdtemp(prefix=f"tongdai-bench-soak-{run_id}-"))
    shared = stack_settings.load()
    if args.stack == "private":
        # Servers of this run alone: no other deployment on the stack routes our tenant
        # (topics are fixed names and every worker routes every tenant it sees), and the
        # chaos freezes nobody else's broker.
        (tmp / "stack").mkdir()
        if (shared.root / "kafka-dist").exists():  # the jars, not a second download
            os.symlink(shared.root / "kafka-dist", tmp / "stack" / "kafka-dist")
        settings = dataclasses.replace(
            shared, stack_dir=str(tmp / "stack"), kafka_port=free_port(),
            kafka_controller_port=free_port(), clickhouse_tcp_port=free_port(),
            clickhouse_http_port=free_port(), kafka_heap_mb=512)
        say(f"starting a private Kafka and ClickHouse in {tmp / 'stack'} ...")
        try:
            health = stack.up(settings, log=lambda m: say("  " + m))
        except BaseException:
            stack.down(settings, log=lambda m: say("  " + m))  # ours: nothing left running
            raise
    else:
        settings = shared
        health = stack.status(settings)
        if not all(h.healthy for h in health):
            say("starting the local stack (Kafka, ClickHouse) ...")
            health = stack.up(settings, log=lambda m: say("  " + m))
    server_pids = {h.name: h.pid for h in health if h.pid}
    bootstrap = settings.kafka_bootstrap
    say(f"run {run_id}: tenant {tenant}, database {database}, seed {seed}, {seconds:.0f} s at "
        f"{args.cps}/s, {agents_n} agents, {args.stack} stack{', CHAOS' if args.chaos else ''}"
        f"; logs in {tmp}")
    try:
        return _run(args, settings, server_pids, run_id, tenant, database, tmp, seconds,
                    agents_n, seed, max_wait, drain_s)
    finally:
        if args.stack == "private":
            stack.down(settings, log=lambda m: say("  " + m))


def _run(args: argparse.Namespace, settings: Any, server_pids: dict[str, int], run_id: str,
         tenant: str, database: str, tmp: Path, seconds: float, agents_n: int, seed: int,
         max_wait: dict[str, float], drain_s: float) -> dict[str, float]:
    from kafka import KafkaProducer

    from esl_bridge.simulator import Simulator
    from esl_bridge.simulator.model import AgentSpec, CallerSpec
    from esl_bridge.simulator.node import parse_originate
    from routing.contract import topics

    bootstrap = settings.kafka_bootstrap

    agent_ids = [f"a{i:02d}" for i in range(agents_n)]
    ext = {a: str(FIRST_EXT + i) for i, a in enumerate(agent_ids)}
    queues_of = {a: (("support",) if i % 5 < 3 else ("sales",) if i % 5 == 3
                     else ("support", "sales")) for i, a in enumerate(agent_ids)}
    members = {q: {ext[a] for a in agent_ids if q in queues_of[a]} for q in QUEUES}
    rules = Rules(members=members, max_wait_s=max_wait, wrapup_s=WRAPUP_S,
                  stranded_after_s=args.stranded_after_s)

    # Call and node ids of their own (never from --seed): another run with the same ids
    # would share the router's duplicate marks and the actuator's commands.
    sysrng = random.SystemRandom()
    sim = Simulator(port=0, password=secrets.token_urlsafe(12), heartbeat=20.0, domain=tenant,
                    seed=sysrng.randrange(1 << 62), core_uuid=str(uuid.uuid4()))
    node = sim.node
    mix = Mix(seed, max_wait)
    rng_message = random.Random(seed + 1)

    def leave_message(uid: str) -> None:  # runs under the node lock (a listener)
        node.scheduler.call_later(rng_message.uniform(*MESSAGE_S), lambda: node.hangup(
            uid, "NORMAL_CLEARING", disposition="recv_bye"))

    ledger = Ledger(node, rules, report=say, on_transfer=leave_message)
    original_originate = node.originate

    def originate(arg: str, done) -> None:  # under the node lock (Node.execute)
        try:
            variables, target, _app = parse_originate(arg)
        except ValueError:
            return original_originate(arg, done)
        m = _USER.match(target)
        phone_ext = m.group(1) if m else ""
        agent = node.agents.get(f"{phone_ext}@{m.group(2) or node.domain}") if m else None
        behaviour = "-"
        if agent is not None and phone_ext in rules.members["support"] | rules.members["sales"]:
            behaviour, delay = mix.phone(phone_ext)
            agent.spec.answer, agent.spec.answer_delay = behaviour, delay
        offer = ledger.offer(variables.get("tongdai_call_id", ""),
                             variables.get("tongdai_offer_id", ""), phone_ext, behaviour)

        def finished(body: str) -> None:
            offer.result = body.strip()
            done(body)

        return original_originate(arg, finished)

    node.originate = originate
    sim.start()

    base = {**os.environ, "TONGDAI_KAFKA_BOOTSTRAP": bootstrap, "TONGDAI_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1"}
    supervisor = Supervisor(say)
    chaos: Chaos | None = None
    watch: CcWatch | None = None
    judge = CallLogJudge(settings.clickhouse_tcp_port, database, tenant, args.final_within_s,
                         settings.clickhouse_password)
    producer = None
    figures: dict[str, float] = {}
    progress: list[dict] = []
    started = time.monotonic()
    traffic_s = 0.0
    try:
        worker = supervisor.add(Child("worker", ["worker"], {
            **base, "TONGDAI_APP_ID": f"soak-{run_id}", "TONGDAI_WORKER_DATA_DIR": f"{tmp}/worker",
            "TONGDAI_START_FROM": "latest", "TONGDAI_CONFIG_FROM": "latest"}, tmp / "worker.log"))
        _wait_log(worker, "Ready", 120)
        marks = end_offsets(bootstrap, [topics.CC_EVENTS, topics.CC_COMMANDS])
        pin_group_at_end(bootstrap, f"tongdai-sink-soak-{run_id}",
                         [topics.FS_EVENTS, topics.CC_EVENTS])
        bridge = supervisor.add(Child("bridge", ["bridge"], {
            **base, "TONGDAI_FREESWITCH": f"127.0.0.1:{sim.port}:{sim.password}",
            "TONGDAI_SPOOL_DIR": f"{tmp}/spool", "TONGDAI_ACTUATOR_STATE_DIR": f"{tmp}/actuator",
            "TONGDAI_BRIDGE_NAME": f"soak-{run_id}", "TONGDAI_RECONNECT_MIN_S": "0.2",
            "TONGDAI_RECONNECT_MAX_S": "2"}, tmp / "bridge.log"))
        sink = supervisor.add(Child("sink", ["sink", "--migrate"], {
            **base, **settings.clickhouse_environ(),
            "TONGDAI_CLICKHOUSE_DATABASE": database, "TONGDAI_DEPLOYMENT": f"soak-{run_id}"},
            tmp / "sink.log"))
        _wait_log(bridge, "subscribed", 60)
        _wait_log(sink, "tongdai sink:", 60)
        supervisor.start()
        watch = CcWatch(bootstrap, marks, tenant)
        watch.start()

        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        key = topics.tenant_key(tenant)

        def configure() -> None:
            _send(producer, topics.CONFIG, topics.config_key(tenant, "tenant", tenant), tenant,
                  "config_changed", {"kind": "tenant", "entity_id": tenant,
                                     "data": {"domain": tenant}})
            for q in QUEUES:
                _send(producer, topics.CONFIG, topics.config_key(tenant, "queue", q), tenant,
                      "config_changed", {"kind": "queue", "entity_id": q, "data": {
                          "strategy": "longest-idle-agent", "wrapup_s": WRAPUP_S,
                          "offer_timeout_s": OFFER_TIMEOUT_S, "max_wait_s": int(max_wait[q]),
                          "max_wait_action": "voicemail"}})
            for a in agent_ids:
                _send(producer, topics.CONFIG, topics.config_key(tenant, "agent", a), tenant,
                      "config_changed", {"kind": "agent", "entity_id": a, "data": {
                          "extension": ext[a], "queues": {q: {} for q in queues_of[a]}}})
                _send(producer, topics.CC_COMMANDS, key, tenant, "agent_login_requested",
                      {"agent_id": a})
            producer.flush(30)

        for a in agent_ids:
            sim.add_agent(AgentSpec.parse({"ext": ext[a], "domain": tenant,
                                           "register_at": None}))
        configure()
        for a in agent_ids:
            sim.register(ext[a], tenant)
        deadline, resend = time.monotonic() + 120, time.monotonic() + 15
        while sum(1 for a in agent_ids if watch.states.get(a) == "available") < len(agent_ids):
            if time.monotonic() > deadline:
                raise RuntimeError(f"agents never all available: {watch.states}; see {tmp}")
            if time.monotonic() > resend:
                configure()
                resend = time.monotonic() + 15
            time.sleep(0.3)
        say(f"ready in {time.monotonic() - started:.0f} s: {len(agent_ids)} agents available")

        # -- traffic
        stop_sampling = threading.Event()
        t0 = time.monotonic()

        def sampler() -> None:
            last = 0.0
            while not stop_sampling.wait(args.sample_s):
                live = ledger.sample()
                if time.monotonic() - last >= 30:
                    last = time.monotonic()
                    with ledger.lock:
                        ended_now = {c.uuid: c.hungup for c in ledger.callers.values()
                                     if c.hungup}
                    if any(time.time() >= t + args.final_within_s for t in ended_now.values()) \
                            and judge.read():
                        judge.judge(ended_now, time.time())
                    totals = ledger.totals()
                    progress.append({"at_s": round(time.monotonic() - t0), **live, **totals})
                    alive = ", ".join(
                        f"{c.name} {'up' if c.proc and c.proc.poll() is None else 'DOWN'}"
                        for c in supervisor.children.values())
                    say(f"+{time.monotonic() - t0:.0f} s: placed {totals['placed']}, answered "
                        f"{totals['answered']}, waiting {live['waiting']}, agent legs alone "
                        f"{live['agent_legs_alone']}, phones free {live['agents_free']}, "
                        f"USER_BUSY {totals['offers_user_busy']} (unplanned "
                        f"{totals['offers_user_busy_unplanned']}); {alive}")

        sampling = threading.Thread(target=sampler, name="soak-sampler", daemon=True)
        sampling.start()
        if args.chaos:
            actions = plan(random.Random(seed + 2), seconds)
            say("chaos plan (seed %d): %s" % (seed, "; ".join(map(str, actions))))
            chaos = Chaos(actions, supervisor, server_pids, say)
            rules.disturbed = chaos.disturbed
            chaos.start(t0)
        traffic_rng = random.Random(seed + 3)
        end = t0 + seconds
        next_call = t0 + traffic_rng.expovariate(args.cps)
        while next_call < end:
            time.sleep(max(0.0, next_call - time.monotonic()))
            c = mix.caller()
            uid = str(uuid.UUID(int=sysrng.getrandbits(128), version=4))
            ledger.expect_caller(uid, c["queue"], c["patience"])
            sim.place_call(CallerSpec(
                number=c["number"], did=DID, uuid=uid, patience=c["patience"], talk=c["talk"],
                hangup_by=c["hangup_by"],
                variables={"tongdai_tenant": tenant, "tongdai_queue": c["queue"],
                           "tongdai_did": DID}))
            next_call += traffic_rng.expovariate(args.cps)
        traffic_s = time.monotonic() - t0
        if chaos is not None:  # the plan's last actions may still be under way
            chaos.stopping.wait(max(0.0, t0 + max((a.at_s + a.duration_s for a in
                                                   chaos.actions), default=0) - time.monotonic()))
            chaos.thaw_all()

        # -- drain: callers finish; a leg left alone is watched until it counts as stranded
        say(f"traffic over ({ledger.totals()['placed']} callers); draining (≤ {drain_s:.0f} s)")
        drain_end = time.monotonic() + drain_s
        while time.monotonic() < drain_end:
            now = time.time()
            with ledger.lock:
                callers_up = sum(1 for c in ledger.callers.values() if not c.hungup)
                undecided = sum(1 for leg in ledger.legs.values() if not leg.hungup and (
                    not leg.alone_since or leg.alone_for(now) <= rules.stranded_after_s))
            if not callers_up and not undecided:
                break
            time.sleep(1.0)
        ledger.sample()
        stop_sampling.set()
        sampling.join(10)
        with ledger.lock:
            leftover = [c.uuid for c in ledger.callers.values() if not c.hungup]
        for uid in leftover:  # callers still there give up now
            sim.hangup(uid)
        if leftover:
            say(f"{len(leftover)} callers still up after the drain: hung up "
                f"(e.g. {', '.join(leftover[:3])})")
        verdicts = ledger.verdicts()

        # -- the call log: every ended call judged --final-within-s after its hang-up
        with ledger.lock:
            ended = {c.uuid: c.hungup for c in ledger.callers.values() if c.hungup}
            answered = {c.uuid: bool(c.bridged) for c in ledger.callers.values()}
        last_hangup = max(ended.values(), default=time.time())
        say(f"call log: waiting until every call's row is single and final (≤ "
            f"{max(0.0, last_hangup + args.final_within_s - time.time()):.0f} s)")
        while True:
            now = time.time()
            if judge.read():
                if all(judge.state(judge.rows.get(c)) == "ok" for c in ended
                       if c not in judge.verdict):
                    judge.judge(ended, now, everything=True)
                    break
                if not judge.judge(ended, now):
                    break
            elif now > last_hangup + args.final_within_s + 60:
                judge.judge(ended, now, everything=True)  # unreadable: what we have
                break
            time.sleep(2.0)
        if judge.read():  # duplicates may also appear late (a restarted sink)
            for call_id in ended:
                if judge.state(judge.rows.get(call_id)) == "duplicated":
                    judge.verdict[call_id] = "duplicated"
        wrong = [f"{c} ({judge.rows[c][2]}; switch: "
                 f"{'answered' if answered.get(c) else 'not answered'})"
                 for c in ended if judge.verdict.get(c) == "ok"
                 and (judge.rows[c][2] == "answered") != answered.get(c, False)]
        extra = [c for c in judge.rows if c not in ledger.callers]
        for kind in ("missing", "duplicated", "not_final"):
            verdicts[f"call_log_{kind}"] = [c for c, v in judge.verdict.items() if v == kind]
        verdicts["call_log_wrong_disposition"] = wrong

        watch.stopping.set()
        watch.join(10)
        corrections = watch.types.get("state_corrected", 0)
        totals = ledger.totals()
        with ledger.lock:
            offers_by_result: dict[str, int] = {}
            for o in ledger.offers:
                word = (o.result.split() or ["(pending)"])[0] if not o.result.startswith(
                    "-ERR") else o.result
                offers_by_result[word] = offers_by_result.get(word, 0) + 1
        figures = {
            "calls_placed_calls": totals["placed"],
            "stranded_agent_legs_count": len(verdicts["stranded_agent_legs"]),
            "callers_waiting_past_max_wait_count": len(verdicts["callers_waiting_past_max"]),
            "callers_never_offered_count": len(verdicts["callers_never_offered"]),
            "callers_cut_off_count": len(verdicts["callers_cut_off"]),
            "calls_cut_while_talking_count": len(verdicts["calls_cut_while_talking"]),
            "call_log_missing_rows": len(verdicts["call_log_missing"]),
            "call_log_duplicated_rows": len(verdicts["call_log_duplicated"]),
            "call_log_not_final_rows": len(verdicts["call_log_not_final"]),
            # one row per call that matches what the phones lived: answered or not
            "call_log_wrong_disposition_rows": len(wrong),
            "corrections_count": corrections,
        }
        figures["violations_count"] = sum(v for k, v in figures.items()
                                          if k not in ("calls_placed_calls", "corrections_count"))
        figures.update({
            "calls_answered_calls": totals["answered"],
            "calls_abandoned_calls": totals["abandoned"],
            "calls_abandoned_while_ringing_calls": totals["abandoned_while_ringing"],
            "calls_to_voicemail_calls": totals["transferred"],
            "callers_still_up_at_end_count": len(leftover),
            "callers_not_offered_in_faults_count": len(verdicts["callers_not_offered_in_faults"]),
            "callers_past_max_wait_in_faults_count":
                len(verdicts["callers_past_max_wait_in_faults"]),
            "call_log_other_call_ids_count": len(extra),
            "offers_count": totals["offers"],
            "offers_user_busy_count": totals["offers_user_busy"],
            "offers_user_busy_unplanned_count": totals["offers_user_busy_unplanned"],
            "chaos_actions_count": len(chaos.done) if chaos else 0,
            "process_kills_count": sum(c.kills for c in supervisor.children.values()),
            "process_crashes_count": sum(c.crashes for c in supervisor.children.values()),
            "other_workers_routing_count": len(watch.tick_sources - {f"soak-{run_id}"}),
            "agents_agents": agents_n,
            "cps_per_s": args.cps,
            "traffic_s": round(traffic_s, 1),
            "stranded_after_s": args.stranded_after_s,
        })
        report = {"run": run_id, "tenant": tenant, "database": database, "seed": seed,
                  "chaos": chaos.done if chaos else [], "figures": figures,
                  "tick_sources": sorted(watch.tick_sources),
                  "agents_at_end": {a: watch.history.get(a, []) for a, st in
                                    sorted(watch.states.items()) if st != "available"},
                  "corrections": watch.corrections,
                  "violations": verdicts, "offers_by_result": offers_by_result,
                  "cc_event_types": watch.types, "progress": progress,
                  "processes": {c.name: {"starts": c.starts, "exits": c.exits}
                                for c in supervisor.children.values()}}
        (tmp / "report.json").write_text(json.dumps(report, indent=1))
        with ledger.lock:  # what the switch lived, for a post-mortem
            (tmp / "ledger.json").write_text(json.dumps({
                "callers": [vars(c) for c in ledger.callers.values()],
                "legs": [vars(leg) for leg in ledger.legs.values()],
                "offers": [vars(o) for o in ledger.offers],
                "call_log": {c: list(v) for c, v in judge.rows.items()}}))
        for kind, items in verdicts.items():
            if items:
                say(f"{kind}: {len(items)}, e.g. {'; '.join(items[:5])}")
        say(f"offers by result: {offers_by_result}")
        if watch.corrections:
            kinds: dict[str, int] = {}
            for c in watch.corrections:
                kinds[f"{c.get('what')}->{c.get('action')}"] = \
                    kinds.get(f"{c.get('what')}->{c.get('action')}", 0) + 1
            say(f"corrections {corrections} (first {len(watch.corrections)} by kind: {kinds})")
        others = sorted(watch.tick_sources - {f"soak-{run_id}"})
        if others:
            say(f"WARNING: {len(others)} other worker(s) routed this tenant too ({', '.join(others)}"
                f"): the counts are not this run's product alone; use --stack private")
        say(f"{figures['violations_count']} violations; report {tmp / 'report.json'}")
        return figures
    finally:
        if chaos is not None:
            chaos.thaw_all()
        if watch is not None:
            watch.stopping.set()
        if producer is not None:
            producer.close()
        supervisor.stop()
        sim.stop()
        judge.close()
        if not args.keep:
            _drop_database(settings.clickhouse_tcp_port, database, settings.clickhouse_password)


def _wait_log(child: Child, marker: str, timeout: float) -> None:
    """Wait until the child's log shows `marker`; fail with its log's tail if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc is not None and child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited {child.proc.returncode}; its log ends:\n"
                               f"{child.log.read_text(errors='replace')[-3000:]}")
        if child.log.exists() and marker in child.log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{child.name}: no {marker!r} after {timeout:.0f} s; its log ends:\n"
                       f"{child.log.read_text(errors='replace')[-3000:]}")


def _drop_database(port: int, database: str, password: str = "") -> None:
    from clickhouse_driver import Client

    try:
        client = Client("127.0.0.1", port=port, password=password, connect_timeout=5,
                        send_receive_timeout=30)
        client.execute(f"DROP DATABASE IF EXISTS {database}")
        client.disconnect()
    except Exception as exc:  # a leftover database is not worth failing the run for
        say(f"could not drop {database}: {exc}")
