"""camera_node: frames from a camera, stream, file or image folder → `image_raw` + `camera_info`.

A plain Node, not a lifecycle node: it holds no heavy resource to load or free (opening a
camera is cheap and is retried forever anyway), and a camera that starts publishing as soon
as it runs is what every downstream node and `ros2 run` user expects. Capture runs on its own
thread (`CaptureWorker`), never inside an executor callback.

Publishes: `image_raw` (sensor_msgs/Image, bgr8), `camera_info` (same stamp), `/diagnostics`.
If frames differ in size from the calibration, K and P are scaled per axis (assumes a resize,
not a crop) and a warning is logged once per new size.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from edge_perception.capture import (
    SOURCE_TYPES,
    Backoff,
    CameraCalibration,
    CaptureWorker,
    load_calibration,
    open_source,
    parse_source,
)

from . import qos
from .convert import calibration_to_camera_info, numpy_to_image
from .diagnostics import diagnostic_array
from .entry import run_node
from .params import ParamError, ParamSpec, apply_changes, declare_params, validate_changes
from .paths import resolve_path

__all__ = ["CameraConfig", "CameraNode", "SPECS", "main"]

SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("source", "/dev/video0", "device index or /dev/videoN, GStreamer pipeline, "
              "rtsp/http URL, video file or image folder", read_only=True),
    ParamSpec("source_type", "auto", "how to open `source`; auto: '!' = GStreamer, digits or "
              "/dev/video = V4L2, scheme:// = URL, folder, else file",
              read_only=True, choices=SOURCE_TYPES),
    ParamSpec("loop", True, "restart a video file or image folder at its end", read_only=True),
    ParamSpec("rate", 0.0, "frames per second to publish; 0 = the source's rate "
              "(a folder without a rate plays at 10 Hz)", (0.0, 240.0)),
    ParamSpec("frame_id", "camera_optical_frame", "header.frame_id of image and camera_info"),
    ParamSpec("calibration_file", "", "camera_info_manager YAML (empty: uncalibrated, zero K)",
              read_only=True),
    ParamSpec("width", 0, "requested V4L2 capture width (0 = device default)", (0, 16384),
              read_only=True),
    ParamSpec("height", 0, "requested V4L2 capture height (0 = device default)", (0, 16384),
              read_only=True),
    ParamSpec("reconnect_initial_s", 0.5, "first reconnect delay after a failure",
              (0.01, 60.0), read_only=True),
    ParamSpec("reconnect_max_s", 10.0, "reconnect delay cap (doubles up to this)",
              (0.01, 600.0), read_only=True),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics", (0.1, 60.0),
              read_only=True),
)


@dataclass(frozen=True)
class CameraConfig:
    source: str
    source_type: str
    loop: bool
    rate: float
    frame_id: str
    calibration_file: str
    width: int
    height: int
    reconnect_initial_s: float
    reconnect_max_s: float
    diagnostics_period_s: float


class CameraNode(Node):
    def __init__(self, node_name: str = "camera_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_params(self, SPECS, CameraConfig)
        cfg = self.config
        spec = parse_source(resolve_path(cfg.source), cfg.source_type)
        if spec.is_finite and not Path(str(spec.target)).exists():
            raise ValueError(f"source not found: {spec.target}")
        if cfg.reconnect_max_s < cfg.reconnect_initial_s:
            raise ParamError("reconnect_max_s must be >= reconnect_initial_s")
        self._calib: CameraCalibration | None = (
            load_calibration(resolve_path(cfg.calibration_file)) if cfg.calibration_file
            else None)
        self._scaled: CameraCalibration | None = self._calib

        options = qos.overriding_options()
        self._image_pub = self.create_publisher(Image, "image_raw", qos.camera_output(),
                                                qos_overriding_options=options)
        self._info_pub = self.create_publisher(CameraInfo, "camera_info", qos.camera_output(),
                                               qos_overriding_options=options)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos.diagnostics())

        source = open_source(spec, loop=cfg.loop, fps=cfg.rate or 10.0, width=cfg.width,
                             height=cfg.height)
        self._hardware_id = source.description
        self._worker = CaptureWorker(
            source, self._publish, clock_ns=lambda: self.get_clock().now().nanoseconds,
            rate=cfg.rate, backoff=Backoff(cfg.reconnect_initial_s, cfg.reconnect_max_s),
            on_event=self._log_event, name=f"{node_name}-capture")
        self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._worker.start()

    # -- capture thread ------------------------------------------------------------------
    def _publish(self, frame: np.ndarray, stamp_ns: int) -> None:
        frame_id = self.config.frame_id
        self._image_pub.publish(numpy_to_image(frame, stamp_ns, frame_id))
        h, w = frame.shape[:2]
        if self._scaled is None or (self._scaled.width, self._scaled.height) != (w, h):
            self._scaled = self._camera_model(w, h)
        self._info_pub.publish(calibration_to_camera_info(self._scaled, stamp_ns, frame_id))

    def _camera_model(self, width: int, height: int) -> CameraCalibration:
        if self._calib is None:
            self.get_logger().warning(f"no calibration_file: camera_info is uncalibrated "
                                   f"({width}x{height}, K = 0)", once=True)
            return CameraCalibration.uncalibrated(width, height)
        c = self._calib
        self.get_logger().warning(
            f"frames are {width}x{height} but {self.config.calibration_file} is for "
            f"{c.width}x{c.height}: scaling K and P (assumes a resize, not a crop)")
        return c.scaled_to(width, height)

    def _log_event(self, level: str, message: str) -> None:
        log = self.get_logger()
        {"info": log.info, "warn": log.warning, "error": log.error}.get(level, log.info)(message)

    # -- executor callbacks --------------------------------------------------------------
    def _on_set_parameters(self, params: list[Any]) -> Any:
        result = validate_changes(SPECS, params)
        if result.successful:
            self.config = apply_changes(self.config, params)
            self._worker.set_rate(self.config.rate)
        return result

    def _publish_diagnostics(self) -> None:
        s = self._worker.stats()
        level, message = {
            "streaming": ("ok", "streaming"),
            "connecting": ("warn", "opening source"),
            "reconnecting": ("warn", f"source lost: {s.last_error}"),
            "ended": ("warn", "source ended (loop is false)"),
        }.get(s.state, ("stale", s.state))
        values = {"state": s.state, "fps": s.fps, "frames": s.frames,
                  "reconnects": s.reconnects, "width": s.width, "height": s.height,
                  "source": self.config.source, "last_error": s.last_error}
        self._diag_pub.publish(diagnostic_array(
            self.get_clock().now().nanoseconds, f"{self.get_name()}: capture", level, message,
            values, hardware_id=self._hardware_id))

    @property
    def stats(self) -> Any:
        return self._worker.stats()

    def destroy_node(self) -> None:
        if hasattr(self, "_worker"):
            self._worker.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(CameraNode, args, "camera_node")


if __name__ == "__main__":
    sys.exit(main())
