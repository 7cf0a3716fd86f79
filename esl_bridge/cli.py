"""`tongdai bridge [run]` and `tongdai bridge replay FILE [--to-kafka]`."""
from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path

from routing.contract import encode, topics
from routing.contract.edge import schedule, setup_logging

from . import normalize, protocol, settings as bridge_settings
from .normalize import NormalizerConfig, Skipped


def replay(path: Path, *, to_kafka: bool, config: NormalizerConfig, bootstrap: str,
           out=sys.stdout) -> dict:
    """Print the envelopes the bridge would publish for a raw ESL capture, then a summary."""
    parser = protocol.FrameParser()
    counts: Counter = Counter()
    producer = None
    if to_kafka:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                 enable_idempotence=True, linger_ms=5)
    data = path.read_bytes()
    frames = []
    try:
        frames = parser.feed(data)
    except protocol.ProtocolError as exc:
        frames = exc.frames
        counts["frame_errors"] += 1
        print(f"replay: framing error after {len(frames)} frames: {exc}", file=sys.stderr)
    if parser.buffered:
        counts["incomplete_tail_bytes"] = parser.buffered
    for frame in frames:
        counts["frames"] += 1
        if frame.content_type not in (protocol.EVENT_PLAIN, protocol.EVENT_JSON,
                                      protocol.EVENT_XML):
            counts[f"not_events:{frame.content_type or 'none'}"] += 1
            continue
        counts["events"] += 1
        try:
            envelope = normalize.normalize(protocol.parse_event(frame), config)
        except Skipped:
            counts["skipped"] += 1
            continue
        except (protocol.ProtocolError, ValueError, KeyError) as exc:
            counts["unpublishable"] += 1
            print(f"replay: frame {counts['frames']}: {exc}", file=sys.stderr)
            continue
        counts["published"] += 1
        out.write(json.dumps(envelope.to_dict(), ensure_ascii=False) + "\n")
        if producer is not None:
            producer.send(topics.FS_EVENTS, key=topics.tenant_key(envelope.tenant),
                          value=encode(envelope))
    if producer is not None:
        producer.flush(timeout=30)
        producer.close()
    summary = {"summary": True, "file": str(path), **dict(counts)}
    out.write(json.dumps(summary) + "\n")
    return summary


#: a garbage collection longer than this is logged (the event loop stood still meanwhile)
SLOW_COLLECTION_S = 0.02


def watch_collections(log: logging.Logger) -> None:
    """Log every garbage collection that holds the process longer than SLOW_COLLECTION_S."""
    started: list[float] = []

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            took = time.perf_counter() - started[0]
            if took > SLOW_COLLECTION_S:
                log.warning("garbage collection of generation %d took %.0f ms",
                            info.get("generation", -1), took * 1000)

    gc.callbacks.append(on_gc)


def run_bridge(settings: bridge_settings.BridgeSettings) -> int:
    import gevent
    import signal

    from .bridge import Bridge

    bridge = Bridge(settings)
    log = logging.getLogger("tongdai.bridge")
    log.info("starting: %r", settings)
    bridge.start()
    watch_collections(log)
    # What exists once the bridge runs (modules, clients, its books) leaves the collector's
    # view: a full collection then scans only what came later. The events' every parse
    # allocates, and a full collection runs in the one greenlet loop that reads the switch.
    gc.freeze()
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    while not stop.wait(timeout=10):
        log.info("stats %s", json.dumps(bridge.stats()))
    log.info("stopping: sending what is spooled")
    bridge.stop()
    log.info("stopped %s", json.dumps(bridge.stats()))
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tongdai bridge")
    sub = parser.add_subparsers(dest="action")
    sub.add_parser("run", help="connect to FreeSWITCH and Kafka (the default)")
    rp = sub.add_parser("replay", help="normalize a raw ESL capture to JSON lines")
    rp.add_argument("file", type=Path)
    rp.add_argument("--to-kafka", action="store_true", help="also publish them")
    args = parser.parse_args(argv)
    try:
        settings = bridge_settings.load()
    except ValueError as exc:
        print(f"tongdai bridge: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    if args.action == "replay":
        if not args.file.is_file():
            print(f"tongdai bridge replay: no such file: {args.file}", file=sys.stderr)
            return 2
        config = NormalizerConfig(settings.default_tenant, settings.country_code,
                                  settings.domain_map)
        replay(args.file, to_kafka=args.to_kafka, config=config,
               bootstrap=settings.kafka_bootstrap)
        return 0
    schedule(settings.scheduling, settings.scheduling_priority)  # before the bridge starts any thread
    return run_bridge(settings)
