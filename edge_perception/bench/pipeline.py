"""`edge-perception bench pipeline`: camera process → detector_node over the real ROS graph.

A camera publisher in a separate process (`--publisher` mode of this module) replays
1280x720 bgr8 road frames from the simulator at a fixed rate, with CameraInfo, through the
FastDDS profile of config/fastdds.xml. This process runs detector_node (configured and
activated as the launcher does) and a listener on its hazards. Per rate (default 30 then
120 Hz) it reports processed fps, skipped frames, latency p50/p99 (image stamp → publish),
CPU % (detector process; publisher separately), peak RSS and the time from node start to the
first hazard message. With --json, everything is ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_node_thread_args", "get_args_parser", "main", "node_threads", "pick_model",
           "resolve_node_thread_args", "road_frames", "run_once"]

TOPIC = "camera/image_raw"
REPO = Path(__file__).resolve().parents[2]


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    p.add_argument("--seconds", type=float, default=30.0, help="measured time per rate")
    p.add_argument("--rates", default="30,120", help="publisher rates in Hz (comma-separated)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--model", default="", help="model file (default: the shipped INT8 model, "
                   "else a random-weight FP32 model, reported as such)")
    add_node_thread_args(p)
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="extra detector_node parameter (YAML value), e.g. worker_nice=0")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rate", type=float, default=30.0, help=argparse.SUPPRESS)
    return p


def add_node_thread_args(p: argparse.ArgumentParser) -> None:
    """--config, --threads, --workers: the detector's thread counts, by default those of
    detector_node in the params file (`resolve_node_thread_args` fills them in)."""
    p.add_argument("--config", default=str(REPO / "config" / "params.yaml"),
                   help="params file whose detector_node section gives the defaults of "
                        "--threads and --workers")
    p.add_argument("--threads", type=int, default=None,
                   help="inference_threads of the detector (default: from --config)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker_threads of the detector (default: from --config)")


def resolve_node_thread_args(args: argparse.Namespace) -> None:
    """Replace an unset --threads / --workers with the params file's value."""
    threads, workers = node_threads(args.config)
    args.threads = threads if args.threads is None else args.threads
    args.workers = workers if args.workers is None else args.workers


def node_threads(config: str | Path) -> tuple[int, int]:
    """(inference_threads, worker_threads) of detector_node in a params file, each defaulting
    to what DetectorNode declares when the file leaves it out."""
    from edge_perception.launcher import load_params_file
    from edge_perception.nodes.detector_params import SPECS

    section = {**{s.name: s.default for s in SPECS},
               **load_params_file(config).get("detector_node", {})}
    return int(section["inference_threads"]), int(section["worker_threads"])


# -- the camera process ---------------------------------------------------------------------
def road_frames(width: int, height: int) -> tuple[list[np.ndarray], Any]:
    """Four simulator frames (bgr8, a 90° camera 1.4 m above a road with hazards, moving 2 m
    per frame) and their sensor_msgs/CameraInfo (header left to the caller)."""
    from sensor_msgs.msg import CameraInfo

    from edge_perception.geometry import CameraIntrinsics, CameraMount
    from edge_perception.sim import Scenario

    intr = CameraIntrinsics.from_hfov(width, height, math.radians(90.0))
    scenario = Scenario()
    renderer = scenario.renderer(intr, CameraMount(z=1.4, pitch=math.radians(6.0)), seed=0)
    frames = [renderer.render(scenario.hazards, x).image for x in (0.0, 2.0, 4.0, 6.0)]
    k = [float(v) for v in intr.K.reshape(-1)]
    camera_info = CameraInfo(width=width, height=height, distortion_model="plumb_bob",
                             d=[0.0] * 5, k=k, r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                             p=k[:3] + [0.0] + k[3:6] + [0.0] + k[6:] + [0.0])
    return frames, camera_info


def _publisher(args: argparse.Namespace) -> int:
    import rclpy
    from sensor_msgs.msg import CameraInfo, Image

    from edge_perception.nodes import qos
    from edge_perception.nodes.convert import numpy_to_image, stamp_from_ns
    from edge_perception.nodes.entry import init_rclpy, shutdown_quietly, stop_on_signals

    frames, camera_info = road_frames(args.width, args.height)
    init_rclpy([])
    node = rclpy.create_node("bench_camera")
    pub = node.create_publisher(Image, TOPIC, qos.camera_output())
    info = node.create_publisher(CameraInfo, "camera/camera_info", qos.camera_output())
    print("ready", flush=True)
    period, sent = 1.0 / args.rate, 0
    t0 = time.monotonic()
    end = t0 + args.seconds
    # SIGTERM (how the bench ends it) or SIGINT stops the loop; the node goes before the context
    with stop_on_signals() as stop:
        try:
            while not stop.is_set() and time.monotonic() < end:
                stamp = node.get_clock().now().nanoseconds
                pub.publish(numpy_to_image(frames[sent % len(frames)], stamp, "camera_optical"))
                camera_info.header.stamp = stamp_from_ns(stamp)
                camera_info.header.frame_id = "camera_optical"
                info.publish(camera_info)
                sent += 1
                stop.wait(max(0.0, t0 + sent * period - time.monotonic()))
        finally:
            print(f"sent {sent}", flush=True)
            shutdown_quietly([node])
    return 0


# -- the detector side -------------------------------------------------------------------------
def pick_model(path: str = "") -> tuple[str, str]:
    """(model path, note): the given file, the shipped INT8 model the node picks on a CPU
    (ONNX, else TorchScript), else a random FP32 model."""
    from edge_perception.detect.loading import shipped_cpu_model
    from edge_perception.detect.onnx_detector import is_onnx

    if path:
        return path, "given"
    shipped = shipped_cpu_model()
    if shipped.is_file():
        return str(shipped), ("shipped INT8 on onnxruntime (the CPU default)" if is_onnx(shipped)
                              else "shipped INT8 TorchScript")
    import torch

    from edge_perception.detect.model_io import save_fp32
    from edge_perception.detect.network import HazardNet
    from edge_perception.detect.spec import ModelSpec

    torch.manual_seed(0)
    out = Path(tempfile.mkdtemp(prefix="bench_pipeline_")) / "random_fp32.pt"
    save_fp32(out, HazardNet().eval(), ModelSpec(), {"name": "random", "version": "bench"})
    return str(out), "random-weight FP32 HazardNet (models/hazard_int8.ts not shipped yet)"


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_once(rate: float, seconds: float, model: str, width: int = 1280, height: int = 720,
             threads: int = 1, params: dict[str, Any] | None = None,
             workers: int = 2) -> dict[str, Any]:
    """One publisher process at `rate` Hz for `seconds` (after the first hazard) → metrics.
    `params`: extra detector_node parameters."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from edge_perception.nodes import qos
    from edge_perception.nodes.detector_node import DetectorNode
    from edge_perception_msgs.msg import RoadHazardArray

    qos.use_fastdds_profile()
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    pub = subprocess.Popen(
        [sys.executable, "-m", "edge_perception.bench.pipeline", "--publisher", "--rate",
         str(rate), "--seconds", str(seconds + 120.0), "--width", str(width), "--height",
         str(height)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready = pub.stdout.readline() if pub.stdout else ""
    if "ready" not in ready:
        pub.kill()
        raise RuntimeError(f"camera publisher did not start: {ready}{pub.communicate()[0]}")
    ctx = Context()
    rclpy.init(context=ctx, args=[])
    got: list[tuple[float, float, int]] = []  # (arrival monotonic, latency_s, n hazards)
    t_start = time.monotonic()
    node = DetectorNode(context=ctx, parameter_overrides=[
        Parameter("model_path", value=model), Parameter("image_topics", value=[TOPIC]),
        Parameter("inference_threads", value=threads),
        Parameter("worker_threads", value=workers),
        Parameter("camera_pitch", value=math.radians(6.0))]
        + [Parameter(k, value=v) for k, v in (params or {}).items()])
    listener = rclpy.create_node("bench_listener", context=ctx)
    listener.create_subscription(
        RoadHazardArray, "/detector_node/hazards",
        lambda m: got.append((time.monotonic(), m.latency_s, len(m.hazards))), qos.hazards())
    # Not MultiThreadedExecutor: rclpy's (ros2/rclpy#1452, fixed upstream in #1547 after the
    # Kilted wheels) took in only 21.6 of 30 fps here with p99 440 ms; one thread: 30 of 30,
    # p99 79 ms. The node's work runs on its own worker thread anyway.
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    executor.add_node(listener)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        for step in (node.trigger_configure, node.trigger_activate):
            if step() != TransitionCallbackReturn.SUCCESS:
                raise RuntimeError(f"detector_node: {step.__name__} failed")
        activated = time.monotonic() - t_start
        while not got and time.monotonic() - t_start < 120.0:
            time.sleep(0.01)
        if not got:
            raise RuntimeError("no hazard message within 120 s")
        first = got[0][0] - t_start
        n0, (rx0, sk0), cpu0, t0 = len(got), node.slots.totals(), _cpu_s(), time.monotonic()
        time.sleep(seconds)
        n1, (rx1, sk1), cpu1, t1 = len(got), node.slots.totals(), _cpu_s(), time.monotonic()
        snap = node.stats.snapshot()
    finally:
        pub.terminate()
        out = pub.communicate(timeout=30)[0]
        executor.shutdown(timeout_sec=5.0)
        node.destroy_node()
        listener.destroy_node()
        rclpy.try_shutdown(context=ctx)
    dt = t1 - t0
    lat = np.array([g[1] for g in got[n0:n1]]) * 1e3
    sent = next((int(line.split()[1]) for line in out.splitlines()
                 if line.startswith("sent ")), -1)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "rate_hz": rate, "seconds": round(dt, 2), "frames_published_total": sent,
        "input_fps": round((rx1 - rx0) / dt, 2), "processed_fps": round((n1 - n0) / dt, 2),
        "skipped_frames": sk1 - sk0, "late_dropped": int(snap["late_dropped"]),
        "not_received": max(0, round(rate * dt) - (rx1 - rx0)),
        "latency_p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "latency_p99_ms": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
        "cpu_percent": round(100.0 * (cpu1 - cpu0) / dt, 1),
        "publisher_cpu_percent": round(100.0 * (children.ru_utime + children.ru_stime
                                                - kids0.ru_utime - kids0.ru_stime)
                                       / max(1e-9, time.monotonic() - t_start), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "time_to_first_hazard_s": round(first, 2), "activate_s": round(activated, 2),
        **{f"stage_{k}": round(float(v), 2) for k, v in snap.items()
           if k.endswith("_p50_ms") and not k.startswith("latency")},
        "hazards_per_frame": round(float(np.mean([g[2] for g in got[n0:n1]])), 2)
        if n1 > n0 else 0.0,
    }


def main(args: argparse.Namespace) -> int:
    if args.publisher:
        return _publisher(args)
    rates = [float(r) for r in str(args.rates).split(",") if r.strip()]
    model, note = pick_model(args.model)
    import yaml

    params = {k: yaml.safe_load(v) for k, _, v in (p.partition("=") for p in args.param)}
    resolve_node_thread_args(args)
    report: dict[str, Any] = {"model": model, "model_note": note, "width": args.width,
                              "height": args.height, "threads": args.threads,
                              "workers": args.workers,
                              "params": params, "cpus": os.cpu_count(), "runs": []}
    for rate in rates:
        if not args.json:
            print(f"publisher at {rate:g} Hz for {args.seconds:g} s ...", flush=True)
        run = run_once(rate, args.seconds, model, args.width, args.height, args.threads,
                       params, args.workers)
        report["runs"].append(run)
        if not args.json:
            print("  " + ", ".join(f"{k} {v}" for k, v in run.items()), flush=True)
    if args.json:
        print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
