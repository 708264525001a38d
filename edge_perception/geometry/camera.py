"""Camera model for ground geometry: intrinsics with distortion, and the camera's mount on the car.

Frames: the camera optical frame is z forward, x right, y down (REP-103 `_optical`); the vehicle
frame (base_link, at ground level) is x forward, y left, z up, metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

__all__ = [
    "DISTORTION_MODELS",
    "CameraIntrinsics",
    "CameraMount",
    "OPTICAL_TO_BODY",
    "rotation_from_quaternion",
    "rotation_rpy",
]

# Number of coefficients each supported model takes (D may be empty: no distortion).
DISTORTION_MODELS: dict[str, tuple[int, ...]] = {
    "plumb_bob": (4, 5),
    "rational_polynomial": (8,),
    "equidistant": (4,),
}

# Columns are the optical axes (x right, y down, z forward) written in a body frame
# (x forward, y left, z up) that has the same origin and heading.
OPTICAL_TO_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def rotation_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) @ Ry(pitch) @ Rx(roll) (fixed axes x, y, z; REP-103 sense: positive pitch
    about y-left turns x-forward down, positive yaw turns it left)."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    return rz @ ry @ rx


def rotation_from_quaternion(x: float, y: float, z: float, w: float) -> np.ndarray:
    """3x3 rotation of a (tf / geometry_msgs) quaternion; normalised first."""
    q = np.array([x, y, z, w], dtype=np.float64)
    n = float(np.linalg.norm(q))
    if not (n > 1e-9 and math.isfinite(n)):
        raise ValueError(f"quaternion must be finite and non-zero, got {q.tolist()}")
    x, y, z, w = q / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


@dataclass(frozen=True, eq=False)
class CameraIntrinsics:
    """Pinhole intrinsics of an image (CameraInfo's K, D, distortion_model, width, height)."""

    K: np.ndarray
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distortion_model: str = "plumb_bob"
    width: int = 0
    height: int = 0

    def __post_init__(self) -> None:
        k = np.asarray(self.K, dtype=np.float64).reshape(3, 3).copy()
        d = np.asarray(self.D, dtype=np.float64).ravel().copy()
        model = self.distortion_model or "plumb_bob"
        if not (k[0, 0] > 0 and k[1, 1] > 0) or not np.all(np.isfinite(k)):
            raise ValueError(f"K needs positive finite fx, fy; got fx={k[0, 0]}, fy={k[1, 1]}")
        if model not in DISTORTION_MODELS:
            raise ValueError(
                f"distortion model {model!r} not supported (use one of {list(DISTORTION_MODELS)})"
            )
        if d.size and d.size not in DISTORTION_MODELS[model]:
            raise ValueError(
                f"{model} takes {DISTORTION_MODELS[model]} coefficients, D has {d.size}")
        if not np.all(np.isfinite(d)):
            raise ValueError("D has non-finite coefficients")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        k.setflags(write=False)
        d.setflags(write=False)
        object.__setattr__(self, "K", k)
        object.__setattr__(self, "D", d)
        object.__setattr__(self, "distortion_model", model)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @classmethod
    def pinhole(
        cls, fx: float, fy: float, cx: float, cy: float, width: int, height: int
    ) -> "CameraIntrinsics":
        k = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return cls(k, np.zeros(0), "plumb_bob", width, height)

    @classmethod
    def from_hfov(cls, width: int, height: int, hfov_rad: float) -> "CameraIntrinsics":
        """Square pixels, principal point at the image centre (what gz-sim's camera publishes):
        fx = fy = width / (2 tan(hfov / 2)), cx = width / 2, cy = height / 2."""
        if not 0.0 < hfov_rad < math.pi:
            raise ValueError(f"hfov must be in (0, pi), got {hfov_rad}")
        f = width / (2.0 * math.tan(hfov_rad / 2.0))
        return cls.pinhole(f, f, width / 2.0, height / 2.0, width, height)

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def has_distortion(self) -> bool:
        return bool(self.D.size) and bool(np.any(self.D != 0.0))

    def undistort(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 2) pixels → (N, 2) normalised image coordinates (x/z, y/z in the optical frame)."""
        px = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        if not px.size:
            return np.zeros((0, 2))
        if not self.has_distortion:
            y = (px[:, 1] - self.K[1, 2]) / self.K[1, 1]
            x = (px[:, 0] - self.K[0, 2] - self.K[0, 1] * y) / self.K[0, 0]
            return np.stack([x, y], axis=1)
        pts = px.reshape(-1, 1, 2)
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)
        if self.distortion_model == "equidistant":
            out = cv2.fisheye.undistortPoints(pts, self.K, self.D, R=np.eye(3), P=np.eye(3),
                                              criteria=crit)
        else:
            out = cv2.undistortPoints(pts, self.K, self.D, R=np.eye(3), P=np.eye(3),
                                      criteria=crit)
        return out.reshape(-1, 2).astype(np.float64)

    def distort(self, normalised: np.ndarray) -> np.ndarray:
        """(N, 2) normalised image coordinates → (N, 2) pixels (the inverse of `undistort`)."""
        xy = np.asarray(normalised, dtype=np.float64).reshape(-1, 2)
        if not xy.size:
            return np.zeros((0, 2))
        if not self.has_distortion:
            u = self.K[0, 0] * xy[:, 0] + self.K[0, 1] * xy[:, 1] + self.K[0, 2]
            return np.stack([u, self.K[1, 1] * xy[:, 1] + self.K[1, 2]], axis=1)
        obj = np.concatenate([xy, np.ones((len(xy), 1))], axis=1).reshape(-1, 1, 3)
        zero = np.zeros(3)
        if self.distortion_model == "equidistant":
            out, _ = cv2.fisheye.projectPoints(obj, zero, zero, self.K, self.D)
        else:
            out, _ = cv2.projectPoints(obj, zero, zero, self.K, self.D)
        return out.reshape(-1, 2).astype(np.float64)


@dataclass(frozen=True)
class CameraMount:
    """Where the camera's optical centre sits in the vehicle frame (base_link on the ground:
    x forward, y left, z up, metres) and how it is turned (radians, R = Rz(yaw) Ry(pitch)
    Rx(roll)): `pitch` positive looks down, `yaw` positive looks left, `roll` positive lifts the
    camera's left side (right-hand rule about the forward axis)."""

    x: float = 0.0
    y: float = 0.0
    z: float = 1.4
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0

    def __post_init__(self) -> None:
        for name in ("x", "y", "z", "roll", "pitch", "yaw"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"CameraMount.{name} must be finite")
        if abs(self.pitch) >= math.pi / 2 or abs(self.roll) >= math.pi / 2:
            raise ValueError("|pitch| and |roll| must be below 90 degrees")

    def rotation(self) -> np.ndarray:
        """3x3 rotation taking optical-frame vectors into the vehicle frame."""
        return rotation_rpy(self.roll, self.pitch, self.yaw) @ OPTICAL_TO_BODY

    def translation(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z], dtype=np.float64)
