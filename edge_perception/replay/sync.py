"""Playback timing and sync: `Pacer` (bag time → wall time at a rate) and `StampWaiter`.

Deterministic replay waits until a consumer has answered for a stamp before going on.

The consumer (the detector node) publishes its output with `header.stamp` equal to the
stamp of the input image; whoever observes those outputs calls `StampWaiter.notify(stamp)`,
and the player calls `wait(stamp, timeout)` after publishing that image. Stamps seen before
anyone waits are kept, so a fast consumer cannot race the player.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["StampWaiter", "Pacer"]


class StampWaiter:
    """Thread-safe set of acknowledged stamps (ns) with blocking waits."""

    def __init__(self, keep: int = 4096) -> None:
        self._cond = threading.Condition()
        self._seen: dict[int, None] = {}  # insertion-ordered, bounded
        self._keep = keep

    def notify(self, stamp_ns: int) -> None:
        with self._cond:
            self._seen[stamp_ns] = None
            while len(self._seen) > self._keep:
                del self._seen[next(iter(self._seen))]
            self._cond.notify_all()

    def discard(self, stamp_ns: int) -> None:
        """Forget `stamp_ns` (before publishing it again, e.g. in the next loop)."""
        with self._cond:
            self._seen.pop(stamp_ns, None)

    def seen(self, stamp_ns: int) -> bool:
        with self._cond:
            return stamp_ns in self._seen

    def wait(
        self, stamp_ns: int, timeout_s: float, stop: threading.Event | None = None
    ) -> bool:
        """True once `stamp_ns` was notified; False after `timeout_s` or once `stop` is set."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while stamp_ns not in self._seen:
                left = deadline - time.monotonic()
                if left <= 0 or (stop is not None and stop.is_set()):
                    return False
                self._cond.wait(min(left, 0.1) if stop is not None else left)
            return True

    def clear(self) -> None:
        with self._cond:
            self._seen.clear()


class Pacer:
    """Maps bag time to wall time at `rate` and sleeps until a bag time is due.

    `anchor(bag_ns)` ties a bag time to now (at the start, after a loop, after a pause);
    `sleep_until(bag_ns, tick, period_s)` calls `tick(current_bag_ns)` every `period_s`
    while waiting (the /clock publisher) and returns how late it woke (s).
    """

    def __init__(
        self,
        rate: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._wall0 = clock()
        self._bag0 = 0

    def anchor(self, bag_ns: int) -> None:
        self._wall0 = self._clock()
        self._bag0 = bag_ns

    def due(self, bag_ns: int) -> float:
        return self._wall0 + (bag_ns - self._bag0) / 1e9 / self.rate

    def bag_now(self) -> int:
        return self._bag0 + round((self._clock() - self._wall0) * self.rate * 1e9)

    def sleep_until(
        self,
        bag_ns: int,
        tick: Callable[[int], None] | None = None,
        period_s: float = 0.0,
        stop: threading.Event | None = None,
    ) -> float:
        due = self.due(bag_ns)
        while True:
            now = self._clock()
            if now >= due or (stop is not None and stop.is_set()):
                return now - due
            step = due - now
            if tick is not None and period_s > 0:
                tick(min(self.bag_now(), bag_ns))
                step = min(step, period_s)
            if stop is not None:
                stop.wait(step)
            else:
                self._sleep(step)
