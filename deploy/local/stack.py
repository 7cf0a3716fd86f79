"""The local stack: a real Apache Kafka broker (KRaft) and a real ClickHouse server.

Both run as plain processes of this machine, bound to 127.0.0.1, with their data, logs
and pid files under one project-local folder (`TONGDAI_STACK_DIR`, default `var/stack`).
`up` is idempotent (a running, healthy service is left alone), every wait is bounded,
and every failure says what went wrong and what to do, with a non-zero exit.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from routing.contract.environ import SettingsError

from .settings import StackSettings

HERE = Path(__file__).resolve().parent
KAFKA_POM = HERE / "kafka" / "pom.xml"


class StackError(RuntimeError):
    """A stack operation failed; the message says why and what to do."""


def kafka_version() -> str:
    """The pinned Kafka version (the single source of truth is the pom)."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", KAFKA_POM.read_text())
    if not match:
        raise StackError(f"no <kafka.version> in {KAFKA_POM}")
    return match.group(1)


def port_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port (we could bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited child not yet reaped) is not alive.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


@dataclass
class Health:
    name: str
    healthy: bool
    detail: str
    pid: int | None = None


class Service:
    """A server process of the stack: install, start, health, stop."""

    name = "service"

    def __init__(self, settings: StackSettings, log: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.log = log
        self.dir = settings.root / self.name
        self.pid_file = self.dir / f"{self.name}.pid"
        self.console_log = self.dir / "log" / "console.log"

    # -- to be provided by each service
    def ports(self) -> list[int]:
        raise NotImplementedError

    def install(self) -> None:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write config, create folders, format storage: idempotent."""

    def probe(self) -> str:
        """Raise if not healthy; return a short description when healthy."""
        raise NotImplementedError

    # -- shared behaviour
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def health(self) -> Health:
        pid = self.pid()
        try:
            detail = self.probe()
        except Exception as exc:  # any failed probe means "not healthy", with the reason
            state = "not running" if pid is None else f"pid {pid} running but not healthy"
            return Health(self.name, False, f"{state}: {exc}", pid)
        if pid is None:
            detail += " (not started by this stack)"
        return Health(self.name, True, detail, pid)

    def start(self) -> Health:
        launched = self.launch()
        if isinstance(launched, Health):
            return launched
        return self.wait_healthy(*launched)

    # A healthy server we did not start on our ports is used rather than refused (another
    # checkout's stack, a system service); a cluster node never adopts one (see Kafka).
    adopts_foreign = True

    def launch(self) -> Health | tuple[int, subprocess.Popen | None]:
        """Start the process unless it runs: (pid, the new process or None if it was
        running already) to wait on, or the Health of a server we did not start."""
        pid = self.pid()
        if pid is not None:
            return pid, None
        taken = [p for p in self.ports() if not port_free(p)]
        if taken:
            detail = None
            if self.adopts_foreign:
                try:
                    detail = self.probe()
                except Exception:
                    detail = None
            if detail is not None:
                # `down` leaves it alone.
                self.log(f"{self.name}: already serving (not started by this stack): {detail}")
                return Health(self.name, True, detail + " (not started by this stack)")
            raise StackError(
                f"{self.name}: port(s) {taken} on 127.0.0.1 already in use by another "
                f"process; stop it or choose other ports (see deploy/local/settings.py, "
                f"e.g. TONGDAI_KAFKA_PORT / TONGDAI_CLICKHOUSE_TCP_PORT)")
        self.install()
        self.prepare()
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.console_log, "ab") as out:
            proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=self.dir,
                                    start_new_session=True)
        self.pid_file.write_text(str(proc.pid))
        self.log(f"{self.name}: started pid {proc.pid}, logs in {self.console_log.parent}")
        return proc.pid, proc

    def wait_healthy(self, pid: int, proc: subprocess.Popen | None = None) -> Health:
        health = self._wait_healthy(pid, proc)
        if proc is None:
            self.log(f"{self.name}: already running (pid {pid}), {health.detail}")
        return health

    def _wait_healthy(self, pid: int, proc: subprocess.Popen | None) -> Health:
        deadline = time.monotonic() + self.settings.start_timeout_s
        last = "no answer yet"
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise StackError(f"{self.name}: exited with code {proc.returncode} during "
                                 f"start. Last log lines:\n{tail(self.console_log)}")
            if proc is None and not pid_alive(pid):
                raise StackError(f"{self.name}: pid {pid} exited while starting. Last log "
                                 f"lines:\n{tail(self.console_log)}")
            try:
                return Health(self.name, True, self.probe(), pid)
            except Exception as exc:
                last = str(exc)
            time.sleep(0.5)
        raise StackError(
            f"{self.name}: pid {pid} is running but not healthy after "
            f"{self.settings.start_timeout_s:.0f} s (half-started: {last}). Run "
            f"`tongdai stack down` and look at {self.console_log}:\n{tail(self.console_log)}")

    def stop(self) -> None:
        self.finish_stop(self.signal_stop())

    def signal_stop(self) -> int | None:
        """Ask the process to stop (SIGTERM to its group); its pid, or None if none ran."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            self.log(f"{self.name}: not running")
            return None
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        return pid

    def finish_stop(self, pid: int | None) -> None:
        """Wait (30 s at most, then SIGKILL) for the process `signal_stop` signalled."""
        if pid is None:
            return
        deadline = time.monotonic() + 30
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_alive(pid):
            self.log(f"{self.name}: pid {pid} ignored SIGTERM for 30 s, killing it")
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        self.log(f"{self.name}: stopped (pid {pid})")


class Kafka(Service):
    """Apache Kafka in KRaft mode, a node that is both broker and controller: the only one
    (`node` None: folder `kafka/`, as always) or node `node` of the stack's cluster of
    `settings.kafka_brokers` (folder `kafka-<node>/`, every node a controller voter)."""

    name = "kafka"

    def __init__(self, settings: StackSettings, log: Callable[[str], None] = print,
                 node: int | None = None) -> None:
        self.node = node
        if node is not None:
            self.name = f"kafka-{node}"
            # The quorum needs a majority of nodes: a half-formed cluster on our ports is
            # a failed start to report, not a server to adopt.
            self.adopts_foreign = False
        super().__init__(settings, log)
        self.brokers = 1 if node is None else settings.kafka_brokers
        self.node_id = 1 if node is None else node
        self.client_port, self.controller_port = settings.kafka_node_ports(self.node_id)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def libs(self) -> Path:
        return self.settings.root / "kafka-dist" / kafka_version() / "libs"

    def ports(self) -> list[int]:
        return [self.client_port, self.controller_port]

    def java(self) -> str:
        java = shutil.which(self.settings.java_bin)
        if java is None:
            raise StackError(f"kafka: Java not found ({self.settings.java_bin!r} is not on "
                             f"PATH). Install Java 17: apt-get install -y openjdk-17-jre-headless")
        return java

    def install(self) -> None:
        self.java()
        marker = self.libs / ".complete"
        pom_digest = hashlib.sha256(KAFKA_POM.read_bytes()).hexdigest()[:16]
        if marker.exists() and json.loads(marker.read_text()).get("pom") == pom_digest:
            return
        mvn = shutil.which(self.settings.mvn_bin)
        if mvn is None:
            raise StackError("kafka: Maven not found; it fetches the broker jars from Maven "
                             "Central. Install it: apt-get install -y maven")
        self.log(f"kafka: fetching Apache Kafka {kafka_version()} jars from Maven Central ...")
        shutil.rmtree(self.libs, ignore_errors=True)
        self.libs.mkdir(parents=True)
        result = subprocess.run(
            [mvn, "-q", "-B", "-f", str(KAFKA_POM), "dependency:copy-dependencies",
             f"-DoutputDirectory={self.libs}", "-DincludeScope=runtime"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            raise StackError(f"kafka: mvn failed (exit {result.returncode}):\n"
                             f"{(result.stdout + result.stderr)[-3000:]}")
        jars = list(self.libs.glob("*.jar"))
        marker.write_text(json.dumps({"version": kafka_version(), "jars": len(jars),
                                      "pom": pom_digest}))
        self.log(f"kafka: installed Apache Kafka {kafka_version()} ({len(jars)} jars) "
                 f"in {self.libs}")

    def config(self) -> str:
        """This node's server.properties."""
        s = self.settings
        voters = ",".join(f"{i}@127.0.0.1:{s.kafka_node_ports(i)[1]}"
                          for i in range(1, self.brokers + 1))
        replication = min(3, self.brokers)
        conf = (HERE / "kafka" / "server.properties").read_text()
        return (conf.replace("@DIR@", str(self.dir)).replace("@PORT@", str(self.client_port))
                .replace("@CONTROLLER_PORT@", str(self.controller_port))
                .replace("@NODE_ID@", str(self.node_id)).replace("@VOTERS@", voters)
                .replace("@REPLICATION@", str(replication))
                .replace("@MIN_ISR@", str(max(1, replication - 1))))

    def cluster_id(self) -> str:
        """A new id for one broker; the one id all nodes of a cluster are formatted with."""
        if self.node is None:
            return new_cluster_id()
        return cluster_record(self.settings, create=True)["cluster_id"]

    def prepare(self) -> None:
        (self.dir / "log").mkdir(parents=True, exist_ok=True)
        (self.dir / "server.properties").write_text(self.config())
        if (self.dir / "data" / "meta.properties").exists():
            return
        cluster_id = self.cluster_id()
        result = subprocess.run(
            [self.java(), "-cp", str(self.libs / "*"),
             f"-Dlog4j2.configurationFile={HERE / 'kafka' / 'log4j2.properties'}",
             f"-Dkafka.logs.dir={self.dir / 'log'}",
             "kafka.tools.StorageTool", "format", "-t", cluster_id,
             "-c", str(self.dir / "server.properties")],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise StackError(f"kafka: formatting the storage failed:\n"
                             f"{(result.stdout + result.stderr)[-3000:]}")

    def command(self) -> list[str]:
        heap = (self.settings.kafka_heap_mb if self.node is None
                else self.settings.kafka_cluster_heap_mb)
        return [self.java(), f"-Xms{min(heap, 512)}m", f"-Xmx{heap}m", "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={HERE / 'kafka' / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={self.dir / 'log'}",
                "-cp", str(self.libs / "*"), "kafka.Kafka", str(self.dir / "server.properties")]

    def probe(self) -> str:
        from kafka import KafkaAdminClient  # deferred: `stack status` must work without a broker

        with socket.create_connection(("127.0.0.1", self.client_port), timeout=1):
            pass
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                 request_timeout_ms=3000, bootstrap_timeout_ms=3000,
                                 client_id="tongdai-stack-health")
        try:
            cluster = admin.describe_cluster()
            if len(cluster.get("brokers", [])) < 1:
                raise StackError("no broker registered yet")
            ids = sorted(b["broker_id"] for b in cluster["brokers"])
            if self.node is not None and self.node_id not in ids:
                raise StackError(f"node {self.node_id} not registered yet (brokers {ids})")
            # Consumer groups work: on a fresh broker the first group request creates
            # __consumer_offsets, and until its partitions are loaded, group commits and
            # joins fail. "Healthy" waits for that, so the first worker does not.
            group = admin.describe_groups(["tongdai-stack-health"])["tongdai-stack-health"]
            if group.get("error") and "GroupIdNotFound" not in group["error"]:  # not found: fine
                raise StackError(f"consumer groups not ready yet: {group['error']}")
        finally:
            admin.close()
        brokers = len(cluster.get("brokers", []))
        if self.node is None:
            return (f"Kafka {kafka_version()} on {self.bootstrap}, "
                    f"{brokers} broker, controller {cluster.get('controller_id')}")
        return (f"Kafka {kafka_version()} node {self.node_id} on {self.bootstrap}, "
                f"{brokers} of {self.brokers} brokers up (ids {ids})")


class ClickHouse(Service):
    """Debian's clickhouse-server, run with the project's own config (not the system service)."""

    name = "clickhouse"

    def ports(self) -> list[int]:
        return [self.settings.clickhouse_tcp_port, self.settings.clickhouse_http_port]

    def binary(self) -> str:
        # Debian installs it in /usr/sbin, which is not on every user's PATH.
        path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin"
        found = shutil.which(self.settings.clickhouse_server_bin, path=path)
        if found is None:
            raise StackError(f"clickhouse: {self.settings.clickhouse_server_bin!r} not found. "
                             f"Install it: apt-get install -y clickhouse-server (or run the "
                             f"README's set-up command)")
        return found

    def install(self) -> None:
        self.binary()

    def prepare(self) -> None:
        s = self.settings
        for sub in ("data", "tmp", "user_files", "format_schemas", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        conf = ((HERE / "clickhouse" / "config.xml").read_text()
                .replace("@DIR@", str(self.dir))
                .replace("@HTTP_PORT@", str(s.clickhouse_http_port))
                .replace("@TCP_PORT@", str(s.clickhouse_tcp_port)))
        (self.dir / "config.xml").write_text(conf)
        self.write_users()

    def passwords(self) -> dict[str, str]:
        """The passwords of the stack's ClickHouse users, generated on first use (strong,
        random, one per user) into a private file of the stack folder."""
        path = self.settings.clickhouse_passwords_file
        known = self.settings.clickhouse_passwords()
        wanted = {u: known.get(u) or secrets.token_urlsafe(24)
                  for u in (self.settings.clickhouse_user, self.settings.bi_user)}
        if wanted != known:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.touch(mode=0o600)
            tmp.chmod(0o600)
            tmp.write_text(json.dumps({**known, **wanted}, indent=1))
            tmp.replace(path)
        return {**known, **wanted}

    def write_users(self) -> None:
        """The server's users.xml: every user with a password (its SHA-256 only). A running
        18.16 server reloads the file within seconds, without a restart."""
        passwords = self.passwords()

        def sha(user: str) -> str:
            return hashlib.sha256(passwords[user].encode()).hexdigest()

        users = ((HERE / "clickhouse" / "users.xml").read_text()
                 .replace("@DEFAULT_PASSWORD_SHA256@", sha(self.settings.clickhouse_user))
                 .replace("@BI_PASSWORD_SHA256@", sha(self.settings.bi_user))
                 .replace("@BI_DATABASE@", self.settings.clickhouse_database))
        (self.dir / "users.d").mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "users.xml.tmp"
        tmp.write_text(users)
        tmp.chmod(0o600)
        tmp.replace(self.dir / "users.xml")

    def command(self) -> list[str]:
        return [self.binary(), f"--config-file={self.dir / 'config.xml'}"]

    def probe(self) -> str:
        url = f"http://127.0.0.1:{self.settings.clickhouse_http_port}/ping"
        with urllib.request.urlopen(url, timeout=2) as resp:
            body = resp.read().decode().strip()
        if body != "Ok.":
            raise StackError(f"/ping answered {body!r}")
        client = self.settings.clickhouse_client(connect_timeout=2, send_receive_timeout=5)
        try:
            version = client.execute("SELECT version()")[0][0]
        finally:
            client.disconnect()
        return (f"ClickHouse {version} native 127.0.0.1:{self.settings.clickhouse_tcp_port}, "
                f"http 127.0.0.1:{self.settings.clickhouse_http_port}")


def new_cluster_id() -> str:
    """A Kafka cluster id (base64 of a UUID). Not one starting with "-": the storage
    tool would read it as an option (Kafka's own Uuid.randomUuid avoids them too)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def cluster_file(settings: StackSettings) -> Path:
    return settings.root / "kafka-cluster.json"


def cluster_record(settings: StackSettings, create: bool = False) -> dict:
    """The stack's Kafka cluster: its size and the id every node is formatted with.
    {} if there is none (and `create` is false)."""
    path = cluster_file(settings)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        if not create:
            return {}
    except (OSError, ValueError) as exc:
        raise StackError(f"kafka: {path} is unreadable ({exc}); remove it and the "
                         f"kafka-<n> folders beside it to start a new cluster") from None
    record = {"brokers": settings.kafka_brokers, "cluster_id": new_cluster_id()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return record


def _cluster_running(settings: StackSettings) -> int:
    """The size of the stack's cluster if any of its nodes runs, else 0."""
    size = int(cluster_record(settings).get("brokers", 0))
    sized = dataclasses.replace(settings, kafka_brokers=max(size, 1))
    if size and any(Kafka(sized, node=i).pid() for i in range(1, size + 1)):
        return size
    return 0


def resolve(settings: StackSettings, brokers: int | None = None) -> StackSettings:
    """The settings with the number of brokers to act on: `brokers` if given (`--brokers`),
    else the size of the stack's cluster while it runs (so `tongdai up`, `status` and the
    tests' fixtures find it), else TONGDAI_KAFKA_BROKERS (1)."""
    if brokers is None and settings.kafka_brokers == 1:
        brokers = _cluster_running(settings) or 1
    if brokers is None or brokers == settings.kafka_brokers:
        return settings
    resolved = dataclasses.replace(settings, kafka_brokers=brokers)
    resolved.check()
    return resolved


def kafka_nodes(settings: StackSettings, log: Callable[[str], None] = print) -> list[Kafka]:
    """The stack's Kafka: one broker (folder `kafka/`) or the nodes of its cluster."""
    if settings.kafka_brokers == 1:
        return [Kafka(settings, log)]
    return [Kafka(settings, log, node=i) for i in range(1, settings.kafka_brokers + 1)]


def kafka_up(settings: StackSettings, log: Callable[[str], None] = print) -> list[Health]:
    """Start the stack's Kafka (one broker, or every node of a cluster before waiting on
    any: a controller quorum needs a majority of them)."""
    nodes = kafka_nodes(settings, log)
    if len(nodes) == 1:
        if _cluster_running(settings):
            raise StackError(f"kafka: the stack's {_cluster_running(settings)}-broker cluster "
                             f"runs in {settings.root}; use it (`tongdai stack up --brokers "
                             f"{_cluster_running(settings)}`) or stop it first "
                             f"(`tongdai stack down`)")
        return [nodes[0].start()]
    single = Kafka(dataclasses.replace(settings, kafka_brokers=1), log)
    if single.pid() is not None:
        raise StackError(f"kafka: the stack's single broker runs (pid {single.pid()}, "
                         f"{single.dir}); stop it first (`tongdai stack down`) to start a "
                         f"{settings.kafka_brokers}-broker cluster on its ports")
    recorded = cluster_record(settings).get("brokers")
    if recorded not in (None, settings.kafka_brokers):
        raise StackError(f"kafka: the stack's cluster in {settings.root} was formatted with "
                         f"{recorded} brokers; start it with --brokers {recorded}, or remove "
                         f"{cluster_file(settings)} and the kafka-<n> folders to change its size")
    launched: list[tuple[Kafka, Health | tuple[int, subprocess.Popen | None]]] = []
    try:
        for node in nodes:
            launched.append((node, node.launch()))
    except StackError:
        # No half-formed cluster left behind: stop the nodes this call started.
        started = [(n, n.signal_stop()) for n, r in launched
                   if isinstance(r, tuple) and r[1] is not None]
        for n, pid in started:
            n.finish_stop(pid)
        raise
    return [r if isinstance(r, Health) else node.wait_healthy(*r) for node, r in launched]


def kafka_down(settings: StackSettings, log: Callable[[str], None] = print) -> None:
    """Stop every Kafka node of the stack that runs: the single broker and/or the nodes of
    its cluster (all signalled first: a cluster's last nodes stop faster with a quorum)."""
    nodes: list[Kafka] = [Kafka(dataclasses.replace(settings, kafka_brokers=1), log)]
    size = int(cluster_record(settings).get("brokers", 0))
    if size > 1:
        sized = dataclasses.replace(settings, kafka_brokers=size)
        nodes += [Kafka(sized, log, node=i) for i in range(1, size + 1)]
    signalled = [(node, node.signal_stop()) for node in nodes
                 if node.node is None or node.pid_file.exists()]
    for node, pid in signalled:
        node.finish_stop(pid)


def services(settings: StackSettings, log: Callable[[str], None] = print) -> list[Service]:
    return [*kafka_nodes(settings, log), ClickHouse(settings, log)]


def up(settings: StackSettings, log: Callable[[str], None] = print,
       brokers: int | None = None) -> list[Health]:
    """Start whatever is not running; leave healthy services alone."""
    settings = resolve(settings, brokers)
    healths = [*kafka_up(settings, log), ClickHouse(settings, log).start()]
    if not settings.clickhouse_passwords_file.exists():
        log("clickhouse: runs without passwords (started before the stack had them); set "
            "them without a restart: `tongdai stack users` (then restart what connects to it)")
    return healths


def users(settings: StackSettings, log: Callable[[str], None] = print) -> Path:
    """(Re)write the users.xml of the stack's ClickHouse, with passwords (generated if
    missing). A running server reloads it within seconds: no restart, but clients that
    connected without a password must reconnect with it."""
    service = ClickHouse(settings, log)
    service.dir.mkdir(parents=True, exist_ok=True)
    service.write_users()
    log(f"clickhouse: users written to {service.dir / 'users.xml'}; passwords in "
        f"{settings.clickhouse_passwords_file}")
    return settings.clickhouse_passwords_file


def environ_lines(settings: StackSettings) -> list[str]:
    """`export` lines that point the product's commands at this stack (`tongdai stack env`)."""
    env = {**settings.clickhouse_environ(), "TONGDAI_KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    return [f"export {k}={shlex.quote(v)}" for k, v in env.items()]


def down(settings: StackSettings, log: Callable[[str], None] = print) -> None:
    ClickHouse(settings, log).stop()
    kafka_down(settings, log)


def status(settings: StackSettings, brokers: int | None = None) -> list[Health]:
    return [svc.health() for svc in services(resolve(settings, brokers), lambda _: None)]


def install(settings: StackSettings, log: Callable[[str], None] = print) -> None:
    """Fetch what the stack needs without starting it (the set-up command calls this)."""
    for svc in (Kafka(settings, log), ClickHouse(settings, log)):
        svc.install()


def main(argv: list[str], settings: StackSettings) -> int:
    """`tongdai stack up|down|status|install|users|env [--brokers N] [--json]`."""
    action = argv[0] if argv and not argv[0].startswith("-") else "status"
    options = argv[1:] if argv and argv[0] == action else argv
    brokers: int | None = None
    if "--brokers" in options:
        at = options.index("--brokers")
        value = options[at + 1] if at + 1 < len(options) else ""
        if not value.isdigit() or not 1 <= int(value) <= 9:
            print(f"tongdai stack: --brokers takes a number of brokers from 1 to 9, got "
                  f"{value!r}", file=sys.stderr)
            return 2
        brokers = int(value)
    try:
        if action == "up":
            for h in up(settings, brokers=brokers):
                print(f"  {h.name:<11} healthy  {h.detail}")
            resolved = resolve(settings, brokers)
            if resolved.kafka_brokers > 1:
                print(f"  Kafka bootstrap: TONGDAI_KAFKA_BOOTSTRAP={resolved.kafka_bootstrap}"
                      f"\n  topics: replication {resolved.kafka_replication}, "
                      f"min.insync.replicas {resolved.kafka_min_insync}; for the worker: "
                      f"TONGDAI_TOPIC_REPLICATION={resolved.kafka_replication}")
            return 0
        if action == "down":
            down(settings)
            return 0
        if action == "install":
            install(settings)
            return 0
        if action == "users":
            users(settings)
            return 0
        if action == "env":
            print("\n".join(environ_lines(resolve(settings, brokers))))
            return 0
        if action == "status":
            healths = status(settings, brokers)
            if "--json" in options:
                print(json.dumps([h.__dict__ for h in healths]))
            else:
                for h in healths:
                    print(f"  {h.name:<11} {'healthy' if h.healthy else 'DOWN':<8} {h.detail}")
            return 0 if all(h.healthy for h in healths) else 1
    except (StackError, SettingsError) as exc:
        print(f"tongdai stack {action}: {exc}", file=sys.stderr)
        return 2
    print(f"tongdai stack: unknown action {action!r} (use up, down, status, install, users or env)",
          file=sys.stderr)
    return 2
