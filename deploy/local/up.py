"""`tongdai up`: the whole product on this machine, with simulated calls and the wallboard.

Starts, in order, with progress on the console: the local stack (Kafka, ClickHouse) if it
is not running, the ClickHouse migrations, the product's topics, a FreeSWITCH ESL
simulator (in this process) with the demo tenant's 12 agents, the bridge, a routing
worker, the ClickHouse sink and the API (gunicorn), each its own process with its log in
var/up/logs/; then it applies the demo configuration (deploy/local/demo/demo.yaml), logs
the agents in, prints the wallboard and reports URLs with a supervisor token, the
agent page's URL with the token of agent `lan` and the admin console's with an admin
token, and places demo calls.

The demo configuration is applied with `--missing-only` at every start: what the
configuration never held is created (on a first run, everything; later, what a newer
demo.yaml adds), and what exists is kept as it is. Applying the whole file again would
undo an admin's changes made through the API (a tenant call limit raised to 2,000 came
back as 30); applying it only once would never give an existing checkout what a newer
demo adds (its SIP extensions). An entity an admin deleted stays deleted.
A process that dies is restarted (with a back-off). Ctrl-C stops everything it started;
the stack keeps running (`tongdai stack down` stops it).

With `--freeswitch host:port:password` the bridge connects to a real FreeSWITCH instead
of the simulator and no calls are generated here; it prints the demo extensions' SIP
credentials (the API generates a password when it creates an extension and shows it once:
`up` keeps them in var/up/sip-passwords.json, mode 0600, to print them at every start).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import settings as stack_settings
from . import stack

HERE = Path(__file__).resolve().parent
DEMO = HERE / "demo" / "demo.yaml"
DEMO_TENANT = "demo"
DEMO_DOMAIN = "demo.tongdai.local"
DEMO_AGENTS = {f"{1000 + i}": name for i, name in enumerate(
    ["lan", "minh", "hoa", "tuan", "thu", "hung", "mai", "nam", "linh", "quang", "trang", "duc"])}
SUPERVISOR_EXT = "1099"  # the demo's supervisor phone (may listen in: *33<agent ext>)
#: a line of `tongdai config apply` for an extension it created (or whose password rotated)
PASSWORD_LINE = re.compile(r"^extension\s+(\S+)\s+\S+\s+sip_password=(\S+)", re.M)
SLOW_AGENT = "1005"  # hung never picks up: ring-no-answer in the demo
DEMO_AGENT = "lan"  # whose agent page `up` prints (sales and billing)
DIDS = ("19001234", "02873001234", "02473001234")
VIP_CALLERS = ("0903000111", "0913888999", "0987654321")
# IVR choices -> (ivr path, queue, extra channel variables)
IVR = (
    (0.45, "main>1", "sales", {}),
    (0.25, "main>2>1", "support", {"tongdai_language": "vi"}),
    (0.10, "main>2>2", "support", {"tongdai_language": "en", "tongdai_skills": "en:3"}),
    (0.20, "main>3", "billing", {"tongdai_skills": "billing:5"}),
)


def sip_passwords(apply_output: str) -> dict[str, str]:
    """{extension: SIP password} of the extensions `tongdai config apply` printed."""
    return dict(PASSWORD_LINE.findall(apply_output))


def remember_passwords(store: Path, domain: str, new: dict[str, str]) -> dict[str, str]:
    """Merge `new` into the passwords kept for `domain` in `store` (JSON, mode 0600) and
    return them all."""
    known = json.loads(store.read_text()) if store.exists() else {}
    known.setdefault(domain, {}).update(new)
    tmp = store.with_suffix(".tmp")
    tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
    tmp.chmod(0o600)
    tmp.replace(store)
    return known[domain]


def credentials_text(domain: str, registrar: str, passwords: dict[str, str],
                     extensions: dict[str, str]) -> str:
    """The SIP accounts to print: one line per extension (who uses it, its password)."""
    lines = [f"  SIP phones: register to {registrar}, domain {domain} (user = extension):"]
    for ext, who in extensions.items():
        password = passwords.get(ext)
        lines.append(f"    {ext}  {who:<10} " + (
            f"password {password}" if password else
            "password unknown (created elsewhere): PUT /api/v1/extensions/"
            f"{ext} {{\"rotate_password\": true}} gives a new one"))
    return "\n".join(lines)


def say(text: str) -> None:
    print(f"[tongdai up {time.strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready: str | None  # a line in its log that means "ready"
    proc: subprocess.Popen | None = None
    restarts: int = 0
    log: Path = field(default_factory=Path)


class Up:
    def __init__(self, args: argparse.Namespace, settings: stack_settings.StackSettings) -> None:
        self.args = args
        self.settings = settings
        self.root = Path(settings.stack_dir).parent / "up"
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self.children: list[Child] = []
        self.stopping = threading.Event()
        self.sim = None
        self.placed = 0

    # ---- secrets: made once per checkout, kept out of logs and git (var/ is ignored)
    def secrets(self) -> dict[str, str]:
        path = self.root / "secrets.json"
        if path.exists():
            return json.loads(path.read_text())
        data = {"api_token_secret": secrets.token_hex(32), "esl_password": secrets.token_urlsafe(18)}
        path.write_text(json.dumps(data))
        path.chmod(0o600)
        return data

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        s = self.settings
        return {**os.environ, "TONGDAI_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
                **s.clickhouse_environ(),
                "TONGDAI_API_TOKEN_SECRET": self._secrets["api_token_secret"],
                "TONGDAI_DEFAULT_TENANT": DEMO_TENANT, "PYTHONUNBUFFERED": "1", **extra}

    def tongdai(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
        result = subprocess.run([sys.executable, "-m", "deploy.cli", *args], env=self.env(env or {}),
                                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"tongdai {' '.join(args)} failed ({result.returncode}):\n"
                               f"{(result.stdout + result.stderr)[-2000:]}")
        return result.stdout

    # ---- processes
    def spawn(self, child: Child) -> None:
        child.log = self.root / "logs" / f"{child.name}.log"
        out = open(child.log, "ab")
        child.proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", *child.argv],
                                      env=self.env(child.env), stdout=out,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)

    def start(self, child: Child, timeout: float = 90) -> None:
        self.children.append(child)
        self.spawn(child)
        if child.ready is None:
            return
        deadline = time.monotonic() + timeout
        start = child.log.stat().st_size if child.log.exists() else 0
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                raise RuntimeError(f"{child.name} exited with {child.proc.returncode}; "
                                   f"see {child.log}")
            with open(child.log, errors="replace") as f:
                f.seek(start)
                if child.ready in f.read():
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{child.name} not ready after {timeout:.0f} s; see {child.log}")

    def watch(self) -> None:
        """Restart a child that died (doubling back-off, at most every 60 s)."""
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None and not self.stopping.is_set():
                child.restarts += 1
                say(f"{child.name} exited ({child.proc.returncode}); restarting "
                    f"(#{child.restarts}), see {child.log}")
                time.sleep(min(60, 2 ** min(child.restarts, 6)))
                self.spawn(child)

    def stop(self) -> None:
        self.stopping.set()
        for child in reversed(self.children):
            if child.proc and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        for child in reversed(self.children):
            if child.proc:
                try:
                    child.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
        if self.sim is not None:
            self.sim.stop()

    # ---- the demo
    def start_simulator(self) -> str:
        from esl_bridge.simulator import Simulator
        from esl_bridge.simulator.model import AgentSpec

        self.sim = Simulator(port=self.args.esl_port, password=self._secrets["esl_password"],
                             heartbeat=20.0, seed=self.args.seed, domain=DEMO_DOMAIN)
        self.sim.start()
        for ext in DEMO_AGENTS:
            behaviour = {"answer": "no_answer"} if ext == SLOW_AGENT else \
                {"answer": "answer", "answer_delay": round(random.uniform(0.8, 3.0), 1)}
            self.sim.add_agent(AgentSpec.parse({"ext": ext, "domain": DEMO_DOMAIN, **behaviour}))
        # The supervisor's phone answers: monitoring from the wallboard (listen / whisper /
        # barge) joins it to an agent's call, as a real desk phone would be.
        self.sim.add_agent(AgentSpec.parse({"ext": SUPERVISOR_EXT, "domain": DEMO_DOMAIN,
                                            "answer": "answer", "answer_delay": 1.0}))
        return f"127.0.0.1:{self.sim.port}:{self._secrets['esl_password']}"

    def login_agents(self) -> None:
        from kafka import KafkaProducer

        from routing.contract import Envelope, deterministic_id, encode, topics
        from routing.contract.edge import now_us

        producer = KafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all")
        for agent in DEMO_AGENTS.values():
            # Logged in and not paused: the demo starts with everyone at work, whatever a
            # previous run left (agent state survives restarts, as it should).
            for command in ("agent_login_requested", "agent_resume_requested"):
                now = now_us()
                env = Envelope(deterministic_id("up", command, agent, now), command, 1, now,
                               DEMO_TENANT, "tongdai-up", None, None,
                               {"agent_id": agent, "reason": ""})
                producer.send(topics.CC_COMMANDS, key=topics.tenant_key(DEMO_TENANT),
                              value=encode(env))
        producer.flush()
        producer.close()

    def traffic(self) -> None:
        """Poisson arrivals: IVR choices, VIPs, patience (abandons), talk times."""
        from esl_bridge.simulator.model import CallerSpec

        rng = random.Random(self.args.seed)
        while not self.stopping.wait(rng.expovariate(self.args.cps)):
            weights = [w for w, *_ in IVR]
            _, path, queue, extra = rng.choices(IVR, weights)[0]
            vip = rng.random() < 0.08
            number = rng.choice(VIP_CALLERS) if vip else "09" + "".join(
                str(rng.randrange(10)) for _ in range(8))
            did = rng.choice(DIDS)
            variables = {"tongdai_tenant": DEMO_TENANT, "tongdai_did": did,
                         "tongdai_domain": DEMO_DOMAIN}
            if vip:
                variables["tongdai_vip"] = "true"
            spec = {"at": 0, "number": number, "did": did, "variables": variables,
                    "ivr": {"after": round(rng.uniform(2, 6), 1), "menu": "main",
                            "choice": path.split(">")[-1], "path": path,
                            "variables": {"tongdai_queue": queue, "tongdai_ivr_path": path,
                                          **extra}},
                    "patience": round(rng.expovariate(1 / 45), 1),
                    "talk": round(rng.uniform(15, 75), 1)}
            try:
                self.sim.place_call(CallerSpec.parse(spec))
                self.placed += 1
            except Exception as exc:  # a bad demo caller must not stop the demo
                say(f"demo call not placed: {exc}")

    def check_ports(self) -> None:
        wanted = {"API and wallboard (--port)": self.args.port}
        if not self.args.freeswitch:
            wanted["ESL simulator (--esl-port)"] = self.args.esl_port
        taken = [f"{what} {port}" for what, port in wanted.items() if not stack.port_free(port)]
        if taken:
            raise RuntimeError(f"port(s) in use on 127.0.0.1: {', '.join(taken)}; is another "
                               f"`tongdai up` running? Stop it, or choose other ports")

    def run(self) -> int:
        t0 = time.monotonic()
        self.check_ports()
        say("starting the local stack (Kafka, ClickHouse) ...")
        for h in stack.up(self.settings, log=lambda m: say("  " + m)):
            say(f"  {h.name}: {h.detail}")
        self._secrets = self.secrets()
        say("ClickHouse migrations ...")
        self.tongdai("db", "migrate")
        say("Kafka topics ...")
        from streams.app import ensure_topics

        ensure_topics(self.settings.kafka_bootstrap, 8)
        if self.args.freeswitch:
            node = self.args.freeswitch
            say(f"using the real FreeSWITCH at {node.rsplit(':', 1)[0]} (no simulated calls)")
        else:
            node = self.start_simulator()
            say(f"FreeSWITCH ESL simulator on 127.0.0.1:{self.sim.port} with {len(DEMO_AGENTS)} "
                f"agents of {DEMO_DOMAIN}")
        api_port = str(self.args.port)
        run_id = uuid.uuid4().hex[:6]
        if self.args.freeswitch:
            # A real FreeSWITCH outlives this command: routing state must too (a new group
            # starts at the beginning of the log, an existing one where it committed).
            worker_env = {"TONGDAI_APP_ID": "tongdai-router"}
        else:
            # The simulated FreeSWITCH is new on every run, and so is routing state: a group
            # of its own, from now on (configuration is re-read from its topic regardless).
            # (The worker pins "latest" to the moment it starts, before it says Ready: the
            # agents' logins sent after that are never skipped.)
            worker_env = {"TONGDAI_APP_ID": f"tongdai-demo-{run_id}", "TONGDAI_START_FROM": "latest"}
        self.start(Child("worker", ["worker"], worker_env, "Ready"))
        say("worker ready")
        self.start(Child("bridge", ["bridge"], {
            "TONGDAI_FREESWITCH": node, "TONGDAI_BRIDGE_NAME": "up-bridge",
            "TONGDAI_TENANT_DOMAINS": f"{DEMO_DOMAIN}={DEMO_TENANT}"}, "subscribed"))
        say("bridge connected")
        self.start(Child("sink", ["sink"], {}, None))
        self.start(Child("api", ["api"], {"TONGDAI_API_PORT": api_port}, "Listening at"))
        say(f"api listening on 127.0.0.1:{api_port}")
        out = self.tongdai("config", "apply", "--missing-only", str(DEMO))
        passwords = remember_passwords(self.root / "sip-passwords.json", DEMO_DOMAIN,
                                       sip_passwords(out))
        say(f"demo configuration: {out.strip().splitlines()[-1]} (an existing entity is "
            f"kept as the API left it)")
        self.login_agents()
        token = self.tongdai("api", "token", "--tenant", DEMO_TENANT, "--user", "demo-supervisor",
                             "--role", "supervisor").strip()
        agent_token = self.tongdai("api", "token", "--tenant", DEMO_TENANT, "--user", DEMO_AGENT,
                                   "--role", "agent").strip()
        admin_token = self.tongdai("api", "token", "--tenant", DEMO_TENANT, "--user", "demo-admin",
                                   "--role", "admin").strip()
        base = f"http://127.0.0.1:{api_port}"
        print(f"\n  Wallboard:  {base}/web/static/wallboard.html#token={token}\n"
              f"  Reports:    {base}/web/static/reports.html#token={token}\n"
              f"  Agent page: {base}/web/static/agent.html#token={agent_token}   "
              f"(agent {DEMO_AGENT})\n"
              f"  Admin:      {base}/web/static/admin.html#token={admin_token}\n"
              f"  API token (supervisor, tenant {DEMO_TENANT}):\n    {token}\n"
              f"  Logs: {self.root / 'logs'}   (run {run_id}; Ctrl-C stops)\n", flush=True)
        if self.args.freeswitch:
            host = self.args.freeswitch.split(":", 1)[0]
            print(credentials_text(DEMO_DOMAIN, f"{host}:{self.args.sip_port}", passwords,
                                   {**{e: a for e, a in DEMO_AGENTS.items()},
                                    SUPERVISOR_EXT: "supervisor"}) + "\n", flush=True)
        say(f"up in {time.monotonic() - t0:.0f} s")
        if self.sim is not None and self.args.cps > 0:
            threading.Thread(target=self.traffic, name="demo-traffic", daemon=True).start()
            say(f"placing demo calls at {self.args.cps}/s (seed {self.args.seed})")
        last = 0.0
        while not self.stopping.wait(1.0):
            self.watch()
            if time.monotonic() - last >= 15:
                last = time.monotonic()
                alive = ", ".join(f"{c.name} {'up' if c.proc and c.proc.poll() is None else 'DOWN'}"
                                  for c in self.children)
                active = len(self.sim.node.channels) if self.sim else "-"
                say(f"{alive}; calls placed {self.placed}, channels up {active}")
        return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tongdai up", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cps", type=float, default=0.3, help="demo calls per second (0.3)")
    parser.add_argument("--port", type=int, default=8080, help="API and wallboard port (8080)")
    parser.add_argument("--esl-port", type=int, default=8021, help="simulator ESL port (8021)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the simulator and the demo traffic (default: a new one "
                             "per run: call ids must never repeat, the actuator executes a "
                             "command id once)")
    parser.add_argument("--freeswitch", metavar="HOST:PORT:PASSWORD",
                        help="connect to a real FreeSWITCH instead of the simulator")
    parser.add_argument("--sip-port", type=int, default=5060,
                        help="the real FreeSWITCH's SIP port for phones (5060), printed with "
                             "the demo extensions' credentials")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = secrets.randbelow(2**31)
    up = Up(args, stack_settings.load())

    def on_signal(signum: int, _frame: object) -> None:
        up.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return up.run()
    except (RuntimeError, OSError, stack.StackError) as exc:
        say(f"failed: {exc}")
        return 2
    finally:
        say("stopping ...")
        up.stop()
        say("stopped (the stack keeps running: `tongdai stack down` stops it)")
