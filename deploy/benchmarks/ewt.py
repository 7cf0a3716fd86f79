"""Estimated-wait accuracy: p50 / p90 of |estimated − actual| wait from a simulator run.

One queue, agents whose phones answer after 1–4 s, callers arriving at random (Poisson)
with lognormal talk times and some impatience, driven through the ESL simulator on a
manual clock with the real normalizer, router and actuator command lines in one process
(`_simrun.py`): hours of calls in a minute. The estimate is `routing.ewt.estimate` on the
router's state, the one the live view publishes; the actual wait is the simulator's ledger
(what the caller lived: queue entry → bridged to a phone). Two sets of samples:

- at entry: each caller's estimate when its park reached the router (what the entry
  announcement says) against its whole wait; "queued" are those who found no agent free
  (position 1 or more: the ones whose estimate is more than a phone's ring);
- periodic: every 30 s, each waiting caller's estimate against the wait it still had.

Callers who hung up before a phone answered have no actual wait and are left out (counted).
The first 10 simulated minutes are a warm-up (the estimator has no talk times yet), not scored.
Options (after --): --agents N (20), --cps N (0.14), --minutes N (120; 40 with --quick),
--seed N (1).
"""
from __future__ import annotations

import argparse
import random
import time

from esl_bridge.simulator import CallerSpec
from routing import ewt

from ._common import pct
from ._simrun import US, SimRun

TENANT = "ewt.bench"
WARMUP_S = 600
PERIOD_S = 30


def simulate(agents: int, cps: float, minutes: float, seed: int) -> dict:
    rng = random.Random(seed)
    run = SimRun(TENANT, seed=seed)
    run.config("tenant", TENANT, {"domain": TENANT})
    run.config("queue", "support", {"strategy": "longest-idle-agent", "wrapup_s": 10,
                                    "offer_timeout_s": 20})
    for i in range(agents):
        run.add_agent(f"a{i}", str(1000 + i), {"support": {}},
                      answer_delay=round(rng.uniform(1.0, 4.0), 2))
    start_us = run.now_us
    at_entry: dict[str, tuple[int, int, int]] = {}  # call -> (estimated at, ewt s, position)
    periodic: list[tuple[str, int, int]] = []

    def on_record(env) -> None:
        if env.type == "channel_parked" and env.call_id and env.call_id == env.payload.get(
                "leg_id") and env.call_id not in at_entry:
            est = ewt.estimate(run.router.state, env.occurred_at).calls.get(env.call_id)
            if est is not None and est.ewt_s is not None:
                at_entry[env.call_id] = (env.occurred_at, est.ewt_s, est.position)

    run.after.append(on_record)
    talk = lambda: max(10.0, rng.lognormvariate(4.6, 0.6))  # median 100 s, mean ≈ 120 s
    end = minutes * 60
    t = rng.expovariate(cps)
    next_sample = PERIOD_S
    elapsed = 0.0
    n = 0
    while elapsed < end:
        nxt = min(t, next_sample, end)
        run.run_for(nxt - elapsed)
        elapsed = nxt
        if elapsed >= t and t < end:
            n += 1
            run.place_call(CallerSpec(
                number=f"09{rng.randrange(10**8):08d}", did="19001234",
                variables={"tongdai_tenant": TENANT, "tongdai_queue": "support"},
                patience=rng.expovariate(1 / 600), talk=talk()))
            t += rng.expovariate(cps)
        if elapsed >= next_sample:
            now = run.now_us
            for cid, est in ewt.estimate(run.router.state, now).calls.items():
                if est.position >= 1 and est.ewt_s is not None:
                    periodic.append((cid, now, est.ewt_s))
            next_sample += PERIOD_S
    run.run_for(900)  # let the last callers be served or give up
    truth = run.ledger.calls()
    answered = {cid: c for cid, c in truth.items() if c.answered and c.answer_us}

    def errors(samples):
        out, left = [], 0
        for cid, at, est in samples:
            if at - start_us < WARMUP_S * US:
                continue
            c = answered.get(cid)
            if c is None:
                left += 1
                continue
            out.append(abs(est - (c.answer_us - at) / US))
        return out, left

    entry_err, entry_left = errors([(cid, at, e) for cid, (at, e, _) in at_entry.items()])
    queued_err, _ = errors([(cid, at, e) for cid, (at, e, pos) in at_entry.items() if pos >= 1])
    per_err, _ = errors(periodic)
    waits = [c.wait_ms / 1000 for c in answered.values()]
    return {
        "callers_count": n, "answered_count": len(answered),
        "abandoned_count": sum(1 for c in truth.values() if c.disposition.startswith("abandon")
                               or c.disposition == "short_abandoned"),
        "scored_at_entry_count": len(entry_err), "unscored_hung_up_count": entry_left,
        "entry_abs_error_p50_s": round(pct(entry_err, 0.5), 1),
        "entry_abs_error_p90_s": round(pct(entry_err, 0.9), 1),
        "queued_at_entry_count": len(queued_err),
        "queued_entry_abs_error_p50_s": round(pct(queued_err, 0.5), 1),
        "queued_entry_abs_error_p90_s": round(pct(queued_err, 0.9), 1),
        "periodic_samples_count": len(per_err),
        "periodic_abs_error_p50_s": round(pct(per_err, 0.5), 1),
        "periodic_abs_error_p90_s": round(pct(per_err, 0.9), 1),
        "actual_wait_p50_s": round(pct(waits, 0.5), 1),
        "actual_wait_p90_s": round(pct(waits, 0.9), 1),
        "router_commands_count": run.commands,
    }


def run(quick: bool = False, argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="tongdai bench ewt --")
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--cps", type=float, default=0.14)
    parser.add_argument("--minutes", type=float, default=40 if quick else 120)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args([a for a in argv or [] if a != "--"])
    began = time.monotonic()
    figures = simulate(args.agents, args.cps, args.minutes, args.seed)
    figures["agents_count"] = args.agents
    figures["simulated_s"] = int(args.minutes * 60)
    figures["wall_s"] = round(time.monotonic() - began, 1)
    print(f"ewt: {figures['callers_count']} callers over {args.minutes:g} simulated minutes, "
          f"{args.agents} agents; at entry |est - actual| p50 "
          f"{figures['entry_abs_error_p50_s']} s, p90 {figures['entry_abs_error_p90_s']} s "
          f"(actual wait p50 {figures['actual_wait_p50_s']} s, p90 "
          f"{figures['actual_wait_p90_s']} s)", flush=True)
    return figures
