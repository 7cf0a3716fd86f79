"""A sample history for `tongdai whatif`: two simulated hours of one tenant's queue, routed
by the real router on the ESL simulator (deploy/benchmarks/_simrun.py), written to Kafka as
a worker would have written them (the commands topic: configuration and agent commands;
the facts topic: callers enqueued, answered, abandoned, ended, agents' states).

    python -m deploy.whatif_sample --tenant whatif.sample [--seed 1]

Monday 2026-11-23, 08:00–10:00 Asia/Ho_Chi_Minh: queue `support` (longest idle, 10 s
wrap-up), six agents (one at lunch 08:45–09:15, one leaving at 09:30), about 190 callers an
hour talking about two minutes, giving up after a minute and a half on average: an
understaffed morning. `deploy/local/demo/whatif-more-agents.yaml` is a what-if for it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import random

from esl_bridge.simulator import CallerSpec

from .benchmarks._simrun import SimRun

START = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))
HOURS = 2.0


def simulate(tenant: str, seed: int = 1, hours: float = HOURS, cps: float = 0.053) -> SimRun:
    rng = random.Random(seed)
    run = SimRun(tenant, seed=seed, start_epoch=START.timestamp())
    run.config("tenant", tenant, {"domain": tenant})
    run.config("queue", "support", {"strategy": "longest-idle-agent", "wrapup_s": 10,
                                    "offer_timeout_s": 20})
    for i in range(6):
        run.add_agent(f"a{i}", str(1000 + i), {"support": {}},
                      answer_delay=round(rng.uniform(1.5, 4.0), 2))
    agenda = [(45 * 60, "agent_pause_requested", {"agent_id": "a5", "reason": "lunch"}),
              (75 * 60, "agent_resume_requested", {"agent_id": "a5"}),
              (90 * 60, "agent_logout_requested", {"agent_id": "a4"})]
    elapsed, end = 0.0, hours * 3600
    t = rng.expovariate(cps)
    n = 0
    while elapsed < end:
        nxt = min([t, end] + [at for at, _, _ in agenda])
        run.run_for(nxt - elapsed)
        elapsed = nxt
        while agenda and agenda[0][0] <= elapsed:
            _, type_, payload = agenda.pop(0)
            run.command(type_, payload)
        if t <= elapsed < end:
            n += 1
            run.place_call(CallerSpec(
                number=f"09{rng.randrange(10**8):08d}", did="19001234",
                variables={"tongdai_tenant": tenant, "tongdai_queue": "support"},
                patience=rng.expovariate(1 / 90), talk=max(15.0, rng.lognormvariate(4.7, 0.5))))
            t += rng.expovariate(cps)
    run.run_for(1800)
    return run


def publish(run: SimRun, bootstrap: str) -> int:
    from kafka import KafkaProducer

    from routing.contract import encode, topics

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for topic, env in run.log:
            producer.send(topic, key=topics.tenant_key(env.tenant), value=encode(env))
        producer.flush(60)
    finally:
        producer.close()
    return len(run.log)


def main(argv: list[str] | None = None) -> int:
    import os

    from streams.settings import load as worker_settings

    parser = argparse.ArgumentParser(prog="python -m deploy.whatif_sample")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    run = simulate(args.tenant, args.seed)
    n = publish(run, worker_settings(os.environ).kafka_bootstrap)
    print(f"{n} records of {args.tenant} written ({START.isoformat()} + {HOURS:g} h)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
