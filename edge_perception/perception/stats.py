"""Rolling statistics for the pipeline: rates, percentiles and per-stage times."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

__all__ = ["PipelineStats", "RateMeter", "Window"]


class Window:
    """The last `size` samples; percentiles over them (NaN when empty)."""

    def __init__(self, size: int = 512) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        self._values.append(float(value))

    def __len__(self) -> int:
        return len(self._values)

    def percentile(self, q: float) -> float:
        if not self._values:
            return float("nan")
        return float(np.percentile(np.fromiter(self._values, float), q))

    def mean(self) -> float:
        return float(np.mean(self._values)) if self._values else float("nan")


class RateMeter:
    """Events per second over the last `window_s` seconds."""

    def __init__(self, window_s: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self._window, self._clock = window_s, clock
        self._times: deque[float] = deque()
        self.total = 0

    def tick(self, n: int = 1) -> None:
        now = self._clock()
        for _ in range(n):
            self._times.append(now)
        self.total += n
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self._window:
            self._times.popleft()

    def rate(self) -> float:
        now = self._clock()
        self._trim(now)
        return len(self._times) / self._window


class PipelineStats:
    """Everything /diagnostics reports, updated from callbacks and the worker thread."""

    STAGES = ("convert", "detect", "geometry", "publish")

    def __init__(self, window: int = 512, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self.input = RateMeter(clock=clock)
        self.processed = RateMeter(clock=clock)
        self.latency = Window(window)
        self.batch_size = Window(window)
        self.stages = {s: Window(window) for s in self.STAGES}
        self.rejected = 0
        self.errors = 0
        self.late = 0  # results dropped: another worker had published a newer frame
        self.last_rejection = ""

    def frame_in(self) -> None:
        with self._lock:
            self.input.tick()

    def reject(self, reason: str) -> None:
        with self._lock:
            self.rejected += 1
            self.last_rejection = reason

    def error(self) -> None:
        with self._lock:
            self.errors += 1

    def late_result(self) -> None:
        with self._lock:
            self.late += 1

    def stage(self, name: str, seconds: float) -> None:
        with self._lock:
            self.stages[name].add(seconds)

    def published(self, latency_s: float) -> None:
        with self._lock:
            self.processed.tick()
            self.latency.add(latency_s)

    def batch(self, size: int) -> None:
        with self._lock:
            self.batch_size.add(size)

    def snapshot(self) -> dict[str, float | int | str]:
        """Flat key → value (seconds as milliseconds) for diagnostics and benchmarks."""
        with self._lock:
            out: dict[str, float | int | str] = {
                "input_fps": self.input.rate(), "processed_fps": self.processed.rate(),
                "frames_in": self.input.total, "frames_processed": self.processed.total,
                "rejected": self.rejected, "errors": self.errors, "late_dropped": self.late,
                "latency_p50_ms": 1e3 * self.latency.percentile(50),
                "latency_p99_ms": 1e3 * self.latency.percentile(99),
                "batch_mean": self.batch_size.mean(),
            }
            for name, w in self.stages.items():
                out[f"{name}_p50_ms"] = 1e3 * w.percentile(50)
            out["last_rejection"] = self.last_rejection
            return out
