"""detector_node parameters: one spec table, read into a frozen `DetectorParams`.

Read-only (need a restart): model, device, topics, frames, periods. Changeable at run time
(validated in the node's set-parameters callback): score_threshold, nms_iou, enabled_classes
and the camera mount. The model's input size is published as read-only `input_width` /
`input_height` once the model is loaded (on activate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from edge_perception.geometry import CameraMount

from .params import ParamSpec

__all__ = ["RUNTIME", "SPECS", "DetectorParams", "mount_from", "mount_specs"]

_ANGLE = (-math.pi / 2 + 1e-3, math.pi / 2 - 1e-3)


def mount_specs(x: float = 0.0, pitch: float = 0.0,
                read_only: bool = False) -> tuple[ParamSpec, ...]:
    """The camera_* parameters of a camera's mounting on the vehicle (`mount_from` reads them);
    shared by detector_node and sim_node, which differ in defaults and in whether they change
    at run time."""
    return (
        ParamSpec("camera_x", x, "camera optical centre ahead of base_frame origin (m)",
                  (-20.0, 20.0), read_only),
        ParamSpec("camera_y", 0.0, "camera optical centre left of base_frame origin (m)",
                  (-20.0, 20.0), read_only),
        ParamSpec("camera_height", 1.4, "camera optical centre above the road (m)",
                  (0.05, 20.0), read_only),
        ParamSpec("camera_roll", 0.0, "camera roll (rad, + lifts its left side)", _ANGLE,
                  read_only),
        ParamSpec("camera_pitch", pitch, "camera pitch (rad, + looks down)", _ANGLE, read_only),
        ParamSpec("camera_yaw", 0.0, "camera yaw (rad, + looks left)", (-math.pi, math.pi),
                  read_only),
    )


SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", "", "model file: .onnx INT8 for onnxruntime on the CPU (no torch "
              "in the process), .ts INT8 TorchScript, or .pt FP32 weights; empty = the shipped "
              "model: models/hazard_int8.onnx on a CPU (.ts if absent), FP32 .pt on CUDA",
              read_only=True),
    ParamSpec("device", "auto", "inference device; auto = CUDA if available else CPU",
              read_only=True, choices=("auto", "cpu", "cuda")),
    ParamSpec("image_topics", ["image_raw"], "camera topics; sensor_msgs/Image, or "
              "CompressedImage when the name ends in /compressed; each camera's CameraInfo is "
              "the sibling topic camera_info", read_only=True),
    ParamSpec("score_threshold", 0.35, "minimum detection score", (0.0, 1.0)),
    ParamSpec("nms_iou", 0.6, "IoU above which NMS drops the lower-scored box", (0.05, 1.0)),
    ParamSpec("enabled_classes", ["all"], "class names to report, or [all]"),
    ParamSpec("inference_threads", 0, "CPU threads for one model call (torch: "
              "process-wide; onnxruntime: per call); 0 = the runtime's default. On a 2-core CPU "
              "the onnxruntime model ran fastest with 2 threads in one worker, the TorchScript "
              "model with 1 thread in each of 2 workers",
              (0, 256), read_only=True),
    ParamSpec("worker_threads", 1, "processing threads sharing the model; each takes the "
              "latest frame when free, so a frame waits only while all are busy (with torch at "
              "inference_threads 1, 2 workers on a 2-core CPU keep up with a camera one cannot). "
              "A result finishing after a newer frame of its camera was published is dropped "
              "(late_dropped)", (1, 16), read_only=True),
    ParamSpec("worker_nice", 0, "niceness added to the processing thread so frame intake "
              "wins the CPU over processing (0 = same priority; >0 lets the DDS reader keep up "
              "but pays for deserializing frames that are then skipped)", (0, 19),
              read_only=True),
    ParamSpec("max_detections", 100, "most hazards per frame", (1, 1000), read_only=True),
    ParamSpec("base_frame", "base_link", "vehicle frame of hazard positions (header.frame_id)",
              read_only=True),
    *mount_specs(),
    ParamSpec("use_tf", True, "look up the camera pose with tf2 when tf2_ros is installed "
              "(falls back to the camera_* parameters)", read_only=True),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics", (0.1, 60.0),
              read_only=True),
    ParamSpec("log_throttle_s", 5.0, "at most one rejected-input log per this many seconds",
              (0.0, 3600.0), read_only=True),
)

RUNTIME = frozenset(s.name for s in SPECS if not s.read_only)


@dataclass(frozen=True)
class DetectorParams:
    model_path: str
    device: str
    image_topics: tuple[str, ...]
    score_threshold: float
    nms_iou: float
    enabled_classes: tuple[str, ...]
    inference_threads: int
    worker_threads: int
    worker_nice: int
    max_detections: int
    base_frame: str
    camera_x: float
    camera_y: float
    camera_height: float
    camera_roll: float
    camera_pitch: float
    camera_yaw: float
    use_tf: bool
    diagnostics_period_s: float
    log_throttle_s: float


def mount_from(p: Any) -> CameraMount:
    """The CameraMount of a params object with the `mount_specs` fields."""
    return CameraMount(x=p.camera_x, y=p.camera_y, z=p.camera_height, roll=p.camera_roll,
                       pitch=p.camera_pitch, yaw=p.camera_yaw)
