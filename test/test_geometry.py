"""Ground geometry: camera model, mount rotation, ground ↔ pixel round trips, box projection."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from edge_perception.geometry import (
    CameraIntrinsics,
    CameraMount,
    GroundProjector,
    rotation_from_quaternion,
    rotation_rpy,
)

W, H = 1280, 720


def _pinhole(f: float = 1000.0) -> CameraIntrinsics:
    return CameraIntrinsics.pinhole(f, f, W / 2, H / 2, W, H)


def _distorted(model: str) -> CameraIntrinsics:
    k = _pinhole(800.0).K
    d = [-0.15, 0.04, 0.001, -0.0005, 0.0] if model == "plumb_bob" else [0.05, -0.01, 0.002, 0.0]
    return CameraIntrinsics(k, np.array(d), model, W, H)


MOUNTS = [
    CameraMount(x=1.8, y=0.0, z=1.2, pitch=math.radians(2.0)),
    CameraMount(x=1.5, y=0.3, z=1.6, roll=math.radians(1.0), pitch=math.radians(8.0),
                yaw=math.radians(-2.0)),
    CameraMount(x=0.0, y=-0.2, z=1.4, roll=math.radians(-1.5), pitch=math.radians(5.0),
                yaw=math.radians(3.0)),
]
CAMERAS = {"pinhole": _pinhole(), "plumb_bob": _distorted("plumb_bob"),
           "equidistant": _distorted("equidistant")}


def test_mount_rotation_follows_rep103() -> None:
    forward = np.array([0.0, 0.0, 1.0])  # optical z
    level = CameraMount(z=1.0).rotation()
    np.testing.assert_allclose(level @ forward, [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(level @ [1.0, 0, 0], [0, -1, 0], atol=1e-12)  # x right
    np.testing.assert_allclose(level @ [0, 1.0, 0], [0, 0, -1], atol=1e-12)  # y down
    down = CameraMount(z=1.0, pitch=0.1).rotation() @ forward
    assert down[2] < 0 and down[0] > 0  # positive pitch looks down
    left = CameraMount(z=1.0, yaw=0.1).rotation() @ forward
    assert left[1] > 0  # positive yaw looks left
    r = rotation_rpy(0.2, -0.3, 1.1)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_hand_computed_pinhole_case() -> None:
    proj = GroundProjector(_pinhole(), CameraMount(x=0.0, z=1.5))
    # bottom edge 100 px below the principal point (corner-origin pixels: centre + 0.5)
    v = H / 2 + 0.5 + 100.0
    est = proj.project(np.array([[W / 2 + 0.5 - 50, v - 40, W / 2 + 0.5 + 50, v]]))
    assert est.valid[0]
    np.testing.assert_allclose(est.xyz[0], [15.0, 0.0, 0.0], atol=1e-9)
    assert est.range_m[0] == pytest.approx(15.0)
    assert est.bearing_rad[0] == pytest.approx(0.0, abs=1e-12)
    assert est.width_m[0] == pytest.approx(100 * 15.0 / 1000.0)  # 100 px at depth 15 m
    # one pixel of bottom edge moves the point by (h^2 + d^2) / (h f) metres
    dd = (1.5**2 + 15.0**2) / (1.5 * 1000.0)
    along_pitch = (1.5**2 + 15.0**2) / 1.5 * proj.pitch_sigma_rad
    assert est.range_sigma_m[0] == pytest.approx(math.hypot(dd, along_pitch), rel=1e-3)
    assert est.lateral_sigma_m[0] == pytest.approx(15.0 / 1000.0, rel=1e-3)


@pytest.mark.parametrize("camera", list(CAMERAS))
@pytest.mark.parametrize("mount", range(len(MOUNTS)))
def test_ground_pixel_ground_round_trip(camera: str, mount: int) -> None:
    proj = GroundProjector(CAMERAS[camera], MOUNTS[mount])
    xs, ys = np.meshgrid(np.linspace(4.0, 60.0, 15), np.linspace(-4.0, 4.0, 9))
    pts = np.stack([xs.ravel(), ys.ravel()], axis=1)
    px, front = proj.ground_to_pixel(pts)
    assert front.all()
    inside = (px[:, 0] >= 0) & (px[:, 0] <= W) & (px[:, 1] >= 0) & (px[:, 1] <= H)
    assert inside.sum() > 0.6 * len(pts)
    back, ok = proj.pixel_to_ground(px[inside])
    assert ok.all()
    np.testing.assert_allclose(back[:, :2], pts[inside], rtol=0, atol=1e-4 * 60)
    assert np.all(back[:, 2] == 0.0)


@pytest.mark.parametrize("camera", list(CAMERAS))
def test_pixel_ground_pixel_round_trip(camera: str) -> None:
    proj = GroundProjector(CAMERAS[camera], MOUNTS[1])
    # the horizon row of the centre column, then pixels well below it
    _, ok_grid = proj.pixel_to_ground(np.array([[W / 2, v] for v in range(0, H, 4)], float))
    first = int(np.argmax(ok_grid)) * 4 + 40
    uu, vv = np.meshgrid(np.linspace(100, W - 100, 12), np.linspace(first, H - 20, 12))
    px = np.stack([uu.ravel(), vv.ravel()], axis=1)
    pts, ok = proj.pixel_to_ground(px)
    assert ok.all()
    again, front = proj.ground_to_pixel(pts)
    assert front.all()
    np.testing.assert_allclose(again, px, atol=1e-3)


def test_from_transform_matches_mount() -> None:
    mount = MOUNTS[2]
    a = GroundProjector(_pinhole(), mount)
    b = GroundProjector.from_transform(_pinhole(), mount.rotation(), mount.translation())
    boxes = np.array([[600, 400, 700, 500], [100, 380, 180, 420], [900, 600, 1100, 700.0]])
    ea, eb = a.project(boxes), b.project(boxes)
    np.testing.assert_array_equal(ea.valid, eb.valid)
    np.testing.assert_allclose(ea.xyz, eb.xyz)


def test_rotation_from_tf_quaternion() -> None:
    """A tf lookup base_link <- camera_optical_frame gives the same projector as the mount."""
    mount = MOUNTS[1]
    r = mount.rotation()
    # quaternion of r (trace method; r is far from a 180-degree turn)
    w = 0.5 * math.sqrt(1 + np.trace(r))
    q = ((r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w),
         (r[1, 0] - r[0, 1]) / (4 * w), w)
    np.testing.assert_allclose(rotation_from_quaternion(*q), r, atol=1e-12)
    np.testing.assert_allclose(rotation_from_quaternion(*(2 * np.array(q))), r, atol=1e-12)
    # the optical frame of a level camera: rpy (-pi/2, 0, -pi/2) in tf's static publisher
    level = rotation_from_quaternion(-0.5, 0.5, -0.5, 0.5)
    np.testing.assert_allclose(level, CameraMount().rotation(), atol=1e-12)
    with pytest.raises(ValueError):
        rotation_from_quaternion(0, 0, 0, 0)


def test_invalid_boxes_are_flagged_and_zeroed() -> None:
    proj = GroundProjector(_pinhole(), CameraMount(z=1.4, pitch=math.radians(3)), max_range_m=80)
    horizon_v = H / 2 + 0.5 - 1000.0 * math.tan(math.radians(3))
    boxes = np.array([
        [600, 300, 680, horizon_v - 5],  # above the horizon
        [600, 300, 680, horizon_v + 0.5],  # on the ground, but far beyond max range
        [600, 500, 680, 560],  # fine
        [np.nan, 500, 680, 560],  # garbage
        [680, 500, 600, 560],  # x2 < x1
    ])
    est = proj.project(boxes)
    assert est.valid.tolist() == [False, False, True, False, False]
    for field in (est.xyz, est.range_m, est.bearing_rad, est.width_m, est.range_sigma_m):
        assert np.all(field[~est.valid] == 0.0)
    assert len(est) == 5
    assert proj.project(np.zeros((0, 4))).valid.shape == (0,)


def test_sigmas_grow_with_range() -> None:
    proj = GroundProjector(_pinhole(), CameraMount(z=1.4, pitch=math.radians(4)))
    pts = np.array([[10.0, 0.0], [20.0, 0.0], [40.0, 0.0]])
    px, _ = proj.ground_to_pixel(pts)
    boxes = np.stack([px[:, 0] - 20, px[:, 1] - 10, px[:, 0] + 20, px[:, 1]], axis=1)
    est = proj.project(boxes)
    np.testing.assert_allclose(est.range_m, [10, 20, 40], rtol=1e-6)
    ratio = est.range_sigma_m[1:] / est.range_sigma_m[:-1]
    assert np.all((ratio > 3.0) & (ratio < 4.5))  # about range squared
    assert np.all(np.diff(est.lateral_sigma_m) > 0)


def test_bearing_and_width_off_axis() -> None:
    proj = GroundProjector(_distorted("plumb_bob"), MOUNTS[1])
    near = np.array([[12.0, 2.5, 0.0], [12.0, 3.5, 0.0], [12.0, 3.0, 0.0]])
    px, _ = proj.ground_to_pixel(near)
    box = np.array([[px[1, 0], px[:, 1].min() - 30, px[0, 0], px[:, 1].max()]])
    est = proj.project(box)
    assert est.valid[0]
    assert est.bearing_rad[0] == pytest.approx(math.atan2(3.0, 12.0), abs=0.01)
    assert est.width_m[0] == pytest.approx(1.0, rel=0.05)


def test_undistort_inverts_distort() -> None:
    for name in ("plumb_bob", "equidistant"):
        cam = CAMERAS[name]
        xy = np.random.default_rng(0).uniform(-0.6, 0.6, (200, 2))
        np.testing.assert_allclose(cam.undistort(cam.distort(xy)), xy, atol=1e-7)


def test_intrinsics_from_hfov() -> None:
    cam = CameraIntrinsics.from_hfov(640, 480, math.radians(90))
    assert cam.fx == pytest.approx(320.0) and cam.fy == pytest.approx(320.0)
    assert cam.K[0, 2] == 320.0 and cam.K[1, 2] == 240.0
    assert not cam.has_distortion


@pytest.mark.parametrize("kwargs, match", [
    ({"K": np.zeros((3, 3))}, "positive"),
    ({"D": np.zeros(3)}, "coefficients"),
    ({"distortion_model": "fancy"}, "not supported"),
    ({"width": 0}, "image size"),
])
def test_intrinsics_reject_bad_input(kwargs: dict, match: str) -> None:
    base = {"K": _pinhole().K, "D": np.zeros(5), "distortion_model": "plumb_bob",
            "width": W, "height": H}
    with pytest.raises(ValueError, match=match):
        CameraIntrinsics(**{**base, **kwargs})


def test_projector_rejects_bad_geometry() -> None:
    with pytest.raises(ValueError, match="above the ground"):
        GroundProjector(_pinhole(), CameraMount(z=0.0))
    with pytest.raises(ValueError, match="rotation"):
        GroundProjector.from_transform(_pinhole(), np.eye(3) * 2, [0, 0, 1.0])
    with pytest.raises(ValueError, match="either"):
        GroundProjector(_pinhole())
    with pytest.raises(ValueError):
        CameraMount(pitch=math.radians(95))


def test_library_does_not_import_ros() -> None:
    code = ("import sys, edge_perception.geometry, edge_perception.sim; "
            "bad = [m for m in sys.modules if m.startswith('rclpy') or m.endswith('_msgs')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
