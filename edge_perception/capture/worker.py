"""The capture thread: open → read → stamp → hand over, reconnecting with backoff on failure.

Runs on its own daemon thread so a slow or blocking source never stalls a ROS executor. The
frame callback is called on this thread; it must be quick (publish, or queue for a worker).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .backoff import Backoff
from .sources import FrameSource, SourceError

__all__ = ["CaptureStats", "CaptureWorker", "FrameCallback", "EventCallback"]

FrameCallback = Callable[[np.ndarray, int], None]  # (bgr frame, capture stamp in ns)
EventCallback = Callable[[str, str], None]  # (level: info|warn|error, message)


@dataclass(frozen=True)
class CaptureStats:
    state: str  # connecting | streaming | reconnecting | ended | stopped
    frames: int
    fps: float
    reconnects: int
    last_error: str
    width: int
    height: int


class CaptureWorker:
    """Drives one `FrameSource` on a thread. `rate` > 0 caps the frame rate; 0 means the
    source's own rate (a video file's fps, an image folder's set rate, a live device's pace)."""

    def __init__(self, source: FrameSource, on_frame: FrameCallback, *,
                 clock_ns: Callable[[], int] = time.time_ns, rate: float = 0.0,
                 backoff: Backoff | None = None, on_event: EventCallback | None = None,
                 name: str = "capture") -> None:
        self._source, self._on_frame, self._clock_ns = source, on_frame, clock_ns
        self._event_cb = on_event
        self._backoff = backoff or Backoff()
        self._rate = float(rate)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._times: collections.deque[float] = collections.deque(maxlen=64)
        self._state, self._frames, self._reconnects, self._error = "connecting", 0, 0, ""
        self._size = (0, 0)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- control -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._set(state="stopped")

    def set_rate(self, rate: float) -> None:
        self._rate = max(0.0, float(rate))

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stats(self) -> CaptureStats:
        now = time.monotonic()
        with self._lock:
            times = [t for t in self._times if now - t <= 2.0]
            fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and \
                times[-1] > times[0] else 0.0
            return CaptureStats(self._state, self._frames, fps, self._reconnects, self._error,
                                self._size[0], self._size[1])

    # -- thread --------------------------------------------------------------------------
    def _on_event(self, level: str, message: str) -> None:
        if self._event_cb is not None:
            try:
                self._event_cb(level, message)
            except Exception:  # noqa: BLE001 - logging must never stop capture
                pass

    def _set(self, **kw: object) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, f"_{k}", v)

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            if not first:
                delay = self._backoff.next()
                self._set(state="reconnecting")
                self._on_event("warn", f"{self._error}; reconnecting in {delay:.1f} s")
                if self._stop.wait(delay):
                    break
                with self._lock:
                    self._reconnects += 1
            first = False
            self._set(state="connecting")
            try:
                self._source.open()
            except SourceError as e:
                self._set(error=str(e))
                continue
            except Exception as e:  # noqa: BLE001 - a backend bug must not kill capture
                self._set(error=f"{type(e).__name__} opening source: {e}")
                continue
            try:
                ended = self._stream()
            except SourceError as e:
                self._set(error=str(e))
                ended = False
            except Exception as e:  # noqa: BLE001
                self._set(error=f"{type(e).__name__} reading source: {e}")
                ended = False
            finally:
                self._source.close()
            if ended:
                self._set(state="ended")
                self._on_event("info", f"{self._source.description} ended")
                return

    def _period(self) -> float:
        rate = self._rate if self._rate > 0 else (
            0.0 if self._source.live else self._source.nominal_fps)
        return 1.0 / rate if rate > 0 else 0.0

    def _stream(self) -> bool:
        """Read until stop (→ False), end of a finite source (→ True) or SourceError."""
        announced = False
        next_t = time.monotonic()
        last_pub = -1e9
        while not self._stop.is_set():
            period = self._period()
            if not self._source.live and period > 0:  # pace files and folders
                wait = next_t - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return False
                next_t = max(next_t + period, time.monotonic() - period)
            frame = self._source.read()
            stamp = self._clock_ns()
            if frame is None:
                return True
            now = time.monotonic()
            if self._source.live and period > 0 and now - last_pub < period * 0.95:
                continue  # live source faster than `rate`: drop
            last_pub = now
            if not announced:
                announced = True
                self._backoff.reset()
                h, w = frame.shape[:2]
                self._set(state="streaming", size=(w, h))
                self._on_event("info", f"streaming {w}x{h} from {self._source.description}")
            try:
                self._on_frame(frame, stamp)
            except Exception as e:  # noqa: BLE001 - keep capturing; report it
                self._set(error=f"frame callback failed: {type(e).__name__}: {e}")
                self._on_event("error", self._error)
            with self._lock:
                self._frames += 1
                self._times.append(now)
        return False
