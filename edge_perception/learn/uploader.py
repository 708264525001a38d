"""The upload thread: store → batches → transport, with backoff, probing and flush rules.

A batch is formed when the waiting samples reach `batch_max_count` or `batch_max_bytes`, or
the oldest has waited `batch_max_age_s` (or on `flush()`). A batch already formed is always
re-sent first with the same id (also after a restart), so a retry after a lost response is
answered "duplicate" by the server instead of storing the samples twice. Connection failures
switch to probing the health endpoint; every failure backs off exponentially with jitter.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

from edge_perception.learn.batch import build_batch
from edge_perception.learn.store import SampleStore
from edge_perception.learn.transport import Transport, TransportError
from edge_perception.learn.writer import BACKGROUND_NICE, lower_thread_priority

__all__ = ["UploaderConfig", "Uploader", "backoff_delay"]


@dataclass(frozen=True)
class UploaderConfig:
    vehicle_id: str
    batch_max_count: int = 32
    batch_max_bytes: int = 4 << 20
    batch_max_age_s: float = 30.0
    poll_interval_s: float = 0.5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 60.0
    nice: int = BACKGROUND_NICE  # > 0: the upload thread is background work (SCHED_IDLE)


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with 'equal jitter': in [d/2, d], d = min(cap, base * 2**attempt)."""
    d = min(cap, base * (2.0 ** min(attempt, 30)))
    return d / 2 + rng.uniform(0, d / 2)


@dataclass
class _Stats:
    uploads: int = 0
    duplicates: int = 0
    samples_sent: int = 0
    bytes_sent: int = 0
    failures: int = 0
    rejected_batches: int = 0
    probes: int = 0
    online: bool = False
    last_error: str = ""
    failures_by_status: dict[str, int] = field(default_factory=dict)


class Uploader:
    def __init__(self, store: SampleStore, transport: Transport, config: UploaderConfig,
                 rng: random.Random | None = None) -> None:
        self.store = store
        self.transport = transport
        self.config = config
        self.rng = rng or random.Random()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._flush = False
        self._attempt = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stats = _Stats()

    # -- control -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        stop_send = getattr(self.transport, "stop", None)
        if isinstance(stop_send, threading.Event):
            stop_send.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def flush(self) -> None:
        """Upload whatever waits now, without waiting for count/bytes/age."""
        self._flush = True
        self._wake.set()

    def stats(self) -> dict[str, object]:
        with self._lock:
            s = self._stats
            return {"uploads": s.uploads, "duplicates": s.duplicates,
                    "samples_sent": s.samples_sent, "bytes_sent": s.bytes_sent,
                    "failures": s.failures, "rejected_batches": s.rejected_batches,
                    "probes": s.probes, "online": s.online, "last_error": s.last_error,
                    "failures_by_status": dict(s.failures_by_status)}

    # -- the loop ----------------------------------------------------------------------------
    def _due(self) -> bool:
        n, nbytes, oldest = self.store.pending()
        if n == 0:
            self._flush = False
            return False
        c = self.config
        return (self._flush or n >= c.batch_max_count or nbytes >= c.batch_max_bytes
                or (oldest is not None and time.time() - oldest >= c.batch_max_age_s))

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _backoff(self) -> float:
        d = backoff_delay(self._attempt, self.config.backoff_base_s, self.config.backoff_max_s,
                          self.rng)
        self._attempt += 1
        return d

    def step(self) -> float:
        """One unit of work; returns how long to sleep before the next one."""
        with self._lock:
            online = self._stats.online
        if not online:
            with self._lock:
                self._stats.probes += 1
            if not self.transport.health():
                return self._backoff()
            with self._lock:
                self._stats.online = True
            self._attempt = 0
        c = self.config
        batch = self.store.lease(c.batch_max_count, c.batch_max_bytes, form_new=self._due())
        if not batch:
            return c.poll_interval_s
        batch_id = batch[0].batch_id
        body = build_batch(batch_id, c.vehicle_id, batch)
        try:
            result = self.transport.send(batch_id, body)
        except TransportError as exc:
            with self._lock:
                s = self._stats
                s.failures += 1
                key = str(exc.status) if exc.status is not None else "connection"
                s.failures_by_status[key] = s.failures_by_status.get(key, 0) + 1
                s.last_error = str(exc)
                if exc.connection:
                    s.online = False
                if not exc.retryable:
                    s.rejected_batches += 1
            if not exc.retryable:
                self.store.reject(batch_id)
                return 0.0
            return self._backoff()
        self.store.ack([s.uid for s in batch])
        self._attempt = 0
        with self._lock:
            s = self._stats
            s.uploads += 1
            s.duplicates += int(result.duplicate)
            s.samples_sent += len(batch)
            s.bytes_sent += len(body)
        return 0.0

    def _run(self) -> None:
        lower_thread_priority(self.config.nice)
        while not self._stop.is_set():
            try:
                delay = self.step()
            except Exception as exc:  # a bug or a disk error: count it, keep the thread alive
                with self._lock:
                    self._stats.failures += 1
                    self._stats.last_error = f"{type(exc).__name__}: {exc}"
                delay = self._backoff()
            if delay > 0 and not self._stop.is_set():
                self._sleep(delay)
