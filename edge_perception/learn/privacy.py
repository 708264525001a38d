"""Blur faces and licence plates in a frame before it is written on the car.

Detectors: OpenCV's Haar cascades `haarcascade_frontalface_default` (faces) and
`haarcascade_license_plate_rus_16stages` (plates), evaluated by haar.py because OpenCV 5 no
longer ships `cv2.CascadeClassifier` (the XML files are in learn/data/, see its README).
Each hit is grown by `expand` on every side, pixelated to about `blocks_across` blocks and
Gaussian-blurred in place (coarse enough that the face detector no longer finds it).

Limits (documented, not solved): Haar cascades find frontal, upright, reasonably lit faces
only - profiles, small (< `min_size` px), occluded or motion-blurred faces are missed; the
plate cascade was trained on Russian plates and misses many other layouts, angles and distant
plates; both produce false positives (blurring a bit of road is harmless). This is a best-effort
filter to reduce personal data, not a guarantee: the cloud side should still treat uploads as
personal data.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_perception.learn.haar import HaarCascade
from edge_perception.learn.writer import BACKGROUND_NICE, lower_thread_priority

__all__ = ["PrivacyConfig", "PrivacyFilter", "BlurProcess", "Region", "encode_jpeg",
           "DATA_DIR"]

DATA_DIR = Path(__file__).resolve().parent / "data"
FACE_CASCADE = DATA_DIR / "haarcascade_frontalface_default.xml.gz"
PLATE_CASCADE = DATA_DIR / "haarcascade_license_plate_rus_16stages.xml.gz"


@dataclass(frozen=True)
class PrivacyConfig:
    faces: bool = True
    plates: bool = True
    min_size: int = 24  # smallest face/plate height searched, in original pixels
    expand: float = 0.15
    blocks_across: int = 8  # a region is pixelated to at most this many blocks across
    max_side: int = 640  # detection runs on a copy at most this large
    face_neighbors: int = 3  # OpenCV's minNeighbors: hits that must agree
    plate_neighbors: int = 1  # the plate cascade gives few, weak hits


@dataclass(frozen=True)
class Region:
    kind: str  # "face" | "plate"
    box: tuple[int, int, int, int]  # x, y, w, h in image pixels, after expansion


class PrivacyFilter:
    def __init__(self, config: PrivacyConfig | None = None) -> None:
        self.config = config or PrivacyConfig()
        c = self.config
        self._cascades: list[tuple[str, HaarCascade, int]] = []
        if c.faces:
            self._cascades.append(("face", HaarCascade(FACE_CASCADE), c.face_neighbors))
        if c.plates:
            self._cascades.append(("plate", HaarCascade(PLATE_CASCADE), c.plate_neighbors))

    def find(self, bgr: np.ndarray) -> list[Region]:
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
        gray = cv2.equalizeHist(gray)
        h, w = gray.shape
        out = []
        for kind, cascade, neighbors in self._cascades:
            for x, y, bw, bh in cascade.detect(gray, min_neighbors=neighbors,
                                               min_size=self.config.min_size,
                                               max_side=self.config.max_side):
                ex, ey = round(bw * self.config.expand), round(bh * self.config.expand)
                x0, y0 = max(0, x - ex), max(0, y - ey)
                x1, y1 = min(w, x + bw + ex), min(h, y + bh + ey)
                if x1 > x0 and y1 > y0:
                    out.append(Region(kind, (x0, y0, x1 - x0, y1 - y0)))
        return out

    def blur(self, bgr: np.ndarray) -> tuple[np.ndarray, list[Region]]:
        """A copy of `bgr` with every found region pixelated and blurred, and the regions."""
        out = bgr.copy()
        regions = self.find(bgr)
        for r in regions:
            x, y, w, h = r.box
            b = max(4, max(w, h) // self.config.blocks_across)
            roi = out[y:y + h, x:x + w]
            small = cv2.resize(roi, (max(1, w // b), max(1, h // b)),
                               interpolation=cv2.INTER_AREA)
            roi[...] = cv2.GaussianBlur(cv2.resize(small, (w, h),
                                                   interpolation=cv2.INTER_NEAREST), (0, 0),
                                        max(1.0, b / 2))
        return out, regions


def encode_jpeg(bgr: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


_worker_filter: PrivacyFilter | None = None


def _init_worker(config: PrivacyConfig, nice: int) -> None:
    global _worker_filter
    lower_thread_priority(nice)  # this process's one thread: SCHED_IDLE + nice
    cv2.setNumThreads(1)
    _worker_filter = PrivacyFilter(config)


def _blur_encode(bgr: np.ndarray, quality: int) -> tuple[bytes, list[Region]]:
    assert _worker_filter is not None
    out, regions = _worker_filter.blur(bgr)
    return encode_jpeg(out, quality), regions


class BlurProcess:
    """`PrivacyFilter.blur` + JPEG encoding in a separate background process (SCHED_IDLE and
    niced: `lower_thread_priority`), so the detection process keeps its GIL and, on a busy
    CPU, its cores. Spawned (not forked: the caller may run DDS threads). `blur_encode`
    blocks the calling (worker) thread only."""

    def __init__(self, config: PrivacyConfig | None = None, nice: int = BACKGROUND_NICE) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(1, mp_context=ctx, initializer=_init_worker,
                                         initargs=(config or PrivacyConfig(), nice))

    def blur_encode(self, bgr: np.ndarray, quality: int = 90) -> tuple[bytes, list[Region]]:
        return self._pool.submit(_blur_encode, np.ascontiguousarray(bgr), quality).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
