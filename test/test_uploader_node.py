"""sample_uploader_node over real DDS: frames + hazards in, kept samples at a real ingest
server on 127.0.0.1 (a face in the frame blurred on the way), /diagnostics out."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from diagnostic_msgs.msg import DiagnosticArray
from edge_perception.learn.crashtest import server_sample_counts
from edge_perception.learn.ingest_server import IngestConfig, IngestServer
from edge_perception.nodes import qos
from edge_perception.nodes.convert import numpy_to_image, stamp_from_ns
from edge_perception.nodes.diagnostics import status_to_dict
from edge_perception.nodes.uploader_node import UploaderNode
from edge_perception_msgs.msg import RoadHazard, RoadHazardArray
from sensor_msgs.msg import Image
from std_msgs.msg import Empty, Header

TOKEN = "node-test-token-0123456789abcdef"
HOPPER = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def _frame() -> np.ndarray:
    rng = np.random.default_rng(0)
    frame = np.clip(rng.normal(100, 12, (256, 448, 3)), 0, 255).astype(np.uint8)
    frame = cv2.GaussianBlur(frame, (0, 0), 2.0)  # smooth, so JPEG changes it little
    face = cv2.resize(cv2.imread(str(HOPPER))[80:360, 130:400], (90, 93),
                      interpolation=cv2.INTER_AREA)
    frame[40:133, 300:390] = face  # a real face, pasted: must not leave the car unblurred
    return frame


def _hazards(stamp_ns: int, score: float) -> RoadHazardArray:
    h = RoadHazard(class_id=0, class_name="pothole", score=score, x_min=40.0, y_min=160.0,
                   x_max=120.0, y_max=200.0)
    return RoadHazardArray(header=Header(stamp=stamp_from_ns(stamp_ns), frame_id="base_link"),
                           camera_frame_id="cam", image_width=448, image_height=256,
                           hazards=[h], model_id="hazard@test")


def test_node_selects_blurs_stores_uploads(tmp_path, ros_context):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    cfg = IngestConfig(root=tmp_path / "cloud", tokens={TOKEN: "car9"})
    with IngestServer(cfg) as srv:
        node = UploaderNode(context=ros_context, parameter_overrides=[
            Parameter("store_dir", value=str(tmp_path / "store")),
            Parameter("endpoint", value=srv.url),
            Parameter("token_file", value=str(token_file)),
            Parameter("vehicle_id", value="car9"),
            Parameter("batch_max_age_s", value=0.0),
            Parameter("min_interval_s", value=0.0),
            Parameter("random_rate", value=0.0),
            Parameter("blur_plates", value=False),
            Parameter("diagnostics_period_s", value=0.2),
        ])
        peer = Node("uploader_test_peer", context=ros_context)
        img_pub = peer.create_publisher(Image, "image_raw", qos.camera_output())
        haz_pub = peer.create_publisher(RoadHazardArray, "hazards", qos.hazards())
        cap_pub = peer.create_publisher(Empty, "/sample_uploader_node/capture", 10)
        diags: list[dict[str, str]] = []
        peer.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda m: diags.extend(status_to_dict(s) for s in m.status),
                                 qos.diagnostics())
        ex = SingleThreadedExecutor(context=ros_context)
        ex.add_node(node)
        ex.add_node(peer)
        try:
            end = time.monotonic() + 10
            while time.monotonic() < end and not (
                    img_pub.get_subscription_count() and haz_pub.get_subscription_count()
                    and cap_pub.get_subscription_count()):
                ex.spin_once(timeout_sec=0.05)
            frame = _frame()
            stamp = 1_000_000_000
            plan = [(0.95, False), (0.45, False), (0.97, True)]  # confident, hard, on demand
            sent = 0
            end = time.monotonic() + 40
            reasons: set[str] = set()
            while time.monotonic() < end and reasons != {"hard_example", "on_demand"}:
                if sent < 12:  # re-send the plan while nothing is kept (best-effort images)
                    score, capture = plan[sent % 3]
                    stamp += 100_000_000
                    if capture:
                        cap_pub.publish(Empty())
                        for _ in range(5):
                            ex.spin_once(timeout_sec=0.02)
                    img_pub.publish(numpy_to_image(frame, stamp, "cam"))
                    for _ in range(5):
                        ex.spin_once(timeout_sec=0.02)
                    haz_pub.publish(_hazards(stamp, score))
                    sent += 1
                ex.spin_once(timeout_sec=0.1)
                reasons = set()
                for meta in (tmp_path / "cloud").glob("batches/car9/*/samples/*.json"):
                    reasons.add(json.loads(meta.read_text())["reason"])
            assert reasons == {"hard_example", "on_demand"}, (reasons, diags[-1:])
            end = time.monotonic() + 3
            while time.monotonic() < end and not any(int(d["uploads"]) >= 1 for d in diags):
                ex.spin_once(timeout_sec=0.1)
        finally:
            ex.shutdown()
            peer.destroy_node()
            node.destroy_node()
    last = diags[-1]
    for key in ("queue_depth", "bytes_used", "evicted", "uploads", "failures", "online"):
        assert key in last
    assert int(last["uploads"]) >= 1 and last["online"] == "True"
    assert int(last["blurred_regions"]) >= 1
    counts = server_sample_counts(tmp_path / "cloud")
    assert set(counts.values()) == {1}
    for jpg in (tmp_path / "cloud").glob("batches/car9/*/samples/*.jpg"):
        up = cv2.imdecode(np.frombuffer(jpg.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        assert up.shape == frame.shape
        diff = np.abs(up.astype(int) - frame.astype(int))
        face_diff, road_diff = diff[40:133, 300:390].mean(), diff[180:250, 20:200].mean()
        assert face_diff > 8 and road_diff < 3, (face_diff, road_diff)  # blurred vs JPEG
        meta = json.loads(jpg.with_suffix(".json").read_text())
        assert meta["model_version"] == "hazard@test" and meta["detections"][0]["box"] == [
            40.0, 160.0, 120.0, 200.0]
