"""Synthetic road renderer: geometry ground truth against GroundProjector, looks, speed, drive."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from edge_perception.geometry import CameraIntrinsics, CameraMount, GroundProjector
from edge_perception.sim import Hazard, RoadRenderer, Scenario

NEAR_RANGES = (5.0, 8.0, 12.0, 17.0, 23.0, 30.0)
LATERAL = (0.0, 0.8, -0.6)


def _camera(kind: str) -> CameraIntrinsics:
    if kind == "pinhole":
        return CameraIntrinsics.from_hfov(1280, 720, math.radians(70))
    k = CameraIntrinsics.from_hfov(960, 540, math.radians(80)).K
    if kind == "plumb_bob":
        return CameraIntrinsics(k, np.array([-0.12, 0.03, 0.0005, -0.0005, 0.0]), kind, 960, 540)
    return CameraIntrinsics(k, np.array([0.04, -0.01, 0.002, 0.0]), kind, 960, 540)


CASES = {
    "low-2deg": ("pinhole", CameraMount(x=1.8, z=1.2, pitch=math.radians(2.0))),
    "high-8deg-roll-yaw": ("pinhole", CameraMount(x=1.2, y=0.2, z=1.6, roll=math.radians(0.8),
                                                  pitch=math.radians(8.0),
                                                  yaw=math.radians(-1.5))),
    "plumb_bob-5deg": ("plumb_bob", CameraMount(x=1.5, y=-0.1, z=1.4, roll=math.radians(-0.5),
                                                pitch=math.radians(5.0), yaw=math.radians(1.0))),
    "equidistant-4deg": ("equidistant", CameraMount(x=1.5, z=1.5, pitch=math.radians(4.0))),
}


def _hazard_at(near_x: float, y: float, i: int) -> Hazard:
    """A hazard whose near edge is about near_x ahead of the vehicle frame origin."""
    if i % 2 == 0:
        length = 0.7 + 0.1 * (i % 3)
        return Hazard("pothole", x=near_x + length / 2, y=y, length_m=length,
                      width_m=0.9 + 0.1 * i, seed=i)
    return Hazard("speed_bump", x=near_x + 0.25, y=y, length_m=0.5, width_m=3.5, height_m=0.08,
                  style="yellow_black" if i % 4 == 1 else "white_chevron")


def _changed_box(a: np.ndarray, b: np.ndarray, threshold: int = 12) -> np.ndarray:
    """Corner-origin box of the pixels that differ between two frames."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > threshold
    rows, cols = np.flatnonzero(diff.any(axis=1)), np.flatnonzero(diff.any(axis=0))
    assert rows.size and cols.size, "the hazard changed no pixels"
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)


@pytest.mark.parametrize("case", list(CASES))
def test_range_from_rendered_boxes_within_5_percent(case: str) -> None:
    """Pixel boxes measured on rendered frames (where the hazard changed the image) → the
    projector → range within 5 % of the hazard's true near edge, 5 to 30 m."""
    cam_kind, mount = CASES[case]
    renderer = RoadRenderer(_camera(cam_kind), mount, noise=False)
    projector = GroundProjector(_camera(cam_kind), mount)
    empty = renderer.render([], 0.0).image
    errors = []
    for i, near_x in enumerate(NEAR_RANGES):
        hz = _hazard_at(near_x, LATERAL[i % 3], i)
        frame = renderer.render([hz], 0.0)
        (truth,) = frame.truths
        assert truth.visible and truth.class_name == hz.kind
        box = _changed_box(frame.image, empty)
        # the renderer's own box and the pixels it painted agree: the bottom to a pixel or two
        # (the lens blur spreads high-contrast paint by one), the sides less well on far
        # potholes, whose pointed ends are thinner than a pixel
        assert abs(box[3] - truth.box[3]) <= 2.0 and abs(box[1] - truth.box[1]) <= 2.5
        side_tol = 3.0 + 0.2 * (truth.box[2] - truth.box[0])
        np.testing.assert_allclose(box[[0, 2]], truth.box[[0, 2]], atol=side_tol)
        est = projector.project(np.stack([box, truth.box]))
        assert est.valid.all()
        for rng in est.range_m:
            errors.append(abs(rng - truth.range_m) / truth.range_m)
        assert est.bearing_rad[1] == pytest.approx(truth.bearing_rad, abs=0.01)
        assert abs(est.range_m[1] - truth.range_m) <= 3 * est.range_sigma_m[1]
    assert max(errors) < 0.05, f"{case}: worst range error {max(errors):.3%}"


def test_truth_boxes_follow_the_drive() -> None:
    cam = _camera("pinhole")
    mount = CameraMount(x=1.5, z=1.4, pitch=math.radians(4))
    scen = Scenario(hazards=(Hazard("pothole", x=40.0, y=0.5, seed=3),), speed_mps=12.0, fps=10)
    renderer = scen.renderer(cam, mount, noise=False)
    frames = list(scen.frames(renderer, n=20))
    ranges = [f.frame.truths[0].range_m for f in frames if f.frame.truths]
    assert len(ranges) == 20
    np.testing.assert_allclose(np.diff(ranges), -scen.speed_mps / scen.fps, atol=0.02)
    bottoms = [f.frame.truths[0].box[3] for f in frames]
    assert np.all(np.diff(bottoms) > 0)  # the hazard slides down the image as it nears
    near = frames[5].frame.truths[0].near_xyz
    world_near = scen.hazards[0].near_edge_centre()
    np.testing.assert_allclose(near, world_near - [scen.vehicle_x(frames[5].t), 0, 0])
    assert scen.duration_s == pytest.approx((40.0 + 0.8) / 12.0)
    # hazards behind the camera drop out of the truth
    assert renderer.render(scen.hazards, 45.0).truths == ()


def test_frames_look_like_a_road_with_hazards() -> None:
    cam = _camera("pinhole")
    mount = CameraMount(x=1.5, z=1.4, pitch=math.radians(4))
    renderer = RoadRenderer(cam, mount, seed=2)
    hazards = [Hazard("pothole", x=9.0, y=-0.5, length_m=1.0, width_m=1.2, seed=1),
               Hazard("speed_bump", x=15.0, y=0.0, length_m=0.5, width_m=3.5)]
    frame = renderer.render(hazards, 0.0)
    img = frame.image
    assert img.shape == (720, 1280, 3) and img.dtype == np.uint8
    sky = img[:100].reshape(-1, 3).mean(axis=0)
    assert sky[0] > sky[2] + 20  # blue above the horizon
    pot, bump = frame.truths
    x1, y1, x2, y2 = pot.box.astype(int)
    core = img[(y1 + y2) // 2 - 2:(y1 + y2) // 2 + 3, (x1 + x2) // 2 - 10:(x1 + x2) // 2 + 10]
    around = img[y2 + 5:y2 + 30, x1:x2]
    assert core.mean() < 0.75 * around.mean()  # the pothole is a dark depression
    bx1, by1, bx2, by2 = bump.box.astype(int)
    patch = img[by1:by2, bx1:bx2].reshape(-1, 3).astype(int)
    yellow = (patch[:, 2] > 150) & (patch[:, 1] > 120) & (patch[:, 0] < 90)
    assert yellow.mean() > 0.1
    # deterministic for a seed; the road moves with the vehicle
    again = RoadRenderer(cam, mount, seed=2).render(hazards, 0.0).image
    np.testing.assert_array_equal(again, img)
    moved = renderer.render(hazards, 0.5).image
    assert np.abs(moved.astype(int) - img.astype(int))[400:].mean() > 5


def test_render_speed_1280x720() -> None:
    renderer = RoadRenderer(_camera("pinhole"), CameraMount(x=1.5, z=1.4, pitch=0.07))
    scen = Scenario()
    renderer.render(scen.hazards, 0.0)
    t0 = time.perf_counter()
    n = 20
    for i in range(n):
        renderer.render(scen.hazards, scen.vehicle_x(i / scen.fps))
    per_frame = (time.perf_counter() - t0) / n
    print(f"render 1280x720: {per_frame * 1000:.1f} ms/frame")
    assert per_frame < 0.1  # ~15-25 ms here; generous for a shared 2-core machine


def test_hazard_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="kind"):
        Hazard("manhole", x=1.0)
    with pytest.raises(ValueError, match="style"):
        Hazard("speed_bump", x=1.0, style="pink")
    with pytest.raises(ValueError, match="positive"):
        Hazard("pothole", x=1.0, width_m=0.0)
    with pytest.raises(ValueError):
        Scenario(fps=0.0)
