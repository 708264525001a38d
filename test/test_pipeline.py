"""perception/ and publish/: latest-wins slots, the worker, statistics, the batched pipeline
with real detector + geometry, debug drawing and markers. No ROS here."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from detector_helpers import MOUNT, make_model, sim_intrinsics

from edge_perception.detect.detector import Detection, DetectorConfig, load_detector
from edge_perception.geometry import CameraMount, GroundProjector
from edge_perception.perception import (
    Frame,
    HazardPipeline,
    LatestSlots,
    PipelineStats,
    RateMeter,
    SlotWorker,
    Window,
    freeze_startup_heap,
    scale_intrinsics,
    thaw_heap,
)
from edge_perception.publish import draw_hazards, hazard_markers, to_bgr
from edge_perception.sim import Scenario


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory):
    path = make_model(tmp_path_factory.mktemp("model") / "random.pt")
    return load_detector(path, "cpu", DetectorConfig(score_threshold=0.2))


def test_slots_latest_wins_and_counts_skipped() -> None:
    slots = LatestSlots()
    assert slots.put("a", 1) is False
    assert slots.put("a", 2) is True
    slots.put("b", 10)
    assert slots.take_all(0.0) == {"a": 2, "b": 10}
    assert slots.take_all(0.01) == {}
    assert slots.received == {"a": 2, "b": 1} and slots.skipped == {"a": 1}
    assert slots.totals() == (3, 1)


def test_slots_close_wakes_a_waiting_take() -> None:
    slots = LatestSlots()
    out: list[dict] = []
    t = threading.Thread(target=lambda: out.append(slots.take_all(30.0)))
    t.start()
    time.sleep(0.05)
    slots.close()
    t.join(5.0)
    assert out == [{}] and not t.is_alive()


def test_worker_batches_and_survives_errors() -> None:
    slots = LatestSlots()
    seen: list[dict] = []
    errors: list[BaseException] = []

    def handle(batch: dict) -> None:
        seen.append(batch)
        if "boom" in batch:
            raise RuntimeError("bad batch")

    worker = SlotWorker(slots, handle, errors.append)
    worker.start()
    slots.put("boom", 0)
    deadline = time.monotonic() + 5
    while not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    slots.put("a", 1)
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert [type(e) for e in errors] == [RuntimeError]
    assert seen[-1] == {"a": 1} and not worker.alive


def test_two_worker_threads_handle_batches_concurrently() -> None:
    """With threads=2 a second frame is taken while the first is still being handled: both
    handlers meet at a barrier that one thread alone could never pass."""
    slots = LatestSlots()
    barrier = threading.Barrier(2, timeout=5)
    entered: list[dict] = []
    seen: list[dict] = []
    errors: list[BaseException] = []

    def handle(batch: dict) -> None:
        entered.append(batch)
        barrier.wait()
        seen.append(batch)

    with pytest.raises(ValueError):
        SlotWorker(slots, handle, errors.append, threads=0)
    worker = SlotWorker(slots, handle, errors.append, threads=2)
    worker.start()
    slots.put("a", 1)
    deadline = time.monotonic() + 5
    while not entered and time.monotonic() < deadline:  # "a" is being handled
        time.sleep(0.005)
    slots.put("b", 2)
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert not errors and sorted(seen, key=str) == [{"a": 1}, {"b": 2}]
    assert slots.totals() == (2, 0) and not worker.alive


def test_window_rate_and_snapshot() -> None:
    w = Window(4)
    assert np.isnan(w.percentile(50))
    for v in (1, 2, 3, 4, 100):
        w.add(v)
    assert len(w) == 4 and w.percentile(50) == 3.5 and w.percentile(100) == 100
    now = [0.0]
    r = RateMeter(window_s=2.0, clock=lambda: now[0])
    r.tick(10)
    assert r.rate() == 5.0
    now[0] = 3.0
    assert r.rate() == 0.0 and r.total == 10
    s = PipelineStats()
    s.published(0.010)
    s.published(0.030)
    s.stage("detect", 0.02)
    s.reject("cam: bad step")
    snap = s.snapshot()
    assert snap["latency_p50_ms"] == pytest.approx(20.0)
    assert snap["detect_p50_ms"] == pytest.approx(20.0)
    assert snap["rejected"] == 1 and snap["last_rejection"] == "cam: bad step"


def test_pipeline_batches_cameras_and_projects_boxes(detector) -> None:
    intr = sim_intrinsics()
    renderer = Scenario().renderer(intr, MOUNT, seed=1)
    img = renderer.render(Scenario().hazards, 0.0).image
    rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    pipe = HazardPipeline(detector, MOUNT)
    frames = [Frame("cam0", img, "bgr8", 5, "cam0_optical", intr),
              Frame("cam1", rgb, "rgb8", 6, "cam1_optical", None)]
    res = pipe.process(frames)
    assert [r.frame.camera for r in res] == ["cam0", "cam1"]
    assert len(res[0].detections) > 0  # the lifted random model reports boxes
    # Same image in two encodings, one batch: same detections.
    np.testing.assert_allclose(res[0].boxes, res[1].boxes, atol=1e-3)
    expected = GroundProjector(intr, MOUNT).project(res[0].boxes)
    np.testing.assert_allclose(res[0].ground.xyz, expected.xyz)
    assert res[0].ground.valid.any()
    assert not res[1].ground.valid.any()  # no intrinsics: no positions
    assert set(res[0].times) == {"detect", "geometry"}
    pipe.set_mount(CameraMount(z=2.0, pitch=0.2))
    moved = pipe.process(frames[:1])[0]
    np.testing.assert_allclose(
        moved.ground.xyz, GroundProjector(intr, CameraMount(z=2.0, pitch=0.2))
        .project(moved.boxes).xyz)


def test_scale_intrinsics_follows_a_resize() -> None:
    intr = sim_intrinsics(640, 360)
    half = scale_intrinsics(intr, 320, 180)
    assert half.fx == pytest.approx(intr.fx / 2) and half.K[1, 2] == pytest.approx(90.0)
    assert scale_intrinsics(intr, 640, 360) is intr


@pytest.mark.parametrize("encoding,code", [
    ("rgb8", cv2.COLOR_BGR2RGB), ("bgra8", cv2.COLOR_BGR2BGRA), ("mono8", cv2.COLOR_BGR2GRAY)])
def test_to_bgr(encoding: str, code: int) -> None:
    bgr = np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    src = cv2.cvtColor(bgr, code)
    out = to_bgr(src, encoding)
    ref = cv2.cvtColor(src, cv2.COLOR_GRAY2BGR) if encoding == "mono8" else bgr
    np.testing.assert_array_equal(out, ref)
    assert out.flags.c_contiguous and out.shape == (6, 8, 3)
    yuyv = np.zeros((4, 6, 2), np.uint8)
    assert to_bgr(yuyv, "yuyv").shape == (4, 6, 3)


def test_draw_and_markers_use_boxes_and_positions() -> None:
    intr = sim_intrinsics()
    det = [Detection(100, 200, 200, 260, 0.9, 0, "pothole"),
           Detection(10, 10, 40, 30, 0.5, 1, "speed_bump")]
    boxes = np.array([d.box for d in det])
    ground = GroundProjector(intr, MOUNT).project(boxes)
    assert ground.valid.tolist() == [True, False]  # the second box is above the horizon
    img = np.zeros((360, 640, 3), np.uint8)
    out = draw_hazards(img, det, ground)
    assert out is img and img[230, 100].any() and not img[300:, 400:].any()
    markers = hazard_markers(det, ground)
    assert [m.kind for m in markers] == ["cylinder", "text"]
    assert markers[0].position[:2] == pytest.approx(tuple(ground.xyz[0, :2]))
    assert f"{ground.range_m[0]:.1f} m" in markers[1].text


def test_library_does_not_import_rclpy() -> None:
    code = ("import sys, edge_perception.perception, edge_perception.publish; "
            "bad = [m for m in sys.modules if m.startswith('rclpy') or m.endswith('_msgs')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent)


def test_frozen_heap_is_skipped_by_the_collector_until_thawed() -> None:
    """What the detector node relies on: objects alive at activation are left out of every
    later collection (no full-heap pauses), and thawing hands them back (no leaked cycles)."""
    import gc
    import weakref

    class Cyclic:
        pass

    a = Cyclic()
    a.me = a
    ref = weakref.ref(a)
    try:
        assert freeze_startup_heap() > 0
        del a
        gc.collect()
        assert ref() is not None  # garbage now, but frozen: the collector never looked
    finally:
        thaw_heap()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert ref() is None
