"""``python -m esl_bridge.simulator``: run a simulated FreeSWITCH inbound ESL server."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from routing.contract.edge import setup_logging

from . import Simulator
from .model import Distribution
from .scenario import LoadSpec, load_scenario


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m esl_bridge.simulator",
                                description="FreeSWITCH inbound Event Socket simulator")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8021, help="listen port, 0 = ephemeral (8021)")
    p.add_argument("--password", default="ClueCon", help="ESL password (ClueCon)")
    p.add_argument("--scenario", help="scenario file (.json, .yaml)")
    p.add_argument("--seed", type=int, default=None, help="random seed (reproducible runs)")
    p.add_argument("--speed", type=float, default=None, help="clock speed factor (1 = wall)")
    p.add_argument("--heartbeat", type=float, default=None, help="HEARTBEAT interval, s (20)")
    p.add_argument("--domain", default=None, help="agents' SIP domain (127.0.0.1)")
    p.add_argument("--hostname", default="sim", help="FreeSWITCH-Hostname of the node")
    p.add_argument("--fidelity", choices=("core", "full"), default="core",
                   help="core: contact-center events; full: also CHANNEL_STATE/CALLSTATE/EXECUTE")
    p.add_argument("--unregistered-cause", default="USER_NOT_REGISTERED",
                   help="originate result for a known but unregistered user")
    p.add_argument("--originate-timeout", type=float, default=60.0,
                   help="default ring time before NO_ANSWER, s (60)")
    p.add_argument("--answer-to-park", type=float, default=0.02,
                   help="originated leg: s from CHANNEL_ANSWER to job result + park (0.02)")
    p.add_argument("--lost-bridge-rate", type=float, default=0.0,
                   help="chance a uuid_bridge racing an unfinished originate is lost (0; "
                        "real FreeSWITCH ≈ 0.005)")
    p.add_argument("--external-answer-delay", type=float, default=4.0,
                   help="ring time of numbers behind sofia/gateway/..., s (4)")
    p.add_argument("--customer-answer-delay", type=float, default=2.0,
                   help="click-to-call: s before an unlisted customer number answers (2)")
    p.add_argument("--customer-talk", type=float, default=20.0,
                   help="click-to-call: s an unlisted customer talks before hanging up (20)")
    load = p.add_argument_group("load mode (enabled by --cps)")
    load.add_argument("--cps", type=float, help="calls per second (Poisson arrivals)")
    load.add_argument("--agents", type=int, default=10, help="number of agents (10)")
    load.add_argument("--first-ext", type=int, default=1000, help="first agent extension")
    load.add_argument("--duration", type=float, help="stop placing calls after N s")
    load.add_argument("--max-calls", type=int, help="stop after N calls")
    load.add_argument("--did", action="append", help="DID(s) callers dial (repeatable)")
    load.add_argument("--queue", help="tongdai_queue set on every call")
    load.add_argument("--tenant", help="tongdai_tenant set on every call")
    load.add_argument("--handle-time", type=float, default=120.0, help="mean talk time, s (exp)")
    load.add_argument("--patience", type=float, default=60.0, help="mean patience, s (exp)")
    load.add_argument("--answer-delay", type=float, default=1.0, help="agent answer delay, s")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    scenario, raw = (None, {})
    if args.scenario:
        scenario, raw = load_scenario(args.scenario)
    load = None
    if args.cps:
        variables: dict[str, str] = {}
        if args.queue:
            variables["tongdai_queue"] = args.queue
        if args.tenant:
            variables["tongdai_tenant"] = args.tenant
        load = LoadSpec(cps=args.cps, agents=args.agents, first_ext=args.first_ext,
                        duration=args.duration, max_calls=args.max_calls,
                        dids=args.did or ["19001000"], variables=variables,
                        handle_time=Distribution("exp", args.handle_time),
                        patience=Distribution("exp", args.patience),
                        answer_delay=Distribution("const", args.answer_delay))
    options: dict[str, object] = {"fidelity": args.fidelity,
                                  "unregistered_cause": args.unregistered_cause,
                                  "originate_timeout": args.originate_timeout,
                                  "external_answer_delay": args.external_answer_delay,
                                  "answer_to_park": args.answer_to_park,
                                  "lost_bridge_rate": args.lost_bridge_rate,
                                  "customer_answer_delay": args.customer_answer_delay,
                                  "customer_talk": args.customer_talk}
    if args.domain:
        options["domain"] = args.domain
    sim = Simulator(host=args.host, port=args.port, password=args.password,
                    speed=args.speed if args.speed is not None else float(raw.get("speed", 1.0)),
                    seed=args.seed if args.seed is not None else raw.get("seed"),
                    heartbeat=args.heartbeat if args.heartbeat is not None
                    else raw.get("heartbeat", 20.0),
                    scenario=scenario, load=load, hostname=args.hostname, **options)
    sim.start()
    print(f"esl simulator listening on {sim.host}:{sim.port} core-uuid {sim.node.core_uuid}",
          flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
