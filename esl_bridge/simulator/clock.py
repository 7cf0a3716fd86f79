"""Simulated time: wall speed by default, faster for tests, and a scheduler driven by it."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class SimClock:
    """Epoch time that runs ``speed`` times faster than the wall clock.

    Simulated seconds are what FreeSWITCH would stamp on events (Event-Date-Timestamp); a delay
    of ``d`` simulated seconds takes ``d / speed`` seconds of wall time."""

    manual = False

    def __init__(self, speed: float = 1.0, start_epoch: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = float(speed)
        self._mono0 = time.monotonic()
        self._epoch0 = time.time() if start_epoch is None else float(start_epoch)

    def now(self) -> float:
        """Simulated epoch seconds."""
        return self._epoch0 + (time.monotonic() - self._mono0) * self.speed

    def now_us(self) -> int:
        """Simulated epoch microseconds."""
        return int(self.now() * 1_000_000)

    def wall_seconds(self, sim_seconds: float) -> float:
        """Wall-clock seconds that ``sim_seconds`` of simulated time take."""
        return max(0.0, sim_seconds / self.speed)


class ManualClock(SimClock):
    """Simulated time that moves only when told (``Node.advance``): deterministic tests."""

    manual = True

    def __init__(self, start_epoch: float = 1_795_320_000.0) -> None:
        super().__init__(1.0, start_epoch)
        self._now = float(start_epoch)

    def now(self) -> float:
        return self._now

    def set(self, epoch: float) -> None:
        self._now = max(self._now, epoch)


@dataclass(order=True)
class Timer:
    """A scheduled callback; ``cancel()`` makes it a no-op."""

    due: float
    seq: int
    fn: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    """Runs callbacks at simulated times on one thread, each under ``lock``."""

    def __init__(self, clock: SimClock, lock: threading.RLock,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self.clock = clock
        self.lock = lock
        self._cond = threading.Condition(lock)
        self._heap: list[Timer] = []
        self._seq = itertools.count()
        self._running = False
        self._thread: threading.Thread | None = None
        self._on_error = on_error

    def call_at(self, due: float, fn: Callable[[], None]) -> Timer:
        with self._cond:
            timer = Timer(due, next(self._seq), fn)
            heapq.heappush(self._heap, timer)
            self._cond.notify()
            return timer

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        return self.call_at(self.clock.now() + max(0.0, delay), fn)

    def start(self) -> None:
        with self._cond:
            if self._running:
                return
            self._running = True
        self._thread = threading.Thread(target=self._run, name="esl-sim-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._heap.clear()
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    def run_until(self, until: float) -> None:
        """Manual clocks: run every timer due by ``until`` in order, moving the clock along."""
        clock = self.clock
        assert isinstance(clock, ManualClock), "run_until needs a ManualClock"
        with self._cond:
            while self._heap and self._heap[0].due <= until:
                timer = heapq.heappop(self._heap)
                if timer.cancelled:
                    continue
                clock.set(timer.due)
                try:
                    timer.fn()
                except Exception as err:
                    if self._on_error is not None:
                        self._on_error(err)
            clock.set(until)

    def pending(self) -> int:
        with self._cond:
            return sum(1 for t in self._heap if not t.cancelled)

    def _run(self) -> None:
        with self._cond:
            while self._running:
                if not self._heap:
                    self._cond.wait()
                    continue
                head = self._heap[0]
                if head.cancelled:
                    heapq.heappop(self._heap)
                    continue
                wait = self.clock.wall_seconds(head.due - self.clock.now())
                if wait > 0:
                    self._cond.wait(timeout=min(wait, 1.0))
                    continue
                heapq.heappop(self._heap)
                try:
                    head.fn()
                except Exception as err:  # a bad callback must not stop the node
                    if self._on_error is not None:
                        self._on_error(err)
