"""`edge-perception bench upload`: the sample store and uploader, measured.

* enqueue: the producer's cost of `SampleWriter.submit` (the non-blocking hand-off a
  node's callback pays) and the worker's cost of a durable `SampleStore.put` (fsync'd);
* throughput: a backlog uploaded to a real `ingest-server` subprocess on 127.0.0.1;
* interference: latency of detector calls (`--workers` at once, as worker_threads runs them)
  in four modes: "off"; "upload", an Uploader thread in the detector's process draining a
  backlog over a bandwidth-capped link (as `edge-perception run` hosts the node); "upload+blur",
  the same plus blurring and storing frames at `--keep-rate` per second (blur in a background
  process, as in the node); and "node", the real sample_uploader_node in its own process, as
  vehicle.launch.py runs it, fed 1280x720 frames at `--rate` with in-band hazards by a camera
  process that runs in every mode (it keeps, blurs, stores and uploads). Each round runs one
  short block of every mode in random order (the node is paused with SIGSTOP outside its
  blocks), so a noisy spell of a shared machine hits all modes alike; the p99 increase over
  "off" comes with a 95 % bootstrap interval over rounds. The detector is the one the node
  loads on a CPU (the shipped onnxruntime model, `--threads` per call) when its model file
  loads; otherwise a CPU-bound stand-in (`"detector": "stand-in"`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_perception.bench.pipeline import add_node_thread_args, resolve_node_thread_args
from edge_perception.learn.privacy import BlurProcess, encode_jpeg
from edge_perception.learn.sample import Reason, Sample, SampleDetection
from edge_perception.learn.store import SampleStore
from edge_perception.learn.transport import HttpTransport, TokenBucket
from edge_perception.learn.uploader import Uploader, UploaderConfig
from edge_perception.learn.writer import SampleWriter

__all__ = ["get_args_parser", "main"]

TOKEN = "bench-upload-token-0123456789"


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.add_argument("--samples", type=int, default=200, help="backlog for the throughput run")
    p.add_argument("--enqueue-iters", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=60,
                   help="interference rounds; each runs one block of every mode, in random order")
    p.add_argument("--block", type=int, default=24, help="detector calls per block")
    p.add_argument("--link-mbps", type=float, default=8.0,
                   help="bandwidth cap during the interference run (Mbit/s)")
    p.add_argument("--keep-rate", type=float, default=0.5,
                   help="frames/s blurred and stored during the interference run")
    add_node_thread_args(p)  # inference threads per call, detector calls running at once
    p.add_argument("--rate", type=float, default=30.0,
                   help="camera frames/s fed to sample_uploader_node in the 'node' mode")
    p.add_argument("--node-backlog", type=int, default=400,
                   help="1280x720 samples (~160 kB) waiting in the node's store at its start")
    p.add_argument("--node-startup-s", type=float, default=4.0,
                   help="time the node gets to start before the first round")
    p.add_argument("--feeder", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help="keep the store and server folders here")
    return p


def _frame(seed: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(100, 25, (256, 448, 3)), 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (0, 0), 1.5)


def _sample(i: int, jpeg: bytes) -> Sample:
    return Sample(jpeg, (SampleDetection(0, "pothole", 0.5, (10, 20, 80, 60)),), "bench@0",
                  {"width": 448, "height": 256}, float(i), Reason.HARD_EXAMPLE, 1)


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def _server(root: Path, tokens: Path) -> tuple[subprocess.Popen[str], str]:
    tokens.write_text(f"bench {TOKEN}\n")
    proc = subprocess.Popen([sys.executable, "-m", "edge_perception.cli", "ingest-server",
                             "--root", str(root), "--tokens", str(tokens), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    # It stands in for a machine in the cloud, so it must not compete with the detector for
    # this machine's cores: SCHED_IDLE, set before the interpreter has started its threads
    # (they inherit it).
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(proc.pid, os.SCHED_IDLE, os.sched_param(0))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"ingest-server did not start: {line!r}")
    return proc, line.split()[3]


def _detector(threads: int, workers: int) -> tuple[str, Any]:
    """The detector the node runs on a CPU (same loader: the shipped onnxruntime model, safe for
    `workers` concurrent calls of `threads` threads each), else a CPU-bound stand-in of similar
    cost when no model loads."""
    frame = np.ascontiguousarray(np.tile(_frame(0), (3, 3, 1))[:720, :1280])
    try:
        from edge_perception.detect.loading import load_frame_detector

        det = load_frame_detector("", "cpu", concurrency=workers, threads=threads)
        det.warmup()
        return det.model_id, lambda: det.detect(frame, "bgr8")
    except Exception:  # noqa: BLE001 - no model file yet: measure the stand-in
        import cv2

        cv2.setNumThreads(1)  # one core, like the detector's inference thread

        def stand_in() -> None:  # letterbox + filtering, ~10-20 ms on one idle core
            small = cv2.resize(frame, (448, 256), interpolation=cv2.INTER_AREA)
            for _ in range(4):
                small = cv2.GaussianBlur(small, (0, 0), 3.0)
        return "stand-in", stand_in


def _enqueue(work: Path, iters: int) -> dict[str, float]:
    jpeg = encode_jpeg(_frame(1))
    with SampleStore(work / "enq", quota_bytes=1 << 30) as store:
        puts = []
        for i in range(100):
            s = _sample(i, jpeg)
            t = time.perf_counter()
            store.put(s)
            puts.append(time.perf_counter() - t)
        writer: SampleWriter[int] = SampleWriter(store, lambda i: _sample(i, jpeg), maxsize=64)
        writer.start()
        subs = []
        for i in range(iters):
            t = time.perf_counter()
            writer.submit(i)
            subs.append(time.perf_counter() - t)
            if i % 50 == 0:
                time.sleep(0.002)
        writer.stop()
    return {"submit_us_p50": _pct(subs, 50) * 1e6, "submit_us_p99": _pct(subs, 99) * 1e6,
            "put_ms_p50": _pct(puts, 50) * 1e3, "put_ms_p99": _pct(puts, 99) * 1e3,
            "jpeg_bytes": len(jpeg), "dropped_full": writer.counters["dropped_full"]}


def _fill(store: SampleStore, n: int, start: int = 0, frames: list[np.ndarray] | None = None
          ) -> int:
    """Put `n` distinct samples (JPEGs of `frames`, default 448x256 noise) into `store`."""
    jpegs = [encode_jpeg(f) for f in frames or [_frame(i) for i in range(16)]]
    total = 0
    for i in range(start, start + n):
        jpeg = jpegs[i % len(jpegs)] + i.to_bytes(4, "big")
        total += len(jpeg)
        store.put(_sample(i, jpeg))
    return total


def _throughput(work: Path, url: str, n: int) -> dict[str, float]:
    with SampleStore(work / "tput", quota_bytes=1 << 30) as store:
        nbytes = _fill(store, n)
        up = Uploader(store, HttpTransport(url, TOKEN),
                      UploaderConfig("bench", batch_max_count=32, batch_max_age_s=0.0,
                                     poll_interval_s=0.01))
        t = time.perf_counter()
        up.start()
        while store.stats().samples:
            time.sleep(0.005)
        dt = time.perf_counter() - t
        up.stop()
    return {"samples": n, "seconds": dt, "samples_per_s": n / dt,
            "mbytes_per_s": nbytes / dt / 1e6, "batches": up.stats()["uploads"]}


def _feeder(args: argparse.Namespace) -> int:
    """The camera and the detector as the uploader node sees them: 1280x720 bgr8 frames on
    `image_raw` at `--rate`, each followed by hazards with the same stamp whose score lies in
    the node's uncertainty band (so every frame is a hard-example candidate)."""
    import rclpy
    from sensor_msgs.msg import Image

    from edge_perception.bench.pipeline import road_frames
    from edge_perception.nodes import qos
    from edge_perception.nodes.convert import numpy_to_image, stamp_from_ns
    from edge_perception.nodes.entry import init_rclpy, shutdown_quietly, stop_on_signals
    from edge_perception_msgs.msg import RoadHazard, RoadHazardArray

    frames, _ = road_frames(1280, 720)
    init_rclpy([])
    node = rclpy.create_node("bench_feeder")
    pub = node.create_publisher(Image, "image_raw", qos.camera_output())
    hazards = node.create_publisher(RoadHazardArray, "hazards", qos.hazards())
    print("ready", flush=True)
    period, sent, t0 = 1.0 / args.rate, 0, time.monotonic()
    with stop_on_signals() as stop:  # SIGINT ends it; the node goes before the context
        try:
            while not stop.is_set():
                stamp = node.get_clock().now().nanoseconds
                pub.publish(numpy_to_image(frames[sent % len(frames)], stamp, "camera_optical"))
                msg = RoadHazardArray(image_width=1280, image_height=720, model_id="bench@0")
                msg.header.stamp = stamp_from_ns(stamp)
                msg.hazards = [RoadHazard(class_id=0, class_name="pothole", score=0.45,
                                          x_min=500.0, y_min=400.0, x_max=700.0, y_max=480.0)]
                hazards.publish(msg)
                sent += 1
                stop.wait(max(0.0, t0 + sent * period - time.monotonic()))
        finally:
            shutdown_quietly([node])
    return 0


class _NodeProcess:
    """sample_uploader_node in its own process (as vehicle.launch.py runs it), in a process
    group with its blur process, so SIGSTOP / SIGCONT pause and resume all of it."""

    def __init__(self, store: Path, url: str, token_file: Path, link_bps: float,
                 keep_rate: float) -> None:
        params = {"store_dir": str(store), "endpoint": url, "token_file": str(token_file),
                  "vehicle_id": "bench", "bandwidth_kbps": link_bps * 8 / 1000,
                  "batch_max_count": 8, "batch_max_age_s": 0.0, "random_rate": 0.0,
                  "min_interval_s": 1.0 / keep_rate}
        cmd = [sys.executable, "-m", "edge_perception.nodes.uploader_node", "--ros-args"]
        for k, v in params.items():
            cmd += ["-p", f"{k}:={v}"]
        # A process group, not a new session: with Linux autogroup (on by default) a session
        # gets its own fair CPU share, whatever its threads' priorities, and would measure that.
        self.proc = subprocess.Popen(cmd, process_group=0, stdout=subprocess.DEVNULL)
        self.running = True

    def pause(self) -> None:
        if self.running:
            os.killpg(self.proc.pid, signal.SIGSTOP)
            self.running = False

    def resume(self) -> None:
        if not self.running:
            os.killpg(self.proc.pid, signal.SIGCONT)
            self.running = True

    def close(self) -> None:
        self.resume()
        self.proc.send_signal(signal.SIGINT)  # the node stops its own blur process
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


MODES = ("off", "upload", "upload+blur", "node")


def _p99_ratio_ci(lat: dict[str, np.ndarray], mode: str, rng: np.random.Generator,
                  n: int = 2000) -> tuple[float, float]:
    """95 % bootstrap interval of p99(mode) / p99(off) - 1, in %, resampling whole rounds
    (each round holds one block of every mode, so a noisy spell of the VM stays paired)."""
    rounds = lat["off"].shape[0]
    idx = rng.integers(0, rounds, size=(n, rounds))
    ratios = [np.percentile(lat[mode][i], 99) / np.percentile(lat["off"][i], 99) for i in idx]
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return (float(lo) - 1) * 100, (float(hi) - 1) * 100


def _interference(work: Path, url: str, token_file: Path, args: argparse.Namespace
                  ) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    from edge_perception.bench.pipeline import road_frames
    from edge_perception.nodes.qos import use_fastdds_profile

    name, run = _detector(args.threads, args.workers)
    rate = args.link_mbps * 1e6 / 8
    privacy = BlurProcess()  # background process, as the node runs it
    store = SampleStore(work / "intf", quota_bytes=1 << 30)
    _fill(store, 300)
    transport = HttpTransport(url, TOKEN, bucket=TokenBucket(rate, 64 * 1024))

    def process(i: int) -> Sample:
        jpeg, _ = privacy.blur_encode(_frame(100 + i % 16))
        return _sample(10_000 + i, jpeg)

    node_store = work / "intf_node"
    with SampleStore(node_store, quota_bytes=1 << 30) as other:  # 1280x720 road JPEGs
        prefilled = args.node_backlog
        _fill(other, prefilled, frames=road_frames(1280, 720)[0])
    use_fastdds_profile()  # 1280x720 frames between processes
    feeder = subprocess.Popen([sys.executable, "-m", "edge_perception.bench.upload",
                               "--feeder", "--rate", str(args.rate)],
                              stdout=subprocess.PIPE, text=True)
    node = _NodeProcess(node_store, url, token_file, rate, args.keep_rate)
    pool = ThreadPoolExecutor(args.workers)

    def block(n: int) -> list[float]:
        out = []
        for _ in range(n):
            t = time.perf_counter()
            run()
            out.append(time.perf_counter() - t)
        return out

    lat: dict[str, list[list[float]]] = {m: [] for m in MODES}
    rng = np.random.default_rng(0)
    try:
        assert feeder.stdout is not None and feeder.stdout.readline().strip() == "ready"
        for _ in range(max(3, 8 // args.workers)):  # warm-up, then let the node start
            block(args.workers)
        time.sleep(args.node_startup_s)
        if node.proc.poll() is not None:
            raise RuntimeError(f"sample_uploader_node exited with {node.proc.returncode}")
        node.pause()
        per_worker = max(1, args.block // args.workers)
        for r in range(args.rounds):
            for mode in (MODES[i] for i in rng.permutation(len(MODES))):
                up = writer = None
                if mode in ("upload", "upload+blur"):
                    if store.stats().samples < 50:  # keep a backlog to send (not timed)
                        _fill(store, 100, start=1000 * (r + 1))
                    up = Uploader(store, transport, UploaderConfig(
                        "bench", batch_max_count=8, batch_max_age_s=0.0))
                    transport.stop.clear()
                    up.start()
                if mode == "upload+blur":
                    writer = SampleWriter(store, process, maxsize=4)
                    writer.start()
                if mode == "node":
                    node.resume()
                next_keep, kept = time.perf_counter(), 0
                futures = [pool.submit(block, per_worker) for _ in range(args.workers)]
                while writer is not None and not all(f.done() for f in futures):
                    if time.perf_counter() >= next_keep:
                        kept += 1
                        writer.submit(r * 1000 + kept)
                        next_keep += 1.0 / args.keep_rate
                    time.sleep(0.005)
                lat[mode].append([x for f in futures for x in f.result()])
                node.pause()
                if up is not None:
                    up.stop(timeout=60)
                if writer is not None:
                    writer.stop(timeout=60)  # a blur in progress finishes first
        if feeder.poll() is not None or node.proc.poll() is not None:
            raise RuntimeError("the camera feeder or sample_uploader_node died during the run")
    finally:
        pool.shutdown()
        node.close()
        feeder.send_signal(signal.SIGINT)
        feeder.wait(20)
        privacy.close()
    stats = store.stats()
    store.close()
    with SampleStore(node_store, quota_bytes=1 << 30) as other:
        node_stats = other.stats()
    arr = {m: np.asarray(v) for m, v in lat.items()}
    base = float(np.percentile(arr["off"], 99))
    out: dict[str, Any] = {
        "detector": name, "threads": args.threads, "workers": args.workers,
        "rounds": args.rounds, "iters_per_mode": int(arr["off"].size),
        "link_mbps": args.link_mbps, "keep_rate_per_s": args.keep_rate,
        "acked_during_run": stats.counters["acked"],
        "node_kept": node_stats.counters["stored"] - prefilled,
        "node_acked": node_stats.counters["acked"]}
    for m in MODES:
        p50, p99 = (float(v) for v in np.percentile(arr[m], [50, 99]))
        out[f"p50_ms_{m}"], out[f"p99_ms_{m}"] = p50 * 1e3, p99 * 1e3
        if m != "off":
            out[f"p99_increase_pct_{m}"] = (p99 / base - 1) * 100
            out[f"p99_increase_ci95_{m}"] = list(_p99_ratio_ci(arr, m, rng))
    return out


def main(args: argparse.Namespace) -> int:
    if args.feeder:
        return _feeder(args)
    resolve_node_thread_args(args)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        proc, url = _server(work / "cloud", work / "tokens.txt")
        node_token = work / "node_token.txt"
        node_token.write_text(TOKEN + "\n")
        try:
            result = {"bench": "upload", "enqueue": _enqueue(work, args.enqueue_iters),
                      "throughput": _throughput(work, url, args.samples),
                      "interference": _interference(work, url, node_token, args)}
        finally:
            proc.terminate()
            proc.wait(10)
    result = json.loads(json.dumps(result), parse_float=lambda s: round(float(s), 3))
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
