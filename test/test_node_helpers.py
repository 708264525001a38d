"""Shared node helpers: parameter specs, message conversion, diagnostics, QoS profiles."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.serialization import deserialize_message, serialize_message

from edge_perception.capture import load_calibration
from edge_perception.nodes.convert import (
    calibration_to_camera_info,
    camera_info_to_calibration,
    image_to_numpy,
    numpy_to_image,
    stamp_from_ns,
    stamp_to_ns,
)
from edge_perception.nodes.diagnostics import diagnostic_array, status_to_dict
from edge_perception.nodes.params import (
    ParamError,
    ParamSpec,
    apply_changes,
    declare_params,
    validate_changes,
)

REPO = Path(__file__).resolve().parents[1]

SPECS = (
    ParamSpec("threshold", 0.5, "score threshold", (0.0, 1.0)),
    ParamSpec("count", 3, "how many", (1, 10), read_only=True),
    ParamSpec("mode", "fast", "speed mode", choices=("fast", "slow")),
    ParamSpec("enabled", True, "on/off"),
    ParamSpec("topics", ["a", "b"], "topic list", read_only=True),
)


@dataclass(frozen=True)
class Cfg:
    threshold: float
    count: int
    mode: str
    enabled: bool
    topics: tuple[str, ...]


def _node(ctx: Any, **overrides: Any) -> Any:
    from rclpy.node import Node

    return Node("p", context=ctx, parameter_overrides=[
        Parameter(k, value=v) for k, v in overrides.items()])


def test_declare_params_defaults_and_descriptors(ros_context: Any) -> None:
    node = _node(ros_context)
    try:
        cfg = declare_params(node, SPECS, Cfg)
        assert cfg == Cfg(0.5, 3, "fast", True, ("a", "b"))
        with pytest.raises(FrozenInstanceError):
            cfg.threshold = 1.0  # type: ignore[misc]
        d = node.describe_parameter("threshold")
        assert d.description == "score threshold"
        assert d.floating_point_range[0].to_value == 1.0
        assert node.describe_parameter("count").read_only
        assert node.describe_parameter("count").integer_range[0].from_value == 1
    finally:
        node.destroy_node()


def test_declare_params_overrides_and_int_for_float(ros_context: Any) -> None:
    node = _node(ros_context, threshold=1, mode="slow", topics=["x"])
    try:
        cfg = declare_params(node, SPECS, Cfg)
        assert cfg.threshold == 1.0 and isinstance(cfg.threshold, float)
        assert cfg.mode == "slow" and cfg.topics == ("x",)
    finally:
        node.destroy_node()


@pytest.mark.parametrize("overrides, words", [
    ({"threshold": 2.0}, r"threshold must be in \[0.0, 1.0\], got 2.0"),
    ({"count": 0}, "count must be in"),
    ({"mode": "turbo"}, "mode must be one of fast, slow"),
    ({"enabled": "yes"}, "enabled must be a bool"),
])
def test_declare_params_rejects_bad_overrides(ros_context: Any, overrides: dict,
                                              words: str) -> None:
    node = _node(ros_context, **overrides)
    try:
        with pytest.raises(ParamError, match=words):
            declare_params(node, SPECS, Cfg)
    finally:
        node.destroy_node()


def test_spec_table_must_match_the_dataclass(ros_context: Any) -> None:
    node = _node(ros_context)
    try:
        with pytest.raises(TypeError, match="do not match"):
            declare_params(node, SPECS[:2], Cfg)
    finally:
        node.destroy_node()


def test_validate_and_apply_runtime_changes() -> None:
    ok = [Parameter("threshold", value=0.7), Parameter("qos_overrides.x", value="y")]
    assert validate_changes(SPECS, ok).successful
    cfg = apply_changes(Cfg(0.5, 3, "fast", True, ("a",)), ok)
    assert cfg.threshold == 0.7 and cfg.count == 3
    for bad, why in [(Parameter("count", value=4), "read-only"),
                     (Parameter("threshold", value=1.5), "must be in"),
                     (Parameter("threshold", value="high"), "must be a float"),
                     (Parameter("mode", value="turbo"), "one of")]:
        r = validate_changes(SPECS, [bad])
        assert not r.successful and why in r.reason


def test_image_round_trip_through_serialization() -> None:
    from sensor_msgs.msg import Image

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    msg = numpy_to_image(frame[:, ::-1], 1_700_000_000_123_456_789, "cam")  # non-contiguous
    back = deserialize_message(serialize_message(msg), Image)
    assert (back.width, back.height, back.step, back.encoding) == (53, 37, 159, "bgr8")
    assert back.header.frame_id == "cam"
    assert stamp_to_ns(back.header.stamp) == 1_700_000_000_123_456_789
    view = image_to_numpy(back)
    assert np.array_equal(view, frame[:, ::-1])
    assert not view.flags.writeable or view.base is not None  # a view, not a copy


def test_numpy_to_image_does_not_copy_contiguous_frames() -> None:
    frame = np.zeros((4, 5, 3), np.uint8)
    msg = numpy_to_image(frame, 0, "c")
    assert np.shares_memory(np.asarray(msg.data), frame)


def test_image_to_numpy_honours_padded_step_and_rejects_short_data() -> None:
    from sensor_msgs.msg import Image

    rows = np.arange(2 * 8, dtype=np.uint8).reshape(2, 8)  # 2 rows of 2 px + 2 pad bytes
    msg = Image(height=2, width=2, encoding="bgr8", step=8, data=rows.tobytes())
    assert image_to_numpy(msg).tolist() == [[[0, 1, 2], [3, 4, 5]], [[8, 9, 10], [11, 12, 13]]]
    msg.data = bytes(10)
    with pytest.raises(ValueError, match="bytes"):
        image_to_numpy(msg)
    with pytest.raises(ValueError, match="needs a uint8 HxWx3"):
        numpy_to_image(np.zeros((2, 2), np.uint8), 0, "c")
    with pytest.raises(ValueError, match="unsupported encoding"):
        numpy_to_image(np.zeros((2, 2), np.uint8), 0, "c", encoding="yuv422")


def test_camera_info_round_trip() -> None:
    calib = load_calibration(REPO / "config" / "camera_info.yaml")
    info = calibration_to_camera_info(calib, 5_000_000_001, "cam")
    assert (info.width, info.height, info.header.frame_id) == (640, 640, "cam")
    assert (info.header.stamp.sec, info.header.stamp.nanosec) == (5, 1)
    back = camera_info_to_calibration(info)
    np.testing.assert_array_equal(back.K, calib.K)
    np.testing.assert_array_equal(back.P, calib.P)
    np.testing.assert_array_equal(back.D, calib.D)


def test_stamps() -> None:
    t = stamp_from_ns(3_000_000_007)
    assert (t.sec, t.nanosec) == (3, 7) and stamp_to_ns(t) == 3_000_000_007


def test_diagnostic_array() -> None:
    from diagnostic_msgs.msg import DiagnosticStatus

    arr = diagnostic_array(2_000_000_000, "cam: capture", "warn", "lost",
                           {"fps": 29.97, "frames": 12, "state": "reconnecting"}, "dev0")
    st = arr.status[0]
    assert st.level == DiagnosticStatus.WARN and st.name == "cam: capture"
    assert st.hardware_id == "dev0" and arr.header.stamp.sec == 2
    assert status_to_dict(st) == {"fps": "29.97", "frames": "12", "state": "reconnecting"}
    with pytest.raises(ValueError):
        diagnostic_array(0, "x", "fine", "", {})


def test_qos_profiles_are_fresh_objects() -> None:
    from rclpy.qos import ReliabilityPolicy

    from edge_perception.nodes import qos

    a = qos.camera_output()
    a.reliability = ReliabilityPolicy.BEST_EFFORT
    assert qos.camera_output().reliability == ReliabilityPolicy.RELIABLE
    assert qos.sensor_input().reliability == ReliabilityPolicy.BEST_EFFORT
    assert qos.sensor_input().depth == 1 and qos.hazards().depth == 10


def test_fastdds_profile_respects_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_perception.nodes import qos

    monkeypatch.setenv(qos.FASTDDS_PROFILE_ENV, "/etc/my_profile.xml")
    assert qos.use_fastdds_profile() == "/etc/my_profile.xml"
    monkeypatch.delenv(qos.FASTDDS_PROFILE_ENV)
    assert qos.use_fastdds_profile() == str(REPO / "config" / "fastdds.xml")
