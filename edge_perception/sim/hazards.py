"""Hazards on a straight road and their ground truth as seen from a camera.

Road (world) frame: x along the road, y left, z up, metres; the ego lane's centre is y = 0.
The vehicle drives along x at y = 0 with no yaw, so a world point p is at p - (vehicle_x, 0, 0)
in the vehicle frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge_perception.geometry import GroundProjector

__all__ = ["CLASS_IDS", "Hazard", "HazardTruth", "hazard_truth", "pothole_radius"]

CLASS_IDS: dict[str, int] = {"pothole": 0, "speed_bump": 1}
SPEED_BUMP_STYLES = ("yellow_black", "white_chevron")


@dataclass(frozen=True)
class Hazard:
    """A pothole (irregular depression, `length_m` x `width_m` ellipse-ish, `depth_m` deep) or a
    speed bump (raised band `length_m` along the road, `width_m` across, `height_m` high),
    centred at (x, y) in the road frame."""

    kind: str
    x: float
    y: float = 0.0
    length_m: float = 0.8
    width_m: float = 1.0
    height_m: float = 0.08
    depth_m: float = 0.08
    seed: int = 0
    style: str = "yellow_black"

    def __post_init__(self) -> None:
        if self.kind not in CLASS_IDS:
            raise ValueError(f"hazard kind must be one of {list(CLASS_IDS)}, got {self.kind!r}")
        if self.kind == "speed_bump" and self.style not in SPEED_BUMP_STYLES:
            raise ValueError(f"speed bump style must be one of {SPEED_BUMP_STYLES}")
        if not (self.length_m > 0 and self.width_m > 0 and self.height_m >= 0):
            raise ValueError("hazard sizes must be positive")

    @property
    def class_id(self) -> int:
        return CLASS_IDS[self.kind]

    def harmonics(self) -> np.ndarray:
        """(4, 2) amplitude and phase of the pothole outline's harmonics 2..5 (from `seed`)."""
        rng = np.random.default_rng(self.seed)
        amp = rng.uniform(0.02, 0.07, 4) / np.arange(1, 5) ** 0.5
        return np.stack([amp, rng.uniform(0, 2 * math.pi, 4)], axis=1)

    def outline(self, n: int = 96) -> np.ndarray:
        """(M, 3) points of the hazard's solid in the road frame, for boxes: the pothole's rim
        on the ground, or the 8 corners of the speed bump's block."""
        if self.kind == "pothole":
            th = np.linspace(0, 2 * math.pi, n, endpoint=False)
            r = pothole_radius(th, self.harmonics())
            return np.stack([self.x + 0.5 * self.length_m * r * np.cos(th),
                             self.y + 0.5 * self.width_m * r * np.sin(th),
                             np.zeros(n)], axis=1)
        hx, hy = 0.5 * self.length_m, 0.5 * self.width_m
        return np.array([[self.x + sx * hx, self.y + sy * hy, z]
                         for sx in (-1, 1) for sy in (-1, 1) for z in (0.0, self.height_m)])

    def near_edge_centre(self) -> np.ndarray:
        """The point the bottom-centre of a perfect box lands on: the nearest ground point of
        the hazard (smallest x) at the middle of its lateral extent, road frame."""
        pts = self.outline()
        ground = pts[pts[:, 2] == 0.0]
        return np.array([ground[:, 0].min(), 0.5 * (ground[:, 1].min() + ground[:, 1].max()),
                         0.0])


def pothole_radius(theta: np.ndarray, harmonics: np.ndarray) -> np.ndarray:
    """Relative outline radius (about 1) of a pothole at polar angle theta."""
    r = np.ones_like(theta, dtype=np.float64)
    for k, (a, phi) in enumerate(harmonics, start=2):
        r = r + a * np.cos(k * theta + phi)
    return r


@dataclass(frozen=True, eq=False)
class HazardTruth:
    """Ground truth of one hazard in one frame. `near_xyz` is in the vehicle frame; `box` is
    x1, y1, x2, y2 in corner-origin pixels clipped to the image; `visible` when its whole
    near edge is in the image and the clipped box is at least 2 px wide, 1 px high."""

    hazard: Hazard
    class_name: str
    class_id: int
    near_xyz: np.ndarray
    range_m: float
    bearing_rad: float
    box: np.ndarray
    visible: bool
    truncated: bool


def hazard_truth(
    hazard: Hazard, projector: GroundProjector, vehicle_x: float
) -> HazardTruth | None:
    """Truth for `hazard` seen from a vehicle at road x = vehicle_x; None when any part of it is
    behind the camera."""
    shift = np.array([vehicle_x, 0.0, 0.0])
    pts = hazard.outline() - shift
    px, front = projector.ground_to_pixel(pts)
    if not front.all():
        return None
    w, h = projector.intrinsics.width, projector.intrinsics.height
    raw = np.array([px[:, 0].min(), px[:, 1].min(), px[:, 0].max(), px[:, 1].max()])
    box = np.clip(raw, 0.0, [w, h, w, h])
    near = hazard.near_edge_centre() - shift
    bw, bh = box[2] - box[0], box[3] - box[1]
    truncated = bool(np.any(np.abs(box - raw) > 1e-9))
    visible = bool(raw[3] <= h and raw[0] >= 0 and raw[2] <= w and bw >= 2 and bh >= 1)
    return HazardTruth(
        hazard=hazard, class_name=hazard.kind, class_id=hazard.class_id, near_xyz=near,
        range_m=float(math.hypot(near[0], near[1])),
        bearing_rad=float(math.atan2(near[1], near[0])), box=box, visible=visible,
        truncated=truncated,
    )
