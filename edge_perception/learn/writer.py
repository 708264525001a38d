"""The producer side: a bounded, non-blocking hand-off in front of the durable store.

`submit(item)` never blocks: when the queue is full the item is dropped and counted. A worker
thread runs `process(item) -> Sample | None` (selection, privacy blur, JPEG encoding) and puts
what it returns into the store.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from edge_perception.learn.sample import Sample
from edge_perception.learn.store import SampleStore, StoreFull

__all__ = ["BACKGROUND_NICE", "SampleWriter", "lower_thread_priority"]

T = TypeVar("T")
BACKGROUND_NICE = 10  # with SCHED_IDLE: blur, JPEG, store and upload never compete


def lower_thread_priority(nice: int) -> None:
    """Make the calling thread background work (Linux: per thread; threads it starts inherit
    this), so blur, JPEG and upload take only CPU time the detector leaves: `nice` > 0 puts it
    in SCHED_IDLE (a waking normal thread preempts it at once, where a niced one still gets
    its CFS share of a busy core) and adds `nice` to its nice value, which is what counts
    where SCHED_IDLE is unavailable. 0 leaves it alone. Best effort: ignored where
    unsupported."""
    if nice <= 0:
        return
    tid = threading.get_native_id()
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))


_STOP = object()


class SampleWriter(Generic[T]):
    def __init__(self, store: SampleStore, process: Callable[[T], Sample | None],
                 maxsize: int = 8, nice: int = BACKGROUND_NICE) -> None:
        self.store = store
        self.nice = nice
        self.process = process
        self._q: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.counters = {"submitted": 0, "dropped_full": 0, "dropped_stop": 0, "stored": 0,
                         "skipped": 0, "store_full": 0, "errors": 0}
        self.last_error = ""

    def _count(self, name: str) -> None:
        with self._lock:
            self.counters[name] += 1

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sample-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the item in progress, drop the rest (counted), end the thread."""
        if self._thread is not None:
            while True:
                try:
                    while True:
                        self._q.get_nowait()
                        self._count("dropped_stop")
                except queue.Empty:
                    pass
                try:
                    self._q.put_nowait(_STOP)
                    break
                except queue.Full:  # a producer refilled it meanwhile
                    continue
            self._thread.join(timeout)
            self._thread = None

    def submit(self, item: T) -> bool:
        """Hand over without blocking; False (and counted) when the queue is full."""
        self._count("submitted")
        try:
            self._q.put_nowait(item)
            return True
        except queue.Full:
            self._count("dropped_full")
            return False

    def depth(self) -> int:
        return self._q.qsize()

    def _run(self) -> None:
        lower_thread_priority(self.nice)
        while True:
            item = self._q.get()
            if item is _STOP:
                return
            try:
                sample = self.process(item)
                if sample is None:
                    self._count("skipped")
                    continue
                self.store.put(sample)
                self._count("stored")
            except StoreFull:
                self._count("store_full")
            except Exception as exc:  # keep the worker alive; the error is counted
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._count("errors")
