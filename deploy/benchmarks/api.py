"""api: report endpoint requests/s and p95 latency under concurrent load through gunicorn.

A real `tongdai api` (gunicorn, gthread workers, on 127.0.0.1) in front of the local
ClickHouse holding a month of generated calls (analytics' scenario through the sink's
fold, in a database of its own); N client threads with keep-alive connections call
`GET /api/v1/reports/queues` (queue KPIs over one day, per queue) as fast as they are
answered for a fixed time. Also measured the same way: call search by number and the
config list (in-memory view, no ClickHouse), to separate HTTP/auth cost from SQL cost.
Needs the local stack running (`tongdai stack up`). Clients run on the same 2 cores.
"""
from __future__ import annotations

import http.client
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import urllib.parse

from ._common import free_port

SECRET = "bench-secret-" + "b" * 32
DAY = "2026-11-20"


def _load_data(db, calls: int) -> None:
    from analytics import migrations
    from analytics.scenario import Scenario, random_calls, us
    from analytics.sink import replay

    migrations.migrate(db)
    s = Scenario(tenant="acme")
    # spread over the 30 days before DAY's end
    start = us(f"{DAY}T00:00:00+07:00") - 29 * 86400 * 1_000_000
    random_calls(s, calls, start, random.Random(7), spacing_s=30 * 86400 / calls)
    replay(db, s.events, batch_size=20000)




def _load(port: int, path: str, token: str, clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                ok = False
            if ok:
                mine.append(time.perf_counter() - t0)
            else:
                with lock:
                    errors[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    lat = sorted(latencies)
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")
    return {"requests_per_s": len(lat) / elapsed, "p50_ms": p(0.50), "p95_ms": p(0.95),
            "p99_ms": p(0.99), "mean_ms": statistics.fmean(lat) * 1000 if lat else 0.0,
            "errors_count": errors[0]}


def run(quick: bool = False) -> dict[str, float]:
    from analytics.db import NativeDatabase
    from api.auth import Tokens
    from deploy.local import settings as stack_settings

    stack = stack_settings.load()
    suffix = uuid.uuid4().hex[:8]
    db = NativeDatabase("127.0.0.1", stack.clickhouse_tcp_port, f"bench_api_{suffix}",
                        stack.clickhouse_user, stack.clickhouse_password)
    calls = 5000 if quick else 30000
    seconds = 8 if quick else 20
    clients = 16
    workers = int(os.environ.get("TONGDAI_BENCH_API_WORKERS", "2"))
    topics = {f"TONGDAI_{k.upper()}_TOPIC": f"bench-api-{suffix}-{k}"
              for k in ("config", "audit", "live", "commands", "events", "notes")}
    port = free_port()
    env = {**os.environ, **topics, "TONGDAI_API_TOKEN_SECRET": SECRET,
           "TONGDAI_API_PORT": str(port), "TONGDAI_API_WORKERS": str(workers),
           "TONGDAI_API_THREADS": "8", "TONGDAI_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
           **stack.clickhouse_environ(),
           "TONGDAI_CLICKHOUSE_DATABASE": db.database, "TONGDAI_LOG_LEVEL": "WARNING"}
    log = tempfile.NamedTemporaryFile("w", prefix="bench-api-", suffix=".log", delete=False)
    proc = None
    try:
        t0 = time.monotonic()
        _load_data(db, calls)
        load_s = time.monotonic() - t0
        proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "api"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/api/v1/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"api did not start; see {log.name}")
            time.sleep(0.2)
        token = Tokens(SECRET, 3600).mint("acme", "supervisor", "bench")[0]
        q = urllib.parse.urlencode({"start": f"{DAY}T00:00:00+07:00",
                                    "end": "2026-11-21T00:00:00+07:00"})
        month = urllib.parse.urlencode({"start": "2026-10-22T00:00:00+07:00",
                                        "end": "2026-11-21T00:00:00+07:00", "by": "day"})
        search = urllib.parse.urlencode({"start": "2026-10-22T00:00:00+07:00",
                                         "end": "2026-11-21T00:00:00+07:00",
                                         "number": "0912345678", "limit": 50})
        _load(port, f"/api/v1/reports/queues?{q}", token, 4, 2)  # warm-up
        day = _load(port, f"/api/v1/reports/queues?{q}", token, clients, seconds)
        by_day = _load(port, f"/api/v1/reports/queues?{month}", token, clients, seconds / 2)
        found = _load(port, f"/api/v1/calls?{search}", token, clients, seconds / 2)
        plain = _load(port, "/api/v1/queues", token, clients, seconds / 2)
        figures = {"calls_in_db_calls": float(calls), "load_data_s": load_s,
                   "api_workers_count": float(workers), "clients_count": float(clients)}
        for name, f in (("report_day", day), ("report_month_by_day", by_day),
                        ("call_search", found), ("config_list", plain)):
            for k, v in f.items():
                figures[f"{name}_{k}"] = round(v, 2)
        return figures
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        try:
            db.execute(f"DROP DATABASE IF EXISTS {db.database}")
            db.close()
        except Exception:
            pass
        try:
            from kafka import KafkaAdminClient

            admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
            existing = set(admin.list_topics())
            gone = [t for t in topics.values() if t in existing]
            if gone:
                admin.delete_topics(gone)
            admin.close()
        except Exception:
            pass
