"""A simulated drive as a stream of camera frames with ground truth (no ROS): what
`edge-perception sim` publishes.

`SimConfig` names the camera (a camera_info_manager YAML, optionally scaled), its mount on the
vehicle and the drive; `SimDrive` renders frame i at drive time t = i / fps with the
calibration's intrinsics and yields `SimFrame`s: the BGR image, the stamp, and the truth of
every hazard in view (class, pixel box, near-edge point and range in the vehicle frame).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..capture.calibration import CameraCalibration, load_calibration
from ..geometry import CameraIntrinsics, CameraMount
from .hazards import Hazard, HazardTruth
from .scenario import DEFAULT_HAZARDS, Scenario

__all__ = ["SimConfig", "SimDrive", "SimFrame", "calibration_intrinsics"]


@dataclass(frozen=True)
class SimConfig:
    camera_info_file: Path
    mount: CameraMount = field(default_factory=CameraMount)
    scale: float = 1.0  # image size factor applied to the calibration (0.5: half size)
    speed_mps: float = 10.0
    fps: float = 10.0
    start_x: float = 0.0
    hazards: tuple[Hazard, ...] = DEFAULT_HAZARDS
    seed: int = 0
    noise: bool = True

    def __post_init__(self) -> None:
        if not 0.05 <= self.scale <= 4.0:
            raise ValueError(f"scale must be in [0.05, 4], not {self.scale}")
        if self.fps <= 0 or self.speed_mps < 0:
            raise ValueError("fps must be > 0 and speed_mps >= 0")


@dataclass(frozen=True, eq=False)
class SimFrame:
    index: int
    t: float  # drive time (s)
    image: np.ndarray  # (H, W, 3) uint8 BGR
    truths: tuple[HazardTruth, ...]  # in view, nearest first
    vehicle_x: float


def calibration_intrinsics(calib: CameraCalibration) -> CameraIntrinsics:
    return CameraIntrinsics(np.asarray(calib.K, np.float64), np.asarray(calib.D, np.float64),
                            calib.distortion_model, int(calib.width), int(calib.height))


class SimDrive:
    """Frames of one drive; `calibration` is what the camera's CameraInfo should carry."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        calib = load_calibration(config.camera_info_file)
        if config.scale != 1.0:
            calib = calib.scaled_to(round(calib.width * config.scale),
                                    round(calib.height * config.scale))
        self.calibration = calib
        self.intrinsics = calibration_intrinsics(calib)
        self.scenario = Scenario(config.hazards, config.speed_mps, config.start_x, config.fps)
        self.renderer = self.scenario.renderer(self.intrinsics, config.mount, seed=config.seed,
                                               noise=config.noise)

    def __len__(self) -> int:
        return int(self.scenario.duration_s * self.config.fps) + 1

    def frame(self, index: int) -> SimFrame:
        t = index / self.config.fps
        d = self.scenario.frame(self.renderer, t, index)
        return SimFrame(index, t, d.frame.image, d.frame.truths, d.frame.vehicle_x)

    def __iter__(self) -> Iterator[SimFrame]:
        for i in range(len(self)):
            yield self.frame(i)
