"""Latest-frame-wins slots, one per camera, and the worker thread(s) that drain them.

A callback `put`s whatever arrived (a message, a frame) into its camera's slot, replacing an
item no worker has taken yet (counted as skipped): there is never a backlog. A worker takes
every filled slot at once, so frames from several cameras that are waiting together are handled
as one batch. With several worker threads, a frame waits only while every worker is busy: on a
CPU where one model call uses one core, two workers keep up with a camera that one cannot.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["LatestSlots", "SlotWorker"]


class LatestSlots:
    """Thread-safe `{key: latest item}` with received / skipped counters per key."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._items: dict[Hashable, Any] = {}
        self._closed = False
        self.received: dict[Hashable, int] = {}
        self.skipped: dict[Hashable, int] = {}

    def put(self, key: Hashable, item: Any) -> bool:
        """Store `item` as the latest of `key`; True if it replaced an unprocessed one."""
        with self._cond:
            replaced = key in self._items
            self._items[key] = item
            self.received[key] = self.received.get(key, 0) + 1
            if replaced:
                self.skipped[key] = self.skipped.get(key, 0) + 1
            self._cond.notify()
            return replaced

    def take_all(self, timeout: float | None = None) -> dict[Hashable, Any]:
        """Every waiting item (emptying the slots); {} after `timeout` s or once closed."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            items, self._items = self._items, {}
            return items

    def close(self) -> None:
        """Wake a waiting `take_all`; later takes return at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
            self._items.clear()

    def totals(self) -> tuple[int, int]:
        """(received, skipped) over all keys."""
        with self._cond:
            return sum(self.received.values()), sum(self.skipped.values())


class SlotWorker:
    """`threads` threads calling `handle(batch)` with every batch `slots.take_all` yields until
    `stop` (with more than one, `handle` runs concurrently and results may finish out of
    order). Exceptions from `handle` go to `on_error` (the thread keeps running). `nice` > 0
    lowers the threads' scheduling priority (Linux: per thread) so that taking in frames, which
    must keep up with the camera, wins the CPU over processing, which skips frames anyway."""

    def __init__(self, slots: LatestSlots, handle: Callable[[dict[Hashable, Any]], None],
                 on_error: Callable[[BaseException], None], name: str = "slot-worker",
                 nice: int = 0, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._slots, self._handle, self._on_error = slots, handle, on_error
        self._nice = nice
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}" if threads > 1
                                          else name, daemon=True) for i in range(threads)]

    def start(self) -> None:
        self._slots.reopen()
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        if self._nice > 0 and hasattr(os, "setpriority"):
            try:
                tid = threading.get_native_id()
                os.setpriority(os.PRIO_PROCESS, tid,
                               os.getpriority(os.PRIO_PROCESS, tid) + self._nice)
            except OSError:
                pass
        while not self._stop.is_set():
            batch = self._slots.take_all(timeout=0.2)
            if not batch or self._stop.is_set():
                continue
            try:
                self._handle(batch)
            except Exception as e:  # noqa: BLE001 - reported, the worker must survive
                self._on_error(e)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._slots.close()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout)

    @property
    def alive(self) -> bool:
        """True while any of the threads runs."""
        return any(t.is_alive() for t in self._threads)
