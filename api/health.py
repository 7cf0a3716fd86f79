"""Health that tells the truth: can this API process reach Kafka and ClickHouse now?

A request must never wait on a frozen server to learn it is frozen: one thread per
dependency asks it every `interval_s`, each question bounded by `timeout_s`, and the
health route reads the last answers. A dependency is down when its last good answer is
older than `stale_s` (a frozen broker keeps its TCP connections open and simply never
answers, so "no error" is not "up").
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("tongdai.api.health")


@dataclass
class Check:
    name: str
    ask: Callable[[], None]  # raises when the dependency does not answer in time
    ok_at: float = 0.0  # monotonic time of the last good answer
    error: str = "not asked yet"
    asked: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Health:
    def __init__(self, interval_s: float = 2.0, stale_s: float = 6.0) -> None:
        self.interval_s = interval_s
        self.stale_s = stale_s
        self.checks: dict[str, Check] = {}
        self._stop = threading.Event()

    def add(self, name: str, ask: Callable[[], None]) -> None:
        check = self.checks[name] = Check(name, ask)
        threading.Thread(target=self._loop, args=(check,), name=f"health-{name}",
                         daemon=True).start()

    def _loop(self, check: Check) -> None:
        while not self._stop.is_set():
            try:
                check.ask()
                with check.lock:
                    if check.error:
                        log.info("%s answers again", check.name)
                    check.ok_at, check.error = time.monotonic(), ""
            except Exception as exc:  # any failure to answer is the answer
                text = f"{type(exc).__name__}: {exc}"[:300]
                with check.lock:
                    if check.error != text:
                        log.warning("%s does not answer: %s", check.name, text)
                    check.error = text
            check.asked += 1
            self._stop.wait(self.interval_s)

    def status(self) -> dict[str, dict]:
        now = time.monotonic()
        out = {}
        for name, check in self.checks.items():
            with check.lock:
                age = now - check.ok_at if check.ok_at else None
                up = age is not None and age <= self.stale_s
                out[name] = {"ok": up,
                             "last_ok_s_ago": round(age, 1) if age is not None else None,
                             "detail": "" if up else (check.error or
                                                      f"no answer for {age:.0f} s")}
        return out

    def close(self) -> None:
        self._stop.set()


def kafka_ask(bootstrap: str, timeout_s: float) -> Callable[[], None]:
    """A question only a live broker answers: the cluster's metadata, fetched fresh."""
    state: dict = {}

    def ask() -> None:
        from kafka import KafkaAdminClient

        admin = state.get("admin")
        if admin is None:
            admin = state["admin"] = KafkaAdminClient(
                bootstrap_servers=bootstrap, client_id="tongdai-api-health",
                request_timeout_ms=int(timeout_s * 1000))
        try:
            admin.describe_cluster()
        except Exception:
            state.pop("admin", None)
            try:
                admin.close()
            except Exception:
                pass
            raise

    return ask


def clickhouse_ask(connect: Callable[[], object]) -> Callable[[], None]:
    state: dict = {}

    def ask() -> None:
        db = state.get("db")
        if db is None:
            db = state["db"] = connect()
        db.query("SELECT 1")  # type: ignore[attr-defined]

    return ask
