"""The Recorder (the uploader node's pipeline without ROS): selection must see every frame,
even while a kept frame is still being blurred."""

from __future__ import annotations

import threading
import time

import numpy as np

from edge_perception.learn.recorder import Recorder, RecorderConfig
from edge_perception.learn.sample import Reason, SampleDetection
from edge_perception.learn.selection import PRIORITY, SelectionConfig
from edge_perception.learn.store import SampleStore


def _det(score: float) -> SampleDetection:
    return SampleDetection(0, "pothole", score, (500.0, 300.0, 700.0, 380.0))  # mid-image


def test_a_slow_blur_hides_no_frame_from_the_tracker(tmp_path):
    """Frame 0 is a hard example whose blur hangs; meanwhile a confident hazard is tracked for
    five frames and then vanishes mid-image. The lost track must still be kept: selection
    runs on arrival, not behind the blur (where the two-slot hand-off would drop frames)."""
    gate = threading.Event()
    cfg = RecorderConfig(selection=SelectionConfig(min_interval_s=0.0, random_rate=0.0),
                         queue_size=2, blur_in_subprocess=False)
    frame = np.full((720, 1280, 3), 90, np.uint8)
    info = {"width": 1280, "height": 720}
    with SampleStore(tmp_path / "car") as store:
        rec = Recorder(store, cfg)
        assert rec._blur_local is not None
        blur = rec._blur_local.blur

        def hanging_blur(bgr: np.ndarray):  # the first kept frame's blur waits for the gate
            gate.wait(10)
            return blur(bgr)

        rec._blur_local.blur = hanging_blur  # type: ignore[method-assign]
        rec.start()
        try:
            scores = [[0.45]] + [[0.9]] * 5 + [[]]
            kept = []
            for i, frame_scores in enumerate(scores):
                stamp = (i + 1) * 33_000_000
                rec.on_image(stamp, frame, info)
                kept.append(rec.on_detections(stamp, [_det(s) for s in frame_scores], "m@1"))
            assert kept == [True, False, False, False, False, False, True]
            gate.set()
            end = time.monotonic() + 10
            while store.stats().samples < 2 and time.monotonic() < end:
                time.sleep(0.02)
        finally:
            gate.set()
            rec.stop()
        batch = store.lease(10)
    assert sorted(s.priority for s in batch) == [PRIORITY[Reason.HARD_EXAMPLE],
                                                 PRIORITY[Reason.LOST_TRACK]]
    assert rec.writer.counters["dropped_full"] == 0 and rec.unmatched == 0
