"""Cast image boxes onto the flat road: where a hazard is, how far, how wide, how sure.

Pixel convention for boxes and for `ground_to_pixel`: continuous coordinates with the origin at
the top-left CORNER of the top-left pixel (as in RoadHazard.msg). K uses pixel centres at
integers (ROS CameraInfo / OpenCV), so the two differ by half a pixel; this module converts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge_perception.geometry.camera import CameraIntrinsics, CameraMount

__all__ = ["GroundEstimates", "GroundProjector"]

_HALF_PIXEL = 0.5
_MIN_DOWN = 1e-9  # a ray must point at least this much below the horizon (unit vector z)


@dataclass(frozen=True, eq=False)
class GroundEstimates:
    """Per box (N rows): where its bottom-centre meets the ground, in the vehicle frame.
    Rows with valid False are all zeros."""

    valid: np.ndarray  # (N,) bool
    xyz: np.ndarray  # (N, 3) metres
    range_m: np.ndarray  # (N,) horizontal distance from the vehicle-frame origin
    bearing_rad: np.ndarray  # (N,) counter-clockwise from x
    width_m: np.ndarray  # (N,) width of the box's bottom edge on the ground
    range_sigma_m: np.ndarray  # (N,) 1-sigma along the line of sight
    lateral_sigma_m: np.ndarray  # (N,) 1-sigma across it

    def __len__(self) -> int:
        return int(self.valid.shape[0])


class GroundProjector:
    """Pixel ↔ flat-ground geometry for one camera.

    `rotation` takes optical-frame vectors (z forward, x right, y down) into the vehicle frame,
    `translation` is the optical centre in the vehicle frame; the ground is the plane
    z = `ground_z` of the vehicle frame (0 for a base_link on the road).
    """

    def __init__(
        self,
        intrinsics: CameraIntrinsics,
        mount: CameraMount | None = None,
        *,
        rotation: np.ndarray | None = None,
        translation: np.ndarray | None = None,
        ground_z: float = 0.0,
        max_range_m: float = 150.0,
        pixel_sigma_px: float = 1.0,
        pitch_sigma_rad: float = math.radians(0.3),
    ) -> None:
        if (mount is None) == (rotation is None or translation is None):
            raise ValueError("give either a CameraMount or both rotation and translation")
        if mount is not None:
            rotation, translation = mount.rotation(), mount.translation()
        r = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
        t = np.asarray(translation, dtype=np.float64).reshape(3)
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0:
            raise ValueError("rotation must be a proper rotation matrix")
        if not t[2] - ground_z > 0.0:
            raise ValueError(f"the camera must be above the ground (z={t[2]}, ground {ground_z})")
        if max_range_m <= 0 or pixel_sigma_px < 0 or pitch_sigma_rad < 0:
            raise ValueError("max_range_m must be > 0 and the sigmas >= 0")
        self.intrinsics = intrinsics
        self.rotation = r
        self.translation = t
        self.ground_z = float(ground_z)
        self.max_range_m = float(max_range_m)
        self.pixel_sigma_px = float(pixel_sigma_px)
        self.pitch_sigma_rad = float(pitch_sigma_rad)

    @classmethod
    def from_transform(
        cls, intrinsics: CameraIntrinsics, rotation: np.ndarray, translation: np.ndarray,
        **kwargs: float,
    ) -> "GroundProjector":
        """From a tf lookup of the camera optical frame in the vehicle frame (rotation 3x3 from
        the quaternion, translation (3,))."""
        return cls(intrinsics, rotation=rotation, translation=translation, **kwargs)

    @property
    def height_m(self) -> float:
        return float(self.translation[2] - self.ground_z)

    def rays(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 2) corner-origin pixels → (N, 3) ray directions in the vehicle frame (not unit:
        the optical-frame z component is 1)."""
        px = np.asarray(pixels, dtype=np.float64).reshape(-1, 2) - _HALF_PIXEL
        xy = self.intrinsics.undistort(px)
        opt = np.concatenate([xy, np.ones((len(xy), 1))], axis=1)
        return opt @ self.rotation.T

    def pixel_to_ground(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) corner-origin pixels → ((N, 3) ground points, (N,) valid). Invalid where the
        ray does not go down to the ground or lands beyond `max_range_m`; those points are NaN."""
        rays = self.rays(pixels)
        down = rays[:, 2] / np.maximum(np.linalg.norm(rays, axis=1), 1e-300)
        ok = np.isfinite(down) & (down < -_MIN_DOWN)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(ok, self.height_m / -rays[:, 2], np.nan)
        pts = self.translation + s[:, None] * rays
        pts[:, 2] = self.ground_z
        ok &= np.hypot(pts[:, 0], pts[:, 1]) <= self.max_range_m
        pts[~ok] = np.nan
        return pts, ok

    def ground_to_pixel(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) ground points (z = ground_z) or (N, 3) points in the vehicle frame → ((N, 2)
        corner-origin pixels, (N,) in front of the camera). Pixels behind it are NaN; points in
        front may still fall outside the image."""
        p = np.asarray(points, dtype=np.float64)
        p = p.reshape(-1, p.shape[-1] if p.ndim else 1)
        if p.shape[1] == 2:
            p = np.concatenate([p, np.full((len(p), 1), self.ground_z)], axis=1)
        if p.shape[1] != 3:
            raise ValueError(f"points must be (N, 2) or (N, 3), got {np.shape(points)}")
        opt = (p - self.translation) @ self.rotation  # R^T (p - t), row-wise
        front = opt[:, 2] > 1e-6
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = opt[:, :2] / opt[:, 2:3]
        px = np.full((len(p), 2), np.nan)
        if front.any():
            px[front] = self.intrinsics.distort(xy[front]) + _HALF_PIXEL
        return px, front

    def project(self, boxes: np.ndarray) -> GroundEstimates:
        """(N, 4) boxes x1, y1, x2, y2 in original corner-origin pixels → GroundEstimates of the
        bottom-centre of each box on the ground."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        n = len(b)
        cu = 0.5 * (b[:, 0] + b[:, 2])
        v = b[:, 3]
        d = 0.5
        # centre, v +- half a pixel, u +- half a pixel, bottom-left and bottom-right corners
        probes = np.concatenate([
            np.stack([cu, v], 1), np.stack([cu, v - d], 1), np.stack([cu, v + d], 1),
            np.stack([cu - d, v], 1), np.stack([cu + d, v], 1),
            np.stack([b[:, 0], v], 1), np.stack([b[:, 2], v], 1),
        ])
        pts, ok = self.pixel_to_ground(probes)
        pts = pts.reshape(7, n, 3)
        ok = ok.reshape(7, n)
        good_box = np.all(np.isfinite(b), axis=1) & (b[:, 2] >= b[:, 0]) & (b[:, 3] >= b[:, 1])
        valid = ok[0] & good_box
        xyz = np.where(valid[:, None], pts[0], 0.0)
        rng = np.hypot(xyz[:, 0], xyz[:, 1])
        bearing = np.where(valid, np.arctan2(xyz[:, 1], xyz[:, 0]), 0.0)

        sig = self.pixel_sigma_px
        with np.errstate(invalid="ignore"):
            along_px = np.linalg.norm(pts[2] - pts[1], axis=1) * sig
            across_px = np.linalg.norm(pts[4] - pts[3], axis=1) * sig
            width = np.linalg.norm(pts[6] - pts[5], axis=1)
        h = self.height_m
        dist_cam = np.hypot(xyz[:, 0] - self.translation[0], xyz[:, 1] - self.translation[1])
        along_pitch = (h * h + dist_cam * dist_cam) / h * self.pitch_sigma_rad
        range_sigma = np.where(ok[1] & ok[2], np.hypot(along_px, along_pitch), np.inf)
        lateral_sigma = np.where(ok[3] & ok[4], across_px, np.inf)
        # Corners of a wide box can leave the ground (fisheye edges): fall back to depth / fx.
        depth = ((xyz - self.translation) @ self.rotation)[:, 2]
        width_fallback = (b[:, 2] - b[:, 0]) * depth / self.intrinsics.fx
        width = np.where(ok[5] & ok[6], width, width_fallback)

        def zero(a: np.ndarray) -> np.ndarray:
            return np.where(valid, a, 0.0)

        return GroundEstimates(
            valid=valid, xyz=xyz, range_m=zero(rng), bearing_rad=bearing, width_m=zero(width),
            range_sigma_m=zero(range_sigma), lateral_sigma_m=zero(lateral_sigma),
        )
