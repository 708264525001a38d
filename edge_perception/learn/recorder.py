"""The car-side pipeline of the uploader node, without ROS: pair each frame with its
detections, then on a worker thread select → blur → encode → store.

    recorder = Recorder(store, RecorderConfig(...))
    recorder.start()
    recorder.on_image(stamp_ns, bgr, camera_info)       # from the image callback (no copy)
    recorder.on_detections(stamp_ns, detections, model)  # from the hazards callback
    recorder.request_capture()                           # on-demand trigger

Frames wait (at most `pending_frames`, oldest dropped) until the detections with the same
stamp arrive. Selection then runs at once, in the caller, for every frame (tracking needs them
all; it matches a few boxes, microseconds); only the frames it keeps go through a bounded
non-blocking hand-off (SampleWriter) to the worker, which blurs, encodes and stores them (the
blur in a separate background process by default). A slow blur therefore never hides frames
from the tracker; a kept frame that finds the hand-off full is dropped and counted.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_perception.learn.privacy import BlurProcess, PrivacyConfig, PrivacyFilter, encode_jpeg
from edge_perception.learn.sample import Sample, SampleDetection
from edge_perception.learn.selection import Decision, SelectionConfig, Selector
from edge_perception.learn.store import SampleStore
from edge_perception.learn.writer import SampleWriter

__all__ = ["RecorderConfig", "Recorder", "Frame"]


@dataclass(frozen=True)
class RecorderConfig:
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    jpeg_quality: int = 90
    queue_size: int = 8
    pending_frames: int = 16
    blur_in_subprocess: bool = True  # keep the Haar cascades off this process's GIL and CPU


@dataclass(frozen=True)
class Frame:
    stamp_ns: int
    bgr: np.ndarray
    camera_info: dict[str, Any]
    detections: tuple[SampleDetection, ...]
    model_version: str
    decision: Decision
    position: tuple[float, float, float] | None = None


class Recorder:
    def __init__(self, store: SampleStore, config: RecorderConfig | None = None) -> None:
        self.config = config or RecorderConfig()
        self.selector = Selector(self.config.selection)
        self._blur_proc: BlurProcess | None = None
        self._blur_local: PrivacyFilter | None = None
        if self.config.blur_in_subprocess:
            self._blur_proc = BlurProcess(self.config.privacy)
        else:
            self._blur_local = PrivacyFilter(self.config.privacy)
        self.writer: SampleWriter[Frame] = SampleWriter(store, self._process,
                                                        self.config.queue_size)
        self._frames: OrderedDict[int, tuple[np.ndarray, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self._capture = False
        self.unmatched = 0  # frames dropped before their detections arrived
        self.blurred_regions = 0

    def start(self) -> None:
        self.writer.start()

    def stop(self) -> None:
        self.writer.stop()
        if self._blur_proc is not None:
            self._blur_proc.close()

    def request_capture(self) -> None:
        """Keep the next frame whose detections arrive from now on."""
        with self._lock:
            self._capture = True

    def on_image(self, stamp_ns: int, bgr: np.ndarray, camera_info: dict[str, Any]) -> None:
        with self._lock:
            self._frames[stamp_ns] = (bgr, camera_info)
            while len(self._frames) > self.config.pending_frames:
                self._frames.popitem(last=False)
                self.unmatched += 1

    def on_detections(self, stamp_ns: int, detections: Sequence[SampleDetection],
                      model_version: str,
                      position: tuple[float, float, float] | None = None) -> bool:
        """Pair with the frame of the same stamp and select; hand a kept frame over. False if
        there is no such frame or it is not kept (or the hand-off was full: counted)."""
        with self._lock:
            found = self._frames.pop(stamp_ns, None)
            if found is None:
                return False
            bgr, info = found
            if self.selector.image_size is None:
                self.selector.image_size = (int(bgr.shape[1]), int(bgr.shape[0]))
            if self._capture:
                self._capture = False
                self.selector.request_capture()
            decision = self.selector.update(stamp_ns * 1e-9, detections)
        if decision is None:
            return False
        return self.writer.submit(Frame(stamp_ns, bgr, info, tuple(detections), model_version,
                                        decision, position))

    def _process(self, f: Frame) -> Sample | None:
        if self._blur_proc is not None:
            jpeg, regions = self._blur_proc.blur_encode(f.bgr, self.config.jpeg_quality)
        else:
            assert self._blur_local is not None
            blurred, regions = self._blur_local.blur(f.bgr)
            jpeg = encode_jpeg(blurred, self.config.jpeg_quality)
        self.blurred_regions += len(regions)
        return Sample(jpeg=jpeg,
                      detections=f.detections, model_version=f.model_version,
                      camera_info=f.camera_info, stamp=f.stamp_ns * 1e-9,
                      reason=f.decision.reason, priority=f.decision.priority,
                      position=f.position)
