"""The soak's processes and its chaos (a module name starting with `_` is not a benchmark).

`Supervisor` runs the product's deployables as child processes and restarts one that
exits, a few seconds later, as systemd or Kubernetes would. `plan()` draws the chaos of a
run (seeded); `Chaos` carries it out: SIGKILL of the bridge, the worker and the sink, and
SIGSTOP/SIGCONT of the Kafka broker and the ClickHouse server. Every freeze is also
undone by a detached watchdog (`sh -c 'sleep N; kill -CONT pid'`), so a stack frozen by
a soak that dies in the middle thaws by itself.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

KILLS = ("bridge", "worker", "sink")
FREEZES = ("kafka", "clickhouse")
# What routing needs: while one is down no caller can be offered, and for RECOVERY_S after
# it is back (a process restarts, clients reconnect, the bridge's first snapshot) a caller
# not offered is counted apart from the invariant's violations, with the fault named.
ROUTING_PARTS = ("bridge", "worker", "kafka")
RECOVERY_S = 10.0


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None
    restart_at: float | None = None  # set while a restart is pending
    starts: int = 0
    kills: int = 0
    crashes: int = 0  # exits nobody asked for
    exits: list[str] = field(default_factory=list)


class Supervisor:
    """Starts children and restarts those that exit (`restart_s` later)."""

    def __init__(self, say: Callable[[str], None], restart_s: float = 2.0) -> None:
        self.say = say
        self.restart_s = restart_s
        self.children: dict[str, Child] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soak-supervisor", daemon=True)

    def add(self, child: Child) -> Child:
        self.children[child.name] = child
        self._spawn(child)
        return child

    def _spawn(self, child: Child) -> None:
        out = open(child.log, "ab")
        child.proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", *child.argv],
                                      env=child.env, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        child.starts += 1
        child.restart_at = None

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self.stopping.wait(0.25):
            with self.lock:
                for child in self.children.values():
                    proc = child.proc
                    if proc is None or proc.poll() is None:
                        continue
                    now = time.monotonic()
                    if child.restart_at is None:  # it died on its own
                        child.crashes += 1
                        child.exits.append(f"exit {proc.returncode}")
                        child.restart_at = now + self.restart_s
                        self.say(f"{child.name} exited by itself ({proc.returncode}); "
                                 f"restarting in {self.restart_s:.0f} s (see {child.log})")
                    elif now >= child.restart_at and not self.stopping.is_set():
                        self._spawn(child)
                        self.say(f"{child.name} restarted (pid {child.proc.pid})")

    def kill(self, name: str, down_s: float) -> int:
        """SIGKILL a child; it is restarted `down_s` later. Returns the pid killed."""
        with self.lock:
            child = self.children[name]
            proc = child.proc
            assert proc is not None
            child.restart_at = time.monotonic() + down_s
            child.kills += 1
            child.exits.append("SIGKILL")
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            return proc.pid

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every child (the ones this supervisor started), then SIGKILL stragglers."""
        self.stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)
        with self.lock:
            procs = [c.proc for c in self.children.values() if c.proc is not None]
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in reversed(procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass(frozen=True)
class Action:
    at_s: float  # seconds after traffic starts
    kind: str  # "kill" | "freeze"
    target: str
    duration_s: float  # down time (kill: until the restart; freeze: until SIGCONT)

    def __str__(self) -> str:
        verb = "SIGKILL" if self.kind == "kill" else "SIGSTOP"
        return f"+{self.at_s:.0f} s {verb} {self.target} for {self.duration_s:.0f} s"


def plan(rng: random.Random, seconds: float, round_s: float = 600.0) -> list[Action]:
    """The chaos of a run of `seconds`: in every round of `round_s` (at least one), each of
    the bridge, the worker and the sink is killed once and restarted 2-6 s later, and the
    broker and ClickHouse are each frozen once for 20-40 s (never both at once), all at
    random moments in the middle 10-85 % of the round."""
    actions: list[Action] = []
    rounds = max(1, int(seconds // round_s))
    span = seconds / rounds
    for r in range(rounds):
        lo, hi = r * span + 0.10 * span, r * span + 0.85 * span
        durations = [rng.uniform(20.0, 40.0) for _ in FREEZES]
        room = hi - lo - 5.0
        if sum(durations) > room:  # a short run: freezes shrink to fit (not below 20 s)
            durations = [max(20.0, d * room / sum(durations)) for d in durations]
        order = list(FREEZES)
        rng.shuffle(order)
        slack = max(0.0, room - sum(durations))
        at = lo
        for target, d in zip(order, durations):
            pause = rng.uniform(0.0, slack)
            slack -= pause
            at += pause
            actions.append(Action(round(at, 1), "freeze", target, round(d, 1)))
            at += d + 5.0
        for target in KILLS:
            actions.append(Action(round(rng.uniform(lo, hi), 1), "kill", target,
                                  round(rng.uniform(2.0, 6.0), 1)))
    return sorted(actions, key=lambda a: a.at_s)


class Chaos:
    """Carries out a plan against a supervisor's children and the stack's servers."""

    def __init__(self, actions: list[Action], supervisor: Supervisor,
                 server_pids: dict[str, int], say: Callable[[str], None]) -> None:
        self.actions = actions
        self.supervisor = supervisor
        self.server_pids = server_pids
        self.say = say
        self.done: list[str] = []
        # (start, end) wall-clock seconds of each fault that stops routing (a bridge or
        # worker down, Kafka frozen); the sink and ClickHouse do not route.
        self.windows: list[tuple[float, float, str]] = []
        self.stopping = threading.Event()
        self._frozen: dict[int, subprocess.Popen] = {}  # pid -> its watchdog
        self._frozen_at: dict[int, float] = {}  # pid of a routing part -> when stopped
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, t0: float) -> None:
        """Run the plan, timed from `t0` (time.monotonic() when traffic started)."""
        thread = threading.Thread(target=self._run, args=(t0,), name="soak-chaos", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run(self, t0: float) -> None:
        for action in self.actions:
            if self.stopping.wait(max(0.0, t0 + action.at_s - time.monotonic())):
                return
            if action.kind == "kill":
                pid = self.supervisor.kill(action.target, action.duration_s)
                if action.target in ROUTING_PARTS:
                    now = time.time()
                    self.windows.append((now, now + action.duration_s, action.target))
                self.note(f"{action}: pid {pid}")
            else:  # a freeze runs alongside the next actions
                thread = threading.Thread(target=self._freeze, args=(action,), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _freeze(self, action: Action) -> None:
        pid = self.server_pids.get(action.target)
        if not pid:
            self.note(f"{action}: no pid known, skipped")
            return
        # The watchdog thaws the server even if this process dies while it is frozen.
        watchdog = subprocess.Popen(
            ["sh", "-c", f"sleep {int(action.duration_s) + 5}; kill -CONT {pid}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        with self._lock:
            self._frozen[pid] = watchdog
            if action.target in ROUTING_PARTS:
                self._frozen_at[pid] = time.time()
        os.kill(pid, signal.SIGSTOP)
        started = time.time()
        self.note(f"{action}: pid {pid} stopped")
        self.stopping.wait(action.duration_s)
        self._thaw(pid)
        if action.target in ROUTING_PARTS:
            self.windows.append((started, time.time(), action.target))
        self.note(f"{action.target} (pid {pid}) continued")

    def _thaw(self, pid: int) -> None:
        with self._lock:
            watchdog = self._frozen.pop(pid, None)
            self._frozen_at.pop(pid, None)
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        if watchdog is not None and watchdog.poll() is None:
            try:
                os.killpg(watchdog.pid, signal.SIGKILL)  # its own session: sh and its sleep
            except ProcessLookupError:
                pass
            watchdog.wait()

    def thaw_all(self) -> None:
        """SIGCONT every server this chaos stopped (idempotent; called in `finally`)."""
        self.stopping.set()
        with self._lock:
            pids = list(self._frozen)
        for pid in pids:
            self._thaw(pid)

    def disturbed(self, lo: float, hi: float | None = None) -> bool:
        """Whether routing was down at some moment of [lo, hi] (wall clock), or had not
        had RECOVERY_S since it came back: a fault under way when a freeze began is
        only known once it ends, so a moment is judged after the fact."""
        hi = lo if hi is None else hi
        now = time.time()
        open_freezes = [(t, now) for t in self._freeze_starts()]
        return any(start <= hi and lo <= end + RECOVERY_S
                   for start, end in [(s, e) for s, e, _ in self.windows] + open_freezes)

    def _freeze_starts(self) -> list[float]:
        with self._lock:
            return list(self._frozen_at.values())

    def note(self, text: str) -> None:
        self.done.append(text)
        self.say(f"chaos: {text}")
