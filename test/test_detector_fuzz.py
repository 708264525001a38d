"""Property-based robustness: thousands of malformed (and odd-but-valid) Image and
CompressedImage messages thrown at a real detector_node over a real DDS graph. Every one is
either rejected (counted, throttled log) or processed; the worker never errors and the node
then still answers a good frame.

Quick in the suite (~2000 messages); set EDGE_PERCEPTION_FUZZ_EXAMPLES=50000 for a soak run.
"""

from __future__ import annotations

import os
import time
from typing import Any

import cv2
import numpy as np
import pytest
from detector_helpers import make_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image

from edge_perception.nodes.convert import (
    compressed_to_array,
    image_msg_to_array,
    numpy_to_image,
    stamp_from_ns,
)
from edge_perception.preprocess import ENCODINGS, ImageFormatError
from test_detector_node import CAM0, CAM1, Graph

N = int(os.environ.get("EDGE_PERCEPTION_FUZZ_EXAMPLES", "1200"))
GOOD = np.random.default_rng(3).integers(0, 255, (96, 160, 3), dtype=np.uint8)
JPEG = cv2.imencode(".jpg", GOOD)[1].tobytes()

sizes = st.one_of(st.integers(0, 8), st.integers(0, 4000), st.integers(0, 2**32 - 1))
encodings = st.one_of(st.sampled_from(sorted(ENCODINGS)),
                      st.sampled_from(["bgr16", "16UC1", "32FC1", "bayer_rggb8", "", "BGR8"]),
                      st.text(max_size=12))
images = st.builds(
    lambda h, w, extra, enc, n, big: Image(
        height=h, width=w, encoding=enc, is_bigendian=big,
        step=(w * ENCODINGS[enc].bytes_per_pixel + extra) % 2**32 if enc in ENCODINGS
        else extra, data=bytes(n)),
    sizes, sizes, st.one_of(st.integers(-8, 8).map(abs), sizes), encodings,
    st.integers(0, 4096), st.integers(0, 1))


def _mangle(data: bytes, cut: int, flips: list[int]) -> bytes:
    b = bytearray(data[: max(0, len(data) - cut)])
    for i in flips:
        if b:
            b[i % len(b)] ^= 0xFF
    return bytes(b)


compressed = st.builds(
    lambda fmt, data: CompressedImage(format=fmt, data=data),
    st.sampled_from(["jpeg", "png", "bgr8; jpeg compressed bgr8", "16UC1; compressedDepth",
                     ""]),
    st.one_of(st.binary(max_size=2048),
              st.builds(_mangle, st.just(JPEG), st.integers(1, len(JPEG)),
                        st.lists(st.integers(0, len(JPEG)), max_size=8))))


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory):
    import rclpy
    from rclpy.context import Context

    model = make_model(tmp_path_factory.mktemp("model") / "random.pt")
    ctx = Context()
    rclpy.init(context=ctx)
    g = Graph(ctx, model, log_throttle_s=2.0)
    try:
        assert g.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert g.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        yield g
    finally:
        g.close()
        rclpy.try_shutdown(context=ctx)


def _check_conversion(convert: Any, msg: Any) -> None:
    """The property on this side: a clean ImageFormatError, or a view the size it claims."""
    try:
        arr, _ = convert(msg)
    except ImageFormatError:
        return
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.size > 0


def test_malformed_messages_over_the_graph(graph: Graph) -> None:
    node = graph.node
    sent = {"raw": 0, "jpeg": 0}
    ok = settings(max_examples=N, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))

    @ok
    @given(images)
    def throw_raw(msg: Image) -> None:
        _check_conversion(image_msg_to_array, msg)
        graph.raw.publish(msg)
        sent["raw"] += 1

    @settings(ok, max_examples=N // 2)
    @given(compressed)
    def throw_jpeg(msg: CompressedImage) -> None:
        _check_conversion(compressed_to_array, msg)
        graph.jpeg.publish(msg)
        sent["jpeg"] += 1

    t0 = time.monotonic()
    throw_raw()
    throw_jpeg()
    elapsed = time.monotonic() - t0
    time.sleep(1.0)
    snap = node.stats.snapshot()
    received, _ = node.slots.totals()
    print(f"fuzz: sent {sent} in {elapsed:.1f} s; node received {received}, "
          f"rejected {snap['rejected']}, processed {snap['frames_processed']}")
    assert sent["raw"] + sent["jpeg"] >= 1.5 * N * 0.9
    assert snap["rejected"] >= 100 and snap["errors"] == 0
    assert node._worker is not None and node._worker.alive  # noqa: SLF001
    # Still serving: a good raw frame and a good JPEG get hazards with their stamps.
    s = graph.now_ns()
    for i in range(50):
        graph.raw.publish(numpy_to_image(GOOD, s + i, "cam0_optical"))
        msg = CompressedImage(format="jpeg", data=JPEG)
        msg.header.stamp, msg.header.frame_id = stamp_from_ns(s + i + 10**6), "cam1_optical"
        graph.jpeg.publish(msg)
        if graph.wait(lambda t=s + i: graph.hazard_for(t) and graph.hazard_for(t + 10**6), 2.0):
            break
    else:
        pytest.fail("node stopped answering good frames after the fuzz")
    assert node.stats.snapshot()["errors"] == 0
    assert {CAM0, CAM1} <= set(node.slots.received)
