"""Privacy blur on real pixels: a real photograph of a face (Grace Hopper, shipped with
matplotlib's sample data), the same face pasted into a road-like frame, a rendered plate."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import pytest

from edge_perception.learn.haar import HaarCascade, group_rectangles
from edge_perception.learn.privacy import (FACE_CASCADE, PLATE_CASCADE, PrivacyConfig,
                                           PrivacyFilter, encode_jpeg)

HOPPER = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def faces_only() -> PrivacyFilter:
    return PrivacyFilter(PrivacyConfig(plates=False))


def _outside_untouched(before: np.ndarray, after: np.ndarray, regions) -> bool:
    mask = np.ones(before.shape[:2], bool)
    for r in regions:
        x, y, w, h = r.box
        mask[y:y + h, x:x + w] = False
    return bool(np.array_equal(before[mask], after[mask]))


def test_real_face_is_found_and_blurred(faces_only):
    img = cv2.imread(str(HOPPER))
    out, regions = faces_only.blur(img)
    assert [r.kind for r in regions] == ["face"]
    x, y, w, h = regions[0].box
    # the face is in the upper middle of the portrait, about 40% of its width
    assert 100 < x + w / 2 < 400 and 100 < y + h / 2 < 350 and 150 < w < 350
    inside_before = img[y:y + h, x:x + w].astype(int)
    inside_after = out[y:y + h, x:x + w].astype(int)
    assert np.abs(inside_before - inside_after).mean() > 8  # really changed
    # fine detail is gone: the Laplacian energy inside drops by far
    lap = [cv2.Laplacian(cv2.cvtColor(a[y:y + h, x:x + w], cv2.COLOR_BGR2GRAY),
                         cv2.CV_64F).var() for a in (img, out)]
    assert lap[1] < 0.05 * lap[0]
    assert _outside_untouched(img, out, regions)
    assert faces_only.find(out) == []  # the blurred face is no longer a face


def test_pasted_face_in_a_road_frame(faces_only):
    """Honest synthetic case: the real face, cropped and scaled to 90 px, pasted at a known
    place into a textured 448x256 frame."""
    face = cv2.imread(str(HOPPER))[80:360, 130:400]
    face = cv2.resize(face, (90, 93), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    frame = np.clip(rng.normal(100, 12, (256, 448, 3)), 0, 255).astype(np.uint8)
    frame[150:, :] = np.clip(rng.normal(70, 8, (106, 448, 3)), 0, 255).astype(np.uint8)
    frame[40:133, 300:390] = face
    out, regions = faces_only.blur(frame)
    assert len(regions) == 1
    x, y, w, h = regions[0].box
    assert x <= 320 and y <= 70 and x + w >= 370 and y + h >= 110  # covers the pasted face
    assert np.abs(out[40:133, 300:390].astype(int) - face.astype(int)).mean() > 8
    assert _outside_untouched(frame, out, regions)


def test_no_detection_means_no_change():
    rng = np.random.default_rng(1)
    frame = np.clip(rng.normal(90, 20, (256, 448, 3)), 0, 255).astype(np.uint8)
    out, regions = PrivacyFilter().blur(frame)
    assert regions == [] and np.array_equal(out, frame) and out is not frame


PLATE_BOX = (120, 140, 160, 42)


def _plate_image() -> np.ndarray:
    img = np.random.default_rng(0).integers(60, 140, (256, 448)).astype(np.uint8)
    x, y, w, h = PLATE_BOX
    img[y:y + h, x:x + w] = 230
    cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), 10, 2)
    cv2.putText(img, "A123BC 77", (x + 6, y + 32), cv2.FONT_HERSHEY_SIMPLEX, 0.64, 10, 2)
    return img


def test_plate_cascade_fires_on_a_rendered_plate():
    """The plate cascade (Russian plates) on a rendered plate: it does fire here, but weakly
    (few agreeing windows), which is why the filter accepts single plate hits."""
    img = _plate_image()
    x, y, w, h = PLATE_BOX
    hits = HaarCascade(PLATE_CASCADE).detect(img, min_neighbors=0)
    assert any(hx < x + w / 2 < hx + hw and hy < y + h / 2 < hy + hh
               for hx, hy, hw, hh in hits), hits


def test_cascade_files_parse():
    face, plate = HaarCascade(FACE_CASCADE), HaarCascade(PLATE_CASCADE)
    assert face.window == (24, 24) and len(face.stages) == 25
    assert plate.window == (64, 16) and len(plate.stages) == 16


def test_group_rectangles_like_opencv():
    rects = [(10, 10, 50, 50), (12, 11, 50, 50), (11, 9, 52, 52), (200, 200, 30, 30)]
    assert group_rectangles(rects, 2) == [(11, 10, 51, 51)]
    assert len(group_rectangles(rects, 0)) == 2


def test_encode_jpeg_roundtrip():
    img = cv2.imread(str(HOPPER))
    data = encode_jpeg(img, 85)
    assert data[:2] == b"\xff\xd8"
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == img.shape


def test_blur_process_matches_in_process(faces_only):
    from edge_perception.learn.privacy import BlurProcess

    img = cv2.imread(str(HOPPER))
    proc = BlurProcess(PrivacyConfig(plates=False))
    try:
        jpeg, regions = proc.blur_encode(img, 90)
    finally:
        proc.close()
    local, local_regions = faces_only.blur(img)
    assert regions == local_regions
    assert jpeg == encode_jpeg(local, 90)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling policies")
def test_blur_process_is_background_work():
    import multiprocessing

    from edge_perception.learn.privacy import BlurProcess

    before = {p.pid for p in multiprocessing.active_children()}
    proc = BlurProcess(PrivacyConfig(plates=False))
    try:
        proc.blur_encode(np.zeros((64, 64, 3), np.uint8))
        pids = [p.pid for p in multiprocessing.active_children() if p.pid not in before]
        assert pids
        for pid in pids:
            assert os.sched_getscheduler(pid) == os.SCHED_IDLE
            assert os.getpriority(os.PRIO_PROCESS, pid) > os.getpriority(os.PRIO_PROCESS, 0)
    finally:
        proc.close()


def _reference_scan(cascade: HaarCascade, gray: np.ndarray, step: int) -> list[list[int]]:
    """OpenCV's cascade rule, one window at a time in plain Python (slow; small images)."""
    W, H = cascade.window
    g = gray.astype(np.float64)
    s = np.pad(g.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    q = np.pad((g * g).cumsum(0).cumsum(1), ((1, 0), (1, 0)))

    def rect(t, x, y, w, h):
        return t[y + h, x + w] - t[y, x + w] - t[y + h, x] + t[y, x]

    hits = []
    for y in range(0, gray.shape[0] - H + 1, step):
        for x in range(0, gray.shape[1] - W + 1, step):
            vs, vq = rect(s, x + 1, y + 1, W - 2, H - 2), rect(q, x + 1, y + 1, W - 2, H - 2)
            nf = (W - 2) * (H - 2) * vq - vs * vs
            nf = np.sqrt(nf) if nf > 0 else 1.0
            for st in cascade.stages:
                total = 0.0
                for r, thr, lv, rv in zip(st.rects, st.thresholds, st.left, st.right):
                    value = 0.0
                    for rx, ry, rw, rh, wgt in r:
                        if wgt != 0.0:
                            value += wgt * rect(s, x + int(rx), y + int(ry), int(rw), int(rh))
                    total += lv if value < thr * nf else rv
                if total < st.threshold:
                    break
            else:
                hits.append([x, y])
    return hits


def test_compiled_window_scan_equals_the_reference():
    """The Numba scan against a per-window Python evaluation: the real face shrunk until it
    fills about one 24-pixel window (so windows pass all 25 stages), and a rendered plate
    with random texture around it (most windows rejected early, at different stages)."""
    face = cv2.resize(cv2.imread(str(HOPPER), cv2.IMREAD_GRAYSCALE), None, fx=0.1, fy=0.1,
                      interpolation=cv2.INTER_AREA)
    plate = np.ascontiguousarray(_plate_image()[120:200, 90:320])
    for path, gray, hits in ((FACE_CASCADE, face, True), (PLATE_CASCADE, plate, False)):
        c = HaarCascade(path)
        for step in (1, 2):
            expected = _reference_scan(c, gray, step)
            assert c._scan(gray, step).tolist() == expected
            assert bool(expected) or not hits
