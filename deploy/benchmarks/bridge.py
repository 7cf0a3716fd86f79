"""Bridge throughput: normalized events/s and CPU per event, plain vs json, zero loss.

The events are real simulator calls (caller parks, agent originated, bridged, both hang
up), generated deterministically on a manual clock and encoded in the wire format once;
a simulator ESL server then pushes them as fast as the socket takes them to a real
`tongdai bridge` process, which normalizes, spools and publishes them to the local Kafka.
Measured: events/s from first byte sent to the last event read back from Kafka, the bridge
process's CPU seconds per event (from /proc), and the cost of each in-process stage on one
core (parse, normalize, encode, spool append) to show where the time goes. In the same
run, greenswitch's own reader (InboundESL, a handler that only counts) gets the same plain
events from a simulator in a process of its own: the bridge's events per CPU second over
greenswitch's is `{plain,json}_vs_greenswitch_per_core_ratio` (greenswitch reads no JSON,
so the json ratio compares the bridge's JSON path with greenswitch's plain parse).
Needs the local stack running (`tongdai stack up`).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid

from esl_bridge import normalize, protocol
from esl_bridge.simulator import Simulator
from esl_bridge.simulator.clock import ManualClock
from esl_bridge.simulator.model import AgentSpec, CallerSpec
from esl_bridge.simulator.node import Node
from esl_bridge.spool import Spool
from routing.contract import encode, topics

from ._common import cpu_s

PUBLISHED = set(normalize.CHANNEL_TYPES) | {"BACKGROUND_JOB", "HEARTBEAT"}


def generate_events(calls: int, core_uuid: str, seed: int = 1) -> list[protocol.Event]:
    """Events of `calls` bridged queue calls, as a simulated FreeSWITCH emits them."""
    node = Node(clock=ManualClock(), seed=seed, heartbeat=None, core_uuid=core_uuid)
    events: list[protocol.Event] = []
    node.listeners.append(lambda e: events.append(e) if e.name in PUBLISHED else None)
    node.start()
    agents = 20
    for i in range(agents):
        node.add_agent(AgentSpec.parse({"ext": str(1000 + i), "answer": "answer",
                                        "answer_delay": 0.5}))
    node.advance(1)
    for n in range(calls):
        call = node.place_call(CallerSpec.parse({
            "at": 0, "number": f"090{3000000 + n:07d}", "did": "19001234", "talk": 30,
            "patience": 3600, "variables": {"tongdai_tenant": f"tenant-{n % 5}",
                                            "tongdai_queue": "support",
                                            "tongdai_skills": "billing:5"}}))
        node.advance(0.2)
        offer = node.new_uuid()
        done: list[str] = []
        node.originate(f"{{origination_uuid={offer},tongdai_call_id={call},"
                       f"tongdai_tenant=tenant-{n % 5}}}user/{1000 + n % agents}@"
                       f"{node.domain} &park()", done.append)
        node.advance(1)
        node.uuid_bridge(call, offer)
        node.advance(2)
        node.hangup(call, "NORMAL_CLEARING", disposition="recv_bye")
        node.advance(1)
    node.stop()
    return events




def stage_costs(events: list[protocol.Event], fmt: str) -> dict[str, float]:
    """µs per event of each stage of the bridge's reading greenlet, in this process."""
    wire = b"".join(protocol.encode_event(fmt, e.pairs, e.body) for e in events)
    n = len(events)
    t0 = time.perf_counter()
    frames = protocol.FrameParser().feed(wire)
    t1 = time.perf_counter()
    parsed = [protocol.parse_event(f) for f in frames]
    t2 = time.perf_counter()
    envs = [normalize.normalize(e) for e in parsed]
    t3 = time.perf_counter()
    values = [encode(e) for e in envs]
    t4 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(tmp, 1 << 34)
        for env, value in zip(envs, values):
            spool.append(topics.FS_EVENTS, topics.tenant_key(env.tenant), value)
        spool.flush()
        t5 = time.perf_counter()
        spool.close()
    us = 1e6 / n
    return {f"{fmt}_frame_us": round((t1 - t0) * us, 2),
            f"{fmt}_parse_us": round((t2 - t1) * us, 2),
            f"{fmt}_normalize_us": round((t3 - t2) * us, 2),
            f"{fmt}_encode_us": round((t4 - t3) * us, 2),
            f"{fmt}_spool_us": round((t5 - t4) * us, 2),
            f"{fmt}_wire_bytes": round(len(wire) / n)}


def run_once(fmt: str, events: list[protocol.Event], core_uuid: str,
             bootstrap: str) -> dict[str, float]:
    from kafka import KafkaConsumer, TopicPartition

    sim = Simulator(port=0, password="bench", heartbeat=None, core_uuid=core_uuid)
    sim.start()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             group_id=None, fetch_max_bytes=64 << 20)
    parts = consumer.partitions_for_topic(topics.FS_EVENTS) or set(range(8))
    tps = [TopicPartition(topics.FS_EVENTS, p) for p in parts]
    consumer.assign(tps)
    consumer.seek_to_end()
    for tp in tps:
        consumer.position(tp)
    tmp = tempfile.mkdtemp(prefix="tongdai-bench-bridge-")
    env = {**os.environ, "TONGDAI_FREESWITCH": f"127.0.0.1:{sim.port}:bench",
           "TONGDAI_EVENT_FORMAT": fmt, "TONGDAI_KAFKA_BOOTSTRAP": bootstrap,
           "TONGDAI_SPOOL_DIR": f"{tmp}/spool", "TONGDAI_ACTUATOR": "false",
           "TONGDAI_ACTUATOR_STATE_DIR": f"{tmp}/act", "TONGDAI_LOG_LEVEL": "WARNING",
           "TONGDAI_BRIDGE_NAME": f"bench-{uuid.uuid4().hex[:6]}"}
    bridge = subprocess.Popen([sys.executable, "-m", "deploy.cli", "bridge"], env=env,
                              stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/bridge.log", "w"))
    try:
        deadline = time.monotonic() + 30
        while not any(s.names for s in sim.server.sessions):
            if time.monotonic() > deadline or bridge.poll() is not None:
                raise RuntimeError(f"the bridge did not subscribe; see {tmp}/bridge.log")
            time.sleep(0.05)
        session = next(s for s in sim.server.sessions if s.names)
        time.sleep(1.0)  # the snapshot and first produce round trip settle
        wire = [protocol.encode_event(fmt, e.pairs, e.body) for e in events]
        chunk = 500
        blobs = [b"".join(wire[i:i + chunk]) for i in range(0, len(wire), chunk)]
        cpu0 = cpu_s(bridge.pid)
        t0 = time.perf_counter()
        for blob in blobs:
            session.send(blob)
        want = {int(e.headers["Event-Sequence"]) for e in events}
        seen: set[int] = set()
        duplicates = 0
        deadline = time.monotonic() + 300
        while seen != want and time.monotonic() < deadline:
            for _tp, batch in consumer.poll(timeout_ms=200, max_records=50000).items():
                for r in batch:
                    if b'"source":"' + core_uuid.encode() not in r.value:
                        continue
                    raw_seq = r.value.split(b'"seq":', 1)[1].split(b",", 1)[0]
                    if raw_seq == b"null":  # snapshots and status records
                        continue
                    seq = int(raw_seq)
                    if seq in seen:
                        duplicates += 1
                    seen.add(seq)
        elapsed = time.perf_counter() - t0
        cpu = cpu_s(bridge.pid) - cpu0
    finally:
        bridge.terminate()
        bridge.wait(timeout=30)
        consumer.close()
        sim.stop()
    n = len(events)
    return {f"{fmt}_events_per_s": round(len(seen & want) / elapsed),
            f"{fmt}_cpu_per_event_us": round(cpu / n * 1e6, 1),
            f"{fmt}_events_per_cpu_s": round(n / cpu) if cpu else 0,
            f"{fmt}_lost_events": len(want - seen),
            f"{fmt}_duplicate_events": duplicates}


def greenswitch_once(events: list[protocol.Event], core_uuid: str) -> dict[str, float]:
    """The same plain events through greenswitch's own reader (InboundESL: it reads the
    frames line by line, URL-decodes and splits every event's headers, hands each to a
    handler), in a process of its own with a handler that only counts: what greenswitch
    costs to parse an event, the bar the bridge is held to per core."""
    sim = Simulator(port=0, password="bench", heartbeat=None, core_uuid=core_uuid)
    sim.start()
    child = subprocess.Popen([sys.executable, "-m", "deploy.benchmarks.bridge", "greenswitch",
                              str(sim.port), "bench", str(len(events))],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not any(s.listening for s in sim.server.sessions):
            if time.monotonic() > deadline or child.poll() is not None:
                child.kill()
                raise RuntimeError(f"greenswitch did not subscribe: {child.stderr.read()[-2000:]}")
            time.sleep(0.05)
        session = next(s for s in sim.server.sessions if s.listening)
        ready = child.stdout.readline().split()  # "ready <cpu s>"
        wire = [protocol.encode_event("plain", e.pairs, e.body) for e in events]
        blobs = [b"".join(wire[i:i + 500]) for i in range(0, len(wire), 500)]
        t0 = time.perf_counter()
        for blob in blobs:
            session.send(blob)
        done = child.stdout.readline().split()  # "done <events> <cpu s>"
        elapsed = time.perf_counter() - t0
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        sim.stop()
    if len(done) != 3 or len(ready) != 2:
        raise RuntimeError(f"greenswitch run ended early: {ready} {done} "
                           f"{child.stderr.read()[-2000:]}")
    seen, cpu = int(done[1]), float(done[2]) - float(ready[1])
    return {"greenswitch_plain_events_per_s": round(seen / elapsed),
            "greenswitch_plain_cpu_per_event_us": round(cpu / seen * 1e6, 1),
            "greenswitch_plain_events_per_cpu_s": round(seen / cpu) if cpu else 0,
            "greenswitch_plain_lost_events": len(events) - seen}


def _greenswitch_main(port: int, password: str, expected: int) -> None:
    """The child of `greenswitch_once`: count events until `expected`, print CPU seconds."""
    import gevent.event
    from greenswitch.esl import InboundESL

    seen = 0
    finished = gevent.event.Event()

    def count(_event) -> None:
        nonlocal seen
        seen += 1
        if seen >= expected:
            finished.set()

    esl = InboundESL("127.0.0.1", port, password)
    esl.connect()
    esl.register_handle("*", count)
    esl.send("event plain ALL")
    print(f"ready {time.process_time()}", flush=True)
    finished.wait(timeout=300)
    print(f"done {seen} {time.process_time()}", flush=True)


def run(quick: bool = False) -> dict[str, float]:
    from deploy.local import settings as stack_settings

    bootstrap = stack_settings.load().kafka_bootstrap
    calls = 800 if quick else 6000
    figures: dict[str, float] = {}
    for fmt in ("plain", "json"):
        core = str(uuid.uuid4())
        events = generate_events(calls, core)
        figures.update(stage_costs(events, fmt))
        figures.update(run_once(fmt, events, core, bootstrap))
        print(f"bridge {fmt}: {figures[f'{fmt}_events_per_s']} events/s end to end, "
              f"{figures[f'{fmt}_cpu_per_event_us']} µs CPU per event in the bridge, "
              f"lost {figures[f'{fmt}_lost_events']}", file=sys.stderr)
        if fmt == "plain":
            # greenswitch parses the same events (plain: it reads no JSON) in the same run
            figures.update(greenswitch_once(events, str(uuid.uuid4())))
    per_core = figures["greenswitch_plain_events_per_cpu_s"]
    for fmt in ("plain", "json"):
        figures[f"{fmt}_vs_greenswitch_per_core_ratio"] = \
            round(figures[f"{fmt}_events_per_cpu_s"] / per_core, 2) if per_core else 0.0
    print(f"bridge / greenswitch's parse of the same events, events per CPU second: plain "
          f"{figures['plain_vs_greenswitch_per_core_ratio']}, json "
          f"{figures['json_vs_greenswitch_per_core_ratio']} (greenswitch "
          f"{per_core} events/s per core, {figures['greenswitch_plain_events_per_s']} events/s)",
          file=sys.stderr)
    figures["events_count"] = len(events)
    figures["calls_count"] = calls
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["greenswitch"]:
        _greenswitch_main(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
