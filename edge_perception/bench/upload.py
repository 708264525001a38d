"""`edge-perception bench upload`: the sample store and uploader, measured.

* enqueue: the producer's cost of `SampleWriter.submit` (the non-blocking hand-off a
  node's callback pays) and the worker's cost of a durable `SampleStore.put` (fsync'd);
* throughput: a backlog uploaded to a real `ingest-server` subprocess on 127.0.0.1;
* interference: p99 latency of the detector loop alone ("off"), with the uploader draining a
  backlog over a bandwidth-capped link ("upload"), and with the writer also blurring and
  storing frames at `--keep-rate` per second ("upload+blur"; the blur runs in a separate
  process as in the node), and with the uploader in a separate process ("upload-process", as
  when sample_uploader_node runs in its own process). The modes alternate in blocks so
  background load hits all alike; upload/writer threads and helper processes run at nice
  +10. The shipped detector is used when its model file loads; otherwise a CPU-bound
  stand-in loop (stated in the output as `"detector": "stand-in"`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_perception.learn.privacy import BlurProcess, encode_jpeg
from edge_perception.learn.sample import Reason, Sample, SampleDetection
from edge_perception.learn.store import SampleStore
from edge_perception.learn.transport import HttpTransport, TokenBucket
from edge_perception.learn.uploader import Uploader, UploaderConfig
from edge_perception.learn.writer import SampleWriter

__all__ = ["get_args_parser", "main"]

TOKEN = "bench-upload-token-0123456789"

_CHILD = f"""
import os, sys, time
from edge_perception.learn.store import SampleStore
from edge_perception.learn.transport import HttpTransport, TokenBucket
from edge_perception.learn.uploader import Uploader, UploaderConfig
store = SampleStore(sys.argv[1], quota_bytes=1 << 30)
t = HttpTransport(sys.argv[2], "{TOKEN}", bucket=TokenBucket(float(sys.argv[3]), 65536))
Uploader(store, t, UploaderConfig("bench", batch_max_count=8, batch_max_age_s=0.0)).start()
os.nice(10)
time.sleep(3600)
"""


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.add_argument("--samples", type=int, default=200, help="backlog for the throughput run")
    p.add_argument("--enqueue-iters", type=int, default=2000)
    p.add_argument("--loop-iters", type=int, default=150, help="detector iterations per mode")
    p.add_argument("--blocks", type=int, default=12,
                   help="alternating off / upload / upload+blur / upload-process blocks "
                   "(a multiple of 4)")
    p.add_argument("--link-mbps", type=float, default=8.0,
                   help="bandwidth cap during the interference run (Mbit/s)")
    p.add_argument("--keep-rate", type=float, default=0.5,
                   help="frames/s blurred and stored during the interference run")
    p.add_argument("--threads", type=int, default=1,
                   help="detector inference threads (config/params.yaml ships 1: on a small "
                        "CPU the second core is left to the camera, uploader and ROS)")
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
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"ingest-server did not start: {line!r}")
    return proc, line.split()[3]


def _detector(threads: int) -> tuple[str, Any]:
    """The real detector when its model loads, else a CPU-bound stand-in of similar cost."""
    from edge_perception.perception import set_inference_threads

    set_inference_threads(threads)
    frame = np.ascontiguousarray(np.tile(_frame(0), (3, 3, 1))[:720, :1280])
    try:
        from edge_perception.detect.detector import load_detector

        det = load_detector(device="cpu")
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


def _fill(store: SampleStore, n: int, start: int = 0) -> int:
    total = 0
    for i in range(start, start + n):
        jpeg = encode_jpeg(_frame(i % 16)) + i.to_bytes(4, "big")
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


def _interference(work: Path, url: str, args: argparse.Namespace) -> dict[str, Any]:
    name, run = _detector(args.threads)
    for _ in range(10):
        run()
    privacy = BlurProcess(nice=10)  # as the node runs it
    store = SampleStore(work / "intf", quota_bytes=1 << 30)
    _fill(store, 300)
    rate = args.link_mbps * 1e6 / 8
    transport = HttpTransport(url, TOKEN, bucket=TokenBucket(rate, 64 * 1024))

    def process(i: int) -> Sample:
        jpeg, _ = privacy.blur_encode(_frame(100 + i % 16))
        return _sample(10_000 + i, jpeg)

    proc_store = work / "intf_proc"
    with SampleStore(proc_store, quota_bytes=1 << 30) as other:
        _fill(other, 300)

    modes = ("off", "upload", "upload+blur", "upload-process")
    lat: dict[str, list[float]] = {m: [] for m in modes}
    per_block = max(1, args.loop_iters // max(1, args.blocks // len(modes)))
    for b in range(args.blocks):
        mode = modes[b % len(modes)]
        up = Uploader(store, transport, UploaderConfig("bench", batch_max_count=8,
                                                       batch_max_age_s=0.0))
        writer: SampleWriter[int] = SampleWriter(store, process, maxsize=4)
        child = None
        if mode == "upload-process":  # the uploader in its own process, as its own node
            child = subprocess.Popen([sys.executable, "-c", _CHILD, str(proc_store), url,
                                      str(rate)])
            time.sleep(1.0)  # let it import and start sending
        elif mode != "off":
            transport.stop.clear()
            up.start()
        if mode == "upload+blur":
            writer.start()
        next_keep = time.perf_counter()
        for i in range(per_block):
            if mode == "upload+blur" and time.perf_counter() >= next_keep:
                writer.submit(b * per_block + i)
                next_keep += 1.0 / args.keep_rate
            t = time.perf_counter()
            run()
            lat[mode].append(time.perf_counter() - t)
        up.stop(timeout=60)
        writer.stop(timeout=60)  # a blur in progress finishes first
        if child is not None:
            child.kill()
            child.wait()
    stats = store.stats()
    store.close()
    privacy.close()
    base = _pct(lat["off"], 99)
    out: dict[str, Any] = {"detector": name, "threads": args.threads,
                           "iters_per_mode": len(lat["off"]),
                           "link_mbps": args.link_mbps, "keep_rate_per_s": args.keep_rate,
                           "acked_during_run": stats.counters["acked"]}
    for m in modes:
        out[f"p50_ms_{m}"] = _pct(lat[m], 50) * 1e3
        out[f"p99_ms_{m}"] = _pct(lat[m], 99) * 1e3
        if m != "off":
            out[f"p99_increase_pct_{m}"] = (_pct(lat[m], 99) / base - 1) * 100
    return out


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        proc, url = _server(work / "cloud", work / "tokens.txt")
        try:
            result = {"bench": "upload", "enqueue": _enqueue(work, args.enqueue_iters),
                      "throughput": _throughput(work, url, args.samples),
                      "interference": _interference(work, url, args)}
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
