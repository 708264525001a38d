"""Frames from one or more cameras → detections in original pixels → positions on the road.

`HazardPipeline.process(frames)` runs ONE model call for all frames given (the batch the
worker took from the latest-wins slots), then casts each box's bottom-centre onto the ground
with a `GroundProjector` built per camera from its intrinsics and the mount (or a transform,
e.g. from tf). Frames without intrinsics get detections but no valid positions.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edge_perception.detect.types import Detection, FrameDetector
from edge_perception.geometry import CameraIntrinsics, CameraMount, GroundEstimates
from edge_perception.geometry import GroundProjector

__all__ = ["Frame", "FrameResult", "HazardPipeline", "scale_intrinsics", "set_inference_threads"]


@dataclass(frozen=True, eq=False)
class Frame:
    """One image ready for the model: an (H, W, C) uint8 view in `encoding`."""

    camera: Hashable
    image: np.ndarray
    encoding: str
    stamp_ns: int
    frame_id: str
    intrinsics: CameraIntrinsics | None = None

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True, eq=False)
class FrameResult:
    frame: Frame
    detections: list[Detection]
    boxes: np.ndarray  # (N, 4) x1, y1, x2, y2 original pixels
    ground: GroundEstimates
    times: dict[str, float] = field(default_factory=dict)  # stage → seconds


def scale_intrinsics(intr: CameraIntrinsics, width: int, height: int) -> CameraIntrinsics:
    """Intrinsics for the same camera at another resolution (a resize, not a crop)."""
    if (intr.width, intr.height) == (width, height):
        return intr
    k = intr.K.copy()
    k[0] *= width / intr.width
    k[1] *= height / intr.height
    k[2] = (0.0, 0.0, 1.0)
    return CameraIntrinsics(k, intr.D, intr.distortion_model, width, height)


def set_inference_threads(threads: int) -> None:
    """CPU threads for model inference (a process-wide torch setting); 0 leaves the default."""
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def _no_ground(n: int) -> GroundEstimates:
    z = np.zeros(n)
    return GroundEstimates(np.zeros(n, bool), np.zeros((n, 3)), z, z.copy(), z.copy(),
                           z.copy(), z.copy())


class HazardPipeline:
    """Detector + ground geometry for several cameras. Several worker threads may call
    `process` at once (as many run the model together as the detector's `concurrency`); the
    per-camera caches are plain dicts whose races only recompute a projector."""

    def __init__(self, detector: FrameDetector, mount: CameraMount) -> None:
        self.detector = detector
        self._mount = mount
        self._transforms: dict[Hashable, tuple[np.ndarray, np.ndarray]] = {}
        self._projectors: dict[Hashable, tuple[object, GroundProjector]] = {}

    @property
    def mount(self) -> CameraMount:
        return self._mount

    def set_mount(self, mount: CameraMount) -> None:
        self._mount = mount
        self._projectors.clear()

    def set_transform(self, camera: Hashable, rotation: np.ndarray,
                      translation: np.ndarray) -> None:
        """Use this optical-frame → vehicle-frame transform for `camera` instead of the mount."""
        old = self._transforms.get(camera)
        if old is None or not (np.array_equal(old[0], rotation)
                               and np.array_equal(old[1], translation)):
            self._transforms[camera] = (np.asarray(rotation), np.asarray(translation))
            self._projectors.pop(camera, None)

    def projector(self, frame: Frame) -> GroundProjector | None:
        """The camera's projector for this frame's intrinsics and size (cached)."""
        if frame.intrinsics is None:
            return None
        key = (id(frame.intrinsics), frame.width, frame.height)
        hit = self._projectors.get(frame.camera)
        if hit is not None and hit[0] == key:
            return hit[1]
        intr = scale_intrinsics(frame.intrinsics, frame.width, frame.height)
        tf = self._transforms.get(frame.camera)
        proj = (GroundProjector(intr, self._mount) if tf is None
                else GroundProjector.from_transform(intr, tf[0], tf[1]))
        self._projectors[frame.camera] = (key, proj)
        return proj

    def process(self, frames: Sequence[Frame]) -> list[FrameResult]:
        """One model call for all `frames`; results in the same order."""
        if not frames:
            return []
        t0 = time.perf_counter()
        dets = self.detector.detect_batch([(f.image, f.encoding) for f in frames])
        t_detect = (time.perf_counter() - t0) / len(frames)
        results = []
        for frame, ds in zip(frames, dets):
            t1 = time.perf_counter()
            boxes = np.array([d.box for d in ds], np.float64).reshape(-1, 4)
            proj = self.projector(frame)
            ground = proj.project(boxes) if proj is not None else _no_ground(len(ds))
            times = {"detect": t_detect, "geometry": time.perf_counter() - t1}
            results.append(FrameResult(frame, ds, boxes, ground, times))
        return results
