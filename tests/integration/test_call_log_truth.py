"""The call log tells the truth for every call on the switch (issue 13).

Mixed traffic through the real product (ESL simulator in this process, `tongdai bridge`,
`tongdai worker`, `tongdai sink --migrate`, each its own process) on a Kafka and a
ClickHouse started for this module alone: topic names are fixed and every worker routes
every tenant it sees, so on the shared stack another deployment's worker would route our
calls too (as `tongdai bench soak --stack private` does).

The simulator's ledger (esl_bridge/simulator/ledger.py) records what each caller and phone
lived; the call log's `calls` and `offers` rows must equal it field by field. Tolerances:
times within 40 ms (the same simulated clock stamps both, so they agree to the µs unless
the product takes a time from elsewhere), durations within 40 ms; numbers compared in E.164
(the normalizer's formatting). A per-field agreement table is printed; all must be 100 %.

Traffic: queue calls answered (caller-first and agent-first hangups), an IVR choice into a
queue, an IVR exit, re-offers after no answer / busy / decline, abandons in queue (short
and not) and while a phone rings, a transfer to a second phone, after hours to voicemail
and to the closed announcement, click-to-call answered and to a busy number.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from analytics.cdr import CDR_COLUMNS, OFFER_COLUMNS
from esl_bridge.normalize import NormalizerConfig, phone
from esl_bridge.simulator import Simulator
from esl_bridge.simulator.ledger import CallTruth, Ledger
from esl_bridge.simulator.model import AgentSpec, CallerSpec, IvrSpec, NumberSpec
from routing.contract import topics

from .harness import Publisher, Reader, bridge_env, stop_process, wait_ready, worker_env

pytestmark = [pytest.mark.analytics, pytest.mark.streams, pytest.mark.stack]

TIME_TOLERANCE_US = 40_000
DURATION_TOLERANCE_MS = 40
DID = "19001234"
CLOSED_QUEUES = ("night", "night2")


@dataclasses.dataclass
class Run:
    sim: Simulator
    ledger: Ledger
    bootstrap: str
    clickhouse_port: int
    database: str
    tmp: Path
    clickhouse_password: str = ""

    def client(self):
        from clickhouse_driver import Client

        return Client("127.0.0.1", port=self.clickhouse_port, user="default",
                      password=self.clickhouse_password)


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = open(log, "w")
    proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", *args],
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **env}, stdout=out,
                            stderr=subprocess.STDOUT)
    proc.log_path = log  # type: ignore[attr-defined]
    return proc


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    from deploy.benchmarks._common import free_port
    from deploy.local import settings as stack_settings
    from deploy.local import stack

    shared = stack_settings.load()
    tmp = Path(tempfile.mkdtemp(prefix="tongdai-call-log-truth-"))
    (tmp / "stack").mkdir()
    if (shared.root / "kafka-dist").exists():  # the jars, not a second download
        os.symlink(shared.root / "kafka-dist", tmp / "stack" / "kafka-dist")
    settings = dataclasses.replace(
        shared, stack_dir=str(tmp / "stack"), kafka_port=free_port(),
        kafka_controller_port=free_port(), clickhouse_tcp_port=free_port(),
        clickhouse_http_port=free_port(), kafka_heap_mb=512)
    quiet = lambda m: None  # noqa: E731
    try:
        stack.up(settings, log=quiet)
    except BaseException:
        stack.down(settings, log=quiet)
        raise
    sim = Simulator(port=0, password="truth-test", heartbeat=3600, seed=13,
                    core_uuid=str(uuid.uuid4()))
    ledger = Ledger(sim.node, closed=lambda queue, at: queue in CLOSED_QUEUES)
    sim.start()
    bootstrap = settings.kafka_bootstrap
    database = f"truth_{uuid.uuid4().hex[:8]}"
    procs: list[subprocess.Popen] = []
    try:
        worker = _start(["worker"], worker_env(tmp, bootstrap, "truth-router"),
                        tmp / "worker.log")
        procs.append(worker)
        wait_ready(worker, "Ready", timeout=120)
        bridge = _start(["bridge"], bridge_env(sim, tmp, bootstrap), tmp / "bridge.log")
        # A stack that generates ClickHouse passwords says so (deploy/local/settings.py).
        clickhouse_env = settings.clickhouse_environ() if hasattr(
            settings, "clickhouse_environ") else {}
        sink = _start(["sink", "--migrate"], {
            "TONGDAI_KAFKA_BOOTSTRAP": bootstrap,
            "TONGDAI_CLICKHOUSE_PORT": str(settings.clickhouse_tcp_port), **clickhouse_env,
            "TONGDAI_CLICKHOUSE_DATABASE": database, "TONGDAI_DEPLOYMENT": "truth",
            "TONGDAI_SINK_BATCH_S": "0.5"}, tmp / "sink.log")
        procs += [bridge, sink]
        wait_ready(bridge, "subscribed")
        wait_ready(sink, "tongdai sink:")
        yield Run(sim, ledger, bootstrap, settings.clickhouse_tcp_port, database, tmp,
                  clickhouse_env.get("TONGDAI_CLICKHOUSE_PASSWORD", ""))
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        sim.stop()
        stack.down(settings, log=quiet)
        shutil.rmtree(tmp / "stack", ignore_errors=True)  # the logs of the run stay


# ---------------------------------------------------------------- the traffic


class Tenant:
    """The run's tenant: queues, agents (each logged in once the previous is available, so
    longest-idle offers them in that order) and helpers to place calls."""

    def __init__(self, run: Run) -> None:
        self.id = f"t{uuid.uuid4().hex[:8]}.truth"
        self.run = run
        self.sim = run.sim
        self.reader = Reader(run.bootstrap, [topics.CC_EVENTS], lambda e: e.tenant == self.id)
        self.api = Publisher(run.bootstrap, self.id)
        self.ext: dict[str, str] = {}

    def configure(self, queues: dict[str, dict], agents: list[tuple[str, str, dict]]) -> None:
        self.api.config("tenant", self.id, {"domain": self.id})
        for q, cfg in queues.items():
            self.api.config("queue", q, {"strategy": "longest-idle-agent", "wrapup_s": 1,
                                         "offer_timeout_s": 3, **cfg})
        self.api.flush()
        for i, (agent_id, queue, phone_spec) in enumerate(agents):
            ext = str(2000 + i)
            self.ext[agent_id] = ext
            self.sim.add_agent(AgentSpec.parse({"ext": ext, "domain": self.id,
                                                "register_at": None, **phone_spec}))
            self.api.config("agent", agent_id, {"extension": ext,
                                                "queues": {queue: {}} if queue else {}})
            self.api.command("agent_login_requested", agent_id=agent_id)
            self.api.flush()
            self.sim.register(ext, self.id)
            self.reader.wait_for(lambda es: self.state(agent_id) == "available", timeout=60,
                                 what=f"{agent_id} available")

    def state(self, agent_id: str) -> str:
        states = [e.payload["state"] for e in self.reader.of_type("agent_state_changed")
                  if e.payload["agent_id"] == agent_id]
        return states[-1] if states else ""

    def call(self, queue: str | None, number: str, **spec: Any) -> str:
        variables = {"tongdai_tenant": self.id, "tongdai_did": DID}
        if queue:
            variables["tongdai_queue"] = queue
        return self.sim.place_call(CallerSpec(number=number, did=DID, variables=variables,
                                              **spec))

    def close(self) -> None:
        self.reader.close()
        self.api.close()


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _leave_message_after(sim: Simulator, seconds: float) -> None:
    """A caller sent to voicemail leaves a message, then hangs up."""
    node = sim.node

    def on_event(event) -> None:  # a node listener: under the node's lock
        if event.name != "CHANNEL_EXECUTE" or event.headers.get("Application") != "voicemail":
            return
        uid = event.headers.get("Unique-ID", "")
        ch = node.channels.get(uid)
        if ch is not None and ch.caller is not None:
            node.scheduler.call_later(seconds, lambda: node.hangup(
                uid, "NORMAL_CLEARING", disposition="recv_bye"))

    node.listeners.append(on_event)


def _bridged_to(sim: Simulator, uid: str) -> str:
    with sim.node.lock:
        ch = sim.node.channels.get(uid)
        return (ch.bridged_to or "") if ch is not None else ""


def _transfer(t: Tenant, call: str, to_ext: str) -> None:
    """The agent passes the caller to a colleague's phone: the colleague's leg is rung and
    answered, the caller is bridged to it and the agent hangs up."""
    node = t.sim.node
    _wait(lambda: bool(_bridged_to(t.sim, call)), 30, "the transferred call answered")
    first = _bridged_to(t.sim, call)
    time.sleep(1.0)
    leg = str(uuid.uuid4())
    node.originate(f"{{origination_uuid={leg},tongdai_tenant={t.id},"
                   f"origination_caller_id_number=0903000010}}user/{to_ext}@{t.id} &park()",
                   lambda body: None)
    _wait(lambda: bool(node.channels.get(leg) and node.channels[leg].parked), 20,
          "the colleague's phone answered")
    assert node.uuid_bridge(call, leg).startswith("+OK")
    node.hangup(first, "NORMAL_CLEARING", disposition="recv_bye")


def _traffic(t: Tenant) -> list[str]:
    """Place the mix; returns the caller legs placed (click-to-calls are found later)."""
    tomorrow = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][
        (dt.datetime.now(dt.timezone(dt.timedelta(hours=7))).weekday() + 1) % 7]
    closed = {"schedule": {"hours": {tomorrow: ["08:00-17:00"]}}}
    t.configure(
        queues={"support": {}, "retry": {}, "ring": {"offer_timeout_s": 20}, "hold": {},
                "xfer": {}, "out": {},
                "night": {**closed, "after_hours": "voicemail"},
                "night2": {**closed, "after_hours": "announcement"}},
        agents=[("s1", "support", {"answer_delay": 0.4}),
                ("s2", "support", {"answer_delay": 0.7}),
                ("r_sleepy", "retry", {"answer": "no_answer"}),
                ("r_busy", "retry", {"answer": "busy"}),
                ("r_reject", "retry", {"answer": "reject", "answer_delay": 0.6}),
                ("r_good", "retry", {"answer_delay": 0.5}),
                ("deaf", "ring", {"answer": "no_answer"}),
                ("pausy", "hold", {}),
                ("x1", "xfer", {"answer_delay": 0.5}),
                ("colleague", "", {"answer_delay": 0.8}),
                ("c1", "out", {"answer_delay": 0.5})])
    t.api.command("agent_pause_requested", agent_id="pausy", reason="meeting")
    t.api.flush()
    t.reader.wait_for(lambda es: t.state("pausy") == "paused", what="pausy paused")
    sim = t.sim
    sim.add_number(NumberSpec(number="0912000111", answer_delay=0.8, talk=2.0))
    sim.add_number(NumberSpec(number="0912000222", answer="busy"))
    _leave_message_after(sim, 2.0)

    calls = [
        t.call("support", "0903000001", patience=60, talk=2.0),
        t.call("support", "0903000002", patience=60, talk=2.5, hangup_by="agent"),
        t.call(None, "0903000003", patience=60, talk=1.5, ivr=IvrSpec(
            choice="1", after=1.0, path="1", variables={"tongdai_queue": "support"})),
        t.call(None, "0903000004", patience=3.0, ivr=IvrSpec(
            choice="9", after=1.0, entry=("menu-exec-app", "playback invalid.wav"))),
        t.call("retry", "0903000005", patience=60, talk=2.0),
        t.call("ring", "0903000006", patience=6.0),
        t.call("hold", "0903000007", patience=2.0),
        t.call("hold", "0903000008", patience=7.0),
        t.call("night", "0903000009", patience=30),
        t.call("night2", "0903000011", patience=4.0),
    ]
    xfer = t.call("xfer", "0903000012", patience=60)
    calls.append(xfer)
    t.api.command("click_to_call_requested", agent_id="c1", number="+84 912 000 111",
                  request_id="c2c-1", caller_id="02873001234")
    t.api.flush()
    _transfer(t, xfer, t.ext["colleague"])
    time.sleep(2.0)
    sim.hangup(xfer)  # the caller ends the call with the colleague
    # The second click-to-call once c1 is free again.
    t.reader.wait_for(lambda es: any(e.type == "agent_state_changed"
                                     and e.payload["agent_id"] == "c1"
                                     and e.payload["state"] == "on_call" for e in es)
                      and t.state("c1") == "available", timeout=40, what="c1 free again")
    t.api.command("click_to_call_requested", agent_id="c1", number="0912000222",
                  request_id="c2c-2", caller_id="02873001234")
    t.api.flush()
    return calls


# ---------------------------------------------------------------- the call log


def _live_rows(client, database: str, table: str, columns: tuple[str, ...],
               tenant: str, key: tuple[str, ...]) -> tuple[dict[tuple, dict], list[tuple]]:
    """The live row per key (sign +1, highest version) and keys whose signs do not sum to 1."""
    rows = client.execute(
        f"SELECT {', '.join(columns)}, version, sign FROM {database}.{table} "
        f"WHERE tenant = %(t)s", {"t": tenant})
    by_key: dict[tuple, list[dict]] = {}
    for r in rows:
        d = dict(zip((*columns, "version", "sign"), r))
        by_key.setdefault(tuple(d[k] for k in key), []).append(d)
    live, broken = {}, []
    for k, rs in by_key.items():
        total = sum(r["sign"] for r in rs)
        if total == 0:
            continue  # cancelled (e.g. a leg joined to its call later)
        if total != 1:
            broken.append(k)
        live[k] = max((r for r in rs if r["sign"] > 0), key=lambda r: r["version"])
    return live, broken


def _e164(number: str) -> str:
    return phone(number, NormalizerConfig()) or ""


class Table:
    """Per-field agreement counts and the disagreements, for the printout."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}
        self.misses: list[str] = []

    def check(self, field: str, call: str, truth: Any, logged: Any, ok: bool | None = None
              ) -> None:
        agree = (truth == logged) if ok is None else ok
        c = self.counts.setdefault(field, [0, 0])
        c[0] += 1 if agree else 0
        c[1] += 1
        if not agree:
            self.misses.append(f"{field} of {call}: truth {truth!r}, call log {logged!r}")

    def near(self, field: str, call: str, truth: int, logged: int, tol: int) -> None:
        self.check(field, call, truth, logged, abs(truth - logged) <= tol)

    def render(self) -> str:
        lines = [f"{'field':<24} {'agree':>7} {'of':>5} {'%':>7}"]
        for field, (ok, n) in self.counts.items():
            lines.append(f"{field:<24} {ok:>7} {n:>5} {100.0 * ok / n:>6.1f}%")
        return "\n".join(lines)

    @property
    def perfect(self) -> bool:
        return all(ok == n for ok, n in self.counts.values())


def compare(truths: dict[str, CallTruth], calls: dict[tuple, dict], offers: dict[tuple, dict],
            extra: list[str]) -> Table:
    tab = Table()
    for call_id, t in sorted(truths.items()):
        row = calls.get((call_id,))
        tab.check("row", call_id, "present", "present" if row else "missing")
        if row is None:
            continue
        inbound = t.direction == "inbound"
        tab.check("final", call_id, 1, row["final"])
        tab.check("direction", call_id, t.direction, row["direction"])
        tab.check("disposition", call_id, t.disposition, row["disposition"])
        tab.check("answered", call_id, t.answered, row["answer_us"] > 0)
        tab.check("hangup_side", call_id, t.hangup_side, row["hangup_side"])
        tab.check("caller", call_id, _e164(t.caller), row["caller"])
        if inbound:
            tab.check("did", call_id, _e164(t.dialed), row["did"])
        else:
            tab.check("callee", call_id, _e164(t.dialed), row["callee"])
        tab.check("ivr_path", call_id, t.ivr_path, row["ivr_path"])
        tab.check("queue", call_id, t.queues[-1] if t.queues else "", row["queue"])
        tab.check("extension", call_id, t.extension, row["extension"])
        tab.near("start_us", call_id, t.start_us, row["start_us"], TIME_TOLERANCE_US)
        tab.near("enqueue_us", call_id, t.enqueue_us, row["enqueue_us"], TIME_TOLERANCE_US)
        tab.near("answer_us", call_id, t.answer_us, row["answer_us"], TIME_TOLERANCE_US)
        tab.near("end_us", call_id, t.end_us, row["end_us"], TIME_TOLERANCE_US)
        tab.near("wait_ms", call_id, t.wait_ms, row["wait_ms"], DURATION_TOLERANCE_MS)
        tab.near("talk_ms", call_id, t.talk_ms, row["talk_ms"], DURATION_TOLERANCE_MS)
        tab.check("transfers", call_id, t.transfers, row["transfers"])
        tab.check("offers", call_id, len(t.offers), row["offers"])
        tab.check("ring_no_answer", call_id, t.ring_no_answer, row["ring_no_answer"])
        logged = {r["leg_id"]: r for (c, _), r in offers.items() if c == call_id}
        for o in t.offers:
            where = f"{call_id}/{o.leg_id}"
            r = logged.get(o.leg_id)
            tab.check("offer.row", where, "present", "present" if r else "missing")
            if r is None:
                continue
            tab.check("offer.extension", where, o.extension, r["extension"])
            tab.check("offer.result", where, o.result, r["result"])
            tab.near("offer.offered_us", where, o.rang_us, r["offered_us"], TIME_TOLERANCE_US)
            tab.near("offer.answered_us", where, o.answered_us, r["answered_us"],
                     TIME_TOLERANCE_US)
            tab.near("offer.ended_us", where, o.ended_us, r["ended_us"], TIME_TOLERANCE_US)
        for leg_id in set(logged) - {o.leg_id for o in t.offers}:
            tab.check("offer.row", f"{call_id}/{leg_id}", "absent", "an offer the phones "
                      "never lived")
    for call_id in extra:
        tab.check("row", call_id, "no call", "a row for a call nobody placed")
    return tab


def _dump_events(client, run: Run, tenant: str, call_ids: set[str]) -> None:
    """The events of the calls that disagree, for the post-mortem (printed and kept)."""
    lines = []
    for call_id in sorted(call_ids):
        rows = client.execute(
            f"SELECT occurred_at, type, source, payload FROM {run.database}.events "
            f"WHERE tenant = %(t)s AND call_id = %(c)s ORDER BY occurred_at, seq",
            {"t": tenant, "c": call_id})
        lines.append(f"-- call {call_id}")
        t0 = rows[0][0] if rows else 0
        for at, type_, source, payload in rows:
            lines.append(f"  +{(at - t0) / 1e6:8.3f} s {type_:<26} {source[:8]:<8} "
                         f"{payload[:300]}")
    text = "\n".join(lines)
    (run.tmp / "disagreeing-events.txt").write_text(text)
    print(text)


def test_the_call_log_equals_what_callers_and_phones_lived(run: Run) -> None:
    t = Tenant(run)
    started = time.monotonic()
    try:
        _traffic(t)
        # Everyone done: every caller and every click-to-call ended.
        _wait(lambda: len(run.ledger.calls()) >= 13 and all(
            c.end_us for c in run.ledger.calls().values()), 60, "every call over")
    finally:
        t.close()
    traffic_s = time.monotonic() - started
    truths = run.ledger.calls()
    client = run.client()
    # Rows are final once the agents' wrap-ups end; a sink that stalls under load reopens
    # its consumer after 30 s (analytics/sink.py), hence the bound.
    deadline = time.monotonic() + 90
    while True:
        calls, broken = _live_rows(client, run.database, "calls", CDR_COLUMNS, t.id,
                                   ("call_id",))
        offers, broken_offers = _live_rows(client, run.database, "offers", OFFER_COLUMNS,
                                           t.id, ("call_id", "offer"))
        extra = [k[0] for k in calls if k[0] not in truths]
        table = compare(truths, calls, offers, extra)
        if table.perfect or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    if not table.perfect:
        _dump_events(client, run, t.id, {m.split(" of ", 1)[1].split(":")[0].split("/")[0]
                                          for m in table.misses})
    client.disconnect()
    print(f"\n{len(truths)} calls, {sum(len(c.offers) for c in truths.values())} offers "
          f"(traffic {traffic_s:.0f} s); call log vs the simulator's ledger:")
    print(table.render())
    for line in table.misses:
        print("  DISAGREES:", line)
    for call_id, c in sorted(truths.items()):
        print(f"  {call_id} {c.disposition:<16} {c.caller:<11} side={c.hangup_side:<7} "
              f"offers={[o.result for o in c.offers]}")
    assert not broken and not broken_offers, (broken, broken_offers)
    kinds = {c.disposition for c in truths.values()}
    assert {"answered", "abandoned", "short_abandoned", "abandoned_ringing", "abandoned_ivr",
            "voicemail", "closed", "failed"} <= kinds, kinds
    results = {o.result for c in truths.values() for o in c.offers}
    assert {"answered", "no_answer", "busy", "declined", "caller_abandoned"} <= results
    assert table.perfect, "the call log disagrees with the ledger:\n" + "\n".join(table.misses)


@pytest.mark.parametrize("capture, path", [("plain_ivr_choice_1_sales", "1"),
                                           ("plain_ivr_submenu_2_1_support", "2>1")])
def test_the_ivr_path_of_a_real_capture_is_the_whole_path_walked(capture: str, path: str,
                                                                  tmp_path: Path) -> None:
    """fs-conf's `tongdai::ivr` event names the path in its own IVR-Path header, one event
    per menu (tests/fixtures/esl): the call log keeps the last, whole path."""
    import io
    import json

    from analytics.cdr import fold_call
    from esl_bridge.cli import replay
    from routing.contract import Envelope

    out = io.StringIO()
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "esl"
    replay(fixtures / f"{capture}.txt", to_kafka=False, config=NormalizerConfig(),
           bootstrap="", out=out)
    events = [Envelope(**d) for d in map(json.loads, out.getvalue().splitlines())
              if "summary" not in d]
    ivr = [e for e in events if e.type == "ivr_choice_made"]
    assert ivr, "the capture has the IVR's events"
    call = ivr[0].call_id
    facts = fold_call([e for e in events if e.call_id == call])
    assert facts.cdr is not None and facts.cdr["ivr_path"] == path
