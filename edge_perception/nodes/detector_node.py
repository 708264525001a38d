"""detector_node: camera frames → `RoadHazardArray` on `~/hazards` (a lifecycle node).

Lifecycle (driven from outside: `edge-perception run` or launch): configure reads the
parameters and creates publishers; activate loads the model, warms up Numba and the model,
starts the worker and subscribes; deactivate unsubscribes, stops the worker and frees the
model. Callbacks only drop each message into its camera's latest-wins slot; the worker thread
(`worker_threads` of them, sharing the model) converts, runs the batched pipeline
(`perception.HazardPipeline`) and publishes, each camera's hazards in arrival order.

Subscribes: every `image_topics` entry (Image, or CompressedImage for `.../compressed`, sensor
QoS) and its sibling `camera_info`. Publishes: `~/hazards`, and only while someone listens,
`~/debug_image` (bgr8, boxes + labels + range) and `~/markers` (MarkerArray); `/diagnostics`.
"""

from __future__ import annotations

import itertools
import posixpath
import sys
import threading
import time
from collections.abc import Hashable
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from visualization_msgs.msg import MarkerArray

from edge_perception.detect.loading import load_frame_detector
from edge_perception.detect.types import DetectorConfig
from edge_perception.geometry import rotation_from_quaternion
from edge_perception.perception import Frame, HazardPipeline, LatestSlots, PipelineStats
from edge_perception.perception import SlotWorker, freeze_startup_heap, thaw_heap
from edge_perception.publish import draw_hazards, hazard_markers, to_bgr
from edge_perception_msgs.msg import RoadHazardArray

from . import qos
from .convert import (
    camera_info_to_intrinsics,
    compressed_to_array,
    hazards_to_msg,
    image_msg_to_array,
    markers_to_msg,
    numpy_to_image,
    stamp_to_ns,
)
from .detector_params import RUNTIME, SPECS, DetectorParams, mount_from
from .diagnostics import diagnostic_array
from .entry import run_node
from .params import apply_changes, declare_params, validate_changes

__all__ = ["DetectorNode", "camera_info_topic", "main"]

Ok = TransitionCallbackReturn


def camera_info_topic(image_topic: str) -> str:
    """`/cam/image_raw` and `/cam/image_raw/compressed` → `/cam/camera_info`."""
    base = image_topic.removesuffix("/compressed")
    parent = posixpath.dirname(base)
    return posixpath.join(parent, "camera_info") if parent else "camera_info"


class DetectorNode(LifecycleNode):
    def __init__(self, node_name: str = "detector_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._subs: list[Any] = []
        self._pubs: dict[str, Any] = {}
        self._pipeline: HazardPipeline | None = None
        self._worker: SlotWorker | None = None
        self._frozen = 0  # objects this node exempted from GC at activation (heap.py)
        self._tf: Any = None
        self.config: DetectorParams = declare_params(self, SPECS, DetectorParams)
        self.stats = PipelineStats()
        self.slots = LatestSlots()
        self._intrinsics: dict[Hashable, Any] = {}
        self._info_keys: dict[Hashable, tuple] = {}
        self._publish_lock = threading.Lock()
        self._last_published: dict[Hashable, int] = {}  # camera → arrival number
        self._arrivals = itertools.count()
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # -- lifecycle -------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        cfg = self.config
        if not cfg.image_topics or any(not t for t in cfg.image_topics):
            self.get_logger().error("image_topics must name at least one topic")
            return Ok.FAILURE
        self._pubs = {
            "hazards": self.create_lifecycle_publisher(RoadHazardArray, "~/hazards",
                                                       qos.hazards()),
            "debug": self.create_lifecycle_publisher(Image, "~/debug_image", qos.sensor_input()),
            "markers": self.create_lifecycle_publisher(MarkerArray, "~/markers", qos.hazards()),
            "diag": self.create_publisher(DiagnosticArray, "/diagnostics", qos.diagnostics()),
        }
        self._diag_timer = self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        cfg, log = self.config, self.get_logger()
        t0 = time.monotonic()
        try:
            detector = load_frame_detector(cfg.model_path, cfg.device, DetectorConfig(
                cfg.score_threshold, cfg.nms_iou, cfg.max_detections),
                concurrency=cfg.worker_threads, threads=cfg.inference_threads)
            detector.update_config(enabled_classes=self._class_ids(cfg.enabled_classes,
                                                                   detector.spec.class_names))
            detector.warmup()
        except FileNotFoundError as e:
            log.error(f"{e} (set model_path, or ship models/hazard_int8.onnx or .ts)")
            return Ok.FAILURE
        except (ValueError, RuntimeError, OSError) as e:
            log.error(f"cannot load model {cfg.model_path or '(shipped)'}: {e}")
            return Ok.FAILURE
        self._declare_input_size(detector.spec.input_width, detector.spec.input_height)
        self._pipeline = HazardPipeline(detector, mount_from(cfg))
        self._start_tf()
        self._worker = SlotWorker(self.slots, self._process, self._on_worker_error,
                                  name=f"{self.get_name()}-worker", nice=cfg.worker_nice,
                                  threads=cfg.worker_threads)
        self._worker.start()
        for topic in cfg.image_topics:
            self._subscribe(topic)
        frozen = self._frozen = freeze_startup_heap()  # no ~70 ms full GC passes in flight
        log.info(f"active: {detector.model_id} on {detector.device}, "
                 f"{cfg.worker_threads} worker(s) (load + warm-up {time.monotonic() - t0:.1f} s), "
                 f"cameras {', '.join(cfg.image_topics)}; {frozen} start-up objects exempt from GC")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._destroy_publishers()
        return Ok.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._destroy_publishers()
        return Ok.SUCCESS

    def _release(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self._pipeline = None  # frees the model
        self._tf = None
        if self._frozen:
            thaw_heap()
            self._frozen = 0

    def _destroy_publishers(self) -> None:
        if getattr(self, "_diag_timer", None) is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self._pubs = {}

    def destroy_node(self) -> None:
        self._release()
        super().destroy_node()

    # -- set-up helpers --------------------------------------------------------------------
    def _subscribe(self, topic: str) -> None:
        compressed = topic.endswith("/compressed")
        msg_type = CompressedImage if compressed else Image
        self._subs.append(self.create_subscription(
            msg_type, topic, lambda m, k=topic: self._on_image(k, m), qos.sensor_input()))
        self._subs.append(self.create_subscription(
            CameraInfo, camera_info_topic(topic), lambda m, k=topic: self._on_info(k, m),
            qos.sensor_input()))

    def _declare_input_size(self, width: int, height: int) -> None:
        from rcl_interfaces.msg import ParameterDescriptor

        for name, value in (("input_width", width), ("input_height", height)):
            if not self.has_parameter(name):
                self.declare_parameter(name, value, ParameterDescriptor(
                    description="model input size (from the model file)", read_only=True))

    def _start_tf(self) -> None:
        if not self.config.use_tf:
            return
        try:
            import tf2_ros  # optional: not installable everywhere
        except ImportError:
            self.get_logger().info("tf2_ros not available: camera pose from camera_* params")
            return
        buffer = tf2_ros.Buffer()
        self._tf = (buffer, tf2_ros.TransformListener(buffer, self))

    @staticmethod
    def _class_ids(names: tuple[str, ...], known: tuple[str, ...]) -> tuple[int, ...] | None:
        if tuple(names) == ("all",):
            return None
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise ValueError(f"enabled_classes: unknown {unknown or names} "
                             f"(model classes: {', '.join(known)}, or all)")
        return tuple(known.index(n) for n in names)

    # -- executor callbacks: only store -----------------------------------------------------
    def _on_image(self, camera: str, msg: Any) -> None:
        """Raw frames are checked here (header arithmetic and a numpy view, no copy), so a
        malformed message never displaces the latest good frame; JPEG/PNG decoding is too
        costly for the executor and happens on the worker."""
        self.stats.frame_in()
        arrival = next(self._arrivals)  # orders results when several workers run
        if isinstance(msg, CompressedImage):
            self.slots.put(camera, (arrival, msg, None, ""))
            return
        try:
            image, encoding = image_msg_to_array(msg)
        except ValueError as e:
            self._reject(camera, str(e))
            return
        self.slots.put(camera, (arrival, msg, image, encoding))

    def _on_info(self, camera: str, msg: CameraInfo) -> None:
        key = (tuple(msg.k), tuple(msg.d), msg.distortion_model, msg.width, msg.height)
        if self._info_keys.get(camera) == key:
            return
        try:
            self._intrinsics[camera] = camera_info_to_intrinsics(msg)
        except ValueError as e:
            self._reject(camera, f"camera_info: {e}")
            self._intrinsics[camera] = None
        self._info_keys[camera] = key

    def _on_set_parameters(self, params: list[Any]) -> Any:
        result = validate_changes(SPECS, params)
        if not result.successful:
            return result
        new = apply_changes(self.config, params)
        pipeline = self._pipeline
        try:
            mount = mount_from(new)
            ids = self._class_ids(new.enabled_classes, pipeline.detector.spec.class_names) \
                if pipeline is not None else None
        except ValueError as e:
            result.successful, result.reason = False, str(e)
            return result
        self.config = new
        if pipeline is not None and any(p.name in RUNTIME for p in params):
            pipeline.detector.update_config(score_threshold=new.score_threshold,
                                            nms_iou=new.nms_iou, enabled_classes=ids)
            if mount != pipeline.mount:
                pipeline.set_mount(mount)
        return result

    # -- worker thread -----------------------------------------------------------------------
    def _process(self, batch: dict[Hashable, Any]) -> None:
        pipeline = self._pipeline
        if pipeline is None:
            return
        frames, arrivals = [], []
        for camera, (arrival, msg, image, encoding) in batch.items():
            t0 = time.perf_counter()
            if image is None:  # compressed: decoded here, off the executor
                try:
                    image, encoding = compressed_to_array(msg)
                except ValueError as e:
                    self._reject(camera, str(e))
                    continue
            frames.append(Frame(camera, image, encoding, stamp_to_ns(msg.header.stamp),
                                msg.header.frame_id, self._intrinsics.get(camera)))
            arrivals.append(arrival)
            self.stats.stage("convert", time.perf_counter() - t0)
        if not frames:
            return
        self.stats.batch(len(frames))
        self._apply_tf(pipeline, frames)
        for result, arrival in zip(pipeline.process(frames), arrivals):
            t0 = time.perf_counter()
            self._publish(result, pipeline, arrival)
            for stage, seconds in result.times.items():
                self.stats.stage(stage, seconds)
            self.stats.stage("publish", time.perf_counter() - t0)

    def _publish(self, result: Any, pipeline: HazardPipeline, arrival: int) -> None:
        cfg, frame = self.config, result.frame
        msg = hazards_to_msg(result, cfg.base_frame, pipeline.detector.model_id, 0.0)
        with self._publish_lock:  # each camera's hazards go out in arrival order
            if arrival < self._last_published.get(frame.camera, -1):
                self.stats.late_result()  # another worker published a newer frame first
                return
            self._last_published[frame.camera] = arrival
            now = self.get_clock().now().nanoseconds
            msg.latency_s = (now - frame.stamp_ns) * 1e-9
            self._pubs["hazards"].publish(msg)
        self.stats.published(msg.latency_s)
        debug, markers = self._pubs["debug"], self._pubs["markers"]
        if debug.get_subscription_count() > 0:
            img = draw_hazards(to_bgr(frame.image, frame.encoding), result.detections,
                               result.ground)
            debug.publish(numpy_to_image(img, frame.stamp_ns, frame.frame_id))
        if markers.get_subscription_count() > 0:
            data = hazard_markers(result.detections, result.ground)
            markers.publish(markers_to_msg(data, frame.stamp_ns, cfg.base_frame,
                                           f"{self.get_name()}/{frame.camera}"))

    def _apply_tf(self, pipeline: HazardPipeline, frames: list[Frame]) -> None:
        if self._tf is None:
            return
        from rclpy.time import Time

        for f in frames:
            try:
                t = self._tf[0].lookup_transform(self.config.base_frame, f.frame_id, Time())
            except Exception:  # noqa: BLE001 - no transform yet: keep the parameter mount
                continue
            q, p = t.transform.rotation, t.transform.translation
            pipeline.set_transform(f.camera, rotation_from_quaternion(q.x, q.y, q.z, q.w),
                                   (p.x, p.y, p.z))

    def _reject(self, camera: Hashable, reason: str) -> None:
        self.stats.reject(f"{camera}: {reason}")
        self.get_logger().warning(
            f"rejected input on {camera}: {reason} ({self.stats.rejected} rejected so far)",
            throttle_duration_sec=self.config.log_throttle_s)

    def _on_worker_error(self, error: BaseException) -> None:
        self.stats.error()
        self.get_logger().error(f"pipeline error: {type(error).__name__}: {error}",
                                throttle_duration_sec=self.config.log_throttle_s)

    # -- diagnostics --------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        pipeline = self._pipeline
        s = self.stats.snapshot()
        received, skipped = self.slots.totals()
        values: dict[str, object] = {**s, "frames_received": received,
                                     "skipped_frames": skipped}
        if pipeline is not None:
            det = pipeline.detector
            values.update(model_id=det.model_id, model_sha256=det.model.sha256,
                          model_path=str(det.model.path), device=str(det.device))
            level, message = ("ok", "processing") if s["input_fps"] else ("warn", "no input")
        else:
            level, message = "warn", "inactive (model not loaded)"
        self._pubs["diag"].publish(diagnostic_array(
            self.get_clock().now().nanoseconds, f"{self.get_name()}: detector", level, message,
            values))


def main(args: list[str] | None = None) -> int:
    """Run the node unconfigured: drive it with `edge-perception run` / launch (lifecycle)."""
    return run_node(DetectorNode, args, "detector_node")


if __name__ == "__main__":
    sys.exit(main())
