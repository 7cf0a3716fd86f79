"""The product against a real FreeSWITCH (issue 14): skipped unless TONGDAI_TEST_FREESWITCH
names a switch built by deploy/freeswitch/build-from-source.sh (its prefix, e.g.
`var/freeswitch`, absolute or relative to the repository).

One session starts, on free ports of 127.0.0.1: the API (mod_xml_curl answers), FreeSWITCH
with fs-conf through fs-conf/bin/tongdai-freeswitch (pointed at that API), the bridge, a
routing worker of its own and the ClickHouse sink into a database of its own; it applies a
tenant of its own (random id, DIDs and SIP domain) with `tongdai config apply` and registers
SIPp agents with the SIP passwords that printed. Kafka and ClickHouse are the local stack,
which must be running (it is shared: this suite never starts or stops it). Everything started here is
stopped by its PID at the end.
"""
from __future__ import annotations

import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deploy.local import settings as stack_settings
from tests.integration.harness import Publisher, Reader, start_process, stop_process, wait_ready

from . import sipp
from .esl import Esl

ROOT = Path(__file__).resolve().parents[2]
START = ROOT / "fs-conf" / "bin" / "tongdai-freeswitch"
ENV = "TONGDAI_TEST_FREESWITCH"
ARTIFACTS = ROOT / "var" / "test-artifacts" / "realfs"
DESK_EXT = "2003"  # the tenant's phone that is no agent's (pickup, transfers)
#: the bridge's line once its actuator has partitions of the decisions (or, with
#: kafka-python as its client, that client's line)
ACTUATOR_ASSIGNED = ("actuator ready: reading decisions from",
                     "Setting newly assigned partitions {TopicPartition(topic='tongdai.routing")


def wait_any(proc: subprocess.Popen, markers: tuple[str, ...], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited {proc.returncode}")
        text = proc.log_path.read_text(errors="replace")
        if any(m in text for m in markers):
            return
        time.sleep(0.2)
    raise AssertionError(f"none of {markers} after {timeout} s")


def built_switch() -> Path:
    """The prefix TONGDAI_TEST_FREESWITCH names, or a skip saying why there is none."""
    value = os.environ.get(ENV, "")
    if not value:
        pytest.skip(f"{ENV} is not set: build FreeSWITCH with deploy/freeswitch/"
                    f"build-from-source.sh and set it to the prefix (e.g. var/freeswitch)")
    prefix = Path(value) if os.path.isabs(value) else ROOT / value
    if not (prefix / "bin" / "freeswitch").is_file():
        pytest.skip(f"{ENV}={value}: no bin/freeswitch there (not a built FreeSWITCH)")
    if shutil.which("sipp") is None:
        pytest.skip("SIPp is not installed (Debian package sip-tester)")
    return prefix


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free for TCP and UDP on 127.0.0.1 (SIP listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue


def media_port() -> int:
    """A port for SIPp's -mp: SIPp binds it for audio and the port two above for video, and
    gives up when that one is taken ("Unable to bind video RTP socket")."""
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port + 2))
            except OSError:
                continue
        return port


def rtp_block(size: int = 200) -> tuple[int, int]:
    """An even-aligned UDP port range nobody holds now (FreeSWITCH's RTP range)."""
    rng = random.Random()
    for _ in range(50):
        start = rng.randrange(20000, 30000 - size, 2)
        try:
            held = []
            for port in range(start, start + size, 20):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(s)
                s.bind(("127.0.0.1", port))
            return start, start + size - 1
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no free RTP range")


def errors_in(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines()
            if re.search(r"\[(ERR|CRIT|ALERT)\]", line)]


@dataclass
class Switch:
    """A FreeSWITCH started with fs-conf."""

    prefix: Path
    folder: Path
    esl_port: int
    esl_password: str
    internal_port: int
    external_port: int
    proc: subprocess.Popen | None = None
    wss_port: int = 0  # the internal profile's secure WebSocket (browser softphones)

    @property
    def log(self) -> Path:
        return self.folder / "log" / "freeswitch.log"

    def esl(self) -> Esl:
        return Esl("127.0.0.1", self.esl_port, self.esl_password)

    def errors(self) -> list[str]:
        return errors_in(self.log) if self.log.exists() else []


def start_switch(prefix: Path, folder: Path, api_port: int, xml_curl_password: str,
                 recordings: Path | None = None, carrier_port: int = 0) -> Switch:
    rtp_start, rtp_end = rtp_block()
    sw = Switch(prefix, folder, free_port(), secrets.token_urlsafe(18), free_port(), free_port())
    sw.wss_port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "TONGDAI_FS_BINARY": str(prefix / "bin" / "freeswitch"),
           "TONGDAI_FS_CONF_DIR": str(folder / "conf"), "TONGDAI_FS_LOG_DIR": str(folder / "log"),
           "TONGDAI_FS_DB_DIR": str(folder / "db"), "TONGDAI_FS_RUN_DIR": str(folder / "run"),
           "TONGDAI_FS_CONSOLE": "false",
           "TONGDAI_FS_ESL_PASSWORD": sw.esl_password, "TONGDAI_FS_ESL_PORT": str(sw.esl_port),
           "TONGDAI_FS_INTERNAL_PORT": str(sw.internal_port),
           "TONGDAI_FS_EXTERNAL_PORT": str(sw.external_port),
           "TONGDAI_FS_BRANCH_PORT": str(free_port()),
           "TONGDAI_FS_WSS_PORT": str(sw.wss_port),
           "TONGDAI_FS_RTP_START": str(rtp_start), "TONGDAI_FS_RTP_END": str(rtp_end),
           "TONGDAI_FS_API_URL": f"http://127.0.0.1:{api_port}",
           "TONGDAI_API_XML_CURL_PASSWORD": xml_curl_password,
           "TONGDAI_FS_RECORDINGS_DIR": str(recordings or folder / "recordings"),
           **({"TONGDAI_FS_CARRIER_PROXY": f"127.0.0.1:{carrier_port}"} if carrier_port else {})}
    folder.mkdir(parents=True, exist_ok=True)
    sw.proc = subprocess.Popen(["sh", str(START)], env=env, stdin=subprocess.DEVNULL,
                               stdout=open(folder / "stdout.log", "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sw.proc.poll() is not None:
            raise RuntimeError(f"FreeSWITCH exited {sw.proc.returncode}: "
                               f"{(folder / 'stdout.log').read_text()[-2000:]}")
        try:
            esl = sw.esl()
        except OSError:
            time.sleep(0.3)
            continue
        status = esl.api("sofia status")
        esl.close()
        if status.count("RUNNING") >= 3:  # the three profiles
            return sw
        time.sleep(0.3)
    stop_switch(sw)
    raise RuntimeError("FreeSWITCH did not start its SIP profiles within 60 s")


def stop_switch(sw: Switch) -> None:
    if sw.proc is not None and sw.proc.poll() is None:
        sw.proc.terminate()
        try:
            sw.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sw.proc.kill()
            sw.proc.wait()


@dataclass
class Agent:
    agent_id: str
    ext: str
    password: str
    uas_port: int
    media_port: int


@dataclass
class Product:
    """The whole product on a real switch, with one tenant of its own."""

    switch: Switch
    tenant: str
    domain: str
    queue_did: str  # national form, straight to queue `sales`
    ivr_did: str  # national form, the IVR `main` (1 sales, 2 -> `lang`, 0 support)
    agents: dict[str, Agent]
    bootstrap: str
    clickhouse_port: int
    database: str
    api_port: int
    token_secret: str
    folder: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    #: the demo tenant's copy (deploy/local/demo/demo.yaml under ids of its own): its id
    #: and SIP domain, known to the bridge from the start; the `demo` fixture applies it
    demo_tenant: str = ""
    demo_domain: str = ""
    closed_did: str = ""  # national form, to queue `closed` (a holiday today: voicemail)
    carrier_port: int = 0  # the carrier gateway's address (127.0.0.1): a test's SIPp
    desk: Agent | None = None  # extension DESK_EXT, registered, no agent
    #: the environment the product's processes got (Kafka, ClickHouse, token secret)
    env: dict[str, str] = field(default_factory=dict)
    xml_curl_password: str = ""

    def reader(self, tenant: str | None = None) -> Reader:
        """The product's facts and decisions of `tenant` (default: the product's own)."""
        from routing.contract import topics

        tenant = tenant or self.tenant
        return Reader(self.bootstrap, [topics.CC_EVENTS, topics.ROUTING_DECISIONS],
                      lambda e: e.tenant == tenant)

    def agent_phone(self, agent: Agent, calls: int = 1, ring_ms: int = 1000,
                    timeout_s: int = 90, then: str = "") -> sipp.Sipp:
        """The agent's phone answering `calls` calls after `ring_ms` of ringing, then
        doing `then` in the call (sipp.hold_then_resume, sipp.refer)."""
        return sipp.run(self.folder / "sipp", f"agent_{agent.ext}_{uuid.uuid4().hex[:6]}",
                        sipp.agent_scenario(ring_ms, then), None, agent.uas_port,
                        ["-m", str(calls), "-mi", "127.0.0.1", "-mp", str(agent.media_port)],
                        timeout_s=timeout_s)

    def call(self, did: str, digits: str = "", hold_ms: int = 8000, caller: str = "0903123456",
             timeout_s: int = 60, speak_s: float = 0, hears: int = 0) -> sipp.Sipp:
        """A carrier's call to `did` (national form) from `caller`, keys as RFC 2833; with
        `speak_s`, a tone that long from half a second after the answer (a voice); with
        `hears`, the switch sends the call's audio to that port (a sipp.RtpCounter)."""
        name = f"caller_{uuid.uuid4().hex[:6]}"
        workdir = self.folder / "sipp"
        workdir.mkdir(parents=True, exist_ok=True)
        keys = sipp.dtmf_pcaps(workdir, digits, prefix=name)
        first = 2500
        if speak_s:
            keys, first = [sipp.tone_pcap(workdir / f"{name}_voice.pcap", speak_s)], 500
        scenario = sipp.caller_scenario(keys, first_after_ms=first, hold_ms=hold_ms)
        return sipp.run(workdir, name, sipp.media_at(scenario, hears) if hears else scenario,
                        f"127.0.0.1:{self.switch.external_port}", free_port(),
                        ["-s", did, "-m", "1", "-key", "caller", caller, "-mi", "127.0.0.1",
                         "-mp", str(media_port())], timeout_s=timeout_s)

    def carrier_answers(self, ring_ms: int = 500, timeout_s: int = 40) -> sipp.Sipp:
        """The carrier's side of the gateway: answers one call after `ring_ms` of ringing
        and talks until the switch's BYE."""
        return sipp.run(self.folder / "sipp", f"carrier_{uuid.uuid4().hex[:6]}",
                        sipp.agent_scenario(ring_ms), None, self.carrier_port,
                        ["-m", "1", "-mi", "127.0.0.1", "-mp", str(media_port())],
                        timeout_s=timeout_s)

    def phone_calls(self, agent: Agent, dest: str, hold_ms: int = 5000,
                    timeout_s: int = 60, hears: int = 0, domain: str = "") -> sipp.Sipp:
        """`agent`'s phone dials `dest` (digest auth on the INVITE), holds, hangs up; with
        `hears`, the switch sends the call's audio to that port (a sipp.RtpCounter); a phone
        of another tenant names its `domain`."""
        name = f"phone_{agent.ext}_{uuid.uuid4().hex[:6]}"
        scenario = sipp.phone_call_scenario(hold_ms)
        return sipp.run(self.folder / "sipp", name,
                        sipp.media_at(scenario, hears) if hears else scenario,
                        f"127.0.0.1:{self.switch.internal_port}", free_port(),
                        ["-s", dest, "-au", agent.ext, "-m", "1", "-key", "domain",
                         domain or self.domain,
                         "-key", "user", agent.ext, "-mi", "127.0.0.1", "-mp", str(media_port())],
                        timeout_s=timeout_s, secret=agent.password)

    def clickhouse(self):
        from clickhouse_driver import Client

        return Client("127.0.0.1", port=self.clickhouse_port, database=self.database,
                      user=self.env.get("TONGDAI_CLICKHOUSE_USER", "default"),
                      password=self.env.get("TONGDAI_CLICKHOUSE_PASSWORD", ""))


def register(product_folder: Path, sw: Switch, domain: str, agent: Agent) -> None:
    """REGISTER with digest auth; raises with SIPp's trace if the switch refuses it."""
    phone = sipp.run(product_folder / "sipp", f"register_{agent.ext}", sipp.REGISTER,
                     f"127.0.0.1:{sw.internal_port}", free_port(),
                     ["-s", agent.ext, "-au", agent.ext, "-m", "1", "-key", "domain", domain,
                      "-key", "uas_port", str(agent.uas_port)], timeout_s=20,
                     secret=agent.password)
    code = phone.wait(30)
    if code != 0:
        raise AssertionError(f"agent {agent.ext} not registered (SIPp exit {code}):\n"
                             f"{phone.messages()[-3000:]}")


def bring_online(reader, folder: Path, sw: Switch, domain: str, bootstrap: str, tenant: str,
                 agents: dict, phones: list) -> None:
    """Register `phones` (digest auth), log `agents` in, wait until every agent is
    available in the router's facts (bounded)."""
    try:
        for agent in phones:
            register(folder, sw, domain, agent)
        api = Publisher(bootstrap, tenant)
        for agent_id in agents:
            api.command("agent_login_requested", agent_id=agent_id)
        api.flush()
        api.close()
        reader.wait_for(lambda es: {e.payload["agent_id"] for e in es
                                    if e.type == "agent_state_changed"
                                    and e.payload["state"] == "available"} >= set(agents),
                        timeout=60, what=f"every agent of {tenant} available")
    finally:
        reader.close()


def tongdai(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    done = subprocess.run([sys.executable, "-m", "deploy.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"tongdai {args[0]} {args[1] if len(args) > 1 else ''} failed: "
                           f"{(done.stdout + done.stderr)[-2000:]}")
    return done.stdout


def tenant_yaml(tenant: str, domain: str, queue_did: str, ivr_did: str,
                agents: dict[str, str], closed_did: str = "") -> str:
    import datetime as dt
    from zoneinfo import ZoneInfo

    today = dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()
    closed_days = ", ".join(f"'{today + dt.timedelta(days=d)}'" for d in (-1, 0, 1))
    lines = [f"tenant: {tenant}", f"settings: {{domain: {domain}, max_concurrent_calls: 20}}",
             "queues:",
             # closed today (a holiday around today, whatever the hour): voicemail
             f"  closed: {{schedule: {{holidays: [{closed_days}]}}, after_hours: {{kind: voicemail}}}}",
             "  sales: {strategy: longest-idle-agent, offer_timeout_s: 20, wrapup_s: 1}",
             # support is connected by the router (its agent leg parks, then uuid_bridge),
             # sales by the switch (tongdai_connect): both paths run on the real switch.
             "  support: {strategy: longest-idle-agent, offer_timeout_s: 20, wrapup_s: 1,"
             " connect: router}",
             "ivrs:",
             '  main: {greeting: ivr/demo_main.wav, timeout_s: 10, options: {"1": {queue: sales},'
             ' "2": {ivr: lang}, "0": {queue: support}}}',
             '  lang: {greeting: ivr/demo_language.wav, timeout_s: 10, options: '
             '{"1": {queue: support}, "9": {ivr: main}}}',
             "dids:", f'  "{queue_did}": {{queue: sales}}', f'  "{ivr_did}": {{ivr: main}}',
             *([f'  "{closed_did}": {{queue: closed}}'] if closed_did else []),
             "extensions:"]
    lines += [f'  "{ext}": {{display_name: "Agent {ext}", agent_id: {agent_id}}}'
              for agent_id, ext in agents.items()]
    # a phone, no agent's: the supervisor's desk (it may listen in on the agents' calls)
    lines += [f'  "{DESK_EXT}": {{display_name: "Desk {DESK_EXT}", can_monitor: true}}']
    lines += ["agents:"]
    lines += [f'  {agent_id}: {{extension: "{ext}", queues: {{sales: {{}}, support: {{}}}}}}'
              for agent_id, ext in agents.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def switch_prefix() -> Path:
    return built_switch()


@pytest.fixture(scope="session")
def running_stack(switch_prefix) -> stack_settings.StackSettings:
    """The local Kafka and ClickHouse, which must be running (`tongdai stack up`): this
    suite neither starts nor stops them (other work shares them)."""
    settings = stack_settings.load()
    try:
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                 request_timeout_ms=5000, client_id="tongdai-realfs")
        admin.list_topics()
        admin.close()
        settings.clickhouse_client().execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "not running"
        pytest.fail(f"the local stack is not reachable ({exc}); start it: .venv/bin/tongdai stack up")
    return settings


@pytest.fixture(scope="session")
def product(switch_prefix, running_stack, tmp_path_factory) -> Iterator[Product]:
    folder = tmp_path_factory.mktemp("realfs")
    hexid = uuid.uuid4().hex[:8]
    tenant, domain = f"rf{hexid}", f"rf{hexid}.tongdai.test"
    demo_tenant, demo_domain = f"rfdemo{hexid}", f"rfdemo{hexid}.tongdai.test"
    rng = random.Random()
    queue_did, ivr_did, closed_did = (f"0283{rng.randrange(10**6, 10**7)}" for _ in range(3))
    database = f"realfs_{hexid}"
    api_port = free_port()
    token_secret, xml_curl_password = secrets.token_hex(32), secrets.token_urlsafe(18)
    base = {"TONGDAI_KAFKA_BOOTSTRAP": running_stack.kafka_bootstrap,
            **running_stack.clickhouse_environ(),
            "TONGDAI_CLICKHOUSE_DATABASE": database, "TONGDAI_API_TOKEN_SECRET": token_secret,
            "TONGDAI_DEFAULT_TENANT": tenant, "PYTHONUNBUFFERED": "1",
            # `config apply` refuses a menu or queue whose sound the switch lacks
            "TONGDAI_API_SOUNDS_DIR": str(switch_prefix / "share" / "freeswitch" / "sounds")}
    procs: dict[str, subprocess.Popen] = {}
    sw: Switch | None = None
    try:
        tongdai(base, "db", "migrate")
        recordings = folder / "recordings"  # the switch writes, the API plays
        procs["api"] = start_process("api", folder, {
            **base, "TONGDAI_API_PORT": str(api_port),
            "TONGDAI_API_XML_CURL_PASSWORD": xml_curl_password,
            "TONGDAI_API_RECORDINGS_DIR": str(recordings)})
        wait_ready(procs["api"], "Listening at")
        carrier_port = free_port()  # outbound calls: a test's SIPp answers as the carrier
        sw = start_switch(switch_prefix, folder / "freeswitch", api_port, xml_curl_password,
                          recordings, carrier_port)
        app_id = f"realfs-router-{hexid}"
        procs["worker"] = start_process("worker", folder, {
            **base, "TONGDAI_APP_ID": app_id, "TONGDAI_WORKER_DATA_DIR": str(folder / "worker"),
            "TONGDAI_START_FROM": "latest", "TONGDAI_CONFIG_FROM": "earliest",
            "TONGDAI_TICK_INTERVAL_S": "0.5"})
        wait_ready(procs["worker"], "Ready", timeout=120)
        bridge_env = {
            **base, "TONGDAI_FREESWITCH": f"127.0.0.1:{sw.esl_port}:{sw.esl_password}",
            "TONGDAI_BRIDGE_NAME": f"realfs-{hexid}", "TONGDAI_SPOOL_DIR": str(folder / "spool"),
            "TONGDAI_ACTUATOR_STATE_DIR": str(folder / "actuator"),
            "TONGDAI_TENANT_DOMAINS": f"{domain}={tenant},{demo_domain}={demo_tenant}"}
        for attempt in range(3):
            procs["bridge"] = start_process("bridge", folder, bridge_env)
            wait_ready(procs["bridge"], "subscribed")
            # A bridge whose actuator never gets its partitions runs no decision at all
            # (a group join that never finished under load, with kafka-python as its
            # client): wait for them, and start the bridge again if they never come.
            try:
                wait_any(procs["bridge"], ACTUATOR_ASSIGNED, timeout=30)
                break
            except AssertionError:
                stop_process(procs.pop("bridge"))
        else:
            raise RuntimeError("the bridge's actuator never got the decisions' partitions")
        procs["sink"] = start_process("sink", folder, {**base, "TONGDAI_DEPLOYMENT": f"realfs-{hexid}"})
        exts = {"a1": "2001", "a2": "2002"}
        (folder / "tenant.yaml").write_text(tenant_yaml(tenant, domain, queue_did, ivr_did, exts,
                                                        closed_did))
        out = tongdai(base, "config", "apply", str(folder / "tenant.yaml"))
        passwords = dict(re.findall(r"^extension\s+(\S+)\s+\S+\s+sip_password=(\S+)", out, re.M))
        assert set(passwords) == {*exts.values(), DESK_EXT}, "no SIP password printed"
        desk = Agent("", DESK_EXT, passwords[DESK_EXT], free_port(), media_port())
        agents = {a: Agent(a, ext, passwords[ext], free_port(), media_port())
                  for a, ext in exts.items()}
        product = Product(sw, tenant, domain, queue_did, ivr_did, agents,
                          running_stack.kafka_bootstrap, running_stack.clickhouse_tcp_port, database,
                          api_port, token_secret, folder, procs, demo_tenant=demo_tenant,
                          demo_domain=demo_domain, closed_did=closed_did, env=base,
                          carrier_port=carrier_port, desk=desk,
                          xml_curl_password=xml_curl_password)
        bring_online(product.reader(), folder, sw, domain, running_stack.kafka_bootstrap,
                     tenant, agents, [*agents.values(), desk])
        yield product
    finally:
        for name in ("bridge", "worker", "sink", "api"):
            if name in procs:
                stop_process(procs[name])
        if sw is not None:
            stop_switch(sw)
        keep = ARTIFACTS / hexid
        shutil.copytree(folder, keep, ignore=shutil.ignore_patterns("db", "spool", "worker",
                                                                    "*.pcap", "conf"),
                        dirs_exist_ok=True)
        try:
            running_stack.clickhouse_client().execute(f"DROP DATABASE IF EXISTS {database}")
        except Exception:  # noqa: BLE001 - cleaning up must not hide the test's result
            pass


@dataclass
class Demo:
    """The demo tenant as `tongdai up` provisions it, under ids of its own."""

    tenant: str
    domain: str
    dids: dict[str, str]  # demo.yaml's number -> this copy's (national form)
    passwords: dict[str, str]  # extension -> SIP password, as `up` collects them
    apply_output: str
    agents: dict[str, Agent]  # the registered ones, by agent id


def demo_yaml(tenant: str, domain: str, dids: dict[str, str], open_hours: bool) -> str:
    """deploy/local/demo/demo.yaml for `tenant`: its domain and numbers replaced (numbers
    are one tenant's across all; the shared Kafka may hold the real demo's), and without
    the queues' schedules when `open_hours` (a test at 04:00 in Hanoi must still reach an
    agent)."""
    import yaml

    from deploy.local.up import DEMO

    doc = yaml.safe_load(DEMO.read_text())
    doc["tenant"] = tenant
    doc["settings"]["domain"] = domain
    doc["dids"] = {dids[number]: spec for number, spec in doc["dids"].items()}
    if open_hours:
        for queue in doc["queues"].values():
            queue.pop("schedule", None)
            queue.pop("after_hours", None)
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


@pytest.fixture(scope="session")
def demo(product) -> Iterator[Demo]:
    """The demo applied as `tongdai up` does (`config apply --missing-only`, passwords read
    with up's own parser), agents `lan` (sales, billing) and `hoa` (support) registered
    with those passwords and logged in."""
    from deploy.local.up import sip_passwords

    rng = random.Random()
    dids = {"19001234": f"1900{rng.randrange(10**5, 10**6)}",
            "02873001234": f"0287{rng.randrange(10**6, 10**7)}",
            "02473001234": f"0247{rng.randrange(10**6, 10**7)}"}
    path = product.folder / "demo.yaml"
    path.write_text(demo_yaml(product.demo_tenant, product.demo_domain, dids, open_hours=True))
    env = {**product.env, "TONGDAI_DEFAULT_TENANT": product.demo_tenant}
    out = tongdai(env, "config", "apply", "--missing-only", str(path))
    passwords = sip_passwords(out)
    agents = {a: Agent(a, ext, passwords.get(ext, ""), free_port(), media_port())
              for a, ext in (("lan", "1000"), ("hoa", "1002"))}
    bring_online(product.reader(product.demo_tenant), product.folder, product.switch,
                 product.demo_domain, product.bootstrap, product.demo_tenant, agents,
                 list(agents.values()))
    yield Demo(product.demo_tenant, product.demo_domain, dids, passwords, out, agents)
