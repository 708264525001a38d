"""sample_uploader_node: keep frames worth learning from, blur them, store them durably and
upload them in batches when the ingest server is reachable.

Subscribes: `image_raw` (sensor_msgs/Image, sensor-data QoS), `camera_info`, `hazards`
(edge_perception_msgs/RoadHazardArray, header.stamp = the image's stamp), `~/capture`
(std_msgs/Empty: keep the next frame). Publishes `/diagnostics`: queue depth, store bytes and
samples, evictions, uploads, failures, online state.

Callbacks only convert and hand over (the Recorder's selection, a few box matches, runs in
the hazards callback so that it sees every frame); blur, JPEG and the SQLite store run on the
Recorder's worker thread (the blur in a spawned process), uploads on the Uploader's thread
(edge_perception.learn); all of it, and this process, as background work (SCHED_IDLE).
A plain Node, like camera_node: there is no model to load or free, and a store that starts
keeping and uploading as soon as the node runs is what a vehicle wants; the store's lock
makes a second instance on the same folder fail early.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Empty

from edge_perception.learn.privacy import PrivacyConfig
from edge_perception.learn.recorder import Recorder, RecorderConfig
from edge_perception.learn.sample import SampleDetection
from edge_perception.learn.selection import SelectionConfig
from edge_perception.learn.store import SampleStore, StoreLocked
from edge_perception.learn.transport import HttpTransport, TokenBucket
from edge_perception.learn.uploader import Uploader, UploaderConfig
from edge_perception.learn.writer import BACKGROUND_NICE, lower_thread_priority
from edge_perception_msgs.msg import RoadHazardArray

from . import qos
from .convert import image_to_numpy, stamp_to_ns
from .diagnostics import diagnostic_array
from .entry import run_node
from .params import ParamError, ParamSpec, declare_params

__all__ = ["UploaderNodeConfig", "UploaderNode", "SPECS", "main"]

SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("store_dir", "~/.local/share/edge_perception/samples",
              "folder of the durable sample store", read_only=True),
    ParamSpec("quota_mb", 2048.0, "disk quota of the store; lowest priority, oldest evicted",
              (1.0, 1e7), read_only=True),
    ParamSpec("endpoint", "", "ingest server base URL (https://...); empty = store only",
              read_only=True),
    ParamSpec("token_file", "", "file holding this vehicle's bearer token", read_only=True),
    ParamSpec("vehicle_id", "vehicle", "vehicle id written into each batch", read_only=True),
    ParamSpec("ca_file", "", "CA bundle for a private server certificate", read_only=True),
    ParamSpec("verify_tls", True, "verify the server certificate (keep on outside tests)",
              read_only=True),
    ParamSpec("bandwidth_kbps", 0.0, "upload cap in kbit/s; 0 = none", (0.0, 1e7),
              read_only=True),
    ParamSpec("batch_max_count", 32, "samples per batch", (1, 10000), read_only=True),
    ParamSpec("batch_max_mb", 4.0, "bytes per batch", (0.01, 1024.0), read_only=True),
    ParamSpec("batch_max_age_s", 30.0, "upload a partial batch once its oldest waits this long",
              (0.0, 86400.0), read_only=True),
    ParamSpec("band_low", 0.3, "uncertainty band: lowest score kept as a hard example",
              (0.0, 1.0), read_only=True),
    ParamSpec("band_high", 0.6, "uncertainty band: highest score kept as a hard example",
              (0.0, 1.0), read_only=True),
    ParamSpec("random_rate", 0.01, "class-balanced random sample: base keep probability",
              (0.0, 1.0), read_only=True),
    ParamSpec("min_interval_s", 1.0, "least time between kept frames (except on demand)",
              (0.0, 3600.0), read_only=True),
    ParamSpec("blur_faces", True, "blur faces before storing", read_only=True),
    ParamSpec("blur_plates", True, "blur licence plates before storing", read_only=True),
    ParamSpec("jpeg_quality", 90, "JPEG quality of stored frames", (10, 100), read_only=True),
    ParamSpec("seed", 0, "random sample seed", (0, 2**31 - 1), read_only=True),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics", (0.1, 60.0),
              read_only=True),
)


@dataclass(frozen=True)
class UploaderNodeConfig:
    store_dir: str
    quota_mb: float
    endpoint: str
    token_file: str
    vehicle_id: str
    ca_file: str
    verify_tls: bool
    bandwidth_kbps: float
    batch_max_count: int
    batch_max_mb: float
    batch_max_age_s: float
    band_low: float
    band_high: float
    random_rate: float
    min_interval_s: float
    blur_faces: bool
    blur_plates: bool
    jpeg_quality: int
    seed: int
    diagnostics_period_s: float


def _camera_info(msg: CameraInfo) -> dict[str, Any]:
    return {"frame_id": msg.header.frame_id, "width": int(msg.width),
            "height": int(msg.height), "distortion_model": msg.distortion_model,
            "d": [float(v) for v in msg.d], "k": [float(v) for v in msg.k],
            "p": [float(v) for v in msg.p]}


def _detections(msg: RoadHazardArray) -> list[SampleDetection]:
    return [SampleDetection(int(h.class_id), h.class_name, float(h.score),
                            (float(h.x_min), float(h.y_min), float(h.x_max), float(h.y_max)))
            for h in msg.hazards]


class UploaderNode(Node):
    def __init__(self, node_name: str = "sample_uploader_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        cfg = self.config = declare_params(self, SPECS, UploaderNodeConfig)
        if cfg.band_low > cfg.band_high:
            raise ParamError("band_low must be <= band_high")
        try:
            self.store = SampleStore(Path(cfg.store_dir).expanduser(),
                                     int(cfg.quota_mb * 2**20))
        except StoreLocked as e:
            raise ParamError(str(e)) from None
        self.recorder = Recorder(self.store, RecorderConfig(
            selection=SelectionConfig(band=(cfg.band_low, cfg.band_high),
                                      random_rate=cfg.random_rate,
                                      min_interval_s=cfg.min_interval_s, seed=cfg.seed),
            privacy=PrivacyConfig(faces=cfg.blur_faces, plates=cfg.blur_plates),
            jpeg_quality=cfg.jpeg_quality))
        self.uploader: Uploader | None = None
        if cfg.endpoint:
            self.uploader = self._make_uploader(cfg)
        self._info: dict[str, Any] = {}
        self.create_subscription(Image, "image_raw", self._on_image, qos.sensor_input())
        self.create_subscription(CameraInfo, "camera_info", self._on_info, qos.sensor_input())
        self.create_subscription(RoadHazardArray, "hazards", self._on_hazards, qos.hazards())
        self.create_subscription(Empty, "~/capture", self._on_capture, 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics",
                                               qos.diagnostics())
        self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)
        self.recorder.start()
        if self.uploader is not None:
            self.uploader.start()

    def _make_uploader(self, cfg: UploaderNodeConfig) -> Uploader:
        if not cfg.token_file or not Path(cfg.token_file).is_file():
            raise ParamError(f"endpoint is set but token_file {cfg.token_file!r} is missing")
        token = Path(cfg.token_file).read_text().strip()
        bucket = TokenBucket(cfg.bandwidth_kbps * 125.0) if cfg.bandwidth_kbps > 0 else None
        transport = HttpTransport(cfg.endpoint, token, ca_file=cfg.ca_file or None,
                                  verify=cfg.verify_tls, bucket=bucket)
        return Uploader(self.store, transport, UploaderConfig(
            cfg.vehicle_id, batch_max_count=cfg.batch_max_count,
            batch_max_bytes=int(cfg.batch_max_mb * 2**20),
            batch_max_age_s=cfg.batch_max_age_s), random.Random())

    # -- executor callbacks: convert and hand over ---------------------------------------------
    def _on_image(self, msg: Image) -> None:
        try:
            frame = image_to_numpy(msg)
        except ValueError as e:
            self.get_logger().warning(f"dropping image: {e}", throttle_duration_sec=5.0)
            return
        if msg.encoding != "bgr8":
            self.get_logger().warning(f"only bgr8 images are kept, got {msg.encoding}",
                                      once=True)
            return
        info = self._info or {"width": int(msg.width), "height": int(msg.height)}
        self.recorder.on_image(stamp_to_ns(msg.header.stamp), frame, info)

    def _on_info(self, msg: CameraInfo) -> None:
        self._info = _camera_info(msg)

    def _on_hazards(self, msg: RoadHazardArray) -> None:
        self.recorder.on_detections(stamp_to_ns(msg.header.stamp), _detections(msg),
                                    msg.model_id)

    def _on_capture(self, _msg: Empty) -> None:
        self.recorder.request_capture()

    def _publish_diagnostics(self) -> None:
        s = self.store.stats()
        w = self.recorder.writer.counters
        up = self.uploader.stats() if self.uploader is not None else {}
        values: dict[str, object] = {
            "queue_depth": self.recorder.writer.depth(), "dropped_full": w["dropped_full"],
            "kept": w["stored"], "store_full": w["store_full"], "errors": w["errors"],
            "unmatched_frames": self.recorder.unmatched,
            "blurred_regions": self.recorder.blurred_regions,
            "samples": s.samples, "bytes_used": s.bytes_used, "quota_bytes": s.quota_bytes,
            "evicted": s.counters["evicted"], "evicted_bytes": s.counters["evicted_bytes"],
            "pending_batches": s.pending_batches,
            "uploads": up.get("uploads", 0), "samples_sent": up.get("samples_sent", 0),
            "duplicates": up.get("duplicates", 0), "failures": up.get("failures", 0),
            "online": up.get("online", False), "last_error": up.get("last_error", ""),
        }
        level, message = "ok", "storing" if self.uploader is None else "uploading"
        if self.uploader is not None and not up.get("online", False):
            level, message = "warn", "ingest server unreachable; samples wait on disk"
        if w["errors"]:
            level, message = "warn", f"sample errors: {self.recorder.writer.last_error}"
        self._diag_pub.publish(diagnostic_array(
            self.get_clock().now().nanoseconds, f"{self.get_name()}: uploads", level, message,
            values))

    def destroy_node(self) -> None:
        if hasattr(self, "recorder"):
            self.recorder.stop()
        if getattr(self, "uploader", None) is not None:
            self.uploader.stop()
        if hasattr(self, "store"):
            self.store.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    # Background work, before DDS starts its threads (they inherit it): SCHED_IDLE + nice, so
    # on a busy CPU this process takes only time the detector leaves (it then keeps fewer
    # frames; the detector does not slow down).
    lower_thread_priority(BACKGROUND_NICE)
    return run_node(UploaderNode, args, "sample_uploader_node")


if __name__ == "__main__":
    sys.exit(main())
