"""ACD end to end: time to offer, answer-to-connect and sustained calls/s (simulator,
bridge, Kafka, one worker).

The simulated FreeSWITCH (in this process) gets Poisson calls for one tenant with 200
agents; the real bridge and a real worker route them through the local Kafka. Measured at
the simulator, on one clock: from the caller's CHANNEL_PARK to the `originate` of its first
offer (time to offer), and from the agent leg's CHANNEL_ANSWER to the CHANNEL_BRIDGE that
joins it to the caller (answer to connect: the dead air the agent hears). With
`--connect router` the answered leg parks and the router orders `uuid_bridge`; the stages
of that path (ingest, worker, actuator) come from Kafka record timestamps. With
`--connect switch` (the default, as the product's queues) the switch bridges the first
phone to answer itself (fs-conf's tongdai_connect). Kafka is the run's own (`--stack
private`, the default; `--stack shared`: the local stack, where another deployment's worker
routes the run's calls too). The stages of the time to offer (the caller's park -> its
record on the routing topic -> the worker's offer_call record -> the originate) are
reported in both modes.
Options (after --): --cps N (30), --agents N (200), --seconds N (60; 15 with --quick),
--connect switch|router. With `--freeswitch [PREFIX]`: the same on a real FreeSWITCH with
SIPp phones, beside a mod_callcenter queue on the same switch (deploy/benchmarks/
_acd_realfs.py; --rates, --ring-ms, --talk-ms, --patience-s, --wrapup-s, --busy N: N
processes keeping a core busy each, --priority switch|above-switch: the product scheduled
as the switch's call threads or one above them, --caller-rtp: callers send RTP).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from esl_bridge.simulator import Simulator
from esl_bridge.simulator.model import Distribution
from esl_bridge.simulator.scenario import LoadGenerator, LoadSpec
from routing.contract import Envelope, deterministic_id, encode, topics
from routing.contract.edge import now_us

from ._common import bench_stack, cpu_s, end_offsets, pct, wait_log




class Probe:
    """Timestamps taken inside the simulated FreeSWITCH (wall clock, one process)."""

    def __init__(self, sim: Simulator) -> None:
        self.lock = threading.Lock()
        self.caller_park: dict[str, float] = {}
        self.agent_park: dict[str, float] = {}
        self.agent_answer: dict[str, float] = {}  # offer id -> its leg's CHANNEL_ANSWER
        self.connected: dict[str, float] = {}  # offer id -> CHANNEL_BRIDGE with its caller
        self.originate: dict[str, float] = {}  # call id -> first originate seen
        self.bridge: dict[str, float] = {}  # offer id -> uuid_bridge received
        self.answered_calls = 0
        node = sim.node
        node.listeners.append(self._on_event)
        original_bridge, original_originate = node.uuid_bridge, node.originate

        def uuid_bridge(a: str, b: str) -> str:
            with self.lock:
                self.bridge.setdefault(b, time.time())
            return original_bridge(a, b)

        def originate(arg: str, done):
            call = arg.split("tongdai_call_id=", 1)[1].split(",", 1)[0] if \
                "tongdai_call_id=" in arg else None
            if call:
                with self.lock:
                    self.originate.setdefault(call, time.time())
            return original_originate(arg, done)

        node.uuid_bridge = uuid_bridge
        node.originate = originate

    def _on_event(self, event) -> None:
        h = event.headers
        now = time.time()
        if event.name == "CHANNEL_ANSWER":
            offer = h.get("variable_tongdai_offer_id")
            if offer:
                with self.lock:
                    self.agent_answer.setdefault(offer, now)
            return
        if event.name == "CHANNEL_BRIDGE":
            with self.lock:
                for leg in (h.get("Bridge-A-Unique-ID"), h.get("Bridge-B-Unique-ID")):
                    if leg in self.agent_answer:
                        self.connected.setdefault(leg, now)
            return
        if event.name != "CHANNEL_PARK":
            return
        with self.lock:
            offer = h.get("variable_tongdai_offer_id")
            if offer:
                self.agent_park.setdefault(offer, now)
            elif h.get("Call-Direction") == "inbound":
                self.caller_park.setdefault(h["Unique-ID"], now)

    def latencies(self) -> tuple[list[float], list[float]]:
        """(answer to connect, time to offer) in ms."""
        with self.lock:
            connect = [(self.connected[o] - t) * 1000 for o, t in self.agent_answer.items()
                       if o in self.connected]
            offer = [(self.originate[c] - t) * 1000 for c, t in self.caller_park.items()
                     if c in self.originate]
        return connect, offer


def _send(producer, topic: str, key: bytes, tenant: str, type_: str, payload: dict) -> None:
    now = now_us()
    env = Envelope(deterministic_id(type_, tenant, now, uuid.uuid4()), type_, 1, now, tenant,
                   "bench", None, None, payload)
    producer.send(topic, key=key, value=encode(env))








def _offer_triggers(worker_log: str, ticks: set[str], parks: set[str]) -> dict[str, int]:
    """What made the worker offer each call, from its log (`offer_call ...`, with the id of
    the record it was handling): the caller's park (an agent was free), a tick (an agent's
    wrap-up ended on it) or another record (an agent freed by a hang-up, an answer...)."""
    import json

    counts = {"offers_on_park_count": 0, "offers_on_tick_count": 0, "offers_on_other_count": 0}
    with open(worker_log, errors="replace") as f:
        for line in f:
            if '"offer_call ' not in line:
                continue
            try:
                event_id = json.loads(line).get("event_id")
            except ValueError:
                continue
            key = ("offers_on_tick_count" if event_id in ticks else
                   "offers_on_park_count" if event_id in parks else "offers_on_other_count")
            counts[key] += 1
    return counts


def _stages(bootstrap: str, start: dict, tenant: str, probe: Probe,
            worker_log: str) -> dict[str, float]:
    """Where park-to-bridge time goes, from Kafka record timestamps (broker append time is
    the producer's send time here: CreateTime) and the simulator's clock."""
    import orjson
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    consumer.assign(list(start))
    for tp, offset in start.items():
        consumer.seek(tp, offset)
    ends = consumer.end_offsets(list(start))
    parked_at_kafka: dict[str, float] = {}
    decided_at_kafka: dict[str, float] = {}
    caller_parked_at_kafka: dict[str, float] = {}  # call id -> its CHANNEL_PARK's record
    offered_at_kafka: dict[str, float] = {}  # call id -> its first offer_call
    enqueued_at_kafka: dict[str, float] = {}  # call id -> its call_enqueued fact
    ticks: set[str] = set()  # event ids of the tenant's ticks
    parks: set[str] = set()  # event ids of its callers' parks
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in start):
        for _tp, batch in consumer.poll(timeout_ms=500, max_records=20000).items():
            for r in batch:
                env = orjson.loads(r.value)
                if env["tenant"] != tenant:
                    continue
                p = env["payload"]
                if env["type"] == "channel_parked" and p.get("offer_id"):
                    parked_at_kafka[p["offer_id"]] = r.timestamp / 1000
                elif env["type"] == "channel_parked" and env["call_id"]:
                    caller_parked_at_kafka.setdefault(env["call_id"], r.timestamp / 1000)
                    parks.add(env["event_id"])
                elif env["type"] == "tick":
                    ticks.add(env["event_id"])
                elif env["type"] == "offer_call":
                    offered_at_kafka.setdefault(env["call_id"], r.timestamp / 1000)
                elif env["type"] == "call_enqueued":
                    enqueued_at_kafka.setdefault(env["call_id"], r.timestamp / 1000)
                elif env["type"] == "connect_call":
                    decided_at_kafka[p["offer_id"]] = r.timestamp / 1000
    consumer.close()
    ingest, route, actuate = [], [], []
    for offer, parked in probe.agent_park.items():
        if offer in parked_at_kafka and offer in decided_at_kafka and offer in probe.bridge:
            ingest.append((parked_at_kafka[offer] - parked) * 1000)
            route.append((decided_at_kafka[offer] - parked_at_kafka[offer]) * 1000)
            actuate.append((probe.bridge[offer] - decided_at_kafka[offer]) * 1000)
    # Time to offer: the caller's park -> its record on the routing topic (bridge) ->
    # the offer_call record (worker) -> the originate at the simulator (actuator).
    # The worker's part splits at the call_enqueued fact: reading the park (consumer lag
    # and handling), then waiting in the queue for an agent the router sees free.
    o_ingest, o_route, o_enqueue, o_wait, o_actuate = [], [], [], [], []
    for call, parked in probe.caller_park.items():
        if call in caller_parked_at_kafka and call in offered_at_kafka and \
                call in probe.originate:
            o_ingest.append((caller_parked_at_kafka[call] - parked) * 1000)
            o_route.append((offered_at_kafka[call] - caller_parked_at_kafka[call]) * 1000)
            o_actuate.append((probe.originate[call] - offered_at_kafka[call]) * 1000)
            if call in enqueued_at_kafka:
                o_enqueue.append((enqueued_at_kafka[call] - caller_parked_at_kafka[call]) * 1000)
                o_wait.append((offered_at_kafka[call] - enqueued_at_kafka[call]) * 1000)
    offer_stages = {}
    for name, values in (("ingest", o_ingest), ("worker", o_route), ("worker_enqueue", o_enqueue),
                         ("queue_wait", o_wait), ("actuator", o_actuate)):
        offer_stages[f"offer_stage_{name}_p50_ms"] = round(pct(values, 0.5), 1)
        offer_stages[f"offer_stage_{name}_p99_ms"] = round(pct(values, 0.99), 1)
    offer_stages.update(_offer_triggers(worker_log, ticks, parks))
    return {**offer_stages,
            "stage_bridge_ingest_p50_ms": round(pct(ingest, 0.5), 1),
            "stage_bridge_ingest_p99_ms": round(pct(ingest, 0.99), 1),
            "stage_worker_p50_ms": round(pct(route, 0.5), 1),
            "stage_worker_p99_ms": round(pct(route, 0.99), 1),
            "stage_actuator_p50_ms": round(pct(actuate, 0.5), 1),
            "stage_actuator_p99_ms": round(pct(actuate, 0.99), 1)}


def run(quick: bool = False, argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="tongdai bench acd")
    parser.add_argument("--cps", type=float, default=30.0)
    parser.add_argument("--agents", type=int, default=None,
                        help="agents (per side with --freeswitch); default 200, "
                             "--freeswitch 160 (40 with --quick)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="seconds of calls (per rate and side with --freeswitch); "
                             "default 60 (15 with --quick), --freeswitch 20 (4 with --quick)")
    parser.add_argument("--connect", choices=("switch", "router"), default="switch")
    parser.add_argument("--freeswitch", nargs="?", metavar="PREFIX",
                        const=os.environ.get("TONGDAI_TEST_FREESWITCH") or "var/freeswitch",
                        help="on a real FreeSWITCH built at PREFIX (default "
                             "$TONGDAI_TEST_FREESWITCH, else var/freeswitch) beside a "
                             "mod_callcenter queue (deploy/benchmarks/_acd_realfs.py)")
    parser.add_argument("--rates", default="10" if quick else "10,30",
                        help="--freeswitch: calls/s, comma separated (default 10,30; "
                             "10 with --quick)")
    parser.add_argument("--ring-ms", type=int, default=1000,
                        help="--freeswitch: an agent's phone rings this long, then answers")
    parser.add_argument("--talk-ms", type=int, default=2000,
                        help="--freeswitch: and hangs up this long after answering")
    parser.add_argument("--patience-s", type=float, default=30.0,
                        help="--freeswitch: a caller not connected by then hangs up")
    parser.add_argument("--wrapup-s", type=int, default=1,
                        help="--freeswitch: agents' wrap-up on both sides")
    parser.add_argument("--priority", choices=("normal", "switch", "above-switch"),
                        default="normal",
                        help="--freeswitch: how the product's call path (bridge, worker, "
                             "API, Kafka) is scheduled: normal (default); switch: real "
                             "time as FreeSWITCH runs its call threads (round-robin, "
                             "priority 1); above-switch: priority 2, ahead of them (its "
                             "control threads and mod_callcenter's dispatch run at 99)")
    parser.add_argument("--caller-rtp", action="store_true",
                        help="--freeswitch: callers send RTP (a tone) from the answer on, as "
                             "phones do; by default they are silent (SIPp agents that play "
                             "a pcap no longer hang up on time: they stay silent)")
    parser.add_argument("--warmup-s", type=float, default=None,
                        help="--freeswitch: seconds of calls at the first rate on each side "
                             "before the measured phases, not measured (a switch and a "
                             "broker that have been up: the broker's JIT compiler took 10-14 "
                             "%% of a core through a cold first phase); default 15, 0 with "
                             "--quick")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="--freeswitch: N processes keeping a core busy each through "
                             "both sides' phases (a busy machine, the same for both)")
    parser.add_argument("--stack", choices=("private", "shared"), default="private",
                        help="private (default): a Kafka and ClickHouse of this run alone "
                             "(another deployment's worker on a shared broker routes the "
                             "run's calls too); shared: the running local stack")
    args = parser.parse_args([a for a in argv or [] if a != "--"])
    if args.freeswitch:
        from . import _acd_realfs

        args.agents = args.agents or (40 if quick else 160)
        args.seconds = args.seconds or (4.0 if quick else 20.0)
        if args.warmup_s is None:
            args.warmup_s = 0.0 if quick else 15.0
        if args.warmup_s < 0:
            raise SystemExit(f"bench acd: --warmup-s {args.warmup_s:g}: must be 0 or more")
        return _acd_realfs.run(args, quick)
    args.agents = args.agents or 200
    args.seconds = args.seconds or (15.0 if quick else 60.0)
    tmp = tempfile.mkdtemp(prefix="tongdai-bench-acd-")
    say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    with bench_stack(args.stack, Path(tmp), say) as (stack, _health):
        return _run(args, stack.kafka_bootstrap, tmp)


def _run(args: argparse.Namespace, bootstrap: str, tmp: str) -> dict[str, float]:
    from kafka import KafkaProducer

    tenant = f"bench-{uuid.uuid4().hex[:8]}.acd"

    sim = Simulator(port=0, password="bench", heartbeat=3600, seed=42, domain=tenant)
    sim.start()
    probe = Probe(sim)
    base = {**os.environ, "TONGDAI_KAFKA_BOOTSTRAP": bootstrap, "TONGDAI_LOG_LEVEL": "WARNING"}
    bridge_log, worker_log = f"{tmp}/bridge.log", f"{tmp}/worker.log"
    bridge = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "bridge"], stdout=subprocess.DEVNULL,
        stderr=open(bridge_log, "w"),
        env={**base, "TONGDAI_FREESWITCH": f"127.0.0.1:{sim.port}:bench",
             "TONGDAI_SPOOL_DIR": f"{tmp}/spool", "TONGDAI_ACTUATOR_STATE_DIR": f"{tmp}/act",
             "TONGDAI_BRIDGE_NAME": f"bench-{uuid.uuid4().hex[:6]}", "TONGDAI_LOG_LEVEL": "INFO"})
    worker = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "worker"], stdout=open(worker_log, "w"),
        stderr=subprocess.STDOUT,
        env={**base, "TONGDAI_APP_ID": f"bench-acd-{uuid.uuid4().hex[:6]}",
             "TONGDAI_WORKER_DATA_DIR": f"{tmp}/worker", "TONGDAI_START_FROM": "latest",
             "TONGDAI_CONFIG_FROM": "latest",
             "TONGDAI_LOG_LEVEL": "INFO"})
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    marks = end_offsets(bootstrap, [topics.FS_ROUTING, topics.ROUTING_DECISIONS,
                                    topics.CC_EVENTS, topics.CC_COMMANDS])
    try:
        wait_log(worker, worker_log, "Ready")
        wait_log(bridge, bridge_log, "subscribed")
        key = topics.tenant_key(tenant)
        _send(producer, topics.CONFIG, topics.config_key(tenant, "tenant", tenant), tenant,
              "config_changed", {"kind": "tenant", "entity_id": tenant, "data": {"domain": tenant}})
        _send(producer, topics.CONFIG, topics.config_key(tenant, "queue", "support"), tenant,
              "config_changed", {"kind": "queue", "entity_id": "support",
                                 "data": {"strategy": "longest-idle-agent", "wrapup_s": 1,
                                          "offer_timeout_s": 10, "connect": args.connect}})
        for i in range(args.agents):
            _send(producer, topics.CONFIG, topics.config_key(tenant, "agent", f"a{i}"), tenant,
                  "config_changed", {"kind": "agent", "entity_id": f"a{i}",
                                     "data": {"extension": str(5000 + i),
                                              "queues": {"support": {}}}})
            _send(producer, topics.CC_COMMANDS, key, tenant, "agent_login_requested",
                  {"agent_id": f"a{i}"})
        producer.flush()
        time.sleep(3)
        cpu0 = {p.pid: cpu_s(p.pid) for p in (bridge, worker)}
        started = time.monotonic()
        LoadGenerator(sim.node, LoadSpec(
            cps=args.cps, agents=args.agents, first_ext=5000, duration=args.seconds,
            dids=["19001234"], variables={"tongdai_tenant": tenant, "tongdai_queue": "support"},
            handle_time=Distribution("uniform", 2, 5), patience=Distribution("uniform", 60, 90),
            answer_delay=Distribution("uniform", 0.2, 0.5))).start()
        time.sleep(args.seconds)
        deadline = time.monotonic() + 60
        while sim.node.channels and time.monotonic() < deadline:
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        cpu = {p.pid: cpu_s(p.pid) - cpu0[p.pid] for p in (bridge, worker)}
    finally:
        producer.close()
        for proc in (worker, bridge):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        sim.stop()
    connect_ms, offer_ms = probe.latencies()
    stages = _stages(bootstrap, marks, tenant, probe, worker_log)
    if args.connect == "switch":  # no connect_call: only the time to offer's stages
        stages = {k: v for k, v in stages.items() if k.startswith(("offer_stage_", "offers_"))}
    calls = len(probe.caller_park)
    bridged = len(connect_ms)
    figures = {
        "answer_to_connect_p50_ms": round(pct(connect_ms, 0.50), 1),
        "answer_to_connect_p99_ms": round(pct(connect_ms, 0.99), 1),
        "answer_to_connect_max_ms": round(max(connect_ms, default=0), 1),
        "enqueue_to_offer_p50_ms": round(pct(offer_ms, 0.50), 1),
        "enqueue_to_offer_p99_ms": round(pct(offer_ms, 0.99), 1),
        "offered_calls_per_s": args.cps,
        "bridged_calls_per_s": round(bridged / args.seconds, 2),
        "calls_count": calls,
        "bridged_count": bridged,
        "not_bridged_count": calls - bridged,
        "connect_by_router_count": int(args.connect == "router"),
        "worker_cpu_pct": round(cpu[worker.pid] / elapsed * 100, 1),
        "bridge_cpu_pct": round(cpu[bridge.pid] / elapsed * 100, 1),
        "agents_count": args.agents,
        **stages,
    }
    print(f"acd: {calls} calls at {args.cps}/s, {bridged} bridged (connect: {args.connect}); "
          f"answer->connect p50 {figures['answer_to_connect_p50_ms']} ms p99 "
          f"{figures['answer_to_connect_p99_ms']} ms; enqueue->offer p50 "
          f"{figures['enqueue_to_offer_p50_ms']} ms p99 {figures['enqueue_to_offer_p99_ms']} ms; "
          f"worker CPU {figures['worker_cpu_pct']}%", file=sys.stderr)
    return figures
