"""The local stack: a real Apache Kafka broker (KRaft) and a real ClickHouse server.

Both run as plain processes of this machine, bound to 127.0.0.1, with their data, logs
and pid files under one project-local folder (`TONGDAI_STACK_DIR`, default `var/stack`).
`up` is idempotent (a running, healthy service is left alone), every wait is bounded,
and every failure says what went wrong and what to do, with a non-zero exit.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
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
        pid = self.pid()
        if pid is not None:
            health = self.wait_healthy(pid)
            self.log(f"{self.name}: already running (pid {pid}), {health.detail}")
            return health
        taken = [p for p in self.ports() if not port_free(p)]
        if taken:
            try:
                detail = self.probe()
            except Exception:
                detail = None
            if detail is not None:
                # A healthy server we did not start (another checkout's stack, a system
                # service): use it rather than fail; `down` leaves it alone.
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
        return self.wait_healthy(proc.pid, proc)

    def wait_healthy(self, pid: int, proc: subprocess.Popen | None = None) -> Health:
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
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            self.log(f"{self.name}: not running")
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 30
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_alive(pid):
            self.log(f"{self.name}: pid {pid} ignored SIGTERM for 30 s, killing it")
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        self.log(f"{self.name}: stopped (pid {pid})")


class Kafka(Service):
    """Apache Kafka in KRaft mode, one node that is both broker and controller."""

    name = "kafka"

    @property
    def libs(self) -> Path:
        return self.settings.root / "kafka-dist" / kafka_version() / "libs"

    def ports(self) -> list[int]:
        return [self.settings.kafka_port, self.settings.kafka_controller_port]

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

    def prepare(self) -> None:
        s = self.settings
        (self.dir / "log").mkdir(parents=True, exist_ok=True)
        conf = (HERE / "kafka" / "server.properties").read_text()
        conf = (conf.replace("@DIR@", str(self.dir)).replace("@PORT@", str(s.kafka_port))
                .replace("@CONTROLLER_PORT@", str(s.kafka_controller_port)))
        (self.dir / "server.properties").write_text(conf)
        if (self.dir / "data" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
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
        heap = self.settings.kafka_heap_mb
        return [self.java(), f"-Xms{min(heap, 512)}m", f"-Xmx{heap}m", "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={HERE / 'kafka' / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={self.dir / 'log'}",
                "-cp", str(self.libs / "*"), "kafka.Kafka", str(self.dir / "server.properties")]

    def probe(self) -> str:
        from kafka import KafkaAdminClient  # deferred: `stack status` must work without a broker

        with socket.create_connection(("127.0.0.1", self.settings.kafka_port), timeout=1):
            pass
        admin = KafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap,
                                 request_timeout_ms=3000, bootstrap_timeout_ms=3000,
                                 client_id="tongdai-stack-health")
        try:
            cluster = admin.describe_cluster()
            if len(cluster.get("brokers", [])) < 1:
                raise StackError("no broker registered yet")
            # Consumer groups work: on a fresh broker the first group request creates
            # __consumer_offsets, and until its partitions are loaded, group commits and
            # joins fail. "Healthy" waits for that, so the first worker does not.
            group = admin.describe_groups(["tongdai-stack-health"])["tongdai-stack-health"]
            if group.get("error") and "GroupIdNotFound" not in group["error"]:  # not found: fine
                raise StackError(f"consumer groups not ready yet: {group['error']}")
        finally:
            admin.close()
        brokers = len(cluster.get("brokers", []))
        return (f"Kafka {kafka_version()} on {self.settings.kafka_bootstrap}, "
                f"{brokers} broker, controller {cluster.get('controller_id')}")


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
        shutil.copyfile(HERE / "clickhouse" / "users.xml", self.dir / "users.xml")

    def command(self) -> list[str]:
        return [self.binary(), f"--config-file={self.dir / 'config.xml'}"]

    def probe(self) -> str:
        url = f"http://127.0.0.1:{self.settings.clickhouse_http_port}/ping"
        with urllib.request.urlopen(url, timeout=2) as resp:
            body = resp.read().decode().strip()
        if body != "Ok.":
            raise StackError(f"/ping answered {body!r}")
        from clickhouse_driver import Client

        client = Client("127.0.0.1", port=self.settings.clickhouse_tcp_port,
                        connect_timeout=2, send_receive_timeout=5)
        try:
            version = client.execute("SELECT version()")[0][0]
        finally:
            client.disconnect()
        return (f"ClickHouse {version} native 127.0.0.1:{self.settings.clickhouse_tcp_port}, "
                f"http 127.0.0.1:{self.settings.clickhouse_http_port}")


def services(settings: StackSettings, log: Callable[[str], None] = print) -> list[Service]:
    return [Kafka(settings, log), ClickHouse(settings, log)]


def up(settings: StackSettings, log: Callable[[str], None] = print) -> list[Health]:
    """Start whatever is not running; leave healthy services alone."""
    return [svc.start() for svc in services(settings, log)]


def down(settings: StackSettings, log: Callable[[str], None] = print) -> None:
    for svc in reversed(services(settings, log)):
        svc.stop()


def status(settings: StackSettings) -> list[Health]:
    return [svc.health() for svc in services(settings, lambda _: None)]


def install(settings: StackSettings, log: Callable[[str], None] = print) -> None:
    """Fetch what the stack needs without starting it (the set-up command calls this)."""
    for svc in services(settings, log):
        svc.install()


def main(argv: list[str], settings: StackSettings) -> int:
    """`tongdai stack up|down|status|install`."""
    action = argv[0] if argv else "status"
    try:
        if action == "up":
            for h in up(settings):
                print(f"  {h.name:<11} healthy  {h.detail}")
            return 0
        if action == "down":
            down(settings)
            return 0
        if action == "install":
            install(settings)
            return 0
        if action == "status":
            healths = status(settings)
            if "--json" in argv:
                print(json.dumps([h.__dict__ for h in healths]))
            else:
                for h in healths:
                    print(f"  {h.name:<11} {'healthy' if h.healthy else 'DOWN':<8} {h.detail}")
            return 0 if all(h.healthy for h in healths) else 1
    except StackError as exc:
        print(f"tongdai stack {action}: {exc}", file=sys.stderr)
        return 2
    print(f"tongdai stack: unknown action {action!r} (use up, down, status or install)",
          file=sys.stderr)
    return 2
